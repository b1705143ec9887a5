"""N-gram counting with NumPy: every n-gram of every order up to N, as sorted integer keys.

Taught in chapter 2 (N-gram language models).

A sentence ``w_1 ... w_T`` is padded as ``<s> w_1 ... w_T </s>``: one start symbol,
the notes' placeholder ``w_0`` (START), as in the ARPA/KenLM convention. A k-gram is
counted at every position of a word that can be predicted (``w_1 ... </s>``), so the
first word is seen with the one-word context ``<s>``, the second with ``<s> w_1``, and
so on: at the start of a sentence the context is shorter than N - 1.

Keys. A k-gram ``(c_1 ... c_{k-1}, w)`` is stored as ``ctx * V + w`` where ``ctx`` is
the index of its context: 0 for unigrams, the word id for bigrams, and for k >= 3 the
row of the (k-1)-gram ``c_1 ... c_{k-1}`` in the sorted (k-1)-gram table. Keys fit in
int64 for any N, and ``key // V`` is the context index, so per-context sums are one
``np.bincount``.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lmcourse.text.vocab import Vocabulary


def pad_and_encode(sentences: Sequence[Sequence[str]], vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray]:
    """All sentences as one id array ``<s> w.. </s> <s> w.. </s>``, and each sentence's start offset."""
    pieces, starts, pos = [], [], 0
    for sent in sentences:
        ids = np.empty(len(sent) + 2, dtype=np.int64)
        ids[0], ids[-1] = vocab.bos_id, vocab.eos_id
        ids[1:-1] = vocab.encode(sent)
        pieces.append(ids)
        starts.append(pos)
        pos += len(ids)
    flat = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
    return flat, np.asarray(starts, dtype=np.int64)


def target_positions(flat: np.ndarray, starts: np.ndarray, eos: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Positions in ``flat`` of every predicted word, and each one's position within its sentence."""
    lengths = np.diff(np.append(starts, len(flat)))  # padded lengths
    pos_in_sent = np.arange(len(flat)) - np.repeat(starts, lengths)
    keep = pos_in_sent >= 1  # never predict <s>
    if not eos:
        keep &= flat != Vocabulary.eos_id  # drop </s> (the notes' PPL counts the N words only)
    idx = np.nonzero(keep)[0]
    return idx, pos_in_sent[idx]


class NGramCounts:
    """Counts of every k-gram, k = 1..order, over padded sentences.

    ``keys[k]``, ``counts[k]`` and ``grams[k]`` (the tokens, shape (M_k, k)) are sorted by key.
    """

    def __init__(self, sentences: Sequence[Sequence[str]], order: int, vocab: Vocabulary):
        if not isinstance(order, int) or order < 1:
            raise ValueError(f"the n-gram order must be a whole number >= 1, not {order!r}")
        self.order, self.vocab, self.V = order, vocab, len(vocab)
        flat, starts = pad_and_encode(sentences, vocab)
        idx, pos = target_positions(flat, starts)
        if len(idx) == 0:
            raise ValueError("cannot count n-grams of empty text: no sentence has a word")
        self.n_tokens = len(idx)  # predicted tokens (words and </s>)
        self.n_sentences = len(starts)
        self.keys: dict[int, np.ndarray] = {}
        self.counts: dict[int, np.ndarray] = {}
        self.grams: dict[int, np.ndarray] = {}
        for k in range(1, order + 1):
            at = idx[pos >= k - 1]  # k-grams that fit inside the sentence
            grams = flat[at[:, None] + np.arange(-(k - 1), 1)]  # (M, k)
            keys = self._keys_of_known_prefix(k, grams)
            uniq, first, cnt = np.unique(keys, return_index=True, return_counts=True)
            self.keys[k], self.counts[k], self.grams[k] = uniq, cnt.astype(np.int64), grams[first]

    # -- lookups ------------------------------------------------------------------------

    def n_contexts(self, k: int) -> int:
        """How many context indices level k has (1, V, or the number of (k-1)-grams)."""
        return 1 if k == 1 else self.V if k == 2 else len(self.keys[k - 1])

    def context_index(self, k: int, ctx: np.ndarray) -> np.ndarray:
        """Context index of (B, k-1) context tokens at level k; -1 where never seen."""
        ctx = np.asarray(ctx, dtype=np.int64).reshape(len(ctx), k - 1)
        if k == 1:
            return np.zeros(len(ctx), dtype=np.int64)
        if k == 2:
            return ctx[:, 0]
        return self.index(k - 1, ctx)

    def index(self, k: int, grams: np.ndarray) -> np.ndarray:
        """Row of each (B, k) gram in the level-k table; -1 where never seen."""
        grams = np.asarray(grams, dtype=np.int64).reshape(-1, k)
        ctx = self.context_index(k, grams[:, :-1])
        keys = np.where(ctx >= 0, ctx * self.V + grams[:, -1], -1)
        table = self.keys[k]
        row = np.minimum(np.searchsorted(table, keys), len(table) - 1)
        return np.where((keys >= 0) & (table[row] == keys), row, -1)

    def count(self, k: int, grams: np.ndarray) -> np.ndarray:
        """Raw count of each (B, k) gram (0 if never seen)."""
        row = self.index(k, grams)
        return np.where(row >= 0, self.counts[k][np.maximum(row, 0)], 0)

    def _keys_of_known_prefix(self, k: int, grams: np.ndarray) -> np.ndarray:
        ctx = self.context_index(k, grams[:, :-1])
        assert (ctx >= 0).all(), "every prefix of a counted k-gram is a counted (k-1)-gram"
        return ctx * self.V + grams[:, -1]

    def unseen_rate(self, sentences: Sequence[Sequence[str]], k: int) -> float:
        """Share of the k-grams of ``sentences`` (full-length ones) never seen in training."""
        if not 1 <= k <= self.order:
            raise ValueError(f"k must be in 1..{self.order}, not {k}")
        flat, starts = pad_and_encode(sentences, self.vocab)
        idx, pos = target_positions(flat, starts)
        at = idx[pos >= k - 1]
        if len(at) == 0:
            raise ValueError(f"the text has no {k}-grams")
        grams = flat[at[:, None] + np.arange(-(k - 1), 1)]
        return float(np.mean(self.index(k, grams) < 0))
