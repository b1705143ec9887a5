"""lmcourse.prompt core: templates, the three scorers, verbalizers, few-shot utilities (chapter 9)."""
import math

import pytest
import torch

from lmcourse.models.pretrained import asset_dir, smollm2_path
from lmcourse.prompt import (FewShotError, LabelWordError, PromptClassifier, Template, TemplateError, Verbalizer,
                             VerbalizerError, accuracy, causal_scorer, fewshot_train, key_value_template,
                             kshot_split, masked_scorer, over_seeds, seq2seq_scorer)

transformers = pytest.importorskip("transformers")


# --------------------------------------------------------------------------- fixtures: tiny random models


@pytest.fixture(scope="module")
def bert_tok():
    from transformers import BertTokenizerFast
    return BertTokenizerFast.from_pretrained(str(asset_dir("minilm") / "model"))


@pytest.fixture(scope="module")
def smol_tok():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(smollm2_path()))


@pytest.fixture(scope="module")
def tiny_causal(smol_tok):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(smol_tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="module")
def tiny_mlm(bert_tok):
    from transformers import BertConfig, BertForMaskedLM
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=bert_tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=128)
    return BertForMaskedLM(cfg).eval()


@pytest.fixture(scope="module")
def tiny_t5(bert_tok):
    from transformers import T5Config, T5ForConditionalGeneration
    torch.manual_seed(0)
    cfg = T5Config(vocab_size=bert_tok.vocab_size, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                   decoder_start_token_id=0, pad_token_id=0)
    return T5ForConditionalGeneration(cfg).eval()


PROMPTS_END = ["a gripping , moving film . it was <mask>", "dull and far too long . it was <mask>"]
WORDS = ["great", "terrible", "xqzwv", "unbelievably good"]    # the last two are several tokens for both tokenizers


def _logp(logits, pos, tgt):
    return torch.log_softmax(logits[pos].double(), -1)[tgt].item()


# --------------------------------------------------------------------------- templates


def test_template_fields_soft_and_render():
    t = Template("{text} {soft*3} In short, {soft} it was {mask}")
    assert t.fields == ("text",) and t.n_soft == 4 and t.mask_at_end
    assert t.render({"text": "Nice."}, "[MASK]", "<v>") == "Nice. <v><v><v> In short, <v> it was [MASK]"
    t2 = Template("{premise} ? {mask} , {hypothesis} {{literal}}")
    assert t2.fields == ("premise", "hypothesis") and not t2.mask_at_end
    assert t2.render({"premise": "a", "hypothesis": "b"}, "_") == "a ? _ , b {literal}"


def test_key_value_template_is_structured():
    t = key_value_template("sentiment", {"Sentence": "text"})
    assert t.render({"text": "Good."}, "[MASK]") == "Task: sentiment | Sentence: Good. | Answer: [MASK]"
    assert t.mask_at_end and t.fields == ("text",)


@pytest.mark.parametrize("text", ["{text} no slot here", "{mask} and {mask}", "{mask} {text", "", "{soft*0} {mask}"])
def test_bad_templates_raise(text):
    with pytest.raises(TemplateError):
        Template(text)


def test_missing_field_names_it():
    with pytest.raises(TemplateError, match="review"):
        Template("{review} {mask}").render({"text": "x"}, "[MASK]")


# --------------------------------------------------------------------------- scorers: golden hand computations


@pytest.mark.golden
def test_causal_word_logprobs_equal_hand_teacher_forcing(tiny_causal, smol_tok):
    s = causal_scorer(tiny_causal, smol_tok)
    with torch.no_grad():
        got = s.word_logprobs(PROMPTS_END, WORDS)
    assert got.shape == (2, 4)
    for b, p in enumerate(PROMPTS_END):
        ctx = smol_tok.encode(p.replace(" <mask>", ""))
        for w, word in enumerate(WORDS):
            ids = smol_tok.encode(" " + word)                    # leading-space convention
            if w >= 2:
                assert len(ids) > 1
            with torch.no_grad():
                lg = tiny_causal(torch.tensor([ctx + ids])).logits[0]
            hand = sum(_logp(lg, len(ctx) - 1 + j, ids[j]) for j in range(len(ids)))
            assert got[b, w].item() == pytest.approx(hand, abs=1e-4)


