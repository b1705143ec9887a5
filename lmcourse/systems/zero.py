"""ZeRO stages 1, 2 and 3 over a flat partition, written on ``torch.distributed`` collectives.

Taught in chapter 17 (ZeRO).

Data parallelism keeps N full copies of the model states. ZeRO (Rajbhandari et al., 2020)
cuts them into N slices instead. The model is cut into *units* (every module that owns
parameters, e.g. each ``nn.Linear``); a unit's parameters are flattened into one buffer,
padded to a multiple of N, and rank r owns slice r of every unit::

    unit buffer  [ w1 ........ | b1 .. | pad ]      (padded to a multiple of N)
                 [  rank 0  |  rank 1  | rank 2 ]   slice r: its optimizer states,
                                                    (stage >= 2) its gradient,
                                                    (stage 3) its only copy of the weights

    stage 1  full params, full grads   -> reduce-scatter grads -> Adam on own slice
                                       -> all-gather params                  (2 Psi moved)
    stage 2  as 1, but each unit's grads are reduce-scattered as soon as backward has
             made them, and the full gradient is freed                        (2 Psi moved)
    stage 3  only the slice lives between uses: all-gather a unit's params before its
             forward, free them after; gather again before its backward, free after;
             reduce-scatter its grads                                         (3 Psi moved)

Gradients are averaged over ranks (as in DDP), so N ranks with 1/N of the batch each
take the same steps as one process on the whole batch. The optimizer is Adam, written
out on flat slices. With fp32 weights the rank's slice of the weights is Adam's master
copy (K = 8: m and v); with bf16/fp16 weights an fp32 master slice is kept (K = 12).

Run it under torchrun (any number of processes, CPU/gloo or GPU/NCCL)::

    python -m torch.distributed.run --nproc-per-node 2 -m lmcourse.systems.zero --stage 3 --steps 5
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from lmcourse.errors import LMCourseError


class ZeroError(LMCourseError, ValueError):
    """Bad ZeRO configuration (stage, sizes)."""


@dataclass
class CommLog:
    """Elements handed to each collective (the full, unsharded size), summed per kind."""

    elements: Counter = field(default_factory=Counter)

    def add(self, kind: str, n: int) -> None:
        self.elements[kind] += n

    def total(self) -> int:
        return sum(self.elements.values())


def _reduce_scatter(out: torch.Tensor, full: torch.Tensor, group) -> None:
    dist.reduce_scatter_tensor(out, full, op=dist.ReduceOp.SUM, group=group)


def _all_gather(full: torch.Tensor, shard: torch.Tensor, group) -> None:
    dist.all_gather_into_tensor(full, shard, group=group)


class _Unit:
    """The parameters of one module, flattened, padded to a multiple of N, and sliced."""

    def __init__(self, module: nn.Module, name: str, rank: int, world: int):
        self.module, self.name = module, name
        self.params = [p for p in module.parameters(recurse=False) if p.requires_grad]
        self.shapes = [p.shape for p in self.params]
        self.numel = sum(p.numel() for p in self.params)          # real elements
        self.padded = math.ceil(self.numel / world) * world      # buffer size, multiple of N
        self.shard_size = self.padded // world
        self.lo = rank * self.shard_size                          # my slice [lo, lo + shard)
        self.dtype = self.params[0].dtype
        self.device = self.params[0].device
        self.grads_ready = 0

    def flatten_params(self) -> torch.Tensor:
        flat = torch.zeros(self.padded, dtype=self.dtype, device=self.device)
        flat[: self.numel] = torch.cat([p.detach().reshape(-1) for p in self.params])
        return flat

    def flatten_grads(self) -> torch.Tensor:
        flat = torch.zeros(self.padded, dtype=self.dtype, device=self.device)
        flat[: self.numel] = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                                        for p in self.params])
        return flat

    def point_params_at(self, flat: torch.Tensor) -> None:
        """Make each parameter a view into ``flat`` (the full, gathered buffer)."""
        offset = 0
        for p, shape in zip(self.params, self.shapes):
            n = shape.numel()
            p.data = flat[offset: offset + n].view(shape)
            offset += n

    def free_params(self) -> None:
        for p in self.params:
            p.data = torch.empty(0, dtype=self.dtype, device=self.device)


class ZeroAdam:
    """Adam with ZeRO stage 1, 2 or 3 sharding of the model states. Taught in chapter 17 (ZeRO).

    ``model`` must be the same (same seed) on every rank. After construction, train as usual::

        opt = ZeroAdam(model, stage=2, lr=1e-3)
        loss = model(x).pow(2).mean(); loss.backward(); opt.step(); opt.zero_grad()

    ``memory()`` returns the bytes this rank holds for parameters, gradients and optimizer
    states; ``comm`` counts the elements moved by each collective.
    """

    def __init__(self, model: nn.Module, stage: int, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 group=None):
        if stage not in (1, 2, 3):
            raise ZeroError(f"ZeRO stage must be 1, 2 or 3, not {stage!r}")
        self.model, self.stage, self.lr, self.betas, self.eps, self.group = model, stage, lr, betas, eps, group
        self.rank = dist.get_rank(group)
        self.world = dist.get_world_size(group)
        self.comm = CommLog()
        self.t = 0
        self.units = [_Unit(m, name, self.rank, self.world) for name, m in model.named_modules()
                      if any(p.requires_grad for p in m.parameters(recurse=False))]
        if not self.units:
            raise ZeroError("the model has no trainable parameters")
        self.numel = sum(u.numel for u in self.units)             # Psi
        self.full: list[torch.Tensor | None] = []                 # full flat params (stages 1, 2)
        self.shard: list[torch.Tensor] = []                       # my slice of the params
        self.master: list[torch.Tensor] = []                      # fp32 master slice (Adam updates it)
        self.grad_shard: list[torch.Tensor | None] = []           # my slice of the averaged grads
        self.m: list[torch.Tensor] = []
        self.v: list[torch.Tensor] = []
        for u in self.units:
            flat = u.flatten_params()
            shard = flat[u.lo: u.lo + u.shard_size]
            if stage == 3:
                shard = shard.clone()                             # the only copy that stays
                u.free_params()
                self.full.append(None)
            else:
                u.point_params_at(flat)
                self.full.append(flat)
            self.shard.append(shard)
            self.master.append(shard if shard.dtype == torch.float32 else shard.float())
            self.grad_shard.append(None)
            self.m.append(torch.zeros(u.shard_size, dtype=torch.float32, device=u.device))
            self.v.append(torch.zeros(u.shard_size, dtype=torch.float32, device=u.device))
        self._hooks = []
        if stage >= 2:
            for i, u in enumerate(self.units):
                for p in u.params:
                    self._hooks.append(p.register_post_accumulate_grad_hook(lambda p, i=i: self._grad_ready(i)))
        if stage == 3:
            for i, u in enumerate(self.units):
                self._hooks.append(u.module.register_forward_pre_hook(lambda mod, args, i=i: self._gather(i)))
                self._hooks.append(u.module.register_forward_hook(lambda mod, args, out, i=i: self._after_forward(i, out)))

    # ---- stage 3: gather before use, free after --------------------------------------
    def _gather(self, i: int) -> None:
        u = self.units[i]
        full = torch.empty(u.padded, dtype=u.dtype, device=u.device)
        _all_gather(full, self.shard[i], self.group)
        self.comm.add("all-gather", u.padded)
        u.point_params_at(full)

    def _after_forward(self, i: int, out):
        self.units[i].free_params()
        if torch.is_grad_enabled():                                # gather again when backward reaches it
            outs = out if isinstance(out, tuple) else (out,)
            t = next((o for o in outs if isinstance(o, torch.Tensor) and o.requires_grad), None)
            if t is not None:
                fired = []

                def before_backward(grad, i=i, fired=fired):
                    if not fired:
                        fired.append(True)
                        self._gather(i)
                    return grad
                t.register_hook(before_backward)
        return out

    # ---- stages 2 and 3: reduce-scatter a unit's grads as soon as they exist ---------
    def _grad_ready(self, i: int) -> None:
        u = self.units[i]
        u.grads_ready += 1
        if u.grads_ready < len(u.params):
            return
        u.grads_ready = 0
        self._reduce_scatter_unit(i)
        for p in u.params:
            p.grad = None                                          # free the full gradient
        if self.stage == 3:
            u.free_params()

    def _reduce_scatter_unit(self, i: int) -> None:
        u = self.units[i]
        full = u.flatten_grads()
        out = torch.empty(u.shard_size, dtype=u.dtype, device=u.device)
        _reduce_scatter(out, full, self.group)
        self.comm.add("reduce-scatter", u.padded)
        out.div_(self.world)
        if self.grad_shard[i] is None:
            self.grad_shard[i] = out
        else:                                                      # gradient accumulation
            self.grad_shard[i].add_(out)

    # ---- the step ------------------------------------------------------------------
    @torch.no_grad()
    def step(self) -> None:
        """Adam on my slices, then (stages 1, 2) all-gather the updated params."""
        temp_grads = self.stage == 1
        if temp_grads:
            for i in range(len(self.units)):
                self._reduce_scatter_unit(i)
        self.t += 1
        b1, b2 = self.betas
        for i, u in enumerate(self.units):
            g = self.grad_shard[i]
            if g is None:
                continue
            g = g.float()
            self.m[i].mul_(b1).add_(g, alpha=1 - b1)
            self.v[i].mul_(b2).addcmul_(g, g, value=1 - b2)
            m_hat = self.m[i] / (1 - b1 ** self.t)
            denom = (self.v[i] / (1 - b2 ** self.t)).sqrt_().add_(self.eps)
            self.master[i].addcdiv_(m_hat, denom, value=-self.lr)
            if self.master[i] is not self.shard[i]:
                self.shard[i].copy_(self.master[i])
            if self.stage < 3:
                _all_gather(self.full[i], self.shard[i].clone(), self.group)
                self.comm.add("all-gather", u.padded)
        if temp_grads:
            self.grad_shard = [None] * len(self.units)

    def zero_grad(self) -> None:
        for u in self.units:
            for p in u.params:
                p.grad = None
        if self.stage >= 2:
            self.grad_shard = [None] * len(self.units)

    def full_parameters(self) -> dict[str, torch.Tensor]:
        """The whole model's parameters by name (a collective: every rank must call it)."""
        out = {}
        for i, u in enumerate(self.units):
            full = torch.empty(u.padded, dtype=u.dtype, device=u.device)
            _all_gather(full, self.shard[i].contiguous(), self.group)
            offset = 0
            names = [n for n, p in u.module.named_parameters(recurse=False) if p.requires_grad]
            for n, shape in zip(names, u.shapes):
                out[f"{u.name}.{n}" if u.name else n] = full[offset: offset + shape.numel()].view(shape).clone()
                offset += shape.numel()
        return out

    def memory(self) -> dict[str, int]:
        """Bytes this rank holds now for params, grads and optimizer states (each storage counted once)."""
        seen: set[int] = set()

        def nbytes(tensors) -> int:
            total = 0
            for t in tensors:
                if t is None or t.numel() == 0:
                    continue
                s = t.untyped_storage()
                if s.data_ptr() not in seen:
                    seen.add(s.data_ptr())
                    total += s.nbytes()
            return total

        params = nbytes([p for u in self.units for p in u.params] + list(self.shard))
        grads = nbytes([p.grad for u in self.units for p in u.params] + list(self.grad_shard))
        optim = nbytes(self.master + self.m + self.v)
        return {"params": params, "grads": grads, "optimizer": optim, "total": params + grads + optim}

    def padded_numel(self) -> int:
        """Psi rounded up, unit by unit, to a multiple of N (what the slices really hold, times N)."""
        return sum(u.padded for u in self.units)


