"""Worker functions the chapters 13-15 start with ``launch`` (a notebook's own functions cannot be spawned).

Taught in chapters 14 (Collective communication) and 15 (Data parallelism).
"""
from __future__ import annotations

import torch.distributed as dist

from lmcourse.systems.collectives import (gloo_reduce_scatter_supported, primitives_demo, ring_trace_demo,
                                          time_all_reduce)
from lmcourse.systems.data_parallel import train_worker


def chapter14_demo(rank: int, world: int, sizes: list[int], repeats: int = 5) -> dict:
    """Everything chapter 14 runs on its workers, in one group: primitives, the ring step by step, timings."""
    out = {"primitives": primitives_demo(rank, world),
           "gloo_reduce_scatter": gloo_reduce_scatter_supported(rank, world),
           "ring_states": ring_trace_demo(rank, world),
           "backend": dist.get_backend()}
    out["timings"] = time_all_reduce(rank, world, sizes, repeats)
    return out


def chapter15_demo(rank: int, world: int, steps: int, batch_size: int, optimizer: str = "sgd",
                   bucket_mb: float = 0.0005) -> dict:
    """Train the same MLP with a parameter server, lmcourse's DDP and torch's DDP, one after the other."""
    return {m: train_worker(rank, world, m, steps, batch_size, 0, optimizer, bucket_mb)
            for m in ("ps", "ddp", "torch_ddp")}
