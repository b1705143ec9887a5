"""Co-occurrence counts, PPMI and SVD on toy inputs whose answers are known by hand."""
import numpy as np
import pytest

from lmcourse.embeddings import WordNotInVocabulary, WordVectors, cooccurrence_matrix, evaluate, ppmi, svd_vectors
from lmcourse.errors import LMCourseError


def test_counts_by_hand():
    # sentence "a b c" (ids 3 4 5) and "a c" (ids 3 5); window 1
    m = cooccurrence_matrix([np.array([3, 4, 5]), np.array([3, 5])], vocab_size=6, window=1).toarray()
    assert m[3, 4] == m[4, 3] == 1 and m[4, 5] == 1 and m[3, 5] == 1
    assert (m == m.T).all() and m.sum() == 6
    m2 = cooccurrence_matrix([np.array([3, 4, 5])], vocab_size=6, window=2, weighting="harmonic").toarray()
    assert m2[3, 5] == 0.5 and m2[3, 4] == 1.0


def test_sentence_boundaries_and_unk_not_counted():
    m = cooccurrence_matrix([np.array([3]), np.array([4, 0, 5])], vocab_size=6, window=3).toarray()
    assert m[3, 4] == 0 and m[:, 0].sum() == 0 and m[4, 5] == 1


def test_ppmi_formula():
    counts = np.array([[0, 2, 1], [2, 0, 1], [1, 1, 0]], dtype=float)
    got = ppmi(counts, alpha=1.0).toarray()
    total, row, col = counts.sum(), counts.sum(1), counts.sum(0)
    with np.errstate(divide="ignore"):
        want = np.maximum(np.log(counts * total / np.outer(row, col)), 0)
    assert np.allclose(got, want)


def test_svd_reconstructs_low_rank():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((30, 3))
    m = a @ a.T  # rank 3, symmetric PSD
    vecs = svd_vectors(m, dim=3, power=1.0)
    u, s, _ = np.linalg.svd(m)
    assert np.allclose(np.abs(vecs), np.abs(u[:, :3] * s[:3]), atol=1e-3)


def test_word_vectors_lookups():
    words = ["<unk>", "<s>", "</s>", "king", "queen", "man", "woman"]
    mat = np.array([[0, 0], [0, 0], [0, 0], [1, 1], [1, 1.2], [2, 0.5], [2, 1.5]], dtype=float)
    wv = WordVectors(words, mat)
    assert "<unk>" not in wv and "king" in wv
    assert wv.most_similar("king", topn=1)[0][0] == "queen"
    with pytest.raises(WordNotInVocabulary, match="'prince' is not in the vocabulary"):
        wv.most_similar("prince")
    scores = evaluate(wv)
    ws = scores["wordsim353"]  # only king-queen and man-woman are covered: reported, not hidden
    assert len(ws.coverage.kept) == 2 and len(ws.coverage.missing) == 351 and "computer" in ws.coverage.oov_words
    assert "2/353" in str(ws)
    tiny = WordVectors(words[:5], mat[:5])
    assert np.isnan(evaluate(tiny, analogy=False)["simlex999"].value)


def test_bad_input():
    with pytest.raises(LMCourseError, match="empty"):
        cooccurrence_matrix([], vocab_size=3)
    with pytest.raises(LMCourseError, match="window"):
        cooccurrence_matrix([np.array([1, 2])], vocab_size=3, window=0)
    with pytest.raises(LMCourseError, match="all zeros"):
        ppmi(np.zeros((3, 3)))
