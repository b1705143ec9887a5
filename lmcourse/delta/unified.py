"""The unified view of delta tuning (He et al. 2022) and automatic structure search.

Taught in chapter 12 (Delta tuning).

He et al. write every method as a change ``delta h`` of a hidden representation ``h``:

================  =============================  ==========  ====================  ==========================
method            delta h                        insertion   modifies              composition
================  =============================  ==========  ====================  ==========================
adapter           ReLU(h W_down) W_up            sequential  attention / FFN out   h <- h + delta h
parallel adapter  ReLU(x W_down) W_up            parallel    attention / FFN out   h <- h + s delta h
LoRA              x W_down W_up                  parallel    query / value         h <- h + s delta h
prefix-tuning     softmax(q P_k^T) P_v           parallel    each head's output    h <- (1-lambda) h + lambda delta h
================  =============================  ==========  ====================  ==========================

``lora_as_parallel_adapter`` and ``prefix_as_interpolation`` check two rows numerically.

Structure search (Hu et al. 2022, S3Delta; Ding et al. 2023) puts a candidate delta at many
places, each scaled by a learned gate ``g``, trains the gates with an L1 penalty that pushes
most of them to zero, and keeps only the largest: a sparse set of places where deltas help.
(S3Delta uses stochastic L0 gates; an L1 penalty on plain scalar gates is the simplest form.)
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lmcourse.delta.adapters import ParallelAdapter, SequentialAdapter
from lmcourse.delta.core import DeltaError, HookDelta, find_modules, freeze
from lmcourse.delta.lora import LoRA

UNIFIED_VIEW = [
    {"method": "adapter", "delta_h": "ReLU(h W_down) W_up", "insertion": "sequential",
     "modifies": "attention / FFN output", "composition": "h <- h + delta_h"},
    {"method": "parallel adapter", "delta_h": "ReLU(x W_down) W_up", "insertion": "parallel",
     "modifies": "attention / FFN output", "composition": "h <- h + s delta_h"},
    {"method": "LoRA", "delta_h": "x W_down W_up", "insertion": "parallel",
     "modifies": "query / value projections", "composition": "h <- h + s delta_h"},
    {"method": "prefix-tuning", "delta_h": "softmax(q P_k^T) P_v", "insertion": "parallel",
     "modifies": "each head's attention output", "composition": "h <- (1 - lambda) h + lambda delta_h"},
]


def lora_as_parallel_adapter(lora: LoRA, x: Tensor) -> tuple[Tensor, Tensor]:
    """LoRA's update and the same update written as a parallel adapter with no nonlinearity.

    ``W_down = A^T`` (k, r), ``W_up = B^T`` (r, d), ``s = alpha / r``: returns both (they are equal).
    """
    lora_dh = lora.update(x, None)
    w_down, w_up = lora.A.T, lora.B.T
    adapter_dh = lora.scaling * ((x @ w_down) @ w_up)
    return lora_dh, adapter_dh


def prefix_attention(q: Tensor, k: Tensor, v: Tensor, pk: Tensor, pv: Tensor) -> Tensor:
    """Attention of queries ``q`` (T, d) over the prefix ``(pk, pv)`` (l, d) followed by ``(k, v)`` (T, d)."""
    keys, values = torch.cat([pk, k]), torch.cat([pv, v])
    return torch.softmax(q @ keys.T / math.sqrt(q.shape[-1]), dim=-1) @ values


def prefix_as_interpolation(q: Tensor, k: Tensor, v: Tensor, pk: Tensor, pv: Tensor) -> tuple[Tensor, Tensor]:
    """He et al.'s form: ``(1 - lambda) Attn(q, k, v) + lambda Attn(q, P_k, P_v)``, and lambda (T, 1).

    ``lambda(q) = sum_i exp(q P_k_i) / (sum_i exp(q P_k_i) + sum_j exp(q k_j))``: the prefix's share of
    the attention mass. Equal to ``prefix_attention`` (checked in the chapter).
    """
    s = math.sqrt(q.shape[-1])
    own, pre = q @ k.T / s, q @ pk.T / s                                     # (T, T), (T, l)
    lam = torch.logsumexp(pre, -1, keepdim=True)
    lam = torch.exp(lam - torch.logsumexp(torch.cat([own, pre], -1), -1, keepdim=True))   # (T, 1)
    h = torch.softmax(own, -1) @ v
    dh = torch.softmax(pre, -1) @ pv
    return (1 - lam) * h + lam * dh, lam


class StructureSearch:
    """Candidate deltas at many places, each behind a learned gate; prune to the strongest few.

    ``candidates``: ``{"lora": targets, "adapter": targets, "padapter": targets}``. After
    ``search = StructureSearch(model, {...})``, train with ``loss + search.penalty()``, then
    ``search.prune(keep=k)`` removes all but the ``k`` largest gates. Taught in chapter 12.
    """

    def __init__(self, model: nn.Module, candidates: dict[str, list[str]], r: int = 4, bottleneck: int = 8,
                 l1: float = 1e-2):
        makers = {"lora": lambda m: LoRA(m, r, alpha=r),
                  "adapter": lambda m: SequentialAdapter(m, bottleneck),
                  "padapter": lambda m: ParallelAdapter(m, bottleneck)}
        unknown = set(candidates) - set(makers)
        if unknown:
            raise DeltaError(f"unknown candidate kinds {sorted(unknown)}; choose from {', '.join(makers)}")
        self.model, self.l1 = freeze(model), l1
        self.deltas: dict[str, tuple[nn.Module, HookDelta]] = {}
        for kind, targets in candidates.items():
            types = None if kind == "lora" else (nn.Module,)
            for name, host in find_modules(model, targets, types):
                delta = makers[kind](host).attach(host)
                delta.gate = nn.Parameter(torch.ones((), device=next(delta.parameters()).device))
                self.deltas[f"{name}:{kind}"] = (host, delta)

    def gates(self) -> dict[str, float]:
        """Each candidate's gate value."""
        return {k: d.gate.item() for k, (_, d) in self.deltas.items()}

    def penalty(self) -> Tensor:
        """``l1 * sum |g|``: add it to the loss while searching."""
        return self.l1 * sum(d.gate.abs() for _, d in self.deltas.values())

    def prune(self, keep: int) -> list[str]:
        """Keep the ``keep`` candidates with the largest ``|g|``; detach and delete the others."""
        if not 0 <= keep <= len(self.deltas):
            raise DeltaError(f"keep must be in 0..{len(self.deltas)}, not {keep}")
        ranked = sorted(self.deltas, key=lambda k: -abs(self.deltas[k][1].gate.item()))
        for k in ranked[keep:]:
            host, delta = self.deltas.pop(k)
            delta.detach_hook()
            delattr(host, "delta_" + delta.kind)
        return ranked[:keep]


__all__ = ["StructureSearch", "UNIFIED_VIEW", "lora_as_parallel_adapter", "prefix_as_interpolation",
           "prefix_attention"]
