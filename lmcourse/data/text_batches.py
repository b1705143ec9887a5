"""Character vocabularies and contiguous (B, T) batches of ids from one long id array.

Taught in chapter 4 (RNNs), where a character-level language model reads Shakespeare;
later chapters batch BPE ids the same way.

``random_batches`` draws ``B`` windows of ``T + 1`` consecutive ids at random offsets and
returns inputs ``x = window[:-1]`` and targets ``y = window[1:]`` (the next id at every
position). ``sequential_batches`` walks the array in order, for evaluation.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from lmcourse.errors import LMCourseError


class BatchError(LMCourseError, ValueError):
    """The id array is too short for the asked batch, or a size is not positive."""


class CharVocab:
    """Characters <-> ids. Built from a text; characters it never saw map to ``unk``.

    Taught in chapter 4 (RNNs).
    """

    def __init__(self, text: str, unk: str = "\x00"):
        self.unk = unk
        self.itos = [unk] + sorted(set(text) - {unk})
        self.stoi = {c: i for i, c in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def __repr__(self) -> str:
        return f"CharVocab({len(self)} characters)"

    def encode(self, text: str) -> np.ndarray:
        return np.array([self.stoi.get(c, 0) for c in text], dtype=np.int64)

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return "".join(self.itos[int(i)] for i in ids)


def _check(ids, batch_size: int, seq_len: int) -> torch.Tensor:
    ids = torch.as_tensor(np.asarray(ids), dtype=torch.long)
    if ids.dim() != 1:
        raise BatchError(f"ids must be one 1-D array, got shape {tuple(ids.shape)}")
    if batch_size < 1 or seq_len < 1:
        raise BatchError(f"batch_size and seq_len must be positive, not {batch_size} and {seq_len}")
    if len(ids) < seq_len + 1:
        raise BatchError(f"{len(ids)} ids are too few for windows of seq_len + 1 = {seq_len + 1}")
    return ids


def random_batches(ids, batch_size: int, seq_len: int, seed: int = 0,
                   device: str | torch.device = "cpu") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless (x, y) batches of shape (B, T): random windows, y shifted one step left of x.

    Taught in chapter 4 (RNNs).
    """
    ids = _check(ids, batch_size, seq_len)
    g = torch.Generator().manual_seed(seed)
    offsets = torch.arange(seq_len + 1)  # (T+1,)
    while True:
        starts = torch.randint(0, len(ids) - seq_len, (batch_size,), generator=g)  # (B,)
        window = ids[starts[:, None] + offsets[None, :]]  # (B, T+1)
        yield window[:, :-1].to(device), window[:, 1:].to(device)


def sequential_batches(ids, batch_size: int, seq_len: int, max_batches: int | None = None,
                       device: str | torch.device = "cpu") -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Non-overlapping (x, y) batches covering the array in order (the tail that does not fill
    a whole batch is dropped); for evaluation.

    Taught in chapter 4 (RNNs).
    """
    ids = _check(ids, batch_size, seq_len)
    n_windows = (len(ids) - 1) // seq_len
    n_batches = n_windows // batch_size
    if n_batches == 0:
        raise BatchError(f"{len(ids)} ids do not fill one batch of {batch_size} x {seq_len}")
    if max_batches is not None:
        n_batches = min(n_batches, max_batches)
    out = []
    for b in range(n_batches):
        starts = (torch.arange(batch_size) + b * batch_size) * seq_len  # (B,)
        window = ids[starts[:, None] + torch.arange(seq_len + 1)[None, :]]  # (B, T+1)
        out.append((window[:, :-1].to(device), window[:, 1:].to(device)))
    return out


__all__ = ["BatchError", "CharVocab", "random_batches", "sequential_batches"]
