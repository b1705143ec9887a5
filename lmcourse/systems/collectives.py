"""Collective communication from point-to-point messages: ring all-reduce, reduce-scatter, all-gather.

Taught in chapter 14 (Collective communication).

The ``W`` workers stand in a ring; worker ``r`` only ever sends to ``r + 1`` and receives
from ``r - 1`` (mod ``W``). The tensor is cut into ``W`` chunks (the last ones may be
shorter, or empty, when the length does not divide by ``W``).

* **reduce-scatter**, ``W - 1`` steps: at each step every worker passes one chunk on and
  adds the chunk it receives into its own copy. After the last step worker ``r`` holds
  the full sum of chunk ``r``.
* **all-gather**, ``W - 1`` steps: every worker passes on the chunk it completed last,
  and overwrites its copy with the one it receives. After the last step everyone holds
  every chunk.
* **all-reduce** = reduce-scatter, then all-gather: ``2 (W - 1)`` steps, each moving
  ``n / W`` elements per worker, so each worker sends ``2 (W - 1) n / W`` elements,
  nearly ``2 n`` however many workers there are.

All functions run inside an initialised ``torch.distributed`` group (start them with
``lmcourse.systems.launch`` or under ``torchrun``) and give the same result as
``dist.all_reduce`` / ``dist.reduce_scatter`` / ``dist.all_gather`` with ``op=SUM``.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import Tensor

from lmcourse.errors import LMCourseError


class CollectiveError(LMCourseError, ValueError):
    """Inputs of a collective that do not fit together (wrong count, size or dtype)."""


def _ring(group) -> tuple[int, int, int, int]:
    """(my rank in the group, group size, global rank of the next worker, of the previous one)."""
    world = dist.get_world_size(group)
    rank = dist.get_rank(group)

    def glob(r: int) -> int:
        return r if group is None else dist.get_global_rank(group, r)
    return rank, world, glob((rank + 1) % world), glob((rank - 1) % world)


def _exchange(send: Tensor, recv: Tensor, nxt: int, prv: int, group) -> None:
    """Send ``send`` to the next worker while receiving ``recv`` from the previous one."""
    ops = []
    if send.numel():  # both neighbours know the chunk sizes, so an empty chunk is skipped on both sides
        ops.append(dist.P2POp(dist.isend, send.contiguous(), nxt, group))
    if recv.numel():
        ops.append(dist.P2POp(dist.irecv, recv, prv, group))
    if ops:
        for req in dist.batch_isend_irecv(ops):
            req.wait()


def _reduce_scatter_steps(chunks: list[Tensor], rank: int, world: int, nxt: int, prv: int, group,
                          last: int, trace: Callable | None = None) -> None:
    """W - 1 steps after which ``chunks[last]`` holds the sum over all workers (in place)."""
    for s in range(world - 1):
        send_i = (last - 1 - s) % world          # the chunk I finished adding into last step
        recv_i = (last - 2 - s) % world          # the chunk my left neighbour just finished
        buf = torch.empty_like(chunks[recv_i])
        _exchange(chunks[send_i], buf, nxt, prv, group)
        chunks[recv_i] += buf
        if trace is not None:
            trace("reduce-scatter", s, send_i, recv_i)


def _all_gather_steps(chunks: list[Tensor], rank: int, world: int, nxt: int, prv: int, group,
                      have: int, trace: Callable | None = None) -> None:
    """W - 1 steps that pass each complete chunk around the ring; I start with ``chunks[have]``."""
    for s in range(world - 1):
        send_i = (have - s) % world
        recv_i = (have - s - 1) % world
        _exchange(chunks[send_i], chunks[recv_i], nxt, prv, group)
        if trace is not None:
            trace("all-gather", s, send_i, recv_i)


def ring_all_reduce(tensor: Tensor, group=None, trace: Callable | None = None) -> Tensor:
    """Sum ``tensor`` over all workers, in place, with a ring of send/recv; returns ``tensor``.

    Any world size and any length (also not divisible by the world size). ``trace``, if
    given, is called as ``trace(phase, step, sent_chunk, received_chunk)`` after each step.
    Taught in chapter 14 (Collective communication).
    """
    if not isinstance(tensor, Tensor):
        raise CollectiveError(f"ring_all_reduce needs a tensor, not {type(tensor).__name__}")
    rank, world, nxt, prv = _ring(group)
    if world == 1 or tensor.numel() == 0:
        return tensor
    flat = tensor.view(-1) if tensor.is_contiguous() else tensor.reshape(-1).clone()
    chunks = list(torch.tensor_split(flat, world))  # views into flat: W chunks, sizes differ by at most 1
    _reduce_scatter_steps(chunks, rank, world, nxt, prv, group, last=rank, trace=trace)
    _all_gather_steps(chunks, rank, world, nxt, prv, group, have=rank, trace=trace)
    if flat.data_ptr() != tensor.data_ptr() or not tensor.is_contiguous():
        tensor.copy_(flat.view_as(tensor))
    return tensor


def ring_reduce_scatter(output: Tensor, input_list: list[Tensor], group=None) -> Tensor:
    """``output = sum over workers of input_list[my rank]``, like ``dist.reduce_scatter``; returns ``output``.

    Taught in chapter 14 (Collective communication).
    """
    rank, world, nxt, prv = _ring(group)
    if len(input_list) != world:
        raise CollectiveError(f"reduce-scatter needs one input per worker: got {len(input_list)} for {world} workers")
    if input_list[rank].shape != output.shape:
        raise CollectiveError(f"input_list[{rank}] has shape {tuple(input_list[rank].shape)}, "
                              f"output has {tuple(output.shape)}")
    chunks = [t.detach().clone() for t in input_list]  # my inputs are not changed
    _reduce_scatter_steps(chunks, rank, world, nxt, prv, group, last=rank)
    output.copy_(chunks[rank])
    return output


def ring_all_gather(output_list: list[Tensor], tensor: Tensor, group=None) -> list[Tensor]:
    """``output_list[r] = tensor of worker r`` on every worker, like ``dist.all_gather``; returns the list.

    Taught in chapter 14 (Collective communication).
    """
    rank, world, nxt, prv = _ring(group)
    if len(output_list) != world:
        raise CollectiveError(f"all-gather needs one output per worker: got {len(output_list)} for {world} workers")
    output_list[rank].copy_(tensor)
    _all_gather_steps(output_list, rank, world, nxt, prv, group, have=rank)
    return output_list


# ---------------------------------------------------------------- cost model

def ring_all_reduce_cost(n_bytes: float, world: int, latency_s: float, bandwidth_bytes_s: float) -> float:
    """Seconds for a ring all-reduce of ``n_bytes``: ``2 (W-1) alpha + 2 (W-1)/W * n / B``.

    Taught in chapter 14 (Collective communication).
    """
    if world < 1:
        raise CollectiveError(f"world must be >= 1, not {world}")
    steps = 2 * (world - 1)
    return steps * latency_s + steps / world * n_bytes / bandwidth_bytes_s


# ---------------------------------------------------------------- chapter workers (run with launch)

def primitives_demo(rank: int, world: int) -> dict:
    """Each worker starts with a small tensor that shows its rank; every primitive's before/after.

    Worker ``r`` starts with ``[10 r + 1, 10 r + 2, ..., 10 r + W]``. Returns
    ``{primitive: (before, after)}`` as lists. Taught in chapter 14.
    """
    def mine() -> Tensor:
        return torch.arange(1, world + 1, dtype=torch.float32) + 10 * rank

    out = {}
    t = mine() if rank == 0 else torch.zeros(world)
    before = t.tolist()
    dist.broadcast(t, src=0)
    out["broadcast"] = (before, t.tolist())
    t = mine()
    before = t.tolist()
    dist.reduce(t, dst=0, op=dist.ReduceOp.SUM)
    out["reduce"] = (before, t.tolist() if rank == 0 else [float("nan")] * world)  # only dst's result is defined
    t = mine()
    before = t.tolist()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    out["all-reduce"] = (before, t.tolist())
    t = mine()
    part = torch.zeros(1)
    before = t.tolist()
    ring_reduce_scatter(part, list(t.split(1)))  # gloo's own reduce_scatter is checked below
    out["reduce-scatter"] = (before, part.tolist())
    t = torch.tensor([10.0 * rank + rank + 1])  # my one element of the sum
    parts = [torch.zeros(1) for _ in range(world)]
    dist.all_gather(parts, t)
    out["all-gather"] = (t.tolist(), torch.cat(parts).tolist())
    return out


def gloo_reduce_scatter_supported(rank: int, world: int) -> str:
    """Try ``dist.reduce_scatter`` on this backend; return "yes" or the error's first line. Taught in chapter 14."""
    try:
        out = torch.zeros(1)
        dist.reduce_scatter(out, [torch.ones(1) for _ in range(world)])
        return "yes" if out.item() == world else f"wrong result {out.item()}"
    except Exception as e:  # noqa: BLE001 - the message is the answer
        return f"{type(e).__name__}: {str(e).splitlines()[0]}"


