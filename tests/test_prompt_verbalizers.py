"""Knowledgeable (KPT) label words, prototype / virtual-token verbalizers, instruction-tuning tasks (chapter 11)."""
import numpy as np
import pytest
import torch

from lmcourse.embeddings.evaluate import WordVectors
from lmcourse.prompt.instruct import (InstructError, TopLayers, build_tasks, held_out_split, mixture, option_ids)
from lmcourse.prompt.knowledge import (Candidate, KnowledgeError, calibrate_by_prior, class_relevance,
                                       contextual_prior, expand_label_words, filter_label_words, model_word_vectors)
from lmcourse.prompt.prototypes import PrototypeError, PrototypeVerbalizer, VirtualLabelTokens, answer_states
from lmcourse.prompt.scoring import causal_scorer

WORDS = ["good", "great", "fine", "superb", "bad", "awful", "poor", "dreadful", "table", "zzzlongword", "1999"]


class CharTokenizer:
    """Stand-in tokenizer: one token per 5 characters (so long words are 'split')."""

    def __call__(self, text, add_special_tokens=False):
        t = text.strip()
        return {"input_ids": list(range(max(1, -(-len(t) // 5))))}

    def batch_decode(self, ids):
        return [" " + WORDS[i[0]] if i[0] < len(WORDS) else "##x" for i in ids]


def toy_vectors():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(size=8), rng.normal(size=8)
    rows = []
    for w in WORDS:
        base = pos if w in ("good", "great", "fine", "superb", "zzzlongword") else neg if w in (
            "bad", "awful", "poor", "dreadful") else rng.normal(size=8) * 3
        rows.append(base + 0.1 * rng.normal(size=8))
    return WordVectors(WORDS, np.stack(rows), skip=())


SEEDS = {"negative": ["bad"], "positive": ["good"]}


def test_expansion_is_deterministic_and_seeds_first():
    wv = toy_vectors()
    a = expand_label_words(SEEDS, wv, topn=4)
    b = expand_label_words(SEEDS, wv, topn=4)
    assert a == b
    assert a["positive"][0] == Candidate("good", "positive", "good", 1.0) and a["positive"][0].is_seed
    pos = [c.word for c in a["positive"]]
    assert {"great", "fine", "superb"} <= set(pos)
    scores = [c.score for c in a["positive"][1:]]
    assert scores == sorted(scores, reverse=True)
    assert expand_label_words(SEEDS, wv, topn=0)["negative"] == [Candidate("bad", "negative", "bad", 1.0)]


def test_filter_rules_and_reasons():
    wv = toy_vectors()
    cands = expand_label_words(SEEDS, wv, topn=5)
    cands["negative"].append(Candidate("great", "negative", "bad", 0.2))    # a word in two classes
    cands["negative"].append(Candidate("1999", "negative", "bad", 0.2))     # not a word
    res = filter_label_words(cands, CharTokenizer(), max_tokens=1, vectors=wv)
    removed = {(w, lab): r for w, lab, r in res.removed}
    assert removed[("zzzlongword", "positive")].startswith("split into 3 tokens")
    assert removed[("great", "negative")].startswith("in several classes")
    assert removed[("1999", "negative")] == "not a word"
    assert res.kept["positive"][0] == "good" and "great" not in res.kept["negative"]
    assert sum(res.reasons().values()) == len(res.removed)
    # a neighbour that sits nearer the other class's seeds contradicts its class
    odd = {"negative": [Candidate("bad", "negative", "bad", 1.0), Candidate("superb", "negative", "bad", 0.5)],
           "positive": [Candidate("good", "positive", "good", 1.0)]}
    res = filter_label_words(odd, None, max_tokens=None, vectors=wv)
    assert res.removed == [("superb", "negative", "closer to another class (positive)")]
    # rare words (low contextual prior) and words that contradict the shots
    lp = torch.log(torch.tensor([[0.5, 0.3, 1e-6], [0.1, 0.6, 1e-6]]))
    prior = contextual_prior(lp, ["good", "great", "fine"])
    assert prior["fine"] == pytest.approx(np.log(1e-6), rel=1e-6)
    assert prior["good"] == pytest.approx(np.log(0.3), rel=1e-6)
    cands = {"positive": [Candidate("good", "positive", "good", 1.0), Candidate("great", "positive", "good", .9),
                          Candidate("fine", "positive", "good", .8)],
             "negative": [Candidate("bad", "negative", "bad", 1.0)]}
    res = filter_label_words(cands, None, max_tokens=None, log_prior={**prior, "bad": 0.0}, min_log_prior=-10)
    assert res.kept["positive"] == ["good", "great"] and res.removed[0][2].startswith("rare")
    rel = class_relevance(torch.tensor([[0.0, -5.0], [-5.0, 0.0]]), [1, 0], ["good", "bad"], ["negative", "positive"])
    assert rel[("positive", "good")] == 5.0 and rel[("negative", "good")] == -5.0
    res = filter_label_words(cands, None, max_tokens=None, per_class=2)
    assert res.kept["positive"] == ["good", "great"] and res.removed == [("fine", "positive", "over per_class")]


def test_filter_bad_inputs():
    wv = toy_vectors()
    only_long = {"positive": [Candidate("good", "positive", "good", 1.0)],
                 "negative": [Candidate("1999", "negative", "1999", 1.0)]}
    with pytest.raises(KnowledgeError, match="'negative' has no label words left.*1999: not a word"):
        filter_label_words(only_long, CharTokenizer())
    with pytest.raises(KnowledgeError, match="needs the tokenizer"):
        filter_label_words({"a": []}, None)
    with pytest.raises(KnowledgeError, match="needs both"):
        filter_label_words(expand_label_words(SEEDS, wv, 2), None, max_tokens=None, min_log_prior=-3.0)
    with pytest.raises(KnowledgeError, match="non-empty strings"):
        expand_label_words({"positive": "good"}, wv)
    with pytest.raises(KnowledgeError, match="no seed words"):
        expand_label_words({"positive": []}, wv)
    with pytest.raises(KnowledgeError, match=r"must be \(N, 2\)"):
        contextual_prior(torch.zeros(3, 3), ["a", "b"])
    with pytest.raises(KnowledgeError, match="no prior"):
        calibrate_by_prior(torch.zeros(1, 2), ["a", "b"], {"a": 0.0})


def test_model_word_vectors_keeps_whole_words():
    emb = torch.nn.Embedding(len(WORDS) + 2, 4)
    wv = model_word_vectors(emb, CharTokenizer())
    assert wv.words == [w for w in WORDS if w.isalpha()]                       # no digits, no "##x" pieces
    assert np.allclose(wv.vector("good"), emb.weight[0].detach().numpy())
    out = calibrate_by_prior(torch.zeros(2, 2), ["good", "bad"], {"good": -1.0, "bad": -2.0})
    assert out.tolist() == [[1.0, 2.0], [1.0, 2.0]]


# --------------------------------------------------------------------------- prototypes


@pytest.fixture(scope="module")
def tiny_lm():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    vocab = {w: i for i, w in enumerate(["<pad>", "<unk>", "the", "film", "was", "good", "bad", "it", "a", "movie",
                                         ".", "great", "dull", "story"])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0)
    return LlamaForCausalLM(cfg).eval(), tok


def test_answer_states_match_the_scorer(tiny_lm):
    model, tok = tiny_lm
    scorer = causal_scorer(model, tok)
    prompts = ["the film was <mask>", "it was a great story . the movie was <mask>", "dull <mask>"]
    with torch.no_grad():
        h = answer_states(scorer, prompts, batch_size=2)                        # (3, 32)
        lp = torch.log_softmax(model.get_output_embeddings()(h), -1)
        ids = [tok.convert_tokens_to_ids(w) for w in ("good", "bad")]
        assert torch.allclose(lp[:, ids], scorer.word_logprobs(prompts, ["good", "bad"]), atol=1e-5)
    assert h.shape == (3, 32)
    with pytest.raises(PrototypeError, match="non-empty list"):
        answer_states(scorer, [])


def test_prototype_verbalizer_shapes_and_gradients():
    torch.manual_seed(0)
    h = torch.randn(12, 32)
    y = torch.tensor([0, 1, 2] * 4)
    h = h + 3 * torch.nn.functional.one_hot(y, 32).float()                      # separable classes
    proto = PrototypeVerbalizer(32, 3, dim=8).standardize_with(h)
    assert proto(h).shape == (12, 3)
    loss = proto.loss(h, y)
    loss.backward()
    assert proto.prototypes.grad is not None and proto.proj.weight.grad.abs().sum() > 0
    opt = torch.optim.Adam(proto.parameters(), lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        proto.loss(h, y).backward()
        opt.step()
    assert (proto(h).argmax(-1) == y).all()
    assert proto(h).abs().max() <= proto.scale + 1e-4                          # cosine * scale
    with pytest.raises(PrototypeError, match=r"\(B, 32\)"):
        proto(torch.randn(2, 5))
    with pytest.raises(PrototypeError, match="labels must lie"):
        proto.loss(h, torch.full((12,), 3))
    with pytest.raises(PrototypeError, match="n_classes >= 2"):
        PrototypeVerbalizer(32, 1)


def test_virtual_label_tokens_start_at_the_label_words():
    head = torch.randn(20, 16)
    v = VirtualLabelTokens.from_label_words(head, [[3, 4], [7]])
    h = torch.randn(5, 16, requires_grad=True)
    out = v(h)
    assert out.shape == (5, 2)
    assert torch.allclose(out[:, 1], h @ head[7]) and torch.allclose(out[:, 0], h @ head[[3, 4]].mean(0))
    out.sum().backward()
    assert v.embedding.grad.shape == (2, 16) and h.grad is not None
    with pytest.raises(PrototypeError, match="at least one"):
        VirtualLabelTokens.from_label_words(head, [[1], []])


# --------------------------------------------------------------------------- instruction tuning


def test_tasks_deterministic_and_disjoint():
    a, b = build_tasks(4, 4, seed=1), build_tasks(4, 4, seed=1)
    assert {k: (t.train, t.test) for k, t in a.items()} == {k: (t.train, t.test) for k, t in b.items()}
    for t in a.values():
        assert not {x for x, _ in t.train} & {x for x, _ in t.test}, t.name
        counts = np.bincount([y for _, y in t.train], minlength=len(t.options))
        assert (counts == 4).all(), t.name
    train, held = held_out_split(a, "movie_review")
    assert held.name == "movie_review" and all(t.cluster != "sentiment" for t in train)
    assert "tweet_sentiment" in [t.name for t in held_out_split(a, "movie_review", whole_cluster=False)[0]]
    rows = mixture(train, instruction=True, seed=0)
    assert len(rows) == sum(len(t.train) for t in train) and rows == mixture(train, True, seed=0)
    assert all(p.endswith("Answer:") for p, _, _ in rows)
    bare = mixture(train, instruction=False, seed=0)
    assert all(p.startswith("Input:") for p, _, _ in bare)
    with pytest.raises(InstructError, match="unknown task"):
        held_out_split(a, "nope")
    with pytest.raises(InstructError, match="at least one"):
        build_tasks(0, 3)


def test_top_layers_equal_the_full_model(tiny_lm):
    model, tok = tiny_lm
    top = TopLayers(model, 2)
    prompts = ["the film was", "it was a great story . the movie was", "dull"]
    cached = top.cache(tok, prompts, batch_size=2)
    with torch.no_grad():
        logits = torch.cat([top(b) for b in cached])
        for i, p in enumerate(prompts):
            ids = torch.tensor([tok(p)["input_ids"]])
            assert torch.allclose(logits[i], model(input_ids=ids).logits[0, -1], atol=1e-5)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("model.layers.1.", "model.layers.2.")) for n in trainable)
    top(cached[0]).sum().backward()
    assert model.model.layers[2].mlp.up_proj.weight.grad is not None
    assert option_ids(tok, ["good", "bad"]) == [5, 6]
    with pytest.raises(InstructError, match="n_top"):
        TopLayers(model, 4)
    for p in model.parameters():
        p.requires_grad_(True)
        p.grad = None
