"""Scaled dot-product attention and multi-head attention, with padding, causal and cross masks.

Taught in chapter 6 (Transformer); the dot-product attention of chapter 5, scaled.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V

Mask convention (one for the whole package): a boolean mask is True where a query
MAY attend to a key (as in ``torch.nn.functional.scaled_dot_product_attention``);
a float mask is added to the scores (0 to keep, -inf to block). A mask broadcasts
to the scores' shape (B, H, T_q, T_k). ``key_mask`` (B, T_k) is True for real
tokens and False for padding (as Hugging Face's ``attention_mask``). Note that
``torch.nn.MultiheadAttention`` uses the opposite sense (True = blocked).

Two paths compute the same thing: ``plain`` writes out the masked softmax (and
returns the weights, for heat maps); ``fast`` calls PyTorch's fused kernel.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmcourse.errors import LMCourseError


class MaskError(LMCourseError, ValueError):
    """A mask of the wrong shape or type."""


def causal_mask(t_q: int, t_k: int | None = None, device: torch.device | str | None = None) -> Tensor:
    """(T_q, T_k) boolean mask, True on and below the diagonal: position i sees positions <= i.

    When T_k > T_q (queries are the last T_q positions, e.g. with cached keys) the
    diagonal is shifted so that the last query sees every key.

    Taught in chapter 6 (Transformer).
    """
    t_k = t_q if t_k is None else t_k
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril(diagonal=t_k - t_q)


def padding_mask(lengths: Tensor | list[int], max_len: int | None = None) -> Tensor:
    """(B, T) boolean mask, True for the first ``lengths[b]`` positions of each row (the real tokens).

    Taught in chapter 6 (Transformer).
    """
    lengths = torch.as_tensor(lengths)
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def _check_mask(mask: Tensor, scores_shape: tuple[int, ...], name: str = "mask") -> None:
    if not isinstance(mask, Tensor):
        raise MaskError(f"{name} must be a tensor, not {type(mask).__name__}")
    if mask.dtype != torch.bool and not mask.is_floating_point():
        raise MaskError(f"{name} must be boolean (True = may attend) or float (added to the scores), not {mask.dtype}")
    if mask.dim() > len(scores_shape):
        raise MaskError(f"{name} has {mask.dim()} dims, but the scores (B, H, T_q, T_k) = {tuple(scores_shape)} have "
                        f"{len(scores_shape)}")
    for m, s in zip(reversed(mask.shape), reversed(scores_shape)):
        if m not in (1, s):
            raise MaskError(f"{name} of shape {tuple(mask.shape)} does not broadcast to the scores' shape "
                            f"(B, H, T_q, T_k) = {tuple(scores_shape)}")


def combine_masks(mask: Tensor | None, key_mask: Tensor | None, causal: bool, b: int, t_q: int, t_k: int,
                  device: torch.device) -> Tensor | None:
    """One boolean-or-float mask broadcastable to (B, 1|H, T_q, T_k) from the three kinds, or None."""
    out = mask
    if mask is not None and mask.dim() == 3:         # (B, T_q, T_k): same for every head
        out = mask[:, None]
    if key_mask is not None:
        if key_mask.dtype != torch.bool or key_mask.shape != (b, t_k):
            raise MaskError(f"key_mask must be a boolean (B, T_k) = ({b}, {t_k}) tensor, True for real tokens; "
                            f"got {key_mask.dtype} of shape {tuple(key_mask.shape)}")
        keys = key_mask[:, None, None, :]             # (B, 1, 1, T_k)
        out = keys if out is None else _and(out, keys)
    if causal:
        c = causal_mask(t_q, t_k, device=device)
        out = c if out is None else _and(out, c)
    return out


def _and(a: Tensor, b: Tensor) -> Tensor:
    """Both masks at once: logical and for booleans; for a float mask, -inf where the boolean one blocks."""
    if a.dtype == torch.bool and b.dtype == torch.bool:
        return a & b
    if a.dtype == torch.bool:
        a, b = b, a
    return a.masked_fill(~b, float("-inf")) if b.dtype == torch.bool else a + b


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, *,
                                 causal: bool = False, dropout_p: float = 0.0, scale: float | None = None,
                                 fast: bool = False, return_weights: bool = False):
    """softmax(q k^T * scale + mask) v over the last two dims; ``scale`` defaults to 1/sqrt(d_k).

    q: (..., T_q, d_k), k: (..., T_k, d_k), v: (..., T_k, d_v) -> (..., T_q, d_v).
    ``fast=True`` calls ``torch.nn.functional.scaled_dot_product_attention`` (it cannot
    return the weights). A query row whose keys are all masked gives NaN on both paths.

    Taught in chapter 6 (Transformer).
    """
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"queries and keys need the same width d_k: q has {q.shape[-1]}, k has {k.shape[-1]}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"keys and values need the same length: k has {k.shape[-2]}, v has {v.shape[-2]}")
    t_q, t_k = q.shape[-2], k.shape[-2]
    scores_shape = (*torch.broadcast_shapes(q.shape[:-2], k.shape[:-2]), t_q, t_k)
    if mask is not None:
        _check_mask(mask, scores_shape)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    if fast and not return_weights and causal and mask is None and t_q == t_k:
        # the fused kernel's own causal pattern, with no mask tensor (what lets it pick FlashAttention);
        # it is the pattern of causal_mask only when T_q == T_k (PyTorch aligns it to the top left)
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True, scale=scale)
    if causal:
        c = causal_mask(t_q, t_k, device=q.device)
        mask = c if mask is None else _and(mask, c)

    if fast and not return_weights:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, scale=scale)

    scores = (q @ k.transpose(-2, -1)) * scale               # (..., T_q, T_k)
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))  # blocked pairs get probability 0
        else:
            scores = scores + mask
    weights = torch.softmax(scores, dim=-1)                   # each row sums to 1
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    out = weights @ v                                         # (..., T_q, d_v)
    return (out, weights) if return_weights else out


class MultiHeadAttention(nn.Module):
    """Multi-head attention: H scaled dot-product attentions on learned projections, concatenated.

    ``q_proj``, ``k_proj``, ``v_proj`` and ``out_proj`` are separate ``nn.Linear`` layers
    (d_model -> d_model), so weights from other implementations copy in directly.
    Self-attention: ``mha(x)``; cross-attention: ``mha(x, memory)`` (queries from x,
    keys and values from memory).

    Taught in chapter 6 (Transformer).
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True,
                 kv_dim: int | None = None, fast: bool = True):
        super().__init__()
        if d_model < 1 or n_heads < 1:
            raise ValueError(f"d_model and n_heads must be positive, got d_model={d_model}, n_heads={n_heads}")
        if d_model % n_heads != 0:
            divisors = [h for h in range(1, d_model + 1) if d_model % h == 0]
            raise ValueError(f"n_heads={n_heads} does not divide d_model={d_model}: each head needs "
                             f"d_model / n_heads channels (n_heads could be one of {divisors[:8]})")
        kv_dim = d_model if kv_dim is None else kv_dim
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.dropout, self.fast = dropout, fast
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(kv_dim, d_model, bias=bias)
        self.v_proj = nn.Linear(kv_dim, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def _split(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.d_head).transpose(1, 2)  # (B, H, T, d_head)

    def forward(self, x: Tensor, memory: Tensor | None = None, *, mask: Tensor | None = None,
                key_mask: Tensor | None = None, causal: bool = False, return_weights: bool = False):
        """x: (B, T_q, C); memory: (B, T_k, C_kv) or None for self-attention -> (B, T_q, C).

        With ``return_weights=True`` also returns the attention weights (B, H, T_q, T_k)
        (computed on the plain path).
        """
        memory = x if memory is None else memory
        if x.dim() != 3 or memory.dim() != 3:
            raise ValueError(f"attention takes (B, T, C) tensors, got x {tuple(x.shape)}, memory {tuple(memory.shape)}")
        if x.shape[-1] != self.d_model:
            raise ValueError(f"x has width {x.shape[-1]}, but this attention layer has d_model={self.d_model}")
        b, t_q, _ = x.shape
        t_k = memory.shape[1]
        if memory.shape[0] != b:
            raise ValueError(f"x and memory have different batch sizes: {b} and {memory.shape[0]}")
        if mask is not None:
            if mask.dim() == 3 and mask.shape[0] not in (1, b):
                raise MaskError(f"a 3-d mask must be (B, T_q, T_k) = ({b}, {t_q}, {t_k}); got {tuple(mask.shape)}")
            _check_mask(mask if mask.dim() != 3 else mask[:, None], (b, self.n_heads, t_q, t_k))
        only_causal = causal and mask is None and key_mask is None  # left to the kernel: no mask tensor
        full_mask = None if only_causal else combine_masks(mask, key_mask, causal, b, t_q, t_k, x.device)

        q = self._split(self.q_proj(x))        # (B, H, T_q, d_head)
        k = self._split(self.k_proj(memory))   # (B, H, T_k, d_head)
        v = self._split(self.v_proj(memory))   # (B, H, T_k, d_head)
        p = self.dropout if self.training else 0.0
        res = scaled_dot_product_attention(q, k, v, full_mask, causal=only_causal, dropout_p=p, fast=self.fast,
                                           return_weights=return_weights)
        out, weights = res if return_weights else (res, None)
        out = out.transpose(1, 2).reshape(b, t_q, self.d_model)  # concatenate the heads: (B, T_q, C)
        out = self.out_proj(out)
        return (out, weights) if return_weights else out


__all__ = ["MaskError", "MultiHeadAttention", "causal_mask", "combine_masks", "padding_mask",
           "scaled_dot_product_attention"]