def test_causal_no_space_before_slot_scores_word_as_written(tiny_causal, smol_tok):
    s = causal_scorer(tiny_causal, smol_tok)
    with torch.no_grad():
        got = s.word_logprobs(["Answer:<mask>"], ["great"])[0, 0].item()
        ctx, ids = smol_tok.encode("Answer:"), smol_tok.encode("great")
        lg = tiny_causal(torch.tensor([ctx + ids])).logits[0]
    assert got == pytest.approx(sum(_logp(lg, len(ctx) - 1 + j, ids[j]) for j in range(len(ids))), abs=1e-4)


@pytest.mark.golden
def test_masked_word_logprobs_equal_hand_sum_over_mask_pieces(tiny_mlm, bert_tok):
    s = masked_scorer(tiny_mlm, bert_tok)
    prompts = ["[MASK] ! a gripping film .", "dull and long . it was [MASK] ."]   # slot anywhere
    with torch.no_grad():
        got = s.word_logprobs(prompts, WORDS)
    for b, p in enumerate(prompts):
        for w, word in enumerate(WORDS):
            ids = bert_tok.encode(word, add_special_tokens=False)
            seq = bert_tok.encode(p.replace("[MASK]", " ".join(["[MASK]"] * len(ids))))
            where = [i for i, t in enumerate(seq) if t == bert_tok.mask_token_id]
            with torch.no_grad():
                lg = tiny_mlm(input_ids=torch.tensor([seq])).logits[0]
            hand = sum(_logp(lg, pos, t) for pos, t in zip(where, ids))
            assert got[b, w].item() == pytest.approx(hand, abs=1e-4)


@pytest.mark.golden
def test_seq2seq_word_logprobs_equal_hand_decoder_logprob(tiny_t5, bert_tok):
    s = seq2seq_scorer(tiny_t5, bert_tok, mask_token="[MASK]")
    prompts = ["a gripping film . it was [MASK] .", "[MASK] : dull"]
    with torch.no_grad():
        got = s.word_logprobs(prompts, WORDS)
    for b, p in enumerate(prompts):
        src = bert_tok.encode(p)
        for w, word in enumerate(WORDS):
            tgt = [bert_tok.mask_token_id] + bert_tok.encode(word, add_special_tokens=False)
            with torch.no_grad():
                lg = tiny_t5(input_ids=torch.tensor([src]), decoder_input_ids=torch.tensor([[0] + tgt[:-1]])).logits[0]
            hand = sum(_logp(lg, j, tgt[j]) for j in range(1, len(tgt)))
            assert got[b, w].item() == pytest.approx(hand, abs=1e-4)


def test_chunking_does_not_change_scores(tiny_causal, smol_tok):
    s = causal_scorer(tiny_causal, smol_tok)
    with torch.no_grad():
        a = s.word_logprobs(PROMPTS_END, WORDS)
        s.max_batch = 1
        b = s.word_logprobs(PROMPTS_END, WORDS)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_lmcourse_models_work_behind_the_scorers(bert_tok):
    from lmcourse.models.bert import BertConfig, BertForPreTraining
    from lmcourse.models.t5 import T5, T5Config
    torch.manual_seed(0)
    mlm = BertForPreTraining(BertConfig(vocab_size=bert_tok.vocab_size, hidden_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, intermediate_size=64)).eval()
    t5 = T5(T5Config(vocab_size=bert_tok.vocab_size, d_model=32, n_heads=2, n_layers=1, d_ff=64)).eval()
    with torch.no_grad():
        a = masked_scorer(mlm, bert_tok).word_logprobs(["it was [MASK] ."], WORDS)
        b = seq2seq_scorer(t5, bert_tok, mask_token="[MASK]").word_logprobs(["it was [MASK] ."], WORDS)
    assert a.shape == b.shape == (1, 4) and (a < 0).all() and (b < 0).all()


def test_scores_are_differentiable(tiny_mlm, bert_tok):
    s = masked_scorer(tiny_mlm, bert_tok)
    lp = s.word_logprobs(["it was [MASK] ."], ["great", "xqzwv"])
    lp.sum().backward()
    g = tiny_mlm.bert.embeddings.word_embeddings.weight.grad
    assert g is not None and g.abs().sum() > 0
    tiny_mlm.zero_grad(set_to_none=True)


