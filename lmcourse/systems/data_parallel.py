"""Data parallelism: a parameter server, and DDP (bucketed gradient all-reduce overlapped with backward).

Taught in chapter 15 (Data parallelism).

Both split each batch into ``W`` equal shards, one per worker, and give the same
parameters as one process training on the whole batch (the loss is a mean, so the mean
of the shards' gradients is the whole batch's gradient).

* ``parameter_server_step``: rank 0 is the parameter server. It holds the parameters
  and the only optimizer; it broadcasts the parameters, every worker computes the
  gradient of its shard, the gradients are *reduced* to rank 0, which steps.
* ``DDP``: no server. Every worker holds the parameters and an optimizer; the gradients
  are *all-reduced* (averaged on every worker) so that every worker takes the same
  step. Gradients are packed into buckets of about ``bucket_mb`` MB, in the order
  backward produces them (last layer first), and each bucket's all-reduce starts as
  soon as its last gradient is ready, while backward goes on with the earlier layers.

Under ``torchrun`` (one or many nodes)::

    python -m torch.distributed.run --nproc-per-node 2 -m lmcourse.systems.data_parallel --steps 5
"""
from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable

import torch
import torch.distributed as dist
from torch import Tensor, nn

from lmcourse.errors import LMCourseError


class UnusedParameterError(LMCourseError, RuntimeError):
    """A parameter got no gradient in backward, so DDP's all-reduce for it would never start."""


# ---------------------------------------------------------------- sharding

def shard(batch: Tensor, rank: int, world: int) -> Tensor:
    """This worker's equal slice of ``batch`` along dim 0 (the batch must divide by ``world``)."""
    if batch.shape[0] % world:
        raise ValueError(f"a batch of {batch.shape[0]} does not split into {world} equal shards; "
                         f"equal shards are what make the mean of the shards' gradients the batch's gradient")
    n = batch.shape[0] // world
    return batch[rank * n:(rank + 1) * n]


# ---------------------------------------------------------------- parameter server

def parameter_server_step(model: nn.Module, optimizer: torch.optim.Optimizer | None,
                          loss_fn: Callable[[nn.Module, tuple], Tensor], batch: tuple) -> float:
    """One step of parameter-server data parallelism; ``batch`` is this worker's shard.

    ``optimizer`` exists on rank 0 only (``None`` elsewhere). Returns the mean loss over
    workers (on every worker). Taught in chapter 15 (Data parallelism).
    """
    rank, world = dist.get_rank(), dist.get_world_size()
    if (optimizer is None) != (rank != 0):
        raise ValueError("the parameter server (rank 0) and only it must hold an optimizer")
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:  # 1. the server sends the current parameters to every worker
        dist.broadcast(p.data, src=0)
    model.zero_grad(set_to_none=False)
    loss = loss_fn(model, batch)  # 2. forward and backward on my shard
    loss.backward()
    for p in params:  # 3. gradients go to the server, summed
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.reduce(p.grad, dst=0, op=dist.ReduceOp.SUM)
    if rank == 0:  # 4. the server averages and steps
        for p in params:
            p.grad /= world
        optimizer.step()
    total = loss.detach().clone()
    dist.all_reduce(total)
    return total.item() / world


def parameter_server_sync(model: nn.Module) -> None:
    """Send the server's parameters to every worker (after the last step)."""
    for p in model.parameters():
        dist.broadcast(p.data, src=0)


# ---------------------------------------------------------------- DDP

class DDP(nn.Module):
    """Distributed data parallel: gradients averaged over workers with bucketed all-reduce during backward.

    ``DDP(model, bucket_mb=25)`` broadcasts rank 0's parameters (every worker starts
    equal), then a hook on every parameter notes when its gradient is complete; when all
    gradients of a bucket are, the bucket is flattened and its all-reduce starts
    (``async_op=True``) while backward continues. At the end of backward the
    all-reduces are waited for and the averaged gradients copied back into ``.grad``.
    A parameter that got no gradient raises ``UnusedParameterError``.
    Taught in chapter 15 (Data parallelism).
    """

    def __init__(self, module: nn.Module, bucket_mb: float = 25.0, group=None):
        super().__init__()
        if not dist.is_initialized():
            raise LMCourseError("DDP needs an initialised process group (start workers with launch or torchrun)")
        self.module, self.group = module, group
        self.world = dist.get_world_size(group)
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        src = 0 if group is None else dist.get_global_rank(group, 0)
        for _, p in named:
            dist.broadcast(p.data, src=src, group=group)
        # buckets in reverse registration order: roughly the order backward finishes gradients
        self.buckets: list[list[tuple[str, nn.Parameter]]] = [[]]
        size = 0
        for n, p in reversed(named):
            if size and size + p.numel() * p.element_size() > bucket_mb * 2 ** 20:
                self.buckets.append([])
                size = 0
            self.buckets[-1].append((n, p))
            size += p.numel() * p.element_size()
        self.bucket_of = {id(p): b for b, bucket in enumerate(self.buckets) for _, p in bucket}
        self.launch_order: list[int] = []  # bucket ids in the order their all-reduce started (last backward)
        self._reset()
        for _, p in named:
            p.register_post_accumulate_grad_hook(self._grad_ready)

    def _reset(self) -> None:
        self.pending = [len(b) for b in self.buckets]
        self.ready: set[int] = set()
        self.work: dict[int, tuple[object, Tensor]] = {}
        self.armed = False

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def _grad_ready(self, p: Tensor) -> None:
        if not self.armed:  # first gradient of this backward: finish the sync when backward ends
            self.armed = True
            self.launch_order = []
            torch.autograd.Variable._execution_engine.queue_callback(self._finish)
        b = self.bucket_of[id(p)]
        self.ready.add(id(p))
        self.pending[b] -= 1
        if self.pending[b] == 0:
            flat = torch.cat([q.grad.reshape(-1) for _, q in self.buckets[b]])
            self.work[b] = (dist.all_reduce(flat, group=self.group, async_op=True), flat)
            self.launch_order.append(b)

    def _finish(self) -> None:
        unused = [n for bucket in self.buckets for n, p in bucket if id(p) not in self.ready]
        if unused:
            self._reset()
            raise UnusedParameterError(
                f"parameters that got no gradient in this backward: {unused}. DDP all-reduces a bucket once "
                f"all its gradients are ready, so these would never be synchronised; remove them from the "
                f"model, freeze them (requires_grad=False), or make the loss use them")
        for b, (work, flat) in sorted(self.work.items()):
            work.wait()
            flat /= self.world
            offset = 0
            for _, p in self.buckets[b]:
                p.grad.copy_(flat[offset:offset + p.numel()].view_as(p))
                offset += p.numel()
        self._reset()


