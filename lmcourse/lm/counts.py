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

import itertools
from collections.abc import Sequence

import numpy as np

from lmcourse.text.vocab import BOS, EOS, Vocabulary


def _padded_tokens(sentences: Sequence[Sequence[str]]) -> tuple[list[str], np.ndarray]:
    """``<s> w.. </s> <s> w.. </s>`` as one list (built in C by itertools), and sentence starts."""
    lengths = np.fromiter(map(len, sentences), dtype=np.int64, count=len(sentences)) + 2
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    pieces = zip(itertools.repeat((BOS,)), sentences, itertools.repeat((EOS,)))
    return list(itertools.chain.from_iterable(itertools.chain.from_iterable(pieces))), starts


def pad_and_encode(sentences: Sequence[Sequence[str]], vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray]:
    """All sentences as one id array ``<s> w.. </s> <s> w.. </s>``, and each sentence's start offset."""
    tokens, starts = _padded_tokens(sentences)
    return vocab.encode(tokens), starts  # <s> and </s> are in every vocabulary


def build_vocab_and_encode(sentences: Sequence[Sequence[str]], min_count: int = 1
                           ) -> tuple[Vocabulary, np.ndarray, np.ndarray]:
    """``Vocabulary(sentences)`` and ``pad_and_encode`` in one pass over the tokens.

    Each token first gets the position of its first occurrence as a provisional id
    (one dict look-up a token); counts and the final ids are then array operations.
    """
    tokens, starts = _padded_tokens(sentences)
    first = np.fromiter(map({}.setdefault, tokens, itertools.count()), dtype=np.int64, count=len(tokens))
    counts = np.bincount(first, minlength=len(tokens))
    types = np.nonzero(counts)[0]
    token_counts = dict(zip(map(tokens.__getitem__, types.tolist()), counts[types].tolist()))
    n = len(starts)
    if token_counts.get(BOS) != n or token_counts.get(EOS) != n:
        raise ValueError(f"the text already contains the special token(s) {BOS!r} or {EOS!r}: remove them first")
    del token_counts[BOS], token_counts[EOS]
    vocab = Vocabulary.from_counts(token_counts, min_count)
    final = np.zeros(len(tokens), dtype=np.int64)  # provisional id -> vocabulary id (<unk> = 0)
    final[types] = vocab.encode(list(map(tokens.__getitem__, types.tolist())))
    return vocab, final[first], starts


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

    def __init__(self, sentences: Sequence[Sequence[str]], order: int, vocab: Vocabulary,
                 encoded: tuple[np.ndarray, np.ndarray] | None = None):
        if not isinstance(order, int) or order < 1:
            raise ValueError(f"the n-gram order must be a whole number >= 1, not {order!r}")
        self.order, self.vocab, self.V = order, vocab, len(vocab)
        flat, starts = encoded if encoded is not None else pad_and_encode(sentences, vocab)
        idx, pos = target_positions(flat, starts)
        if len(idx) == 0:
            raise ValueError("cannot count n-grams of empty text: no sentence has a word")
        self.n_tokens = len(idx)  # predicted tokens (words and </s>)
        self.n_sentences = len(starts)
        self.keys: dict[int, np.ndarray] = {}
        self.counts: dict[int, np.ndarray] = {}
        self.grams: dict[int, np.ndarray] = {}
        words_at = flat[idx]
        # level 1: a bincount; then level k from level k-1: the context of the k-gram that
        # ends at position j is the (k-1)-gram that ends at j-1, whose row we already know.
        unigram = np.bincount(words_at, minlength=self.V)
        self.keys[1] = np.nonzero(unigram)[0]
        self.counts[1] = unigram[self.keys[1]]
        self.grams[1] = self.keys[1][:, None]
        row_at = np.full(len(flat), -1, dtype=np.int64)  # row of the (k-1)-gram ending at each position
        for k in range(2, order + 1):
            fits = pos >= k - 1
            at = idx[fits]
            ctx = flat[at - 1] if k == 2 else row_at[at - 1]
            assert (ctx >= 0).all(), "every prefix of a counted k-gram is a counted (k-1)-gram"
            keys = ctx * self.V + words_at[fits]
            uniq, inverse, cnt = np.unique(keys, return_inverse=True, return_counts=True)
            prefix = uniq // self.V
            self.keys[k], self.counts[k] = uniq, cnt.astype(np.int64)
            self.grams[k] = np.column_stack([prefix[:, None] if k == 2 else self.grams[k - 1][prefix], uniq % self.V])
            row_at[:] = -1
            row_at[at] = inverse

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
