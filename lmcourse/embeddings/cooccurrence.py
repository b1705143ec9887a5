"""Context-word vectors: co-occurrence counts over a window, PPMI, and truncated SVD.

Taught in chapter 1 (Word representations).

A word is represented by the words around it: row ``w`` of the co-occurrence
matrix counts how often each vocabulary word appears within ``window`` positions
of ``w``. The rows are as long as the vocabulary (|V| numbers per word, |V|^2 in
all), which is why the chapter stores them sparse, reweights them with PPMI and
compresses them with a truncated SVD into short dense vectors.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from lmcourse.errors import LMCourseError


def flatten(ids_per_sentence: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate sentences of ids into one array, with the sentence index of each token."""
    if len(ids_per_sentence) == 0:
        raise LMCourseError("the corpus is empty: no sentences were given")
    lengths = np.fromiter((len(s) for s in ids_per_sentence), dtype=np.int64, count=len(ids_per_sentence))
    if lengths.sum() == 0:
        raise LMCourseError("the corpus is empty: every sentence has zero tokens")
    ids = np.concatenate([np.asarray(s, dtype=np.int64) for s in ids_per_sentence])
    sent = np.repeat(np.arange(len(lengths)), lengths)
    return ids, sent


def cooccurrence_matrix(ids_per_sentence: Sequence[np.ndarray], vocab_size: int, window: int = 2,
                        weighting: str = "uniform", drop: Sequence[int] = (0,)) -> sp.csr_matrix:
    """Symmetric |V| x |V| counts of word pairs at most ``window`` apart in the same sentence.

    ``weighting="uniform"`` counts every pair as 1; ``"harmonic"`` counts a pair at
    distance d as 1/d (nearer words weigh more, GloVe-style). Ids in ``drop``
    (by default ``<unk>``) are not counted. Taught in chapter 1.
    """
    if window < 1:
        raise LMCourseError(f"window must be at least 1, not {window}")
    if weighting not in ("uniform", "harmonic"):
        raise LMCourseError(f"unknown weighting {weighting!r}: use 'uniform' or 'harmonic'")
    ids, sent = flatten(ids_per_sentence)
    keep = ~np.isin(ids, np.asarray(drop, dtype=np.int64))
    rows, cols, vals = [], [], []
    for d in range(1, window + 1):
        a, b = ids[:-d], ids[d:]
        ok = (sent[:-d] == sent[d:]) & keep[:-d] & keep[d:]
        w = 1.0 if weighting == "uniform" else 1.0 / d
        rows += [a[ok], b[ok]]  # both directions: the matrix is symmetric
        cols += [b[ok], a[ok]]
        vals.append(np.full(2 * ok.sum(), w, dtype=np.float64))
    if not rows or sum(len(r) for r in rows) == 0:
        return sp.csr_matrix((vocab_size, vocab_size), dtype=np.float64)
    m = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(vocab_size, vocab_size))
    return m.tocsr()  # duplicates are summed


def ppmi(counts: sp.spmatrix, alpha: float = 0.75) -> sp.csr_matrix:
    """Positive pointwise mutual information, ``max(0, log P(w, c) / (P(w) P_alpha(c)))``.

    ``alpha`` smooths the context distribution (counts**alpha, Levy et al. 2015) the
    way word2vec's noise distribution does; ``alpha=1`` is plain PPMI. Taught in chapter 1.
    """
    counts = sp.csr_matrix(counts, dtype=np.float64)
    total = counts.sum()
    if total == 0:
        raise LMCourseError("the co-occurrence matrix is all zeros: nothing to weigh")
    row = np.asarray(counts.sum(axis=1)).ravel()
    col = np.asarray(counts.sum(axis=0)).ravel() ** alpha
    coo = counts.tocoo()
    p_wc = coo.data / total
    p_w = row[coo.row] / total
    p_c = col[coo.col] / col.sum()
    pmi = np.log(p_wc / (p_w * p_c))
    keep = pmi > 0
    return sp.csr_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=counts.shape)


def svd_vectors(matrix: sp.spmatrix, dim: int = 100, power: float = 0.5, seed: int = 0) -> np.ndarray:
    """Dense ``dim``-dimensional word vectors ``U_d S_d**power`` from a truncated SVD.

    ``power=0.5`` (symmetric weighting) usually beats ``U S`` on similarity tasks
    (Levy et al. 2015). Taught in chapter 1.
    """
    n = min(matrix.shape)
    if not 1 <= dim < n:
        raise LMCourseError(f"dim must be between 1 and {n - 1} for a {matrix.shape} matrix, not {dim}")
    v0 = np.random.default_rng(seed).standard_normal(n)  # a fixed start vector: reproducible output
    u, s, _ = svds(sp.csr_matrix(matrix, dtype=np.float64), k=dim, v0=v0)
    order = np.argsort(-s)
    u, s = u[:, order], s[order]
    u *= np.sign(u[np.abs(u).argmax(axis=0), np.arange(dim)])  # fix each column's sign
    return (u * s**power).astype(np.float32)
