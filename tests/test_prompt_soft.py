"""Soft prompts (prompt tuning, P-tuning v1/v2), prefix-tuning and trigger search, against ``peft``.

Golden tests: the same trainable-parameter counts as ``peft`` for the same configuration
and, with ``peft``'s initial values copied into lmcourse's modules, the same logits, on small
random Llama / BERT models (awkward inputs: length 1, padding) and once on SmolLM2.
"""
from __future__ import annotations

import copy
import warnings

import pytest
import torch

from lmcourse.delta.prefix import PrefixError, PrefixTuning
from lmcourse.prompt.soft import (DeepPromptTuning, PromptTuning, PTuning, SoftPromptError,
                                  trainable_parameters)

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

N = 4          # virtual tokens
V = 97         # vocabulary of the random models


def llama():
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=V, hidden_size=48, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=64)
    return transformers.LlamaForCausalLM(cfg).eval()


def bert():
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=V, hidden_size=48, intermediate_size=64, num_hidden_layers=2,
                                  num_attention_heads=4, max_position_embeddings=64)
    return transformers.BertModel(cfg).eval()


def peft_model(model, config):
    with warnings.catch_warnings():                    # peft's own deprecation notices about transformers 5
        warnings.simplefilter("ignore")
        return peft.get_peft_model(copy.deepcopy(model), config).eval()


