"""Positional encodings: tell a Transformer where each token is.

Taught in chapter 6 (Transformer). Attention treats its input as a set: permute
the tokens and the outputs are permuted the same way. Adding a position-dependent
vector to each token's embedding makes the same word at two positions two
different inputs.

Sinusoidal (Vaswani et al., 2017), fixed:

    PE[pos, 2i]   = sin(pos / 10000^(2i / d_model))
    PE[pos, 2i+1] = cos(pos / 10000^(2i / d_model))

Learned (GPT-2, BERT): one trained vector per position, an ``nn.Embedding``.
Both modules take token embeddings (B, T, C) and return them with the encodings added.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sinusoidal_encoding(max_len: int, d_model: int, base: float = 10000.0) -> Tensor:
    """The (max_len, d_model) table of sinusoidal encodings.

    Taught in chapter 6 (Transformer).
    """
    if max_len < 1 or d_model < 2 or d_model % 2:
        raise ValueError(f"need max_len >= 1 and an even d_model >= 2, got max_len={max_len}, d_model={d_model}")
    pos = torch.arange(max_len, dtype=torch.float32)[:, None]                 # (T, 1)
    freq = torch.exp(-math.log(base) * torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)  # (C/2,)
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe


def _check_length(t: int, offset: int, max_len: int) -> None:
    if offset + t > max_len:
        raise ValueError(f"sequence of length {t} (offset {offset}) is longer than max_len={max_len} of the "
                         "positional encoding: build it with a larger max_len")


class SinusoidalPositionalEncoding(nn.Module):
    """Adds fixed sinusoidal encodings: ``x + PE[offset : offset + T]``; no parameters.

    Taught in chapter 6 (Transformer).
    """

    def __init__(self, d_model: int, max_len: int = 5000):
        super().__init__()
        self.d_model, self.max_len = d_model, max_len
        self.register_buffer("pe", sinusoidal_encoding(max_len, d_model), persistent=False)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        t = x.shape[-2]
        _check_length(t, offset, self.max_len)
        return x + self.pe[offset:offset + t].to(x.dtype)  # (B, T, C) + (T, C)


class LearnedPositionalEmbedding(nn.Module):
    """Adds a learned vector per position (``self.weight`` is (max_len, d_model), as GPT-2's ``wpe``).

    Taught in chapter 6 (Transformer).
    """

    def __init__(self, d_model: int, max_len: int = 1024, init_std: float = 0.02):
        super().__init__()
        self.d_model, self.max_len = d_model, max_len
        self.embedding = nn.Embedding(max_len, d_model)
        nn.init.normal_(self.embedding.weight, std=init_std)

    @property
    def weight(self) -> Tensor:
        return self.embedding.weight

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        t = x.shape[-2]
        _check_length(t, offset, self.max_len)
        positions = torch.arange(offset, offset + t, device=x.device)
        return x + self.embedding(positions)               # (B, T, C) + (T, C)


__all__ = ["LearnedPositionalEmbedding", "SinusoidalPositionalEncoding", "sinusoidal_encoding"]