# ---------------------------------------------------------------- a tiny task for tests, chapter and torchrun

def make_mlp(seed: int = 0, d_in: int = 8, hidden: int = 16, d_out: int = 1, unused: bool = False) -> nn.Module:
    """A small MLP with fixed initial weights (the same on every worker and in one process)."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(d_in, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                          nn.Linear(hidden, d_out))
    if unused:
        model = _WithUnused(model)
    return model.double()


class _WithUnused(nn.Module):
    """A model with a layer that forward never calls (DDP's classic failure)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net, self.unused = net, nn.Linear(3, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def make_batches(steps: int, batch_size: int, seed: int = 0, d_in: int = 8) -> list[tuple[Tensor, Tensor]]:
    """Synthetic regression batches ``y = sin(x @ w)``, identical on every worker for the same seed."""
    g = torch.Generator().manual_seed(seed + 1)
    w = torch.randn(d_in, 1, generator=g, dtype=torch.float64)
    out = []
    for _ in range(steps):
        x = torch.randn(batch_size, d_in, generator=g, dtype=torch.float64)
        out.append((x, torch.sin(x @ w)))
    return out


def mse_loss(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def make_optimizer(params: Iterable[Tensor], name: str = "sgd", lr: float = 0.05) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    raise ValueError(f"unknown optimizer {name!r}: use 'sgd' or 'adam'")


def train_one_process(steps: int, batch_size: int, seed: int = 0, optimizer: str = "sgd") -> dict:
    """The reference: one process, whole batches. Returns parameters (numpy) and losses."""
    model = make_mlp(seed)
    opt = make_optimizer(model.parameters(), optimizer)
    losses = []
    for batch in make_batches(steps, batch_size, seed):
        opt.zero_grad()
        loss = mse_loss(model, batch)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return {"params": {n: p.detach().numpy().copy() for n, p in model.named_parameters()}, "losses": losses}


def train_worker(rank: int, world: int, method: str, steps: int, batch_size: int, seed: int = 0,
                 optimizer: str = "sgd", bucket_mb: float = 25.0, unused: bool = False,
                 device: str = "cpu") -> dict:
    """Train the MLP with ``method`` in {"ps", "ddp", "torch_ddp"}; run with ``launch``. Taught in chapter 15."""
    model = make_mlp(seed, unused=unused).to(device)
    batches = [(x.to(device), y.to(device)) for x, y in make_batches(steps, batch_size, seed)]
    losses = []
    if method == "ps":
        opt = make_optimizer(model.parameters(), optimizer) if rank == 0 else None
        for x, y in batches:
            losses.append(parameter_server_step(model, opt, mse_loss, (shard(x, rank, world), shard(y, rank, world))))
        parameter_server_sync(model)
        net = model
    else:
        if method == "ddp":
            net = DDP(model, bucket_mb=bucket_mb)
        elif method == "torch_ddp":
            net = nn.parallel.DistributedDataParallel(model)
        else:
            raise ValueError(f"unknown method {method!r}: use 'ps', 'ddp' or 'torch_ddp'")
        opt = make_optimizer(net.parameters(), optimizer)
        for x, y in batches:
            opt.zero_grad(set_to_none=False)
            loss = mse_loss(net, (shard(x, rank, world), shard(y, rank, world)))
            loss.backward()
            opt.step()
            total = loss.detach().clone()
            dist.all_reduce(total)
            losses.append(total.item() / world)
    extra = {"buckets": [[n for n, _ in b] for b in net.buckets], "launch_order": net.launch_order} \
        if method == "ddp" else {}
    return {"params": {n: p.detach().cpu().numpy().copy() for n, p in model.named_parameters()},
            "losses": losses, **extra}


def main(argv: list[str] | None = None) -> None:
    """Entry point for ``torchrun``: train the MLP with lmcourse's DDP, print the final loss on rank 0."""
    ap = argparse.ArgumentParser(description="lmcourse DDP training (run under torchrun)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=32, help="global batch, split over the workers")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bucket-mb", type=float, default=25.0)
    args = ap.parse_args(argv)
    from lmcourse.systems.launch import worker_setup
    rank, world = worker_setup()
    torch.set_num_threads(1)
    device = f"cuda:{torch.cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"
    try:
        out = train_worker(rank, world, "ddp", args.steps, args.batch_size, args.seed, bucket_mb=args.bucket_mb,
                           device=device)
        if rank == 0:
            print(f"world {world}, {args.steps} steps, final loss {out['losses'][-1]:.4g}", flush=True)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