def peft_out(pm, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pm(**kw)


def peft_count(pm) -> int:
    return pm.get_nb_trainable_parameters()[0]


def inputs():
    """Three cases: a padded batch, a batch of length-1 inputs, no attention mask."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, V, (3, 6), generator=g)
    mask = torch.tensor([[1] * 6, [1, 1, 1, 1, 0, 0], [1, 0, 0, 0, 0, 0]])
    return [(ids, mask), (ids[:, :1], torch.ones(3, 1, dtype=torch.long)), (ids[:2], None)]


def _task(model):
    return peft.TaskType.CAUSAL_LM if isinstance(model, transformers.LlamaForCausalLM) else \
        peft.TaskType.FEATURE_EXTRACTION


def _compare(pm, ours, n_virtual_in_peft_output: int):
    """Same outputs on every input case; peft keeps virtual positions for prompt tuning, drops none for prefixes."""
    key = "logits" if isinstance(ours.model, transformers.LlamaForCausalLM) else "last_hidden_state"
    for ids, mask in inputs():
        with torch.no_grad():
            a = peft_out(pm, input_ids=ids, attention_mask=mask)[key][:, n_virtual_in_peft_output:]
            b = ours(ids, attention_mask=mask)[key]
        assert a.shape == b.shape == (*ids.shape, a.shape[-1])
        valid = torch.ones_like(ids, dtype=torch.bool) if mask is None else mask.bool()
        torch.testing.assert_close(b[valid], a[valid], rtol=1e-5, atol=1e-5)


@pytest.mark.golden
@pytest.mark.parametrize("make", [llama, bert])
def test_prompt_tuning_matches_peft(make):
    model = make()
    pm = peft_model(model, peft.PromptTuningConfig(task_type=_task(model), num_virtual_tokens=N))
    ours = PromptTuning(copy.deepcopy(model), N)
    assert trainable_parameters(ours) == peft_count(pm) == N * 48
    with torch.no_grad():
        ours.prompt.copy_(pm.prompt_encoder["default"].embedding.weight)
    _compare(pm, ours, N)


@pytest.mark.golden
@pytest.mark.parametrize("make", [llama, bert])
@pytest.mark.parametrize("encoder", ["mlp", "lstm"])
def test_p_tuning_matches_peft(make, encoder):
    model = make()
    pm = peft_model(model, peft.PromptEncoderConfig(task_type=_task(model), num_virtual_tokens=N,
                                                    encoder_reparameterization_type=encoder.upper(),
                                                    encoder_hidden_size=32))
    ours = PTuning(copy.deepcopy(model), N, encoder=encoder, hidden=32)
    assert trainable_parameters(ours) == peft_count(pm)
    sd = pm.prompt_encoder["default"].state_dict()
    mapped = {k.replace("mlp_head", "mlp").replace("lstm_head", "lstm"): v for k, v in sd.items()}
    ours.encoder.load_state_dict(mapped, strict=True)
    _compare(pm, ours, N)
    # the encoder is only needed in training: the exported prompts give the same outputs
    pt = ours.to_prompt_tuning()
    ids, mask = inputs()[0]
    with torch.no_grad():
        torch.testing.assert_close(pt(ids, attention_mask=mask)[0], ours(ids, attention_mask=mask)[0])


@pytest.mark.golden
@pytest.mark.parametrize("make", [llama, bert])
@pytest.mark.parametrize("hidden", [None, 32])
def test_prefix_tuning_matches_peft(make, hidden):
    model = make()
    pm = peft_model(model, peft.PrefixTuningConfig(task_type=_task(model), num_virtual_tokens=N,
                                                   prefix_projection=hidden is not None,
                                                   encoder_hidden_size=hidden or 48))
    ours = PrefixTuning(copy.deepcopy(model), N, reparam_hidden=hidden)
    assert trainable_parameters(ours) == peft_count(pm)
    sd = pm.prompt_encoder["default"].state_dict()
    ours.embedding.load_state_dict({"weight": sd["embedding.weight"]})
    if hidden is not None:
        ours.transform.load_state_dict({k.removeprefix("transform."): v for k, v in sd.items()
                                        if k.startswith("transform.")})
    _compare(pm, ours, 0)
    # dropping the MLP keeps the outputs and leaves peft's count without projection
    ids, mask = inputs()[0]
    with torch.no_grad():
        before = ours(ids, attention_mask=mask)[0]
        ours.drop_reparam()
        after = ours(ids, attention_mask=mask)[0]
    torch.testing.assert_close(after, before)
    plain = peft_model(model, peft.PrefixTuningConfig(task_type=_task(model), num_virtual_tokens=N))
    assert trainable_parameters(ours) == peft_count(plain)


@pytest.mark.golden
def test_deep_prompt_tuning_is_prefix_without_reparam():
    model = llama()
    pm = peft_model(model, peft.PrefixTuningConfig(task_type=peft.TaskType.CAUSAL_LM, num_virtual_tokens=N))
    ours = DeepPromptTuning(copy.deepcopy(model), N)
    # 2 layers x (keys + values) x 2 kv heads x head_dim 8 per virtual token (grouped-query attention)
    assert trainable_parameters(ours) == peft_count(pm) == N * 2 * 2 * 16


@pytest.mark.golden
def test_prompt_tuning_text_init_like_peft():
    """init_text: the text's token embeddings, repeated to n_virtual (peft's PromptTuningInit.TEXT)."""
    model = llama()

    def tok(text):
        return {"input_ids": [5, 7, 9]}

    ours = PromptTuning(model, 7, init_text="anything", tokenizer=tok)
    W = model.get_input_embeddings().weight
    torch.testing.assert_close(ours.prompt.data, W[[5, 7, 9, 5, 7, 9, 5]])


def test_only_the_prompts_learn():
    model = llama()
    for ours in (PromptTuning(copy.deepcopy(model), N), PTuning(copy.deepcopy(model), N, "lstm", 16),
                 PrefixTuning(copy.deepcopy(model), N, 16), DeepPromptTuning(copy.deepcopy(model), N)):
        ids, mask = inputs()[0]
        out = ours(ids, attention_mask=mask, labels=ids)
        out.loss.backward()
        assert all(p.grad is None for p in ours.model.parameters())
        trained = [p for p in ours.parameters() if p.requires_grad]
        assert trained and all(p.grad is not None and p.grad.abs().sum() > 0 for p in trained)


def test_lmcourse_gpt_prompt_tuning_equals_prepended_tokens():
    """On lmcourse's GPT, prompts equal to real token embeddings give the logits of those tokens prepended."""
    from lmcourse.models import GPT, GPTConfig
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=V, block_size=32, n_layer=2, n_head=2, n_embd=16)).eval()
    ours = PromptTuning(gpt, 3)
    prefix = torch.tensor([4, 8, 15])
    with torch.no_grad():
        ours.prompt.copy_(gpt.wte.weight[prefix])
    ids = torch.randint(0, V, (2, 5))
    full = gpt(torch.cat([prefix.expand(2, -1), ids], 1))[0][:, 3:]
    torch.testing.assert_close(ours(ids).logits, full)
    assert ours(ids[:, :1]).logits.shape == (2, 1, V)