@pytest.mark.golden
def test_smollm2_class_scores_equal_hand_computation(smol_tok):
    from lmcourse.models.pretrained import load
    model, tok = load("smollm2")
    v = Verbalizer({"negative": ["terrible", "dull"], "positive": ["great", "unbelievably good"]}, tok)
    clf = PromptClassifier(causal_scorer(model, tok), Template("Review: {text} Sentiment: it was {mask}"), v)
    ex = [{"text": "A gripping, moving film."}]
    with torch.no_grad():
        got = clf(ex)[0]
        ctx = tok.encode("Review: A gripping, moving film. Sentiment: it was")
        word = {}
        for w in v.words:
            ids = tok.encode(" " + w)
            lg = model(torch.tensor([ctx + ids])).logits[0]
            word[w] = sum(_logp(lg, len(ctx) - 1 + j, ids[j]) for j in range(len(ids)))
    for c, label in enumerate(v.labels):
        ws = v.label_words[label]
        hand = math.log(sum(math.exp(word[w]) for w in ws) / len(ws))
        assert got[c].item() == pytest.approx(hand, abs=1e-4)


# --------------------------------------------------------------------------- verbalizers


def test_verbalizer_aggregates_equal_hand_computation(tiny_causal, smol_tok):
    v = Verbalizer({"neg": ["terrible", "xqzwv"], "pos": ["great", "unbelievably good", "fine"]}, smol_tok)
    clf = PromptClassifier(causal_scorer(tiny_causal, smol_tok), Template("{text} it was {mask}"), v)
    ex = [{"text": "a gripping , moving film ."}, {"text": "dull"}]
    with torch.no_grad():
        lp = clf.word_logprobs(ex).double()                           # (2, 5), checked above against the model
        for agg in ("mean", "max", "weighted"):
            v.aggregate = agg
            got = clf(ex)
            for b in range(2):
                for c, ws in enumerate([[0, 1], [2, 3, 4]]):
                    vals = [lp[b, i].item() for i in ws]
                    hand = {"mean": math.log(sum(math.exp(x) for x in vals) / len(vals)), "max": max(vals),
                            "weighted": math.log(sum(math.exp(x) for x in vals) / len(vals))}[agg]
                    assert got[b, c].item() == pytest.approx(hand, abs=1e-5)
        v.word_weight.copy_(torch.tensor([0.0, math.log(3.0), 0.0, 0.0, 0.0]))   # weights 1/4, 3/4 for "neg"
        v.aggregate = "weighted"
        got = clf(ex)
        hand = math.log(0.25 * math.exp(lp[0, 0].item()) + 0.75 * math.exp(lp[0, 1].item()))
        assert got[0, 0].item() == pytest.approx(hand, abs=1e-5)


def test_calibration_removes_the_content_free_prior(tiny_causal, smol_tok):
    v = Verbalizer({"neg": ["terrible"], "pos": ["great", "fine"]}, smol_tok)
    clf = PromptClassifier(causal_scorer(tiny_causal, smol_tok), Template("{text} it was {mask}"), v)
    raw = clf.scores([{"text": "ok"}])
    clf.calibrate(content_free=("N/A",))
    assert clf.verbalizer.calibrated and not v.calibrated              # a calibrated copy
    cf = torch.softmax(clf.scores([{"text": "N/A"}]), -1)
    torch.testing.assert_close(cf, torch.full_like(cf, 0.5), atol=1e-5, rtol=0)   # the prior is divided out
    prior = torch.log_softmax(v.class_scores(clf.word_logprobs([{"text": "N/A"}]).detach()), -1)[0]
    torch.testing.assert_close(clf.scores([{"text": "ok"}]), raw - prior, atol=1e-5, rtol=0)


def test_bad_verbalizers_raise(smol_tok, bert_tok):
    with pytest.raises(VerbalizerError, match="no label words"):
        Verbalizer({"neg": [], "pos": ["good"]}, smol_tok)
    with pytest.raises(LabelWordError, match="non-empty"):
        Verbalizer({"neg": [" "], "pos": ["good"]}, smol_tok)
    with pytest.raises(LabelWordError, match="cannot encode"):
        Verbalizer({"neg": ["\u9fff"], "pos": ["good"]}, bert_tok)     # WordPiece: [UNK] only
    with pytest.raises(VerbalizerError, match="twice"):
        Verbalizer({"neg": ["good"], "pos": ["good"]}, smol_tok)
    with pytest.raises(VerbalizerError, match="aggregate"):
        Verbalizer({"neg": ["bad"], "pos": ["good"]}, smol_tok, aggregate="median")


def test_causal_slot_must_be_at_the_end(tiny_causal, smol_tok):
    v = Verbalizer({"neg": ["bad"], "pos": ["good"]}, smol_tok)
    with pytest.raises(TemplateError, match="end"):
        PromptClassifier(causal_scorer(tiny_causal, smol_tok), Template("It was {mask} . {text}"), v)
    with pytest.raises(TemplateError, match="end"):
        causal_scorer(tiny_causal, smol_tok).word_logprobs(["<mask> was good"], ["bad"])
    with pytest.raises(TemplateError, match="exactly once"):
        causal_scorer(tiny_causal, smol_tok).word_logprobs(["no slot"], ["bad"])


