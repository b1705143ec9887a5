"""A synthetic seq2seq task: normalise dates written in many formats to ISO ``YYYY-MM-DD``.

Taught in chapter 5 (Attention), where it measures the seq2seq bottleneck.

    "the 7th of March, 2024"            -> "2024-03-07"
    "Thursday, March 7, 2024"           -> "2024-03-07"
    "ok so we said 07.03.2024 for it"   -> "2024-03-07"   (with filler words: long inputs)

Everything is generated from a seed, so the same call gives the same pairs everywhere.
``filler`` words around the date make inputs long (up to ``max_len`` characters) without
changing the answer; the answer is always 10 characters.

Ids: ``0`` pad, ``1`` start of sequence (``<s>``), ``2`` end of sequence (``</s>``), then characters.
"""
from __future__ import annotations

import calendar
import datetime as dt
import random
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from lmcourse.errors import LMCourseError

PAD, BOS, EOS = 0, 1, 2

MONTHS = [calendar.month_name[m] for m in range(1, 13)]
MONTHS_SHORT = [calendar.month_abbr[m] for m in range(1, 13)]
WEEKDAYS = [calendar.day_name[d] for d in range(7)]

FILLER = ("the meeting is on please note that we moved it to as agreed see you then ok so "
          "the deadline was set for our trip starts on and ends soon thanks a lot from all "
          "of us remember date booked for").split()


def _ordinal(n: int) -> str:
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


#: name -> how a date is written in that format.
FORMATS: dict[str, Callable[[dt.date], str]] = {
    "iso": lambda d: d.isoformat(),
    "us_slash": lambda d: f"{d.month:02d}/{d.day:02d}/{d.year}",
    "eu_dots": lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}",
    "compact": lambda d: f"{d.year}{d.month:02d}{d.day:02d}",
    "month_day_year": lambda d: f"{MONTHS[d.month - 1]} {d.day}, {d.year}",
    "day_month_year": lambda d: f"{d.day} {MONTHS[d.month - 1]} {d.year}",
    "short_month": lambda d: f"{d.day} {MONTHS_SHORT[d.month - 1]} {d.year}",
    "weekday": lambda d: f"{WEEKDAYS[d.weekday()]}, {MONTHS[d.month - 1]} {d.day}, {d.year}",
    "ordinal": lambda d: f"the {_ordinal(d.day)} of {MONTHS[d.month - 1]}, {d.year}",
    "lower_short": lambda d: f"{MONTHS_SHORT[d.month - 1].lower()} {d.day} {d.year}",
}

#: The fixed source alphabet (ids 3...) and target alphabet.
SOURCE_CHARS = string.ascii_letters + string.digits + " ,./-"
TARGET_CHARS = string.digits + "-"


class DateTaskError(LMCourseError, ValueError):
    """Bad options for the date task."""


@dataclass(frozen=True)
class DatePair:
    """One example: ``source`` (the date in some format, maybe inside filler words) and ``target`` (ISO)."""

    source: str
    target: str
    format: str


class CharIds:
    """Characters <-> ids with pad/<s>/</s> at 0/1/2. Taught in chapter 5 (Attention)."""

    def __init__(self, chars: str):
        self.itos = ["<pad>", "<s>", "</s>"] + list(chars)
        self.stoi = {c: i for i, c in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        bad = sorted(set(text) - set(self.stoi))
        if bad:
            raise DateTaskError(f"characters {bad} are not in the vocabulary")
        return [self.stoi[c] for c in text]

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """Characters up to the first </s>; pad and <s> are skipped."""
        out = []
        for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids):
            if i == EOS:
                break
            if i > EOS:
                out.append(self.itos[i])
        return "".join(out)


SOURCE_VOCAB = CharIds(SOURCE_CHARS)
TARGET_VOCAB = CharIds(TARGET_CHARS)


def make_pairs(n: int, seed: int = 0, max_filler: int = 0, max_len: int = 80,
               formats: Sequence[str] | None = None, years: tuple[int, int] = (1950, 2049)) -> list[DatePair]:
    """``n`` random date pairs. Each source holds 0..``max_filler`` filler words on each side of
    the date (as many as fit in ``max_len`` characters).

    Taught in chapter 5 (Attention).
    """
    if n < 0:
        raise DateTaskError(f"n must be non-negative, not {n}")
    names = list(FORMATS) if formats is None else list(formats)
    unknown = [f for f in names if f not in FORMATS]
    if unknown or not names:
        raise DateTaskError(f"unknown formats {unknown}; known: {', '.join(FORMATS)}")
    if max_len < 40:
        raise DateTaskError(f"max_len must leave room for the longest format (40 characters), not {max_len}")
    rng = random.Random(seed)
    first, last = dt.date(years[0], 1, 1).toordinal(), dt.date(years[1], 12, 31).toordinal()
    pairs = []
    for _ in range(n):
        date = dt.date.fromordinal(rng.randint(first, last))
        fmt = rng.choice(names)
        text = FORMATS[fmt](date)
        before = [rng.choice(FILLER) for _ in range(rng.randint(0, max_filler))]
        after = [rng.choice(FILLER) for _ in range(rng.randint(0, max_filler))]
        while len(" ".join(before + [text] + after)) > max_len:
            (before if len(before) > len(after) else after).pop()
        pairs.append(DatePair(" ".join(before + [text] + after), date.isoformat(), fmt))
    return pairs


def encode_pairs(pairs: Sequence[DatePair], device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Pad a list of pairs into tensors:

    ``source`` (B, S) ids padded with 0, ``source_lengths`` (B,),
    ``target_in`` (B, T+1) = <s> + target, ``target_out`` (B, T+1) = target + </s>.

    Taught in chapter 5 (Attention).
    """
    if not pairs:
        raise DateTaskError("no pairs to encode")
    src = [SOURCE_VOCAB.encode(p.source) for p in pairs]
    tgt = [TARGET_VOCAB.encode(p.target) for p in pairs]
    S, T = max(map(len, src)), max(map(len, tgt))
    source = torch.full((len(pairs), S), PAD, dtype=torch.long)
    target_in = torch.full((len(pairs), T + 1), PAD, dtype=torch.long)
    target_out = torch.full((len(pairs), T + 1), PAD, dtype=torch.long)
    for b, (s, t) in enumerate(zip(src, tgt)):
        source[b, :len(s)] = torch.tensor(s)
        target_in[b, :len(t) + 1] = torch.tensor([BOS] + t)
        target_out[b, :len(t) + 1] = torch.tensor(t + [EOS])
    lengths = torch.tensor([len(s) for s in src])
    return {"source": source.to(device), "source_lengths": lengths.to(device),
            "target_in": target_in.to(device), "target_out": target_out.to(device)}


def batches(pairs: Sequence[DatePair], batch_size: int, seed: int = 0,
            device: str | torch.device = "cpu"):
    """Endless shuffled batches (dicts from ``encode_pairs``). Taught in chapter 5 (Attention)."""
    if batch_size < 1:
        raise DateTaskError(f"batch_size must be positive, not {batch_size}")
    rng = random.Random(seed)
    order = list(range(len(pairs)))
    while True:
        rng.shuffle(order)
        for i in range(0, len(order) - batch_size + 1, batch_size):
            yield encode_pairs([pairs[j] for j in order[i:i + batch_size]], device)


__all__ = ["BOS", "EOS", "FORMATS", "PAD", "SOURCE_VOCAB", "TARGET_VOCAB", "CharIds", "DatePair",
           "DateTaskError", "batches", "encode_pairs", "make_pairs"]
