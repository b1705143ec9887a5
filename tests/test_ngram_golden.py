"""Golden tests of lmcourse.lm against nltk.lm and KenLM, on the same vocabulary and text.

nltk and lmcourse are given the same n-grams: sentences padded with one ``<s>`` and
one ``</s>``, every k-gram (k = 1..N) that ends on a predicted word.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from lmcourse.data import load_corpus
from lmcourse.lm import AddK, KneserNey, Laplace, to_arpa

nltk_lm = pytest.importorskip("nltk.lm")
pytestmark = pytest.mark.golden


def everygrams(sent, n):
    """The k-grams (k <= n) of ``<s> sent </s>`` ending on a predicted word, as lmcourse counts them."""
    padded = ["<s>", *sent, "</s>"]
    return [tuple(padded[j - k + 1:j + 1]) for j in range(1, len(padded)) for k in range(1, n + 1) if j - k + 1 >= 0]


def scored_ngrams(sent, n):
    """The n-gram each predicted word is scored with (shorter at the sentence start)."""
    padded = ["<s>", *sent, "</s>"]
    return [tuple(padded[max(0, j - n + 1):j + 1]) for j in range(1, len(padded))]


@pytest.fixture(scope="module")
def text():
    corpus = load_corpus("shakespeare")
    train = corpus.sentences("train", max_tokens=6000)
    test = corpus.sentences("test", max_tokens=800)
    return train, test


def fit_nltk(cls, train, n, **kw):
    model = cls(order=n, **kw)
    model.fit([everygrams(s, n) for s in train],
              vocabulary_text=[t for s in train for t in ["<s>", *s, "</s>"]])
    return model


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("gamma", [1.0, 0.1, 0.01])
def test_laplace_and_lidstone_perplexity_equal_nltk(text, n, gamma):
    train, test = text
    ours = (Laplace(n) if gamma == 1.0 else AddK(n, gamma)).fit(train)
    ref = fit_nltk(nltk_lm.Laplace, train, n) if gamma == 1.0 else fit_nltk(nltk_lm.Lidstone, train, n, gamma=gamma)
    assert len(ref.vocab) == len(ours.vocab)  # same vocabulary: words, <s>, </s> and one unknown token
    ngrams = [g for s in test for g in scored_ngrams(s, n)]
    ppl_ref = ref.perplexity(ngrams)
    ppl_ours = ours.perplexity(test, eos=True)
    assert ppl_ours == pytest.approx(ppl_ref, rel=1e-6)
    # and word by word
    for g in ngrams[:50]:
        assert ours.prob(g[-1], g[:-1]) == pytest.approx(ref.score(g[-1], g[:-1]), rel=1e-9)


@pytest.mark.parametrize("n", [2, 3])
def test_kneser_ney_against_nltk_pins_the_one_difference(text, n):
    """nltk.lm.KneserNeyInterpolated follows the textbook at every level but the lowest.

    The textbook (Chen & Goodman 1999; Jurafsky & Martin, ch. 3) discounts the unigram
    continuation counts too and interpolates with the uniform distribution:
    P_1(w) = max(N1+(. w) - d, 0) / N1+(. .) + d |{w: N1+(. w) > 0}| / N1+(. .) / V.
    nltk stops at the plain continuation distribution N1+(. w) / N1+(. .), so a word
    never seen gets probability 0 and the perplexity of text with one is infinite.
    With the same discount, nltk = alpha_n + gamma_n (... (alpha_2 + gamma_2 P_cont(w)))
    with lmcourse's alphas and gammas; lmcourse keeps the textbook's P_1.
    (With one <s> of padding nltk also cannot score a word right after <s> in a
    trigram model, where the bigram context <s> has no continuation counts: it divides
    by zero. lmcourse, like KenLM, uses raw counts for n-grams that start with <s>.)
    """
    train, test = text
    d = 0.75
    ours = KneserNey(n, discount=d).fit(train)
    ref = fit_nltk(nltk_lm.KneserNeyInterpolated, train, n, discount=d)
    def continuation(w):  # N1+(. w) / N1+(. .)
        row = ours.counts.index(1, w[:, None])[0]
        return ours._adj[1][row] / ours._ctx_total[1][0] if row >= 0 else 0.0

    checked = differs = 0
    for s in test[:40]:
        for g in scored_ngrams(s, n):
            if len(g) < n:
                continue  # sentence start: see the docstring
            ctx = ours.vocab.encode(g[:-1])[None, :]
            w = ours.vocab.encode(g[-1:])
            expected = continuation(w)
            for level in range(2, n + 1):
                alpha, gamma = ours.interpolation_terms(level, ctx[:, n - level:], w)
                expected = alpha[0] + gamma[0] * expected
            assert ref.score(g[-1], g[:-1]) == pytest.approx(expected, rel=1e-9, abs=1e-15)
            differs += not math.isclose(ours.prob(g[-1], g[:-1]), expected, rel_tol=1e-6)
            checked += 1
    assert checked > 100
    assert differs > checked // 2  # the lowest level really differs: lmcourse follows the textbook
    # the consequence: nltk gives an unseen word probability 0, lmcourse does not
    assert ref.score("zzzunseen", ("the",)[: n - 1]) == 0.0
    assert ours.prob("zzzunseen", ("the",)[: n - 1]) > 0.0


@pytest.fixture(scope="module")
def kenlm():
    return pytest.importorskip("kenlm")


AWKWARD = [[], ["the"], ["zzzunseen"], ["🙂", "你好", "世界"], ["o", "romeo", ",", "romeo", "!"], ["the"] * 30]


@pytest.mark.parametrize("n", [2, 3, 4, 5])  # KenLM needs at least a bigram model
def test_arpa_export_loads_in_kenlm_with_the_same_probabilities(tmp_path, text, kenlm, n):
    train, test = text
    ours = KneserNey(n).fit(train)
    path = to_arpa(ours, tmp_path / f"model{n}.arpa")
    with pytest.raises(FileExistsError):
        to_arpa(ours, path)  # never overwrite without asking
    ref = kenlm.Model(str(path))
    assert ref.order == n
    for sent in test[:60] + AWKWARD:
        theirs = ref.score(" ".join(sent), bos=True, eos=True)
        assert ours.sentence_logprob(sent, base=10) == pytest.approx(theirs, abs=1e-4), sent
    # word by word too, through KenLM's state API
    sent = test[3]
    state, out = kenlm.State(), kenlm.State()
    ref.BeginSentenceWrite(state)
    for i, w in enumerate([*sent, "</s>"]):
        lp = ref.BaseScore(state, w, out)
        ctx = ("<s>", *sent[:i])
        assert math.log10(ours.prob(w, ctx)) == pytest.approx(lp, abs=1e-5)
        state, out = out, state


def test_arpa_refuses_models_without_backoff_form(tmp_path, text):
    with pytest.raises(TypeError, match="back-off"):
        to_arpa(Laplace(2).fit(text[0]), tmp_path / "x.arpa")


def test_kneser_ney_distributions_sum_to_one_on_real_text(text):
    train, test = text
    m = KneserNey(3).fit(train)
    rng = np.random.default_rng(0)
    for s in rng.choice(len(test), 10, replace=False):
        sent = test[s]
        for i in range(min(len(sent), 4)):
            assert m.distribution(("<s>", *sent[:i])).sum() == pytest.approx(1.0, abs=1e-9)
