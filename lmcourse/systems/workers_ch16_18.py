"""Worker functions for chapters 16-18 (tensor, ZeRO and pipeline parallelism), their tests and benchmark.

Taught in chapters 16 (Model parallelism), 17 (ZeRO) and 18 (Pipeline parallelism).

Each worker is ``fn(rank, world, ...)`` run by ``lmcourse.systems.launch`` (or by a
torchrun entry point after ``worker_setup``); the process group already exists. Every
parity worker trains the same toy model on the same data as one process would, and
returns numbers (max differences, bytes, timelines) that the caller checks.
"""
from __future__ import annotations

import time

import torch
import torch.distributed as dist
from torch import nn

from lmcourse.systems.zero import ZeroAdam, zero_memory_formula

LR = 1e-2


def toy_mlp(width: int = 10, hidden: int = 33, depth: int = 3, seed: int = 0) -> nn.Sequential:
    """Linear-Tanh-...-Linear, with awkward sizes (33 hidden: shards need padding)."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(width, hidden), nn.Tanh()]
    for _ in range(depth - 2):
        layers += [nn.Linear(hidden, hidden), nn.Tanh()]
    layers.append(nn.Linear(hidden, width))
    return nn.Sequential(*layers)


def toy_batches(steps: int, batch: int = 16, width: int = 10, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The same regression batches on every rank: y = sin(x @ A)."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(width, width, generator=g)
    out = []
    for _ in range(steps):
        x = torch.randn(batch, width, generator=g)
        out.append((x, torch.sin(x @ A)))
    return out


def my_slice(t: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """Rank ``rank``'s equal share of a batch (data parallelism)."""
    n = t.shape[0] // world
    return t[rank * n: (rank + 1) * n]


def one_process(steps: int, optimizer: str = "adam", **model_kw) -> dict[str, torch.Tensor]:
    """The reference: one process, the whole batch, torch.optim."""
    model = toy_mlp(**model_kw)
    opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)(model.parameters(), lr=LR)
    for x, y in toy_batches(steps, width=model_kw.get("width", 10)):
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys(), (sorted(a), sorted(b))
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


# ---- chapter 17: ZeRO ------------------------------------------------------------------
def zero_parity(rank: int, world: int, stage: int, steps: int = 5, dtype: torch.dtype = torch.float32) -> dict:
    """Train with lmcourse ZeRO-``stage``; return the max difference from one process, bytes and traffic."""
    model = toy_mlp().to(dtype)
    opt = ZeroAdam(model, stage=stage, lr=LR)
    memory = None
    for x, y in toy_batches(steps):
        x, y = my_slice(x, rank, world).to(dtype), my_slice(y, rank, world).to(dtype)
        before = opt.comm.total()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        comm = opt.comm.total() - before
        memory = opt.memory()                       # what the rank holds between backward and zero_grad
        opt.zero_grad()
    params = opt.full_parameters()
    ref = one_process(steps)
    size = torch.finfo(dtype).bits // 8
    return {"max_diff": max_diff(params, ref) if dtype == torch.float32 else float("nan"),
            "memory": memory, "psi": opt.numel, "padded": opt.padded_numel(),
            "formula": zero_memory_formula(stage, opt.numel, world, param_bytes=size),
            "formula_padded": _padded_formula(opt, stage, world, size),
            "comm_per_step": comm, "comm_kinds": dict(opt.comm.elements)}


def _padded_formula(opt: ZeroAdam, stage: int, world: int, size: int) -> dict[str, float]:
    """The formula with Psi counted as stored: padded buffers and slices; stage 1's autograd grads unpadded."""
    full, padded = opt.numel, opt.padded_numel()
    K = 8 if size == 4 else 12
    params = size * (padded / world if stage == 3 else padded)  # stages 1, 2: the full buffer, padded
    grads = size * (padded / world if stage >= 2 else full)
    return {"params": params, "grads": grads, "optimizer": K * padded / world,
            "total": params + grads + K * padded / world}


def zero_redundancy_reference(rank: int, world: int, steps: int = 5) -> float:
    """torch's ZeroRedundancyOptimizer (+ DDP); max difference from one process."""
    from torch.distributed.optim import ZeroRedundancyOptimizer
    from torch.nn.parallel import DistributedDataParallel as DDP

    model = DDP(toy_mlp())
    opt = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=torch.optim.Adam, lr=LR)
    for x, y in toy_batches(steps):
        loss = nn.functional.mse_loss(model(my_slice(x, rank, world)), my_slice(y, rank, world))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return max_diff({k: v.detach() for k, v in model.module.state_dict().items()}, one_process(steps))


