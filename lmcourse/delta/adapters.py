"""Adapters: small bottleneck networks added to a frozen Transformer (addition-based delta tuning).

Taught in chapter 12 (Delta tuning).

An adapter is a down-projection to a small width ``m``, a nonlinearity and an up-projection
back (Houlsby et al. 2019)::

    adapter(h) = W_up f(W_down h)          W_down: (m, d), W_up: (d, m)

* sequential (Houlsby): placed after a sublayer, on its output ``h``: ``h <- h + adapter(h)``;
* parallel (He et al. 2022): beside a sublayer, fed by its input ``x``: ``h <- h + s * adapter(x)``.

``W_up`` starts at zero, so before training the adapter adds exactly nothing and the model is
the pretrained one. Both attach to any module with a forward hook (``lmcourse.delta.core.HookDelta``).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from lmcourse.delta.core import DeltaError, HookDelta, attach, freeze, linear_dims

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "identity": nn.Identity}


def _dims(host: nn.Module) -> tuple[int, int]:
    """(input width, output width) of a host: a linear layer, or a block whose first/last linears say it."""
    try:
        return linear_dims(host)
    except AttributeError:
        pass
    lin = [m for m in host.modules() if isinstance(m, nn.Linear)]
    if not lin:
        raise DeltaError(f"cannot tell the widths of a {type(host).__name__}: target a linear layer or a block "
                         "that contains linear layers")
    return lin[0].in_features, lin[-1].out_features


class Bottleneck(nn.Module):
    """``W_up f(W_down x)`` with ``W_up = 0`` at the start. Taught in chapter 12 (Delta tuning)."""

    def __init__(self, d_in: int, d_out: int, bottleneck: int, activation: str = "relu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise DeltaError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        if not isinstance(bottleneck, int) or bottleneck < 1:
            raise DeltaError(f"the adapter's bottleneck width must be a positive int, not {bottleneck!r}")
        self.down = nn.Linear(d_in, bottleneck)
        self.act = ACTIVATIONS[activation]()
        self.up = nn.Linear(bottleneck, d_out)
        nn.init.zeros_(self.up.weight)             # the adapter starts as "add nothing"
        nn.init.zeros_(self.up.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.up(self.act(self.down(x)))    # (..., d_in) -> (..., m) -> (..., d_out)


class SequentialAdapter(HookDelta):
    """Houlsby adapter on a sublayer's output: ``h <- h + W_up f(W_down h)``. Taught in chapter 12."""

    kind = "adapter"

    def __init__(self, host: nn.Module, bottleneck: int, activation: str = "relu"):
        super().__init__()
        _, d_out = _dims(host)
        self.net = Bottleneck(d_out, d_out, bottleneck, activation)

    def update(self, x: Tensor, out: Tensor) -> Tensor:
        return self.net(out)


class ParallelAdapter(HookDelta):
    """He et al.'s parallel adapter, beside a sublayer: ``h <- h + s W_up f(W_down x)``. Taught in chapter 12."""

    kind = "padapter"

    def __init__(self, host: nn.Module, bottleneck: int, activation: str = "relu", scale: float = 1.0):
        super().__init__()
        d_in, d_out = _dims(host)
        self.net = Bottleneck(d_in, d_out, bottleneck, activation)
        self.scale = scale

    def update(self, x: Tensor, out: Tensor) -> Tensor:
        return self.scale * self.net(x)


def add_adapters(model: nn.Module, targets, bottleneck: int = 16, kind: str = "sequential",
                 activation: str = "relu", scale: float = 1.0, freeze_model: bool = True) -> dict[str, HookDelta]:
    """Freeze ``model`` and attach an adapter to each module matching ``targets``.

    ``kind="sequential"`` (Houlsby: target the sublayers' output projections, e.g. BERT's
    ``output.dense``) or ``"parallel"`` (He et al.: target any module; its input feeds the adapter).
    Taught in chapter 12 (Delta tuning).
    """
    if kind not in ("sequential", "parallel"):
        raise DeltaError(f"adapter kind must be 'sequential' or 'parallel', not {kind!r}")
    if freeze_model:
        freeze(model)
    types = (nn.Module,)
    if kind == "sequential":
        return attach(model, targets, lambda n, m: SequentialAdapter(m, bottleneck, activation), types)
    return attach(model, targets, lambda n, m: ParallelAdapter(m, bottleneck, activation, scale), types)


__all__ = ["Bottleneck", "ParallelAdapter", "SequentialAdapter", "add_adapters"]
