"""Tensor (model) parallelism: split a layer's weight matrix over N ranks, Megatron style.

Taught in chapter 16 (Model parallelism).

A linear layer ``Y = X W^T`` (W is ``out x in``) can be cut two ways::

    column parallel (split the outputs)        row parallel (split the inputs)

       X ──f──┬── X W_0^T ─> Y_0   (rank 0)       X_0 ── X_0 W_0^T ─┐
              └── X W_1^T ─> Y_1   (rank 1)       X_1 ── X_1 W_1^T ─┴─g─> Y = sum
       Y = [Y_0 | Y_1]  (all-gather, if wanted)   (X already split by columns)

The Megatron MLP (Shoeybi et al., 2019) chains them: column-parallel ``fc1``, the
activation on each rank's own columns, row-parallel ``fc2``; one all-reduce in the forward
pass (g) and one in the backward (f)::

    X ─f─> [X W1_r^T] ─gelu─> [H_r W2_r^T] ─g─> Y        r = this rank

    f: identity forward, all-reduce backward    (every rank's X-gradient is partial)
    g: all-reduce forward, identity backward    (every rank's Y is partial)

Attention splits by heads: each rank projects q, k, v for its ``heads / N`` heads
(column parallel), attends locally, and the output projection is row parallel.

Run it under torchrun::

    python -m torch.distributed.run --nproc-per-node 2 -m lmcourse.systems.tensor_parallel --steps 5
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from lmcourse.errors import LMCourseError


class TensorParallelError(LMCourseError, ValueError):
    """The world size does not divide the dimension being split."""


def _world(group) -> tuple[int, int]:
    return dist.get_rank(group), dist.get_world_size(group)


def _check_divides(n: int, world: int, what: str) -> None:
    if n % world:
        raise TensorParallelError(f"world size {world} does not divide the {n} {what} of the layer: "
                                  f"each rank must get an equal slice")


class CopyToParallel(torch.autograd.Function):
    """Megatron's f: identity forward, all-reduce of the gradient backward."""

    @staticmethod
    def forward(ctx, x, group=None):
        ctx.group = group
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


class ReduceFromParallel(torch.autograd.Function):
    """Megatron's g: all-reduce forward, identity backward."""

    @staticmethod
    def forward(ctx, x, group=None):
        x = x.contiguous().clone()
        dist.all_reduce(x, group=group)
        return x

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class GatherFromParallel(torch.autograd.Function):
    """All-gather along the last dimension forward (the notes' concatenation); keep my slice backward."""

    @staticmethod
    def forward(ctx, x, group=None):
        rank, world = _world(group)
        ctx.rank, ctx.world = rank, world
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous(), group=group)
        return torch.cat(parts, dim=-1)

    @staticmethod
    def backward(ctx, grad):
        return grad.chunk(ctx.world, dim=-1)[ctx.rank].contiguous(), None


class ColumnParallelLinear(nn.Module):
    """``nn.Linear`` whose output features are split over the ranks. Taught in chapter 16.

    Rank r holds rows ``[r*out/N, (r+1)*out/N)`` of W (and of the bias). Input: the full X on
    every rank. Output: this rank's slice of Y, or the whole Y with ``gather_output=True``.
    ``copy_input=False`` skips f when the caller already applied it (attention's q, k, v).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, gather_output: bool = False,
                 copy_input: bool = True, group=None):
        super().__init__()
        self.group = group
        self.rank, self.world = _world(group)
        _check_divides(out_features, self.world, "output features")
        self.in_features, self.out_features = in_features, out_features
        self.gather_output, self.copy_input = gather_output, copy_input
        self.weight = nn.Parameter(torch.empty(out_features // self.world, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features // self.world)) if bias else None

    @classmethod
    def from_dense(cls, dense: nn.Linear, **kw) -> "ColumnParallelLinear":
        """This rank's slice of an existing ``nn.Linear`` (same weights on every rank)."""
        layer = cls(dense.in_features, dense.out_features, dense.bias is not None, **kw)
        with torch.no_grad():
            layer.weight.copy_(dense.weight.chunk(layer.world, dim=0)[layer.rank])
            if dense.bias is not None:
                layer.bias.copy_(dense.bias.chunk(layer.world, dim=0)[layer.rank])
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:         # (..., in)
        if self.copy_input:
            x = CopyToParallel.apply(x, self.group)
        y = F.linear(x, self.weight, self.bias)                   # (..., out/N)
        if self.gather_output:
            y = GatherFromParallel.apply(y, self.group)           # (..., out)
        return y


