"""Memory of training: parameters, gradients, optimizer states and activations, by formula and measured.

Taught in chapter 13 (Hardware and memory).

Training holds four kinds of tensors:

* **parameters**: ``N`` numbers, ``N * bytes(dtype)``;
* **gradients**: one per parameter, same size again;
* **optimizer states**: SGD none, SGD with momentum one buffer per parameter, Adam two
  (the running mean ``m`` and the running mean of squares ``v``); mixed precision adds
  an fp32 master copy of the parameters;
* **activations**: the tensors the forward pass saves for backward; they grow with the
  batch size and the sequence length, not with ``N`` alone.

``training_memory`` computes the first three from the parameter count; ``measure_training``
measures all four on a real step: on CPU by adding up the tensors actually held (the
activations through ``torch.autograd.graph.saved_tensors_hooks``), on a GPU from the
CUDA allocator (``torch.cuda.memory_allocated``) before and after each stage.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from lmcourse.errors import LMCourseError

OPTIMIZER_STATES = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}


def dtype_bytes(dtype: torch.dtype) -> int:
    """Bytes per element: 4 for float32, 2 for bfloat16/float16, 8 for float64, ..."""
    return torch.empty((), dtype=dtype).element_size()


@dataclass
class Memory:
    """Bytes of each component of training. Taught in chapter 13 (Hardware and memory)."""
    parameters: int = 0
    gradients: int = 0
    optimizer: int = 0
    activations: int = 0

    @property
    def total(self) -> int:
        return self.parameters + self.gradients + self.optimizer + self.activations

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "total": self.total}


def training_memory(n_params: int, dtype: torch.dtype = torch.float32, optimizer: str = "adam",
                    master_weights: bool = False) -> Memory:
    """Bytes of parameters, gradients and optimizer states for ``n_params`` parameters, by formula.

    Optimizer states are kept in fp32 (``torch.optim`` keeps them in the parameters' dtype;
    mixed-precision training keeps fp32 states and, with ``master_weights``, an fp32 copy of
    the parameters). Activations depend on the model and the batch: see ``measure_training``.
    Taught in chapter 13 (Hardware and memory).
    """
    if optimizer not in OPTIMIZER_STATES:
        raise LMCourseError(f"unknown optimizer {optimizer!r}: choose one of {sorted(OPTIMIZER_STATES)}")
    if n_params < 0:
        raise LMCourseError(f"n_params must be >= 0, not {n_params}")
    b = dtype_bytes(dtype)
    state_bytes = 4 if master_weights else b
    opt = n_params * state_bytes * (OPTIMIZER_STATES[optimizer] + (1 if master_weights else 0))
    return Memory(parameters=n_params * b, gradients=n_params * b, optimizer=opt)


def _storage_key(t: Tensor) -> tuple:
    return (t.untyped_storage().data_ptr(), t.device.type)


def _bytes_of(tensors) -> int:
    """Bytes of the distinct storages behind ``tensors`` (views of one storage count once)."""
    seen: dict[tuple, int] = {}
    for t in tensors:
        if isinstance(t, Tensor) and t.numel():
            seen[_storage_key(t)] = t.untyped_storage().nbytes()
    return sum(seen.values())


def optimizer_state_tensors(optimizer: torch.optim.Optimizer) -> list[Tensor]:
    """The tensors an optimizer keeps per parameter (momentum, Adam's exp_avg and exp_avg_sq), not step counters."""
    return [v for state in optimizer.state.values() for v in state.values()
            if isinstance(v, Tensor) and v.dim() > 0]


def measure_training(model: nn.Module, loss_fn: Callable[[nn.Module], Tensor],
                     optimizer: torch.optim.Optimizer) -> Memory:
    """Run one training step and measure what it holds. ``loss_fn(model)`` computes the loss on a batch.

    CPU: parameters, gradients and optimizer states are the bytes of the tensors held
    (``p``, ``p.grad``, ``optimizer.state``); activations are the bytes of the distinct
    non-parameter tensors saved for backward during forward. CUDA: each component is the
    growth of ``torch.cuda.memory_allocated`` over the stage that creates it (activations:
    allocated after forward minus before, the loss's graph still alive).
    Taught in chapter 13 (Hardware and memory).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise LMCourseError("the model has no trainable parameters")
    device = params[0].device
    model.zero_grad(set_to_none=True)
    if device.type == "cuda":
        return _measure_cuda(model, loss_fn, optimizer, params, device)
    param_keys = {_storage_key(p) for p in model.parameters()}
    saved: dict[tuple, int] = {}

    def pack(t: Tensor):
        key = _storage_key(t)
        if key not in param_keys and t.numel():
            saved[key] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn(model)
    activations = sum(saved.values())
    loss.backward()
    optimizer.step()
    return Memory(parameters=_bytes_of(model.parameters()), gradients=_bytes_of(p.grad for p in params),
                  optimizer=_bytes_of(optimizer_state_tensors(optimizer)), activations=activations)


def _measure_cuda(model, loss_fn, optimizer, params, device) -> Memory:
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    loss = loss_fn(model)
    torch.cuda.synchronize(device)
    activations = torch.cuda.memory_allocated(device) - base
    loss.backward()
    del loss
    torch.cuda.synchronize(device)
    gradients = torch.cuda.memory_allocated(device) - base
    before = torch.cuda.memory_allocated(device)
    optimizer.step()
    torch.cuda.synchronize(device)
    optimizer_bytes = torch.cuda.memory_allocated(device) - before
    return Memory(parameters=_bytes_of(model.parameters()), gradients=gradients, optimizer=optimizer_bytes,
                  activations=activations)


def mlp_activation_bytes(batch: int, widths: list[int], dtype: torch.dtype = torch.float32) -> int:
    """Bytes saved for backward by ``Linear -> Tanh -> ... -> Linear`` and an MSE loss, by formula.

    Each Linear saves its input (``batch x d_in``), each tanh its output, which is the next
    Linear's input (one tensor, counted once); the MSE loss saves the prediction and the
    target (``2 x batch x d_out``). So: ``batch * bytes * (d_0 + d_1 + ... + d_{L-1} + 2 d_L)``.
    Taught in chapter 13 (Hardware and memory).
    """
    if len(widths) < 2:
        raise LMCourseError(f"an MLP needs at least an input and an output width, got {widths}")
    return batch * dtype_bytes(dtype) * (sum(widths[:-1]) + 2 * widths[-1])


def matmul_flops_per_s(n: int, dtype: torch.dtype = torch.float32, device: str = "cpu", repeats: int = 5) -> float:
    """Measured floating-point operations per second of an ``n x n`` matmul (``2 n^3`` flops each).

    Taught in chapter 13 (Hardware and memory).
    """
    import time
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b  # warm-up
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        sync()
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / sorted(times)[len(times) // 2]
