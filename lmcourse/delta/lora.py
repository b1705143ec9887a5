"""LoRA: a frozen weight plus a trainable low-rank change, ``W = W_0 + (alpha / r) B A``.

Taught in chapter 12 (Delta tuning), after Hu et al. (2022).

For a frozen ``W_0`` of shape ``(d, k)`` (``d`` outputs, ``k`` inputs; ``nn.Linear`` stores it so),
LoRA learns ``B`` of shape ``(d, r)`` and ``A`` of shape ``(r, k)`` with ``r << min(d, k)``:

    h = W_0 x + (alpha / r) B A x

``B`` starts at zero, so the model starts exactly as the pretrained one; ``A`` starts as
``peft`` initialises it (Kaiming-uniform with ``a = sqrt(5)``, the default of ``nn.Linear``).
After training, ``merge`` adds ``(alpha / r) B A`` into ``W_0``: inference then costs nothing
extra; ``unmerge`` subtracts it again.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmcourse.delta.core import DeltaError, HookDelta, attach, freeze, linear_dims


class LoRA(HookDelta):
    """The low-rank change of one linear layer (``nn.Linear`` or transformers ``Conv1D``).

    Attached to its host with a forward hook: ``out = host(x) + (alpha/r) B A dropout(x)``.
    Taught in chapter 12 (Delta tuning).
    """

    kind = "lora"

    def __init__(self, host: nn.Module, r: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        k, d = linear_dims(host)                               # k inputs, d outputs
        if not isinstance(r, int) or r < 1:
            raise DeltaError(f"LoRA rank must be a positive int, not {r!r}")
        if r > min(d, k):
            raise DeltaError(f"LoRA rank {r} is larger than the layer's dimensions ({d} x {k}): "
                             f"choose r <= {min(d, k)}")
        w = host.weight
        self.A = nn.Parameter(torch.empty(r, k, dtype=w.dtype, device=w.device))   # (r, k)
        self.B = nn.Parameter(torch.zeros(d, r, dtype=w.dtype, device=w.device))   # (d, r): zero, so dW = 0
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))       # as peft (and nn.Linear) do
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.transposed = not isinstance(host, nn.Linear)      # Conv1D keeps W as (k, d)
        self.host_weight = [w]                                 # a list: not registered as our parameter
        self.merged = False

    def update(self, x: Tensor, out: Tensor) -> Tensor | None:
        if self.merged:
            return None
        return F.linear(F.linear(self.dropout(x), self.A), self.B) * self.scaling     # (..., d)

    def delta_weight(self) -> Tensor:
        """``(alpha / r) B A``, shape ``(d, k)`` (transposed for Conv1D hosts)."""
        dw = (self.B @ self.A) * self.scaling
        return dw.T if self.transposed else dw

    @torch.no_grad()
    def merge(self) -> None:
        """``W_0 <- W_0 + (alpha/r) B A``: zero-cost inference. Merging twice is an error."""
        if self.merged:
            raise DeltaError("this LoRA is already merged into its weight; unmerge() first")
        self.host_weight[0].add_(self.delta_weight().to(self.host_weight[0].dtype))
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """``W <- W - (alpha/r) B A``: back to the frozen ``W_0`` (up to rounding)."""
        if not self.merged:
            raise DeltaError("this LoRA is not merged: nothing to unmerge")
        self.host_weight[0].sub_(self.delta_weight().to(self.host_weight[0].dtype))
        self.merged = False


def add_lora(model: nn.Module, targets, r: int = 8, alpha: float = 8.0, dropout: float = 0.0,
             freeze_model: bool = True) -> dict[str, LoRA]:
    """Freeze ``model`` and give every linear layer matching ``targets`` a LoRA of rank ``r``.

    ``targets``: names as in ``peft`` (``["query", "value"]`` matches ``...attention.self.query``).
    Returns the LoRA modules by host name. Taught in chapter 12 (Delta tuning).
    """
    if freeze_model:
        freeze(model)
    return attach(model, targets, lambda name, m: LoRA(m, r, alpha, dropout))


def loras(model: nn.Module) -> list[LoRA]:
    """Every LoRA module attached inside ``model``."""
    return [m for m in model.modules() if isinstance(m, LoRA)]


def merge_lora(model: nn.Module) -> nn.Module:
    """Merge every LoRA of ``model`` into its weight (error if there is none or one is merged already)."""
    ms = loras(model)
    if not ms:
        raise DeltaError("the model carries no LoRA to merge")
    for m in ms:
        m.merge()
    return model


def unmerge_lora(model: nn.Module) -> nn.Module:
    """Undo ``merge_lora``."""
    ms = loras(model)
    if not ms:
        raise DeltaError("the model carries no LoRA to unmerge")
    for m in ms:
        m.unmerge()
    return model


def merge_and_unload(model: nn.Module) -> nn.Module:
    """Merge every LoRA and remove the LoRA modules: a plain model again (like peft's ``merge_and_unload``)."""
    from lmcourse.delta.core import remove_deltas
    merge_lora(model)
    for m in loras(model):
        m.merged = False          # keep the merged weights: remove without unmerging
    return remove_deltas(model, kind="lora")


__all__ = ["LoRA", "add_lora", "loras", "merge_and_unload", "merge_lora", "unmerge_lora"]
