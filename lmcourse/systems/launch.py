"""Start N worker processes from a notebook or a script, the way ``torchrun`` would.

Taught in chapter 14 (Collective communication).

    results = launch(worker_fn, world_size=4, args=(...))

Each worker runs ``worker_fn(rank, world_size, *args)`` in its own process, after
``torch.distributed.init_process_group`` (gloo on CPU, NCCL when every worker has a
GPU), and its return value comes back in ``results[rank]``. A worker that raises ends
the whole group: the others are stopped and the error, with the worker's rank and
traceback, reaches the caller within seconds. A group that hangs past ``timeout`` is
stopped too. Workers keep quiet (no warnings on stderr), so a notebook's stored
outputs do not depend on them.

Under ``torchrun`` the same worker functions run through ``worker_setup``, which reads
RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT from the environment.
"""
from __future__ import annotations

import os
import socket
import time
import traceback
import warnings
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lmcourse.errors import LMCourseError


class LaunchError(LMCourseError, RuntimeError):
    """A worker failed, or the group did not finish in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _quiet() -> None:
    warnings.simplefilter("ignore")
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")


def worker_setup(backend: str | None = None, timeout: float = 60.0) -> tuple[int, int]:
    """Join the process group described by the environment (torchrun's variables); return (rank, world)."""
    _quiet()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() and torch.cuda.device_count() >= world else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=timedelta(seconds=timeout))
    return rank, world


def _entry(rank: int, world: int, port: int, backend: str, threads: int, timeout: float,
           fn: Callable, args: tuple, results) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(threads)
    worker_setup(backend, timeout)
    try:
        out = fn(rank, world, *args)
        results.put((rank, "ok", out))
    except BaseException as e:  # noqa: BLE001 - reported to the caller with the rank
        results.put((rank, "error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))
        raise SystemExit(1) from None
    finally:
        try:
            dist.destroy_process_group()  # no barrier first: a failed peer would hang it
        except Exception:  # noqa: BLE001
            pass


def launch(fn: Callable[..., Any], world_size: int, args: tuple = (), *, backend: str = "gloo",
           threads: int = 1, timeout: float = 120.0) -> list[Any]:
    """Run ``fn(rank, world_size, *args)`` on ``world_size`` processes; return the results by rank."""
    if not isinstance(world_size, int) or world_size < 1:
        raise LaunchError(f"world_size must be a whole number >= 1, not {world_size!r}")
    if getattr(fn, "__module__", "__main__") in ("__main__", "__mp_main__") or "<locals>" in fn.__qualname__:
        raise LaunchError(f"{fn.__qualname__} is defined in a notebook or a function: spawned workers can only "
                          f"run functions that live in a module (put it in lmcourse.systems)")
    if backend == "nccl" and torch.cuda.device_count() < world_size:
        raise LaunchError(f"nccl needs one GPU per worker: {world_size} workers, {torch.cuda.device_count()} GPUs")
    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    port = free_port()
    procs = [ctx.Process(target=_entry, args=(r, world_size, port, backend, threads, timeout, fn, args, results),
                         daemon=True) for r in range(world_size)]
    for p in procs:
        p.start()
    out: dict[int, Any] = {}
    deadline = time.monotonic() + timeout
    error = None
    try:
        while len(out) < world_size and error is None:
            while not results.empty():
                rank, status, value = results.get()
                if status == "ok":
                    out[rank] = value
                elif error is None:  # the first failure is the cause; its peers then fail on closed connections
                    error = f"worker {rank} of {world_size} failed: {value}"
            if error is None and len(out) < world_size:
                dead = [i for i, p in enumerate(procs) if p.exitcode not in (None, 0) and i not in out]
                if dead and results.empty():
                    time.sleep(0.2)  # its report may still be in flight
                    if results.empty():
                        error = f"worker {dead[0]} of {world_size} died (exit code {procs[dead[0]].exitcode})"
                elif time.monotonic() > deadline:
                    error = f"the {world_size} workers did not finish within {timeout:g} s"
                else:
                    time.sleep(0.02)
    finally:
        if error is not None:
            for p in procs:
                if p.is_alive():
                    p.terminate()
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()
    if error is not None:
        raise LaunchError(error)
    return [out[r] for r in range(world_size)]
