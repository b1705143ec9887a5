"""How every benchmark times its work: the same clock, the same warm-up, the same alternation.

Taught in the Performance appendix ("How a benchmark measures").

* ``timed(fn, device)``: seconds of one call, with the GPU's queue drained before and after
  (CUDA kernels run asynchronously: without a synchronize the clock stops too early);
* ``alternated({"ours": f, "ref": g}, repeats)``: each side warmed up once, then the sides take
  turns (the order swaps each round, so neither always runs right after the other) and each
  side's median is kept: a burst of load on the machine hits both sides alike;
* ``best_time(fn, repeats)``: the fastest of several calls, and the last call's result, for
  work that is deterministic and whose noise only ever adds time.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch


def sync(device: torch.device | str | None = None) -> None:
    """Wait for the GPU's queued work (a no-op on the CPU, or when no GPU is present)."""
    if device is None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
    elif torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: torch.device | str | None = None) -> float:
    """Wall-clock seconds of one call of ``fn``."""
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def alternated(fns: Mapping[str, Callable[[], Any]], repeats: int, device: torch.device | str | None = None,
               warmup: int = 1) -> dict[str, float]:
    """Median seconds of each function, the functions taking turns ``repeats`` times each.

    Round ``i`` runs the functions in their given order when ``i`` is even and in reverse when it
    is odd. Each function is first called ``warmup`` times, untimed (caches, allocator, lazy init).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, not {repeats}")
    names = list(fns)
    assert names, "nothing to time"
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(repeats):
        for name in (names if i % 2 == 0 else names[::-1]):
            times[name].append(timed(fns[name], device))
    return {name: statistics.median(v) for name, v in times.items()}


def best_time(fn: Callable[[], Any], repeats: int = 3, device: torch.device | str | None = None,
              warmup: int = 0) -> tuple[float, Any]:
    """(fastest seconds of ``repeats`` calls, the result of the last call), after ``warmup`` untimed calls."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, not {repeats}")
    for _ in range(warmup):
        fn()
    best, out = float("inf"), None
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        out = fn()
        sync(device)
        best = min(best, time.perf_counter() - t)
    return best, out
