"""Ladder side-tuning: move the delta out of the backbone (Sung et al. 2022, LST).

Taught in chapter 12 (Delta tuning).

Adapters and LoRA sit *inside* the backbone, so backpropagation still runs through every
frozen layer and keeps its activations. A ladder side network is a small separate network
(width ``hidden / reduction``) that reads the frozen backbone's hidden states through
"ladder" down-projections::

    s_0 = down_0(h_0)                                    h_i: backbone layer i's output (no grad)
    s_i = block_i( g_i * s_{i-1} + (1 - g_i) * down_i(h_i) ),   g_i = sigmoid(gate_i)
    out = h_L + up(s_L)                                  up = 0 at the start

The backbone runs under ``torch.no_grad()``: it keeps no activations and gets no gradient,
so training memory is the side network's alone. ``up`` starts at zero, so the output starts
equal to the backbone's. (Sung et al. initialise the side blocks from a pruned copy of the
backbone; here they start random.)
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from lmcourse.delta.core import DeltaError, freeze
from lmcourse.nn.transformer import EncoderBlock


def find_layers(model: nn.Module) -> nn.ModuleList:
    """The backbone's stack of layers: its longest ``nn.ModuleList``."""
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m)]
    if not lists:
        raise DeltaError(f"{type(model).__name__} has no nn.ModuleList of layers to build a ladder on")
    return max(lists, key=len)


def _width(layer: nn.Module) -> int:
    lin = next((m for m in layer.modules() if isinstance(m, nn.Linear)), None)
    if lin is None:
        raise DeltaError("cannot find the hidden width of the backbone's layers (no nn.Linear inside)")
    return lin.in_features


class LadderSideNetwork(nn.Module):
    """A frozen backbone plus a trainable side network fed by its hidden states. Taught in chapter 12.

    ``forward(*args, **kwargs)`` calls the backbone with the same arguments and returns the
    final hidden states ``(B, T, hidden)``; ``attention_mask`` (if given) masks the side's attention.
    """

    def __init__(self, backbone: nn.Module, reduction: int = 8, n_heads: int = 4, causal: bool = False):
        super().__init__()
        self.backbone = freeze(backbone)
        self.layers = [find_layers(backbone)]                  # a list: not registered twice
        hidden, n = _width(self.layers[0][0]), len(self.layers[0])
        if not isinstance(reduction, int) or reduction < 1 or hidden // reduction < 1:
            raise DeltaError(f"reduction must be an int in 1..{hidden}, not {reduction!r}")
        d = hidden // reduction
        if d % n_heads:
            raise DeltaError(f"side width {d} (= {hidden} // {reduction}) is not divisible by n_heads={n_heads}")
        self.causal, self.hidden, self.side_width = causal, hidden, d
        self.delta_down = nn.ModuleList(nn.Linear(hidden, d) for _ in range(n + 1))        # ladders h_i -> d
        self.delta_gate = nn.Parameter(torch.zeros(n))                                   # g_i = sigmoid(0) = 1/2
        self.delta_blocks = nn.ModuleList(EncoderBlock(d, n_heads, 4 * d, norm_first=True) for _ in range(n))
        self.delta_up = nn.Linear(d, hidden)
        nn.init.zeros_(self.delta_up.weight)
        nn.init.zeros_(self.delta_up.bias)

    def backbone_states(self, *args, **kwargs) -> list[Tensor]:
        """The backbone's input to its first layer and every layer's output, computed without gradient."""
        states: list[Tensor] = []
        layers = self.layers[0]

        def first(t):
            return t[0] if isinstance(t, tuple) else t

        def pre(m, a, kw):
            states.append(first(a[0] if a else next(v for v in kw.values() if isinstance(v, Tensor))))

        handles = [layers[0].register_forward_pre_hook(pre, with_kwargs=True)]
        handles += [layer.register_forward_hook(lambda m, a, out: states.append(first(out))) for layer in layers]
        try:
            with torch.no_grad():
                self.backbone(*args, **kwargs)
        finally:
            for h in handles:
                h.remove()
        return states                                           # L + 1 tensors (B, T, hidden)

    def forward(self, *args, **kwargs) -> Tensor:
        states = self.backbone_states(*args, **kwargs)
        mask = kwargs.get("attention_mask")
        key_mask = None if mask is None else mask.bool()
        s = self.delta_down[0](states[0])                                                 # (B, T, d)
        for i, block in enumerate(self.delta_blocks):
            g = torch.sigmoid(self.delta_gate[i])
            s = block(g * s + (1 - g) * self.delta_down[i + 1](states[i + 1]), key_mask=key_mask,
                      causal=self.causal)
        return states[-1] + self.delta_up(s)                                              # (B, T, hidden)


__all__ = ["LadderSideNetwork", "find_layers"]
