"""Overlapping communication with computation: prefetch the next layer's parameters (ZeRO-3 style).

Taught in chapter 19 (Mixed precision, offloading, overlapping, checkpointing).

Under ZeRO-3 (chapter 17) each rank holds a shard of every layer's parameters and gathers
the full layer just before using it. Done naively, the ranks wait for every all-gather.
Collectives are asynchronous (``async_op=True`` returns a handle at once; ``handle.wait()``
blocks until the data is there), so a rank can *issue* the gather of layer ``i + 1`` and
then compute layer ``i`` while the bytes travel. ``sharded_forward`` runs both schedules
and records a timeline of (kind, layer, start, end) events.
"""
from __future__ import annotations

import time

import torch
import torch.distributed as dist
from torch import Tensor

from lmcourse.errors import LMCourseError


def make_layers(n_layers: int, width: int, seed: int = 0) -> list[Tensor]:
    """``n_layers`` flat parameter vectors of a ``width x width`` Linear + bias, the same on every rank."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(width * width + width, generator=g) / width ** 0.5 for _ in range(n_layers)]


def shard(flat: Tensor, rank: int, world: int) -> Tensor:
    """This rank's equal slice of ``flat`` (its numel must divide by ``world``)."""
    if flat.numel() % world:
        raise LMCourseError(f"{flat.numel()} elements do not split evenly over {world} ranks")
    n = flat.numel() // world
    return flat[rank * n:(rank + 1) * n].clone()


def _layer(x: Tensor, flat: Tensor, width: int, repeats: int) -> Tensor:
    w, b = flat[:width * width].view(width, width), flat[width * width:]
    for _ in range(repeats):                          # `repeats` = compute per layer, to balance with communication
        x = torch.tanh(x @ w.T + b)                   # (B, width)
    return x


def sharded_forward(x: Tensor, shards: list[Tensor], width: int, world: int, prefetch: bool,
                    repeats: int = 1) -> tuple[Tensor, list[tuple]]:
    """Forward through the layers whose parameters are sharded over the group, gathering each one.

    ``prefetch=False``: gather layer i, wait, compute it. ``prefetch=True``: before computing
    layer i, issue the (asynchronous) gather of layer i + 1. Returns the output and the
    timeline: ``("comm-wait" | "compute", layer, start, end)`` in seconds since the start.
    Taught in chapter 19.
    """
    t0 = time.perf_counter()
    events = []
    full = [torch.empty(s.numel() * world) for s in shards]

    def issue(i):
        return dist.all_gather_into_tensor(full[i], shards[i], async_op=True)

    handles = {0: issue(0)}
    for i in range(len(shards)):
        if prefetch and i + 1 < len(shards):
            handles[i + 1] = issue(i + 1)                 # the next layer's bytes travel while we compute
        a = time.perf_counter() - t0
        handles.pop(i).wait()
        events.append(("comm-wait", i, a, time.perf_counter() - t0))
        a = time.perf_counter() - t0
        x = _layer(x, full[i], width, repeats)
        events.append(("compute", i, a, time.perf_counter() - t0))
        full[i] = None                                    # free the gathered layer (ZeRO-3)
        if not prefetch and i + 1 < len(shards):
            handles[i + 1] = issue(i + 1)
    return x, events


def overlap_worker(rank: int, world: int, sizes: dict) -> dict:
    """Worker for ``launch``: both schedules, ``sizes["trials"]`` times each, alternating; timelines and outputs.

    ``sizes``: ``layers``, ``width``, ``batch``, ``repeats`` (compute per layer), ``trials``.
    Taught in chapter 19.
    """
    layers = make_layers(sizes["layers"], sizes["width"])
    shards = [shard(f, rank, world) for f in layers]
    x = torch.randn(sizes["batch"], sizes["width"], generator=torch.Generator().manual_seed(1))
    out: dict = {"plain": [], "prefetch": []}
    for trial in range(sizes["trials"] + 1):              # trial 0 warms up
        for mode in ("plain", "prefetch"):
            dist.barrier()
            y, events = sharded_forward(x, shards, sizes["width"], world, prefetch=mode == "prefetch",
                                        repeats=sizes["repeats"])
            if trial:
                out[mode].append(events)
            out[f"y_{mode}"] = y
    ref = x
    for f in layers:
        ref = _layer(ref, f, sizes["width"], sizes["repeats"])
    out["max_diff"] = max((out["y_plain"] - ref).abs().max().item(), (out["y_prefetch"] - ref).abs().max().item())
    del out["y_plain"], out["y_prefetch"]
    return out


def total_time(events: list[tuple]) -> float:
    """End of the last event of a timeline."""
    return max(e[3] for e in events)


def wait_time(events: list[tuple]) -> float:
    """Seconds spent blocked on communication in a timeline."""
    return sum(e[3] - e[2] for e in events if e[0] == "comm-wait")
