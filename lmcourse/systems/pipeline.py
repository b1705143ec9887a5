"""Pipeline parallelism: consecutive layers on consecutive ranks; naive split vs GPipe micro-batches.

Taught in chapter 18 (Pipeline parallelism).

The model's layers are cut into p stages, one per rank; activations go forward with
``send``/``recv`` to the next rank, their gradients come back the same way. With the whole
batch at once (the naive split) only one rank works at a time. GPipe (Huang et al., 2019)
cuts the batch into m micro-batches, so stage s can run micro-batch i+1 while stage s+1
runs micro-batch i; the idle time (the *bubble*) falls to ``(p-1)/(m+p-1)`` of the step::

    naive (m=1)                         GPipe (m=4)
    rank 0  F . . . . B                 rank 0  F0 F1 F2 F3 .  .  .  .  .  . B0 B1 B2 B3
    rank 1  . F . . B .                 rank 1  .  F0 F1 F2 F3 .  .  .  . B0 B1 B2 B3 .
    rank 2  . . F B . .                 ...     (each rank idle p-1 slots of forward and of backward)

Gradients of the m micro-batches add up (each micro-batch loss is divided by m), so one
GPipe step equals one step on the whole batch. Every rank records what it computed and
when (``Event``), so the timeline plotted in the chapter is the one that ran.

Run it under torchrun::

    python -m torch.distributed.run --nproc-per-node 2 -m lmcourse.systems.pipeline --micro-batches 4 --steps 5
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from lmcourse.errors import LMCourseError


class PipelineError(LMCourseError, ValueError):
    """Bad pipeline configuration (stages, micro-batches)."""


@dataclass(frozen=True)
class Event:
    """One piece of work of one rank: forward ("F") or backward ("B") of a micro-batch, in seconds."""

    rank: int
    kind: str
    micro_batch: int
    start: float
    end: float


def split_layers(n_layers: int, n_stages: int) -> list[range]:
    """Consecutive, balanced layer ranges, one per stage: ``split_layers(7, 2) == [range(0, 4), range(4, 7)]``."""
    if n_stages < 1:
        raise PipelineError(f"need at least 1 pipeline stage, not {n_stages}")
    if n_stages > n_layers:
        raise PipelineError(f"{n_stages} pipeline stages but only {n_layers} layers: every stage needs a layer")
    bounds = [round(i * n_layers / n_stages) for i in range(n_stages + 1)]
    return [range(a, b) for a, b in zip(bounds, bounds[1:])]


def stage_module(model: nn.Sequential, rank: int, world: int) -> nn.Sequential:
    """The layers of ``model`` that rank ``rank`` of ``world`` holds (keys keep their global names)."""
    r = split_layers(len(model), world)[rank]
    return model[r.start: r.stop]


def _send(t: torch.Tensor, dst: int, group=None) -> None:
    header = torch.tensor(list(t.shape) + [-1] * (8 - t.dim()), dtype=torch.int64, device=t.device)
    dist.send(header, dst, group=group)
    dist.send(t.contiguous(), dst, group=group)


def _recv(src: int, dtype: torch.dtype, group=None, device=None) -> torch.Tensor:
    shape = torch.empty(8, dtype=torch.int64, device=device)
    dist.recv(shape, src, group=group)
    t = torch.empty([int(s) for s in shape.tolist() if s >= 0], dtype=dtype, device=device)
    dist.recv(t, src, group=group)
    return t


def gpipe_step(stage: nn.Module, x: torch.Tensor | None, y: torch.Tensor | None,
               loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], micro_batches: int,
               clock_start: float | None = None, group=None, dtype: torch.dtype = torch.float32):
    """Forward and backward of one batch through the pipeline; gradients land in ``stage``'s params.

    Rank 0 needs ``x`` (the batch), the last rank ``y`` (targets); others pass None. Returns
    ``(loss, events)``: the batch loss on the last rank (None elsewhere) and this rank's work.
    ``micro_batches=1`` is the naive split.
    """
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    first, last = rank == 0, rank == world - 1
    device = next(stage.parameters()).device
    if micro_batches < 1:
        raise PipelineError(f"micro_batches must be >= 1, not {micro_batches}")
    if first and x.shape[0] % micro_batches:
        raise PipelineError(f"batch of {x.shape[0]} does not split into {micro_batches} equal micro-batches")
    xs = x.chunk(micro_batches) if first else [None] * micro_batches
    ys = y.chunk(micro_batches) if last else [None] * micro_batches
    t0 = time.perf_counter() if clock_start is None else clock_start
    events, inputs, outputs, total = [], [], [], 0.0
    for i in range(micro_batches):                               # all forwards ...
        inp = xs[i] if first else _recv(rank - 1, dtype, group, device).requires_grad_(True)
        start = time.perf_counter()
        out = stage(inp)
        if last:
            out = loss_fn(out, ys[i]) / micro_batches
            total += out.item()
        events.append(Event(rank, "F", i, start - t0, time.perf_counter() - t0))
        if not last:
            _send(out.detach(), rank + 1, group)
        inputs.append(inp)
        outputs.append(out)
    for i in range(micro_batches):                               # ... then all backwards
        grad = None if last else _recv(rank + 1, dtype, group, device)
        start = time.perf_counter()
        outputs[i].backward(grad)
        events.append(Event(rank, "B", i, start - t0, time.perf_counter() - t0))
        if not first:
            _send(inputs[i].grad, rank - 1, group)
        outputs[i] = inputs[i] = None                             # free the activations
    return (total if last else None), events


def bubble_fraction(events: list[Event], world: int) -> float:
    """Measured idle share: 1 - (busy time of all ranks) / (world x the span from first start to last end)."""
    span = max(e.end for e in events) - min(e.start for e in events)
    busy = sum(e.end - e.start for e in events)
    return 1.0 - busy / (world * span)


def replay(events: list[Event], world: int) -> list[Event]:
    """The same schedule with the measured compute times but free, instant communication.

    Each rank does its work in the recorded order; F of micro-batch i on stage s waits for F of
    i on stage s-1, B of i on stage s for B of i on stage s+1. What is left idle is the bubble
    of the schedule itself, without send/recv time and without the OS's scheduling noise.
    """
    per_rank = {r: sorted((e for e in events if e.rank == r), key=lambda e: e.start) for r in range(world)}
    done: dict[tuple[int, str, int], float] = {}
    out, pos, free_at = [], {r: 0 for r in range(world)}, {r: 0.0 for r in range(world)}
    while len(out) < len(events):
        progressed = False
        for r in range(world):
            while pos[r] < len(per_rank[r]):
                e = per_rank[r][pos[r]]
                dep = (r - 1, "F", e.micro_batch) if e.kind == "F" else (r + 1, "B", e.micro_batch)
                if 0 <= dep[0] < world and dep not in done:
                    break
                start = max(free_at[r], done.get(dep, 0.0))
                end = start + (e.end - e.start)
                done[(r, e.kind, e.micro_batch)] = free_at[r] = end
                out.append(Event(r, e.kind, e.micro_batch, start, end))
                pos[r] += 1
                progressed = True
        if not progressed:
            raise PipelineError("the recorded events do not form a pipeline schedule")
    return out


def bubble_formula(stages: int, micro_batches: int) -> float:
    """GPipe's bubble share ``(p-1)/(m+p-1)`` (equal stages, no communication time)."""
    return (stages - 1) / (micro_batches + stages - 1)


def main(argv=None) -> None:
    """torchrun entry point: train the toy MLP with GPipe and compare with one process."""
    import argparse

    from lmcourse.systems.launch import worker_setup
    from lmcourse.systems.workers_ch16_18 import pipeline_parity

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--micro-batches", type=int, default=4)
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args(argv)
    rank, world = worker_setup()
    out = pipeline_parity(rank, world, a.micro_batches, a.steps)
    diffs = [None] * world
    dist.all_gather_object(diffs, out["max_diff"])
    if rank == 0:
        print(f"GPipe on {world} stages, {a.micro_batches} micro-batches, {a.steps} steps: "
              f"max |param - one process| = {max(diffs):.2e}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
