"""The evaluation sets load, and loaders report out-of-vocabulary items instead of dropping them."""
import pytest

from lmcourse.data.wordsets import analogies, in_vocabulary, load_word_set, simlex999, wordsim353
from lmcourse.errors import LMCourseError


def test_sizes_and_first_items():
    ws, sl, an = wordsim353(), simlex999(), analogies()
    assert len(ws) == 353 and len(sl) == 999 and len(an) == 19544
    assert (ws[0].a, ws[0].b, ws[0].score) == ("love", "sex", 6.77)
    assert (sl[0].a, sl[0].b, sl[0].score) == ("old", "new", 1.58)
    assert an[0].words == ("athens", "greece", "baghdad", "iraq") and an[0].section == "capital-common-countries"
    assert len({q.section for q in an}) == 14


def test_coverage_reports_missing_items():
    vocab = {"love", "sex", "tiger", "cat"}
    cov = in_vocabulary(wordsim353(), vocab)
    assert {(p.a, p.b) for p in cov.kept} >= {("love", "sex"), ("tiger", "cat")}
    assert len(cov.kept) + len(cov.missing) == 353  # nothing dropped silently
    assert 0 < cov.fraction < 0.02
    assert "computer" in cov.oov_words and "love" not in cov.oov_words
    assert "items" in repr(cov)


def test_coverage_of_analogies_and_empty_vocab():
    cov = in_vocabulary(analogies()[:3], {"athens", "greece", "baghdad", "iraq"})
    assert len(cov.kept) == 1 and len(cov.missing) == 2
    empty = in_vocabulary(simlex999(), set())
    assert empty.fraction == 0.0 and len(empty.missing) == 999


def test_unknown_set():
    assert load_word_set("simlex999") == simlex999()
    with pytest.raises(LMCourseError, match="unknown word set"):
        load_word_set("wordsim")
