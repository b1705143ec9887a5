"""A vocabulary: tokens <-> integer ids, with the special tokens the models need.

Taught in chapter 2 (N-gram language models). ``<unk>`` stands for every word
outside the vocabulary, ``<s>`` marks the start of a sentence (the notes' w_0,
"START") and ``</s>`` its end.
"""
from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

UNK, BOS, EOS = "<unk>", "<s>", "</s>"


class Vocabulary:
    """Tokens seen at least ``min_count`` times, plus ``<unk>``, ``<s>`` and ``</s>`` (ids 0, 1, 2).

    Tokens are ordered by decreasing count, then alphabetically, so ids are deterministic.
    """

    specials = (UNK, BOS, EOS)

    def __init__(self, sentences: Iterable[Sequence[str]], min_count: int = 1):
        self._build(Counter(itertools.chain.from_iterable(sentences)), min_count)

    @classmethod
    def from_counts(cls, counts: Mapping[str, int], min_count: int = 1) -> Vocabulary:
        """A vocabulary from token counts already made."""
        vocab = cls.__new__(cls)
        vocab._build(Counter(counts), min_count)
        return vocab

    def _build(self, counts: Counter, min_count: int) -> None:
        if min_count < 1:
            raise ValueError(f"min_count must be at least 1, not {min_count}")
        if not counts:
            raise ValueError("cannot build a vocabulary from empty text: no tokens were given")
        clash = [s for s in self.specials if s in counts]
        if clash:
            raise ValueError(f"the text already contains the special token(s) {clash}: remove them first")
        kept = [t for t, c in counts.items() if c >= min_count]
        kept.sort()
        kept.sort(key=counts.__getitem__, reverse=True)  # stable: by count, then alphabetically
        self.itos: list[str] = list(self.specials) + kept
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}
        self.counts = counts
        self.min_count = min_count

    unk_id, bos_id, eos_id = 0, 1, 2

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens, min_count={self.min_count})"

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """Token ids, ``<unk>`` for tokens outside the vocabulary."""
        get = self.stoi.get
        return np.fromiter(map(get, tokens, itertools.repeat(0)), dtype=np.int64, count=len(tokens))

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[int(i)] for i in ids]

    def oov_rate(self, sentences: Iterable[Sequence[str]]) -> float:
        """Share of tokens that are not in the vocabulary."""
        total = oov = 0
        for sent in sentences:
            total += len(sent)
            oov += sum(t not in self.stoi for t in sent)
        return oov / total if total else 0.0