def ring_trace_demo(rank: int, world: int) -> list[list[float]]:
    """Ring all-reduce of ``[2**rank] * W``, recording my tensor after every step. Taught in chapter 14.

    Worker ``r`` contributes ``2**r`` to every chunk, so a chunk's value is the bit mask of the
    workers whose contributions it already holds (``2**W - 1`` when complete).
    """
    t = torch.full((world,), float(2 ** rank))
    states = [t.tolist()]
    ring_all_reduce(t, trace=lambda *a: states.append(t.tolist()))
    return states


def time_all_reduce(rank: int, world: int, sizes: list[int], repeats: int = 5) -> dict:
    """Median seconds of ``dist.all_reduce`` and ``ring_all_reduce`` on float32 tensors of each size.

    Rank 0's timings are returned (every rank times the same collective). Taught in chapter 14.
    """
    res = {"size": list(sizes), "gloo": [], "ring": []}
    for n in sizes:
        for name, fn in (("gloo", dist.all_reduce), ("ring", ring_all_reduce)):
            t = torch.ones(n)
            fn(t)  # warm up the connections
            times = []
            for _ in range(repeats):
                dist.barrier()
                start = time.perf_counter()
                fn(t)
                times.append(time.perf_counter() - start)
            res[name].append(sorted(times)[len(times) // 2])
    return res