class RowParallelLinear(nn.Module):
    """``nn.Linear`` whose input features are split over the ranks. Taught in chapter 16.

    Rank r holds columns ``[r*in/N, (r+1)*in/N)`` of W and gets that slice of X (the output
    of a column-parallel layer). The partial products are summed by g (all-reduce); the bias,
    held whole on every rank, is added once after the sum.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, group=None):
        super().__init__()
        self.group = group
        self.rank, self.world = _world(group)
        _check_divides(in_features, self.world, "input features")
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features // self.world))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    @classmethod
    def from_dense(cls, dense: nn.Linear, **kw) -> "RowParallelLinear":
        layer = cls(dense.in_features, dense.out_features, dense.bias is not None, **kw)
        with torch.no_grad():
            layer.weight.copy_(dense.weight.chunk(layer.world, dim=1)[layer.rank])
            if dense.bias is not None:
                layer.bias.copy_(dense.bias)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:         # (..., in/N)
        y = ReduceFromParallel.apply(F.linear(x, self.weight), self.group)   # (..., out)
        return y + self.bias if self.bias is not None else y


class ParallelMLP(nn.Module):
    """The Megatron MLP: column-parallel fc1, activation, row-parallel fc2. Taught in chapter 16."""

    def __init__(self, fc1: ColumnParallelLinear, act: nn.Module, fc2: RowParallelLinear):
        super().__init__()
        self.fc1, self.act, self.fc2 = fc1, act, fc2

    @classmethod
    def from_dense(cls, fc1: nn.Linear, act: nn.Module, fc2: nn.Linear, group=None) -> "ParallelMLP":
        return cls(ColumnParallelLinear.from_dense(fc1, group=group), act, RowParallelLinear.from_dense(fc2, group=group))

    def forward(self, x: torch.Tensor) -> torch.Tensor:         # (..., d)
        return self.fc2(self.act(self.fc1(x)))                    # f ... g inside the layers


class ParallelSelfAttention(nn.Module):
    """Multi-head self-attention split by heads over the ranks. Taught in chapter 16.

    Each rank computes ``heads/N`` heads: q, k, v are column-parallel (one f for all three),
    the output projection is row-parallel (one g).
    """

    def __init__(self, d_model: int, n_heads: int, group=None):
        super().__init__()
        self.group = group
        self.rank, self.world = _world(group)
        if d_model % n_heads:
            raise TensorParallelError(f"{n_heads} heads do not divide d_model {d_model}")
        _check_divides(n_heads, self.world, "attention heads")
        self.d_model, self.n_heads, self.local_heads = d_model, n_heads, n_heads // self.world
        self.d_head = d_model // n_heads
        kw = dict(copy_input=False, group=group)
        self.q, self.k, self.v = (ColumnParallelLinear(d_model, d_model, **kw) for _ in range(3))
        self.out = RowParallelLinear(d_model, d_model, group=group)

    @classmethod
    def from_torch(cls, mha: nn.MultiheadAttention, group=None) -> "ParallelSelfAttention":
        """This rank's heads of a ``torch.nn.MultiheadAttention`` (batch_first, with biases)."""
        layer = cls(mha.embed_dim, mha.num_heads, group=group)
        W, b = mha.in_proj_weight.chunk(3, dim=0), mha.in_proj_bias.chunk(3, dim=0)
        for proj, w, bias in zip((layer.q, layer.k, layer.v), W, b):
            dense = nn.Linear(mha.embed_dim, mha.embed_dim)
            with torch.no_grad():
                dense.weight.copy_(w)
                dense.bias.copy_(bias)
            proj.load_state_dict(ColumnParallelLinear.from_dense(dense, copy_input=False, group=group).state_dict())
        layer.out.load_state_dict(RowParallelLinear.from_dense(mha.out_proj, group=group).state_dict())
        return layer

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:   # (B, T, d)
        B, T, _ = x.shape
        x = CopyToParallel.apply(x, self.group)
        q, k, v = (p(x).view(B, T, self.local_heads, self.d_head).transpose(1, 2)   # (B, h/N, T, dh)
                   for p in (self.q, self.k, self.v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)              # (B, h/N, T, dh)
        return self.out(y.transpose(1, 2).reshape(B, T, self.local_heads * self.d_head))   # (B, T, d)


def main(argv=None) -> None:
    """torchrun entry point: train the Megatron MLP tensor-parallel and compare with one process."""
    import argparse

    from lmcourse.systems.launch import worker_setup
    from lmcourse.systems.workers_ch16_18 import tp_parity

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args(argv)
    rank, world = worker_setup()
    out = tp_parity(rank, world, a.steps)
    if rank == 0:
        print(f"tensor parallel MLP on {world} ranks, {a.steps} steps: "
              f"max |param - one process| = {out['max_diff']:.2e}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