def test_mixed_template_soft_tokens_in_place():
    """soft_token_id: placeholders in the input are replaced by the virtual vectors, in order."""
    model = llama()
    ours = PromptTuning(copy.deepcopy(model), 2, soft_token_id=1)
    ids = torch.tensor([[5, 1, 6, 1, 7], [1, 8, 9, 1, 2]])
    W = model.get_input_embeddings().weight
    x = W[ids].clone()
    x[ids == 1] = ours.prompt.data.repeat(2, 1)
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, model(inputs_embeds=x).logits)
    with pytest.raises(SoftPromptError, match="exactly 2 soft tokens"):
        ours(torch.tensor([[5, 1, 6, 7, 8]]))


def test_bad_input():
    model = llama()
    with pytest.raises(SoftPromptError, match="n_virtual"):
        PromptTuning(model, 0)
    with pytest.raises(SoftPromptError, match="encoder"):
        PTuning(model, 2, encoder="gru")
    with pytest.raises(SoftPromptError, match="tokenizer"):
        PromptTuning(model, 2, init_text="hello")
    with pytest.raises(SoftPromptError, match="T >= 1"):
        PromptTuning(model, 2)(torch.zeros(2, 0, dtype=torch.long))
    with pytest.raises(PrefixError, match="n_prefix"):
        PrefixTuning(model, 0)
    with pytest.raises(PrefixError, match="Hugging Face"):
        PrefixTuning(torch.nn.Linear(2, 2), 2)
    t5 = transformers.T5ForConditionalGeneration(transformers.T5Config(vocab_size=V, d_model=16, d_kv=4, d_ff=32,
                                                                       num_layers=1, num_heads=2))
    with pytest.raises(PrefixError, match="encoder-decoder"):
        PrefixTuning(t5, 2)
    with pytest.raises(SoftPromptError, match="encoder-decoder"):
        PromptTuning(t5, 2)
    with pytest.raises(SoftPromptError, match="vocabulary"):
        PromptTuning(model, 2, soft_token_id=V)


@pytest.mark.golden
def test_real_smollm2_matches_peft():
    """Once on the real SmolLM2-135M: prompt tuning and prefix tuning give peft's logits."""
    from lmcourse.errors import AssetError
    from lmcourse.models.pretrained import load
    try:
        model, tok = load("smollm2")
    except AssetError as e:
        pytest.skip(str(e))
    enc = tok(["The movie was great.", "Bad."], return_tensors="pt", padding=True)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    cases = [(peft.PromptTuningConfig(task_type=peft.TaskType.CAUSAL_LM, num_virtual_tokens=N),
              lambda m: PromptTuning(m, N), N),
             (peft.PrefixTuningConfig(task_type=peft.TaskType.CAUSAL_LM, num_virtual_tokens=N),
              lambda m: PrefixTuning(m, N, reparam_hidden=None), 0)]
    for cfg, make, offset in cases:
        pm = peft_model(model, cfg)
        ours = make(model)
        assert trainable_parameters(ours) == peft_count(pm)
        w = pm.prompt_encoder["default"].embedding.weight
        with torch.no_grad():
            (ours.prompt if offset else ours.embedding.weight).copy_(w)
            a = peft_out(pm, input_ids=ids, attention_mask=mask).logits[:, offset:]
            b = ours(ids, attention_mask=mask).logits
        valid = mask.bool()
        torch.testing.assert_close(b[valid], a[valid], rtol=1e-4, atol=1e-4)
        del pm


# --------------------------------------------------------------------------- trigger search, generated templates