# --------------------------------------------------------------------------- few-shot utilities


def test_kshot_split_is_seeded_balanced_and_disjoint():
    labels = [0] * 10 + [1] * 6 + [2] * 4
    tr, te = kshot_split(list(range(20)), labels, k=3, seed=1)
    assert sorted(labels[i] for i in tr) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert not set(tr) & set(te) and len(tr) + len(te) == 20
    assert kshot_split(list(range(20)), labels, 3, seed=1) == (tr, te)
    assert kshot_split(list(range(20)), labels, 3, seed=2) != (tr, te)
    with pytest.raises(FewShotError, match="only 4"):
        kshot_split(list(range(20)), labels, k=4, seed=0)
    with pytest.raises(FewShotError, match="labels"):
        kshot_split([1, 2], [0], k=1, seed=0)


def test_over_seeds_and_accuracy():
    r = over_seeds(lambda s: float(s), [1, 2, 3])
    assert r["mean"] == 2.0 and r["std"] == pytest.approx(1.0) and r["values"] == [1.0, 2.0, 3.0]
    assert over_seeds(lambda s: 0.5, [0])["std"] == 0.0
    assert accuracy(torch.tensor([0, 1, 1]), [0, 1, 0]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        accuracy(torch.tensor([0]), [0, 1])


def test_fewshot_train_fits_a_few_examples(tiny_mlm, bert_tok):
    import copy
    model = copy.deepcopy(tiny_mlm)
    v = Verbalizer({"neg": ["bad"], "pos": ["good"]}, bert_tok)
    clf = PromptClassifier(masked_scorer(model, bert_tok), Template("{text} it was {mask} ."), v)
    ex = [{"text": t} for t in ["awful", "boring", "lovely", "superb"]]
    y = [0, 0, 1, 1]
    hist = fewshot_train(clf, ex, y, steps=20, lr=3e-3, batch_size=4)
    assert hist.values("loss")[-1] < hist.values("loss")[0]
    assert accuracy(clf.predict(ex), y) == 1.0
    for p in clf.parameters():
        p.requires_grad_(False)
    with pytest.raises(FewShotError, match="no trainable"):
        fewshot_train(clf, ex, y, steps=1)


# --------------------------------------------------------------------------- the offline masked LM and model names


def test_minilm_mlm_is_built_cached_checked_and_rebuilt(tmp_path, monkeypatch):
    from lmcourse.prompt import scoring
    monkeypatch.setenv("LMCOURSE_CACHE", str(tmp_path))
    small = {"lines": 32, "valid_lines": 16, "steps": 3, "batch": 16}
    monkeypatch.setattr(scoring, "MLM_RECIPE", {**scoring.MLM_RECIPE, **small})
    model, tok = scoring.minilm_mlm()
    assert set(model.build_info) == {"valid_top1", "valid_positions", "train_positions"}
    assert 0.0 <= model.build_info["valid_top1"] <= 1.0
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"transform.weight", "transform.bias", "norm.weight", "norm.bias", "bias"}
    files = sorted(tmp_path.glob("minilm-mlm-head-*.safetensors"))
    assert len(files) == 1
    again, _ = scoring.minilm_mlm()                                          # loaded from the cache
    torch.testing.assert_close(again.transform.weight, model.transform.weight)
    files[0].write_bytes(files[0].read_bytes()[:-8] + b"tampered")          # checksum fails -> rebuilt
    rebuilt, _ = scoring.minilm_mlm()
    torch.testing.assert_close(rebuilt.transform.weight, model.transform.weight)
    with torch.no_grad():
        lp = masked_scorer(rebuilt, tok).word_logprobs(["paris is the capital of [MASK] ."], ["france", "xqzwv"])
    assert lp.shape == (1, 2) and torch.isfinite(lp).all()


def test_load_scorer_offline_names_and_bad_name():
    from lmcourse.errors import AssetError
    from lmcourse.prompt import load_scorer
    s = load_scorer("random-t5")
    assert s.kind == "seq2seq" and s.mask_token == "[MASK]"
    with torch.no_grad():
        assert s.word_logprobs(["it was [MASK] ."], ["good"]).shape == (1, 1)
    with pytest.raises(AssetError, match="offline choices"):
        load_scorer("nosuchmodel")