def zero_memory_formula(stage: int, psi: float, world: int, param_bytes: int = 2, grad_bytes: int | None = None,
                        K: int | None = None) -> dict[str, float]:
    """Per-rank bytes of model states, as in the ZeRO paper (fig. 1). Taught in chapter 17 (ZeRO).

    Mixed-precision Adam (the paper): 2-byte params, 2-byte grads, K = 12 (fp32 master params,
    momentum, variance): data parallel ``(2+2+K)Psi``, stage 1 ``4Psi + K Psi/N``, stage 2
    ``2Psi + (2+K)Psi/N``, stage 3 ``(4+K)Psi/N``. The fp32 variant: 4-byte params and grads,
    K = 8 (the param slice is the master copy). ``stage=0`` is plain data parallelism.
    """
    if stage not in (0, 1, 2, 3):
        raise ZeroError(f"ZeRO stage must be 0, 1, 2 or 3, not {stage!r}")
    grad_bytes = param_bytes if grad_bytes is None else grad_bytes
    if K is None:
        K = 8 if param_bytes == 4 else 12
    n = world
    params = psi * param_bytes / (n if stage == 3 else 1)
    grads = psi * grad_bytes / (n if stage >= 2 else 1)
    optim = psi * K / (n if stage >= 1 else 1)
    return {"params": params, "grads": grads, "optimizer": optim, "total": params + grads + optim}


def main(argv=None) -> None:
    """torchrun entry point: train the toy MLP with ZeRO and compare with one process."""
    import argparse

    from lmcourse.systems.launch import worker_setup
    from lmcourse.systems.workers_ch16_18 import zero_parity

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stage", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args(argv)
    rank, world = worker_setup()
    out = zero_parity(rank, world, a.stage, a.steps)
    if rank == 0:
        print(f"ZeRO-{a.stage} on {world} ranks, {a.steps} steps: max |param - one process| = {out['max_diff']:.2e}; "
              f"per-rank bytes {out['memory']['total']} (formula {out['formula']['total']:.0f}); "
              f"moved {out['comm_per_step'] / out['psi']:.3g} Psi per step")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
