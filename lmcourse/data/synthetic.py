"""Small synthetic sequence-to-sequence tasks: reverse, sort or copy a string of digits.

Taught in chapter 6 (Transformer), where an encoder-decoder Transformer learns
one end to end in a minute on a CPU. The tasks have variable lengths, so batches
carry padding (and the models need padding masks).

Token ids: 0 = <pad>, 1 = <s> (start of the target), 2 = </s> (end), 3..12 = digits 0..9.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

PAD, BOS, EOS = 0, 1, 2
DIGIT0 = 3
VOCAB_SIZE = 13
TASKS = ("reverse", "sort", "copy")


@dataclass(frozen=True)
class Seq2SeqBatch:
    """src (B, S) digits; tgt_in (B, T) = <s> + target; tgt_out (B, T) = target + </s>; all padded with 0."""

    src: Tensor
    tgt_in: Tensor
    tgt_out: Tensor


class DigitTask:
    """Random digit strings of ``min_len``..``max_len`` digits and their reversed / sorted / copied target.

    Taught in chapter 6 (Transformer).
    """

    def __init__(self, kind: str = "reverse", min_len: int = 2, max_len: int = 10):
        if kind not in TASKS:
            raise ValueError(f"unknown task {kind!r}; choose one of {', '.join(TASKS)}")
        if not 1 <= min_len <= max_len:
            raise ValueError(f"need 1 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}")
        self.kind, self.min_len, self.max_len = kind, min_len, max_len
        self.vocab_size = VOCAB_SIZE

    def target(self, digits: list[int]) -> list[int]:
        if self.kind == "reverse":
            return digits[::-1]
        if self.kind == "sort":
            return sorted(digits)
        return list(digits)

    def sample(self, n: int, generator: torch.Generator) -> list[tuple[list[int], list[int]]]:
        """``n`` (source, target) pairs of digit values 0..9."""
        lengths = torch.randint(self.min_len, self.max_len + 1, (n,), generator=generator).tolist()
        out = []
        for length in lengths:
            digits = torch.randint(0, 10, (length,), generator=generator).tolist()
            out.append((digits, self.target(digits)))
        return out

    @staticmethod
    def collate(pairs: list[tuple[list[int], list[int]]]) -> Seq2SeqBatch:
        """Pad (source, target) pairs into a batch of token ids."""
        s_len = max(len(s) for s, _ in pairs)
        t_len = max(len(t) for _, t in pairs) + 1
        src = torch.full((len(pairs), s_len), PAD, dtype=torch.long)
        tgt_in = torch.full((len(pairs), t_len), PAD, dtype=torch.long)
        tgt_out = torch.full((len(pairs), t_len), PAD, dtype=torch.long)
        for i, (s, t) in enumerate(pairs):
            src[i, :len(s)] = torch.tensor(s) + DIGIT0
            ids = [d + DIGIT0 for d in t]
            tgt_in[i, :len(ids) + 1] = torch.tensor([BOS] + ids)
            tgt_out[i, :len(ids) + 1] = torch.tensor(ids + [EOS])
        return Seq2SeqBatch(src, tgt_in, tgt_out)

    def batch(self, batch_size: int, generator: torch.Generator) -> Seq2SeqBatch:
        return self.collate(self.sample(batch_size, generator))

    def batches(self, batch_size: int, seed: int = 0) -> Iterator[Seq2SeqBatch]:
        """An endless stream of fresh random batches."""
        g = torch.Generator().manual_seed(seed)
        while True:
            yield self.batch(batch_size, g)

    @staticmethod
    def to_string(ids: Tensor | list[int]) -> str:
        """Digits of a row of token ids, up to the first </s>: ``[5, 3, 2, 0] -> "20"``."""
        out = []
        for i in (ids.tolist() if isinstance(ids, Tensor) else ids):
            if i == EOS:
                break
            if i >= DIGIT0:
                out.append(str(i - DIGIT0))
        return "".join(out)


__all__ = ["BOS", "EOS", "PAD", "VOCAB_SIZE", "DigitTask", "Seq2SeqBatch"]
