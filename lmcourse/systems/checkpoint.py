"""Activation checkpointing (重计算): keep only segment inputs, recompute the rest in backward.

Taught in chapter 19 (Mixed precision, offloading, overlapping, checkpointing).

A GPT's ``n`` blocks are cut into ``k`` segments. Forward runs each segment without
recording a graph and keeps only its input; backward re-runs the segment's forward (now
recording) and backpropagates through it. Activation memory becomes about
``k`` segment inputs + the activations of one segment (``n / k`` blocks), which is
smallest near ``k = sqrt(n)`` {cite}`chen2016training`; the price is one extra forward of
the checkpointed blocks. The recomputation repeats the same operations on the same inputs,
so the gradients are *exactly* those of the plain model (no dropout here: with dropout the
RNG state must be replayed too, as ``torch.utils.checkpoint`` does).
"""
from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmcourse.errors import LMCourseError

_recompute_log: list[int] | None = None     # bytes saved while recomputing each segment (see activation_memory)


def _saved_bytes_hook(store: dict, skip: set):
    def pack(t: Tensor):
        key = t.untyped_storage().data_ptr()
        if key not in skip and t.numel():
            store[key] = t.untyped_storage().nbytes()
        return t
    return pack


class Checkpoint(torch.autograd.Function):
    """``Checkpoint.apply(run, x, *params)``: ``run(x)`` without a graph in forward, recomputed in backward.

    ``params`` are passed so autograd knows the segment depends on them; their gradients are
    accumulated by the inner backward. Taught in chapter 19.
    """

    @staticmethod
    def forward(ctx, run, x, *params):
        ctx.run = run
        ctx.save_for_backward(x)                          # the only activation kept: the segment's input
        with torch.no_grad():
            return run(x)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        x = x.detach().requires_grad_(True)
        store: dict = {}
        with torch.enable_grad():
            if _recompute_log is not None:
                skip = {p.untyped_storage().data_ptr() for p in _params_of(ctx.run)}
                with torch.autograd.graph.saved_tensors_hooks(_saved_bytes_hook(store, skip), lambda t: t):
                    y = ctx.run(x)                        # recompute the segment, this time with a graph
                _recompute_log.append(sum(store.values()))
            else:
                y = ctx.run(x)
        torch.autograd.backward(y, grad_out)              # parameter grads accumulate here
        return (None, x.grad) + (None,) * len(ctx.needs_input_grad[2:])


def _params_of(run) -> list[Tensor]:
    return list(getattr(run, "params", []))


class _Segment:
    """Blocks ``blocks[i:j]`` of a GPT as one callable (causal attention as in GPT.hidden_states)."""

    def __init__(self, blocks, causal: bool):
        self.blocks, self.causal = list(blocks), causal
        self.params = [p for b in self.blocks for p in b.parameters()]

    def __call__(self, x: Tensor) -> Tensor:
        for b in self.blocks:
            x = b(x, causal=self.causal)
        return x


def segment_bounds(n_layer: int, segments: int) -> list[tuple[int, int]]:
    """Split ``n_layer`` blocks into ``segments`` contiguous runs of near-equal length (0 = no checkpointing)."""
    if not isinstance(segments, int) or not 0 <= segments <= n_layer:
        raise LMCourseError(f"segments must be a whole number in [0, n_layer={n_layer}], not {segments!r}")
    if segments == 0:
        return []
    edges = [round(i * n_layer / segments) for i in range(segments + 1)]
    return list(zip(edges[:-1], edges[1:]))


def checkpointed_forward(model, idx: Tensor, targets: Tensor, segments: int, use_torch: bool = False) -> Tensor:
    """The loss of ``lmcourse.models.GPT`` on ``idx``/``targets`` with its blocks in ``segments`` checkpoints.

    ``segments=0`` is the plain forward; ``use_torch=True`` uses ``torch.utils.checkpoint``
    (non-reentrant) instead of ``Checkpoint``, for comparison. Taught in chapter 19.
    """
    c = model.config
    if c.dropout > 0 and model.training and not use_torch:
        raise LMCourseError("Checkpoint does not replay dropout's random numbers: use dropout=0 or use_torch=True")
    x = model.drop(model.wpe(model.wte(idx)))                               # (B, T, C)
    bounds = segment_bounds(c.n_layer, segments)
    if not bounds:
        x = _Segment(model.blocks, c.causal)(x)
    for i, j in bounds:
        seg = _Segment(model.blocks[i:j], c.causal)
        if use_torch:
            x = torch.utils.checkpoint.checkpoint(seg, x, use_reentrant=False)
        else:
            x = Checkpoint.apply(seg, x, *seg.params)
    logits = model.lm_head(model.ln_f(x))                                   # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def activation_memory(model, idx: Tensor, targets: Tensor, segments: int) -> dict[str, int]:
    """Measured activation bytes of one training step with ``segments`` checkpoints.

    ``kept``: bytes saved for backward during forward (distinct non-parameter storages);
    ``recompute``: the largest segment's saved bytes during its recomputation in backward;
    ``peak``: ``kept + recompute``, the most held at once (the kept tensors are released only
    as backward passes them). Gradients are left in ``model``'s parameters.
    Taught in chapter 19.
    """
    global _recompute_log
    skip = {p.untyped_storage().data_ptr() for p in model.parameters()}
    store: dict = {}
    model.zero_grad(set_to_none=True)
    _recompute_log = []
    try:
        with torch.autograd.graph.saved_tensors_hooks(_saved_bytes_hook(store, skip), lambda t: t):
            loss = checkpointed_forward(model, idx, targets, segments)
        loss.backward()
        recompute = max(_recompute_log, default=0)
    finally:
        _recompute_log = None
    kept = sum(store.values())
    return {"kept": kept, "recompute": recompute, "peak": kept + recompute}


def step_time(model, idx: Tensor, targets: Tensor, segments: int, repeats: int = 3, use_torch: bool = False) -> float:
    """Median seconds of forward + backward with ``segments`` checkpoints. Taught in chapter 19."""
    times = []
    for _ in range(repeats + 1):
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        checkpointed_forward(model, idx, targets, segments, use_torch=use_torch).backward()
        times.append(time.perf_counter() - t0)
    times = sorted(times[1:])                                               # the first run warms up
    return times[len(times) // 2]


def best_segments(n_layer: int) -> int:
    """The ``k`` minimising ``k + n / k`` (segment inputs kept + one segment recomputed): about sqrt(n)."""
    return min(range(1, n_layer + 1), key=lambda k: (k + math.ceil(n_layer / k), k))
