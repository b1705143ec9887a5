"""Unit tests of lmcourse.lm: counts, smoothing formulas, perplexity, sampling, bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest

from lmcourse.errors import LMCourseError
from lmcourse.lm import MLE, AddK, KneserNey, Laplace, NGramCounts, ZeroProbabilityError
from lmcourse.text import Vocabulary, words

TOY = [words(s) for s in [
    "the cat sat on the mat",
    "the dog sat on the log",
    "the cat saw the dog",
    "a dog saw a cat on the mat",
]]


def test_vocabulary_specials_and_order():
    v = Vocabulary(TOY)
    assert v.itos[:3] == ["<unk>", "<s>", "</s>"]
    assert v.itos[3] == "the"  # the most frequent word comes first
    assert list(v.encode(["cat", "zebra"])) == [v.stoi["cat"], 0]
    with pytest.raises(ValueError, match="empty text"):
        Vocabulary([[]])
    with pytest.raises(ValueError, match="special token"):
        Vocabulary([["<s>", "x"]])


def test_counts_match_a_direct_count():
    c = NGramCounts(TOY, 3, Vocabulary(TOY))
    v = c.vocab
    ids = lambda *ws: np.array([v.encode(ws)])  # noqa: E731
    assert c.count(2, ids("the", "cat"))[0] == 2
    assert c.count(2, ids("<s>", "the"))[0] == 3  # one <s> per sentence, the notes' w_0
    assert c.count(3, ids("sat", "on", "the"))[0] == 2
    assert c.count(3, ids("cat", "sat", "mat"))[0] == 0
    assert c.count(1, ids("</s>"))[0] == 4
    assert c.counts[1].sum() == c.n_tokens == sum(len(s) + 1 for s in TOY)


@pytest.mark.parametrize("model", [MLE(2), Laplace(3), AddK(2, 0.1), KneserNey(3), KneserNey(4, 0.5), KneserNey(1)])
def test_every_distribution_sums_to_one(model):
    model.fit(TOY)
    contexts = [(), ("<s>",), ("the",), ("the", "cat"), ("<s>", "a"), ("zebra", "the"), ("on", "zebra"), ("sat", "on", "the")]
    for ctx in contexts:
        if isinstance(model, MLE) and not isinstance(model, AddK) and ctx and ctx[-1] == "zebra":
            continue  # MLE has no distribution after an unseen context (0/0)
        p = model.distribution(ctx)
        assert p.shape == (len(model.vocab),)
        assert (p >= 0).all()
        assert p.sum() == pytest.approx(1.0, abs=1e-9), ctx


def test_add_k_formula_by_hand():
    m = AddK(2, k=0.5).fit(TOY)
    V = len(m.vocab)
    # c(the cat) = 2, c(the .) = 7
    assert m.prob("cat", ("the",)) == pytest.approx((2 + 0.5) / (7 + 0.5 * V))
    assert m.prob("zebra", ("the",)) == pytest.approx(0.5 / (7 + 0.5 * V))


def test_mle_and_the_notes_perplexity_by_hand():
    m = MLE(2).fit(TOY)
    sent = words("the cat sat on the mat")
    # the notes: PP(S) = (prod_i 1 / P(w_i | w_{i-1}))^(1/N), w_0 = <s>
    probs = [m.prob(w, (prev,)) for prev, w in zip(["<s>"] + sent, sent)]
    assert probs[0] == pytest.approx(3 / 4)  # P(the | <s>)
    expected = math.prod(1 / p for p in probs) ** (1 / len(sent))
    assert m.perplexity([sent]) == pytest.approx(expected)
    with_end = math.prod(1 / p for p in probs + [m.prob("</s>", ("mat",))]) ** (1 / (len(sent) + 1))
    assert m.perplexity([sent], eos=True) == pytest.approx(with_end)


def test_mle_unseen_word_says_perplexity_is_infinite():
    m = MLE(2).fit(TOY)
    with pytest.raises(ZeroProbabilityError, match=r"'zebra'.*not in the vocabulary.*infinite.*smoothed"):
        m.perplexity([words("the zebra sat")])
    with pytest.raises(ZeroProbabilityError, match=r"'cat' after 'dog'"):
        m.perplexity([words("the dog cat")])


def test_kneser_ney_prefers_words_seen_in_many_contexts():
    # "francisco" is frequent but only after "san"; "glasses" follows many words.
    text = [["san", "francisco"]] * 8 + [[w, "glasses"] for w in ["my", "his", "her", "reading", "new"]]
    m = KneserNey(2).fit(text)
    assert m.prob("glasses", ("the",)) > m.prob("francisco", ("the",))  # unseen context: continuation counts
    assert MLE(1).fit(text).prob("francisco") > MLE(1).fit(text).prob("glasses")


def test_generation_is_seeded_and_ends():
    m = KneserNey(3).fit(TOY)
    a = m.generate(np.random.default_rng(1), max_words=20)
    b = m.generate(np.random.default_rng(1), max_words=20)
    assert a == b and 0 < len(a) <= 20 and "<s>" not in a


def test_unseen_rate_grows_with_order():
    train, test = TOY[:3], TOY[3:]
    c = NGramCounts(train, 4, Vocabulary(train))
    rates = [c.unseen_rate(test, k) for k in range(1, 5)]
    assert rates == sorted(rates) and rates[0] < 0.5 < rates[-1]


@pytest.mark.parametrize("bad, message", [
    (lambda: MLE(0), "order must be"),
    (lambda: KneserNey(2.5), "order must be"),
    (lambda: AddK(2, 0), "k > 0"),
    (lambda: KneserNey(2, discount=1.5), "between 0 and 1"),
    (lambda: MLE(2).fit([]), "empty text"),
    (lambda: MLE(2).fit([[], []]), "empty text"),
    (lambda: MLE(2).fit(["the", "cat"]), "tokenised sentences"),
    (lambda: KneserNey(2).fit(TOY).perplexity([[]]), "empty text"),
    (lambda: KneserNey(2).prob("the"), "not fitted"),
])
def test_bad_input_names_the_problem(bad, message):
    with pytest.raises((ValueError, TypeError, LMCourseError), match=message):
        bad()