@pytest.fixture(scope="module")
def smol_tokenizer():
    from lmcourse.errors import AssetError
    from lmcourse.models.pretrained import smollm2_path
    try:
        folder = smollm2_path()
    except AssetError as e:
        pytest.skip(str(e))
    return transformers.AutoTokenizer.from_pretrained(str(folder))


def tiny_llama_for(tokenizer):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                                   num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=128)
    return transformers.LlamaForCausalLM(cfg).eval()


def test_autoprompt_keeps_only_improvements(smol_tokenizer):
    from lmcourse.prompt.search import autoprompt, trigger_scores
    model = tiny_llama_for(smol_tokenizer)
    texts = ["a fine film", "dull and long", "I loved it", "a waste of time"]
    labels = [1, 0, 1, 0]
    r = autoprompt(model, smol_tokenizer, texts, labels, ["bad", "good"], n_triggers=2, iterations=4,
                   n_candidates=3, batch_size=4, seed=0)
    assert len(r.trigger_ids) == len(r.tokens) == 2 and len(r.losses) == 4
    # with the whole set as the batch, a trigger changes only when the loss goes down
    assert all(b <= a + 1e-6 for a, b in zip(r.losses, r.losses[1:]))
    label_ids = smol_tokenizer.encode(" bad") + smol_tokenizer.encode(" good")
    assert not set(r.trigger_ids) & set(label_ids)
    s = trigger_scores(model, smol_tokenizer, texts, r.trigger_ids, ["bad", "good"])
    assert s.shape == (4, 2)
    torch.testing.assert_close(s.exp().sum(1), torch.ones(4))
    loss = torch.nn.functional.cross_entropy(s, torch.tensor(labels))
    assert abs(loss.item() - r.losses[-1]) < 1e-4
    assert r.template_text(smol_tokenizer).startswith("{text}")


def test_search_bad_input(smol_tokenizer):
    from lmcourse.prompt.search import SearchError, autoprompt, label_token_ids, rank_templates
    model = tiny_llama_for(smol_tokenizer)
    with pytest.raises(SearchError, match="one-token"):
        label_token_ids(smol_tokenizer, ["great", "antidisestablishmentarianism"])
    with pytest.raises(SearchError, match="as many labels"):
        autoprompt(model, smol_tokenizer, ["a", "b"], [0], ["bad", "good"])
    with pytest.raises(SearchError, match="one label word per class"):
        autoprompt(model, smol_tokenizer, ["a", "b"], [0, 2], ["bad", "good"])
    with pytest.raises(SearchError, match="no candidate"):
        rank_templates(lambda t: None, [], [], [])


def test_generated_phrase_becomes_template():
    from lmcourse.prompt.search import _bridge
    words = ["terrible", "great"]
    assert _bridge('"The film was exceptional."', words, 8) == " The film was"
    assert _bridge('"The One-Word Verdict: Great"', words, 8) == " The One-Word Verdict:"
    assert _bridge("Great", words, 8) is None


def test_mixed_template_through_the_causal_scorer(smol_tokenizer):
    """A P-tuning wrapper with a placeholder soft token plugs into CORE's scorer; gradients reach the encoder."""
    from lmcourse.prompt import Template
    from lmcourse.prompt.scoring import causal_scorer
    model = tiny_llama_for(smol_tokenizer)
    wrapped = PTuning(model, 2, encoder="mlp", hidden=8, soft_token="<empty_output>", tokenizer=smol_tokenizer)
    scorer = causal_scorer(wrapped, smol_tokenizer)
    assert scorer.soft_token == "<empty_output>"
    t = Template("{text}{soft*2} It was {mask}")
    prompts = [t.render({"text": x}, scorer.mask_token, scorer.soft_token) for x in ("a fine film", "dull")]
    lp = scorer.word_logprobs(prompts, ["bad", "good"])
    assert lp.shape == (2, 2) and bool(torch.isfinite(lp).all())
    lp.sum().backward()
    assert all(p.grad is not None for p in wrapped.encoder.parameters())
    with pytest.raises(SoftPromptError, match="exactly one token"):
        PTuning(model, 2, soft_token="two words", tokenizer=smol_tokenizer)
