"""Golden tests of lmcourse.delta's LoRA against peft (chapter 12): same counts, outputs, merged weights."""
import copy

import pytest
import torch

from lmcourse.delta import add_lora, count_parameters, merge_lora, unmerge_lora

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.golden


def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="module")
def minilm():
    from lmcourse.models.pretrained import load
    model, tok = load("minilm", kind="hf")
    return model.eval(), tok


def _peft(model, targets, r, alpha):
    cfg = peft.LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0)
    return peft.get_peft_model(copy.deepcopy(model), cfg)


def _share(ours, theirs, seed=1):
    """Give both the same nonzero A and B (B random, so the delta is not zero)."""
    g = torch.Generator().manual_seed(seed)
    theirs_sd = dict(theirs.named_parameters())
    n = 0
    with torch.no_grad():
        for name, p in ours.named_parameters():
            if ".delta_lora." not in name:
                continue
            host, which = name.split(".delta_lora.")
            key = f"base_model.model.{host}.lora_{which}.default.weight"
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
            theirs_sd[key].copy_(p)
            n += 1
    assert n > 0


def _out(model, ids):
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids))
        return out.logits if hasattr(out, "logits") and out.logits is not None else out.last_hidden_state


@pytest.mark.parametrize("targets,r,alpha", [(["q_proj", "v_proj"], 4, 8), (["q_proj", "k_proj", "v_proj", "o_proj",
                                              "gate_proj", "up_proj", "down_proj"], 2, 3), (["v_proj"], 16, 16)])
def test_lora_matches_peft_on_llama(targets, r, alpha, tmp_path):
    base = tiny_llama()
    theirs = _peft(base, targets, r, alpha)
    ours = copy.deepcopy(base)
    add_lora(ours, targets, r=r, alpha=alpha)
    assert count_parameters(ours)["trainable"] == theirs.get_nb_trainable_parameters()[0]
    assert count_parameters(ours)["total"] == theirs.get_nb_trainable_parameters()[1]
    inputs = (torch.tensor([[5]]), torch.randint(0, 97, (3, 11)))      # length 1 and a batch
    for ids in inputs:
        assert torch.equal(_out(ours, ids), _out(base, ids))            # identity at init (B = 0)
    _share(ours, theirs)
    for ids in inputs:
        torch.testing.assert_close(_out(ours, ids), _out(theirs, ids), rtol=1e-5, atol=1e-5)
    ids2 = inputs[1]
    merged_theirs = theirs.merge_and_unload()
    merge_lora(ours)
    sd = {k: v for k, v in ours.state_dict().items() if ".delta_" not in k}
    ref = merged_theirs.state_dict()
    assert set(sd) == set(ref)
    for k in ref:
        torch.testing.assert_close(sd[k], ref[k], rtol=0, atol=1e-6)
    torch.testing.assert_close(_out(ours, ids2), _out(merged_theirs, ids2), rtol=1e-5, atol=1e-5)
    unmerge_lora(ours)
    for k, v in base.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[k], v, rtol=0, atol=1e-6)


def test_lora_matches_peft_on_minilm(minilm):
    base, tok = minilm
    theirs = _peft(base, ["query", "value"], 8, 16)
    ours = copy.deepcopy(base)
    add_lora(ours, ["query", "value"], r=8, alpha=16)
    assert count_parameters(ours)["trainable"] == theirs.get_nb_trainable_parameters()[0] == 6 * 2 * 8 * (384 + 384)
    ids = torch.tensor([tok.encode("a tweet about nothing at all")])
    assert torch.equal(_out(ours, ids), _out(base, ids))
    _share(ours, theirs)
    torch.testing.assert_close(_out(ours, ids), _out(theirs, ids), rtol=1e-5, atol=1e-5)
    merged = theirs.merge_and_unload()
    merge_lora(ours)
    ref = merged.state_dict()
    for k, v in ours.state_dict().items():
        if ".delta_" not in k:
            torch.testing.assert_close(v, ref[k], rtol=0, atol=1e-6)


def test_lora_init_of_A_matches_peft_distribution():
    """A is Kaiming-uniform(a = sqrt 5) as in peft: same seed, same values."""
    base = tiny_llama()
    torch.manual_seed(3)
    theirs = _peft(base, ["q_proj"], 4, 4)
    ours = copy.deepcopy(base)
    torch.manual_seed(3)
    add_lora(ours, ["q_proj"], r=4, alpha=4)
    a_ours = ours.model.layers[0].self_attn.q_proj.delta_lora.A
    a_theirs = theirs.base_model.model.model.layers[0].self_attn.q_proj.lora_A.default.weight
    bound = 1 / (32 ** 0.5)                       # kaiming_uniform(a=sqrt 5) on fan_in 32
    assert a_ours.abs().max() <= bound and a_theirs.abs().max() <= bound
    assert a_ours.shape == a_theirs.shape


def test_lora_on_gpt2_conv1d_matches_peft():
    """transformers Conv1D (GPT-2's transposed linear): same outputs and merged weights as peft (fan_in_fan_out)."""
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    base = GPT2LMHeadModel(GPT2Config(vocab_size=61, n_positions=32, n_embd=16, n_layer=2, n_head=2)).eval()
    cfg = peft.LoraConfig(r=2, lora_alpha=4, target_modules=["c_attn", "c_proj"], fan_in_fan_out=True)
    theirs = peft.get_peft_model(copy.deepcopy(base), cfg)
    ours = copy.deepcopy(base)
    add_lora(ours, ["c_attn", "c_proj"], r=2, alpha=4)
    assert count_parameters(ours)["trainable"] == theirs.get_nb_trainable_parameters()[0]
    ids = torch.randint(0, 61, (2, 9))
    assert torch.equal(_out(ours, ids), _out(base, ids))
    _share(ours, theirs)
    torch.testing.assert_close(_out(ours, ids), _out(theirs, ids), rtol=1e-5, atol=1e-5)
    ref = theirs.merge_and_unload().state_dict()
    merge_lora(ours)
    for k, v in ours.state_dict().items():
        if ".delta_" not in k:
            torch.testing.assert_close(v, ref[k], rtol=0, atol=1e-6)


def test_lora_matches_peft_on_smollm2():
    """The real SmolLM2-135M, once: same trainable count as peft, identity at init, same outputs with shared A, B."""
    from lmcourse.errors import AssetError
    from lmcourse.models.pretrained import load
    try:
        base, _ = load("smollm2")
    except AssetError as e:                                  # the asset package is not installed here
        pytest.skip(str(e))
    base.eval()
    theirs = _peft(base, ["q_proj", "v_proj"], 8, 16)
    add_lora(base, ["q_proj", "v_proj"], r=8, alpha=16)      # in place: one copy of the model less
    assert count_parameters(base)["trainable"] == theirs.get_nb_trainable_parameters()[0] == 460_800
    ids = torch.tensor([[1, 504, 3120, 314, 253, 1345, 30]])
    ref = _out(theirs, ids)                                  # peft's B is zero too: the frozen model's logits
    assert torch.equal(_out(base, ids), ref)
    _share(base, theirs)
    torch.testing.assert_close(_out(base, ids), _out(theirs, ids), rtol=1e-4, atol=1e-4)
