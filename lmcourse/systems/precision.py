"""Mixed-precision training: float ranges, fp16 underflow, dynamic loss scaling with fp32 master weights.

Taught in chapter 19 (Mixed precision, offloading, overlapping, checkpointing).

Mixed precision {cite}`micikevicius2018mixed` runs forward and backward in 16-bit floats
and keeps an fp32 *master* copy of the parameters for the update. fp16 has a narrow range:
small gradients, and above all small updates ``lr * grad``, underflow to zero. *Loss
scaling* multiplies the loss by ``S`` before backward so the gradients are ``S`` times
larger (out of the underflow zone), then divides them by ``S`` in fp32 before the update.
*Dynamic* loss scaling picks ``S``: a step whose gradients overflow (inf/nan) is skipped
and ``S`` is halved; after ``growth_interval`` good steps in a row ``S`` is doubled.
``LossScaler`` writes that rule out and makes the same decisions as ``torch.amp.GradScaler``.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lmcourse.errors import LMCourseError


class LossScaleError(LMCourseError, ValueError):
    """The loss scale became zero, infinite or nan: training cannot continue. Taught in chapter 19."""


def float_ranges(dtypes=(torch.float16, torch.bfloat16, torch.float32)) -> dict[str, dict[str, float]]:
    """Per dtype: largest value, smallest normal, smallest subnormal, machine epsilon, mantissa bits.

    ``torch.finfo`` gives ``max``, ``tiny`` (= smallest normal) and ``eps``; the smallest
    subnormal is ``tiny * eps`` (the last mantissa bit of the smallest exponent).
    Taught in chapter 19.
    """
    out = {}
    for dt in dtypes:
        fi = torch.finfo(dt)
        out[str(dt).removeprefix("torch.")] = {"max": fi.max, "min_normal": fi.tiny,
                                               "min_subnormal": fi.tiny * fi.eps, "eps": fi.eps,
                                               "mantissa_bits": round(-math.log2(fi.eps))}
    return out


def update_underflow(params: list[Tensor], grads: list[Tensor], lr: float, dtype=torch.float16) -> dict[str, float]:
    """How much of the update ``lr * grad`` is lost when it is computed and applied in ``dtype``.

    Returns the share of nonzero gradient entries whose ``lr * grad`` rounds to 0 in ``dtype``
    (``underflow``), and the share whose parameter does not change at all when the update is
    added in ``dtype`` (``no_change``: the update is below half a unit in the last place of
    the parameter). Taught in chapter 19.
    """
    if lr <= 0:
        raise LMCourseError(f"lr must be > 0, not {lr}")
    total = zero = same = 0
    for p, g in zip(params, grads, strict=True):
        g = g.detach().flatten().double()
        p = p.detach().flatten()
        nz = g != 0
        upd = (lr * g[nz]).to(dtype)
        zero += int((upd == 0).sum())
        p16 = p[nz].to(dtype)
        same += int(((p16 - upd) == p16).sum())
        total += int(nz.sum())
    if total == 0:
        raise LMCourseError("all gradients are zero: nothing to measure")
    return {"n": total, "underflow": zero / total, "no_change": same / total}


class LossScaler:
    """Dynamic loss scaling, written out; the same decisions as ``torch.amp.GradScaler``.

    ``scale`` starts at ``init_scale``. After backward on ``loss * scale``, ``unscale_(grads)``
    divides the gradients by the scale and returns whether any is inf/nan; ``update(found_inf)``
    halves the scale (``backoff_factor``) on an overflow, and multiplies it by ``growth_factor``
    after ``growth_interval`` overflow-free steps in a row. A scale that reaches 0 or inf
    raises ``LossScaleError``. Taught in chapter 19.
    """

    def __init__(self, init_scale: float = 2.0 ** 16, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000):
        if not (growth_factor > 1 and 0 < backoff_factor < 1 and growth_interval >= 1):
            raise LossScaleError(f"need growth_factor > 1, 0 < backoff_factor < 1, growth_interval >= 1; got "
                                 f"{growth_factor}, {backoff_factor}, {growth_interval}")
        self.scale = float(init_scale)
        self._check()
        self.growth_factor, self.backoff_factor, self.growth_interval = growth_factor, backoff_factor, growth_interval
        self.good_steps = 0                      # GradScaler's "growth tracker"
        self.skipped = 0

    def _check(self) -> None:
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise LossScaleError(f"the loss scale became {self.scale}: gradients overflow even at the smallest "
                                 f"scale (nan/inf in the loss?) or the scale grew without bound")

    def unscale_(self, grads: list[Tensor]) -> bool:
        """Divide each gradient by the scale in place (in fp32 math); return True if any is inf/nan."""
        inv = 1.0 / self.scale
        found_inf = False
        for g in grads:
            g.mul_(inv)
            found_inf |= not bool(torch.isfinite(g).all())
        return found_inf

    def update(self, found_inf: bool) -> None:
        """Back off after an overflow (the step is skipped), grow after ``growth_interval`` good steps."""
        if found_inf:
            self.scale *= self.backoff_factor
            self.good_steps = 0
            self.skipped += 1
        else:
            self.good_steps += 1
            if self.good_steps == self.growth_interval:
                self.scale *= self.growth_factor
                self.good_steps = 0
        self._check()


class MasterWeights:
    """fp16/bf16 model for forward/backward, fp32 master parameters and optimizer for the update.

    ``step(loss)``: backward on ``loss * scale`` through the low-precision model, copy the
    gradients to fp32, unscale and check them, skip the step on an overflow, otherwise let
    ``optimizer`` (built over ``self.master``) update the fp32 masters and copy them back
    into the model. Returns True if the step was applied. Taught in chapter 19.
    """

    def __init__(self, model: nn.Module, make_optimizer, scaler: LossScaler | None = None):
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.master = [p.detach().float().clone().requires_grad_(True) for p in self.params]   # fp32 copies
        self.optimizer = make_optimizer(self.master)
        self.scaler = scaler or LossScaler()

    def step(self, loss: Tensor, on_scaled_grads=None) -> bool:
        """One step; ``on_scaled_grads(grads)``, if given, sees the fp32 gradients before unscaling."""
        (loss.float() * self.scaler.scale).backward()
        grads = []
        for p, m in zip(self.params, self.master):
            m.grad = (p.grad.float() if p.grad is not None else torch.zeros_like(m))   # fp16 grad -> fp32
            p.grad = None
            grads.append(m.grad)
        if on_scaled_grads is not None:
            on_scaled_grads(grads)
        found_inf = self.scaler.unscale_(grads)
        if not found_inf:
            self.optimizer.step()
            with torch.no_grad():
                for p, m in zip(self.params, self.master):
                    p.copy_(m)                                                # fp32 master -> fp16 model
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.update(found_inf)
        return not found_inf


def autocast_loss(loss_fn, device: str | torch.device = "cpu", dtype: torch.dtype | None = None):
    """Wrap ``loss_fn(model, batch)`` to run under ``torch.autocast``: bf16 on CPU, fp16 on CUDA by default.

    Taught in chapter 19.
    """
    dev = torch.device(device).type
    dtype = dtype or (torch.float16 if dev == "cuda" else torch.bfloat16)

    def wrapped(model, batch):
        with torch.autocast(dev, dtype=dtype):
            loss = loss_fn(model, batch)
        return loss.float()
    return wrapped