def fsdp2_reference(rank: int, world: int, steps: int = 5) -> float:
    """FSDP2 ``fully_shard`` (ZeRO-3 in torch); max difference from one process."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh("cpu", (world,))
    model = toy_mlp()
    for m in model:
        if isinstance(m, nn.Linear):
            fully_shard(m, mesh=mesh)
    fully_shard(model, mesh=mesh)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    for x, y in toy_batches(steps):
        loss = nn.functional.mse_loss(model(my_slice(x, rank, world)), my_slice(y, rank, world))
        opt.zero_grad()
        loss.backward()
        opt.step()
    params = {k: v.full_tensor().detach() for k, v in model.state_dict().items()}
    return max_diff(params, one_process(steps))


def zero_step_times(rank: int, world: int, which: str, steps: int, width: int, hidden: int, depth: int) -> float:
    """Median step time (s) of one trainer on a wider MLP: lmcourse ZeRO-1/3 or torch's counterpart."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.optim import ZeroRedundancyOptimizer
    from torch.nn.parallel import DistributedDataParallel as DDP

    model = toy_mlp(width, hidden, depth)
    if which in ("zero1", "zero3"):
        opt = ZeroAdam(model, stage=int(which[-1]), lr=LR)
    elif which == "zero_redundancy":
        model = DDP(model)
        opt = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=torch.optim.Adam, lr=LR)
    elif which == "fully_shard":
        mesh = init_device_mesh("cpu", (world,))
        for m in model:
            if isinstance(m, nn.Linear):
                fully_shard(m, mesh=mesh)
        fully_shard(model, mesh=mesh)
        opt = torch.optim.Adam(model.parameters(), lr=LR)
    else:
        raise ValueError(which)
    times = []
    for x, y in toy_batches(steps, batch=64, width=width):
        dist.barrier()
        t = time.perf_counter()
        loss = nn.functional.mse_loss(model(my_slice(x, rank, world)), my_slice(y, rank, world))
        loss.backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t)
    t = torch.tensor(sorted(times[1:])[len(times[1:]) // 2])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.item()


def zero_all(rank: int, world: int, steps: int = 5) -> dict:
    """Stages 1-3 of lmcourse ZeRO, ZeroRedundancyOptimizer and FSDP2 in one group (one launch)."""
    out = {f"zero{s}": zero_parity(rank, world, s, steps) for s in (1, 2, 3)}
    out["zero_redundancy"] = zero_redundancy_reference(rank, world, steps)
    out["fully_shard"] = fsdp2_reference(rank, world, steps)
    out["zero3_bf16"] = zero_parity(rank, world, 3, steps, torch.bfloat16)
    return out


# ---- chapter 16: tensor parallelism ----------------------------------------------------
def _gather_last(t: torch.Tensor, world: int, dim: int) -> torch.Tensor:
    parts = [torch.empty_like(t) for _ in range(world)]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts, dim=dim)


def tp_parity(rank: int, world: int, steps: int = 5, hidden: int = 32) -> dict:
    """Megatron MLP (Linear-Tanh-Linear), tensor parallel, Adam; vs one process (same full batch)."""
    from lmcourse.systems.tensor_parallel import ParallelMLP

    dense = toy_mlp(hidden=hidden, depth=2)
    mlp = ParallelMLP.from_dense(dense[0], dense[1], dense[2])
    opt = torch.optim.Adam(mlp.parameters(), lr=LR)
    for x, y in toy_batches(steps):
        loss = nn.functional.mse_loss(mlp(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    params = {"0.weight": _gather_last(mlp.fc1.weight, world, 0), "0.bias": _gather_last(mlp.fc1.bias, world, 0),
              "2.weight": _gather_last(mlp.fc2.weight, world, 1), "2.bias": mlp.fc2.bias.detach()}
    ref = one_process(steps, hidden=hidden, depth=2)
    return {"max_diff": max_diff({k: v.detach() for k, v in params.items()}, ref),
            "shard_shapes": [tuple(mlp.fc1.weight.shape), tuple(mlp.fc2.weight.shape)]}


def tp_torch_reference(rank: int, world: int, steps: int = 5, hidden: int = 32) -> float:
    """``torch.distributed.tensor.parallel`` (ColwiseParallel + RowwiseParallel); vs one process."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    mesh = init_device_mesh("cpu", (world,))
    model = parallelize_module(toy_mlp(hidden=hidden, depth=2), mesh, {"0": ColwiseParallel(), "2": RowwiseParallel()})
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    for x, y in toy_batches(steps):
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    params = {k: v.full_tensor().detach() for k, v in model.state_dict().items()}
    return max_diff(params, one_process(steps, hidden=hidden, depth=2))


def tp_attention_parity(rank: int, world: int, d_model: int = 16, n_heads: int = 4) -> dict:
    """Head-split attention vs ``torch.nn.MultiheadAttention``: output, input grad, weight grads."""
    from lmcourse.systems.tensor_parallel import ParallelSelfAttention

    torch.manual_seed(0)
    mha = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
    ours = ParallelSelfAttention.from_torch(mha)
    x = torch.randn(3, 5, d_model, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    ref, _ = mha(x, x, x, need_weights=False)
    out = ours(x2)
    (ref ** 2).sum().backward()
    (out ** 2).sum().backward()
    g_in = torch.cat([_gather_last(p.weight.grad, world, 0) for p in (ours.q, ours.k, ours.v)], dim=0)
    g_out = _gather_last(ours.out.weight.grad, world, 1)
    return {"out": (out - ref).abs().max().item(), "grad_x": (x2.grad - x.grad).abs().max().item(),
            "grad_in_proj": (g_in - mha.in_proj_weight.grad).abs().max().item(),
            "grad_out_proj": (g_out - mha.out_proj.weight.grad).abs().max().item()}


def tp_bad_world(rank: int, world: int) -> str:
    """The error a 33-wide layer gives on ``world`` ranks."""
    from lmcourse.systems.tensor_parallel import ColumnParallelLinear, TensorParallelError

    try:
        ColumnParallelLinear(10, 33)
    except TensorParallelError as e:
        return str(e)
    return "no error"


def tp_all(rank: int, world: int, steps: int = 5) -> dict:
    """All tensor-parallel checks in one group (one launch)."""
    return {"mlp": tp_parity(rank, world, steps), "torch_tp": tp_torch_reference(rank, world, steps),
            "attention": tp_attention_parity(rank, world), "bad_world": tp_bad_world(rank, world)}


# ---- chapter 18: pipeline parallelism --------------------------------------------------
def pipeline_parity(rank: int, world: int, micro_batches: int = 4, steps: int = 5, depth: int = 4) -> dict:
    """lmcourse GPipe (Adam) on the toy MLP; this rank's layers vs one process's."""
    from lmcourse.systems.pipeline import gpipe_step, stage_module

    model = toy_mlp(depth=depth)
    stage = stage_module(model, rank, world)
    opt = torch.optim.Adam(stage.parameters(), lr=LR)
    losses = []
    for x, y in toy_batches(steps):
        loss, _ = gpipe_step(stage, x if rank == 0 else None, y, nn.functional.mse_loss, micro_batches)
        opt.step()
        opt.zero_grad()
        losses.append(loss)
    ref = one_process(steps, depth=depth)
    mine = {k: v.detach() for k, v in stage.state_dict().items()}
    return {"max_diff": max_diff(mine, {k: ref[k] for k in mine}), "layers": list(mine), "losses": losses}


def pipeline_torch_reference(rank: int, world: int, micro_batches: int = 4, steps: int = 5, depth: int = 4) -> float:
    """``torch.distributed.pipelining`` ``ScheduleGPipe`` on the same split; this rank's layers vs one process."""
    from torch.distributed.pipelining import PipelineStage, ScheduleGPipe

    from lmcourse.systems.pipeline import stage_module

    model = toy_mlp(depth=depth)
    stage_mod = stage_module(model, rank, world)
    stage = PipelineStage(stage_mod, rank, world, torch.device("cpu"))
    schedule = ScheduleGPipe(stage, n_microbatches=micro_batches, loss_fn=nn.functional.mse_loss)
    opt = torch.optim.Adam(stage_mod.parameters(), lr=LR)
    for x, y in toy_batches(steps):
        if rank == 0:
            schedule.step(x)
        elif rank == world - 1:
            schedule.step(target=y, losses=[])
        else:
            schedule.step()
        opt.step()
        opt.zero_grad()
    ref = one_process(steps, depth=depth)
    mine = {k: v.detach() for k, v in stage_mod.state_dict().items()}
    return max_diff(mine, {k: ref[k] for k in mine})


def pipeline_timeline(rank: int, world: int, micro_batches: int, width: int = 512, layers_per_stage: int = 8,
                      micro_batch_size: int = 64, repeats: int = 3) -> list:
    """Events of the best (shortest) of ``repeats`` GPipe steps on a wide MLP, all ranks' events on every rank.

    Each micro-batch has ``micro_batch_size`` rows (the batch grows with m), so a stage's work
    per micro-batch stays the same, as GPipe's bubble formula assumes.
    """
    batch = micro_batches * micro_batch_size
    from lmcourse.systems.pipeline import gpipe_step

    torch.manual_seed(0)
    stage = nn.Sequential(*[nn.Sequential(nn.Linear(width, width), nn.Tanh()) for _ in range(layers_per_stage)])
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(batch, width, generator=g), torch.randn(batch, width, generator=g)
    best = None
    for _ in range(repeats + 1):                                   # the first is a warm-up
        dist.barrier()
        start = time.perf_counter()
        _, events = gpipe_step(stage, x, y, nn.functional.mse_loss, micro_batches, clock_start=start)
        stage.zero_grad()
        span = torch.tensor(max(e.end for e in events))
        dist.all_reduce(span, op=dist.ReduceOp.MAX)
        if best is None or span.item() < best[0]:
            best = (span.item(), events)
    everything = [None] * world
    dist.all_gather_object(everything, best[1])
    return [e for evs in everything for e in evs]


def pipeline_bad_stages(rank: int, world: int) -> str:
    from lmcourse.systems.pipeline import PipelineError, stage_module

    try:
        stage_module(nn.Sequential(nn.Linear(2, 2)), rank, world)
    except PipelineError as e:
        return str(e)
    return "no error"


def pipeline_all(rank: int, world: int, steps: int = 3) -> dict:
    """All pipeline checks in one group (one launch)."""
    return {"naive": pipeline_parity(rank, world, 1, steps), "gpipe": pipeline_parity(rank, world, 4, steps),
            "torch_gpipe": pipeline_torch_reference(rank, world, 4, steps), "bad": pipeline_bad_stages(rank, world)}


# ---- lmcourse bench systems ------------------------------------------------------------
def _time_all_reduce(fn, numel: int, repeats: int) -> float:
    t = torch.ones(numel)
    fn(t.clone())
    times = []
    for _ in range(repeats):
        x = t.clone()
        dist.barrier()
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    best = torch.tensor(sorted(times)[len(times) // 2])
    dist.all_reduce(best, op=dist.ReduceOp.MAX)
    return best.item()


def systems_bench(rank: int, world: int, sizes: dict) -> dict:
    """Everything ``lmcourse bench systems`` measures, in one process group."""
    from lmcourse.systems.pipeline import bubble_fraction, replay

    out: dict = {"memory": {s: zero_parity(rank, world, s, 2) for s in (1, 2, 3)}}
    w, h, d, steps = sizes["width"], sizes["hidden"], sizes["depth"], sizes["steps"]
    for which in ("zero1", "zero_redundancy", "zero3", "fully_shard"):
        out[which] = zero_step_times(rank, world, which, steps, w, h, d)
    try:
        from lmcourse.systems.collectives import ring_all_reduce
    except ImportError:                                         # chapter 14's module not there yet
        ring_all_reduce = None
    if ring_all_reduce is not None:
        out["ring"] = _time_all_reduce(ring_all_reduce, sizes["all_reduce_numel"], sizes["repeats"])
        out["gloo"] = _time_all_reduce(dist.all_reduce, sizes["all_reduce_numel"], sizes["repeats"])
    out["bubble"] = {}
    for m in sizes["micro_batches"]:
        events = pipeline_timeline(rank, world, m)
        out["bubble"][m] = (bubble_fraction(events, world), bubble_fraction(replay(events, world), world))
    return out


# ---- chapter demos: one launch per chapter -------------------------------------------
def ch16_demo(rank: int, world: int, steps: int = 5) -> dict:
    """Chapter 16: the notes' column split + all-gather, the Megatron MLP and attention, and the bad-input error."""
    from lmcourse.systems.tensor_parallel import ColumnParallelLinear

    torch.manual_seed(0)
    dense = nn.Linear(6, 8)
    x = torch.randn(4, 6)
    layer = ColumnParallelLinear.from_dense(dense, gather_output=True)
    local = ColumnParallelLinear.from_dense(dense)(x)
    out = tp_all(rank, world, steps)
    out["gather"] = {"local_shape": tuple(local.shape), "full_shape": tuple(layer(x).shape),
                     "max_diff": (layer(x) - dense(x)).abs().max().item()}
    return out


def ch17_memory(rank: int, world: int) -> dict:
    """Chapter 17: bytes per rank for stages 1-3 after one step (fp32), at this world size."""
    return {s: zero_parity(rank, world, s, 1)["memory"] for s in (1, 2, 3)}


def ch18_demo(rank: int, world: int, micro_batches: tuple = (1, 4), steps: int = 3) -> dict:
    """Chapter 18: parity of naive/GPipe/torch's ScheduleGPipe, and the recorded timelines."""
    out = pipeline_all(rank, world, steps)
    out["timelines"] = {m: pipeline_timeline(rank, world, m) for m in micro_batches}
    return out
