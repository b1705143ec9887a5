"""Optimizer offloading: Adam's states and update on the CPU, the parameters on the device.

Taught in chapter 19 (Mixed precision, offloading, overlapping, checkpointing).

Adam keeps two fp32 states per parameter (``m`` and ``v``), twice the parameters' memory,
more with an fp32 master copy. ZeRO-Offload {cite}`ren2021zerooffload` keeps them in CPU
memory: after backward the gradients are copied device -> CPU, the CPU runs Adam on fp32
master parameters, and the new parameters are copied CPU -> device. The device then holds
only the parameters and gradients; the price is two copies of ``N`` numbers per step over
PCIe (and a CPU Adam). ``OffloadAdam`` counts and times those copies.
"""
from __future__ import annotations

import time

import torch
from torch import Tensor, nn

from lmcourse.errors import LMCourseError


class OffloadAdam:
    """Adam whose states and update live on ``cpu``; ``model``'s parameters stay on their device.

    ``step()`` copies each gradient to a CPU buffer, runs ``torch.optim.Adam`` on the CPU
    master copies, and copies the result back into the parameters. ``copy_seconds`` and
    ``copy_bytes`` accumulate the cost of the two transfers. With fp32 parameters the
    result equals on-device ``torch.optim.Adam`` exactly. Taught in chapter 19.
    """

    def __init__(self, params, lr: float = 1e-3, **adam_kwargs):
        self.params = [p for p in params if p.requires_grad]
        if not self.params:
            raise LMCourseError("OffloadAdam got no trainable parameters")
        pin = torch.cuda.is_available()
        self.master = [p.detach().to("cpu", torch.float32, copy=True) for p in self.params]   # fp32, on the CPU
        if pin:
            self.master = [m.pin_memory() for m in self.master]
        for m in self.master:
            m.requires_grad_(True)
            m.grad = torch.zeros_like(m, pin_memory=pin)                                     # CPU gradient buffer
        self.optimizer = torch.optim.Adam(self.master, lr=lr, **adam_kwargs)
        self.copy_seconds = 0.0
        self.copy_bytes = 0

    def _sync(self) -> None:
        if self.params[0].device.type == "cuda":
            torch.cuda.synchronize(self.params[0].device)

    @torch.no_grad()
    def step(self) -> None:
        self._sync()
        t0 = time.perf_counter()
        for p, m in zip(self.params, self.master):
            if p.grad is None:
                raise LMCourseError("a parameter has no gradient: run backward before step()")
            m.grad.copy_(p.grad, non_blocking=True)                     # device -> CPU
        self._sync()
        self.copy_seconds += time.perf_counter() - t0
        self.optimizer.step()                                           # Adam on the CPU
        t0 = time.perf_counter()
        for p, m in zip(self.params, self.master):
            p.copy_(m, non_blocking=True)                               # CPU -> device
        self._sync()
        self.copy_seconds += time.perf_counter() - t0
        self.copy_bytes += 2 * sum(m.numel() * 4 for m in self.master)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def state_tensors(self) -> list[Tensor]:
        """Adam's ``exp_avg`` and ``exp_avg_sq`` and the fp32 masters (all on the CPU)."""
        states = [v for s in self.optimizer.state.values() for v in s.values() if isinstance(v, Tensor) and v.dim()]
        return states + self.master


def bytes_on(tensors, device_type: str) -> int:
    """Bytes of the distinct storages among ``tensors`` that live on ``device_type`` ("cpu", "cuda")."""
    seen = {}
    for t in tensors:
        if isinstance(t, Tensor) and t.device.type == device_type and t.numel():
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    return sum(seen.values())


def compare_offload(make_model, loss_fn, steps: int = 3, lr: float = 1e-3, device: str = "cpu") -> dict:
    """Train two copies of ``make_model()`` ``steps`` steps: on-device Adam vs ``OffloadAdam``.

    Returns the optimizer-state bytes each keeps beside the parameters (``device_state_bytes``
    on-device: ``m`` and ``v``; offloaded: 0 on the device, ``cpu_state_bytes`` on the CPU),
    seconds per step of each, the offload's copy seconds per step, and the largest parameter
    difference between the two runs. ``loss_fn(model)`` returns the loss.
    Taught in chapter 19.
    """
    from lmcourse.systems.memory import optimizer_state_tensors
    results = {}
    models = {}
    for kind in ("device", "offload"):
        torch.manual_seed(0)
        model = make_model().to(device)
        opt = torch.optim.Adam(model.parameters(), lr=lr) if kind == "device" else OffloadAdam(model.parameters(), lr=lr)
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            opt.zero_grad()
            loss_fn(model).backward()
            opt.step()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        states = optimizer_state_tensors(opt) if kind == "device" else opt.state_tensors()
        dev = torch.device(device).type
        results[kind] = {"step_seconds": sorted(times)[len(times) // 2],
                         "device_state_bytes": bytes_on(states, dev) if kind == "device" or dev != "cpu" else 0,
                         "cpu_state_bytes": bytes_on(states, "cpu"),
                         "param_bytes": bytes_on(list(model.parameters()), dev)}
        if kind == "offload":
            results[kind]["copy_seconds"] = opt.copy_seconds / steps
            results[kind]["copy_bytes"] = opt.copy_bytes // steps
        models[kind] = model
    results["max_param_diff"] = max((a - b).abs().max().item() for a, b in
                                    zip(models["device"].parameters(), models["offload"].parameters()))
    return results
