"""Intrinsic dimension: train a model inside a random subspace of dimension ``d``.

Taught in chapter 12 (Delta tuning), after Li et al. (2018) and Aghajanyan et al. (2021).

All ``D`` parameters move together along ``d`` random directions::

    theta = theta_0 + P theta_d          theta_0: frozen (D,), P: (D, d) fixed, theta_d: (d,) trained, = 0 at start

The intrinsic dimension of a task is the smallest ``d`` reaching a set share (90%: ``d90``) of
full fine-tuning's score. ``P`` is never stored: it is rebuilt from a seed. For small models it
can be a dense Gaussian matrix with unit-norm columns; for real ones it is the Fastfood
transform (Le et al. 2013) that Li et al. and Aghajanyan et al. use, ``O(D log d)`` time and
``O(D)`` memory::

    P x = concat over blocks b of  H G_b Pi H B_b pad(x) / (n sqrt(k))

with ``H`` the Walsh-Hadamard transform of size ``n = 2^ceil(log2 d)``, ``B_b`` random signs,
``Pi`` a random permutation, ``G_b`` Gaussian, and ``k = ceil(D / n)`` blocks.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call

from lmcourse.delta.core import DeltaError, freeze


def fwht(x: Tensor) -> Tensor:
    """Unnormalised fast Walsh-Hadamard transform along the last axis (its length a power of two)."""
    n = x.shape[-1]
    if n & (n - 1):
        raise DeltaError(f"the Walsh-Hadamard transform needs a power-of-two length, not {n}")
    shape, h = x.shape, 1
    while h < n:
        x = x.reshape(*shape[:-1], n // (2 * h), 2, h)
        a, b = x[..., 0, :], x[..., 1, :]
        x = torch.stack((a + b, a - b), dim=-2)                 # pairs (i, i + h) in blocks of 2h
        h *= 2
    return x.reshape(shape)


class Fastfood(nn.Module):
    """The map ``x (d,) -> P x (D,)`` of a Fastfood random projection, rebuilt from ``seed``."""

    def __init__(self, d: int, D: int, seed: int = 0):
        super().__init__()
        self.d, self.D, self.n = d, D, 1 << max(0, math.ceil(math.log2(d)))
        self.k = math.ceil(D / self.n)
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("signs", (torch.randint(0, 2, (self.k, self.n), generator=g) * 2 - 1).to(torch.int8),
                             persistent=False)
        self.register_buffer("perm", torch.randperm(self.n, generator=g), persistent=False)
        self.register_buffer("gauss", torch.randn(self.k, self.n, generator=g), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.nn.functional.pad(x, (0, self.n - self.d))                   # (n,)
        y = fwht(self.signs * x)                                               # (k, n)
        y = fwht(self.gauss * y[:, self.perm])
        return y.reshape(-1)[: self.D] / (self.n * math.sqrt(self.k))          # (D,)


class Dense(nn.Module):
    """A dense Gaussian ``P`` (D, d) with unit-norm columns: exact but ``D d`` numbers (small models only)."""

    def __init__(self, d: int, D: int, seed: int = 0):
        super().__init__()
        if D * d > 50_000_000:
            raise DeltaError(f"a dense projection of {D} x {d} is too large: use projection='fastfood'")
        p = torch.randn(D, d, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("P", p / p.norm(dim=0, keepdim=True), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.P @ x


class IntrinsicDimension(nn.Module):
    """Wrap a model so that only ``theta_d`` (d numbers) trains: ``theta = theta_0 + P theta_d``.

    ``include(name)`` chooses which of the model's parameters move (default: all).
    ``forward`` calls the wrapped model with the moved parameters. Taught in chapter 12 (Delta tuning).
    """

    def __init__(self, model: nn.Module, d: int, projection: str = "fastfood", seed: int = 0,
                 include: Callable[[str], bool] | None = None):
        super().__init__()
        if not isinstance(d, int) or d < 1:
            raise DeltaError(f"the subspace dimension d must be a positive int, not {d!r}")
        self.model = freeze(model)
        self.names = [n for n, p in model.named_parameters()
                      if p.is_floating_point() and (include is None or include(n))]
        if not self.names:
            raise DeltaError("include() kept no parameter of the model")
        params = dict(model.named_parameters())
        self.shapes = [params[n].shape for n in self.names]
        D = sum(params[n].numel() for n in self.names)
        if d > D:
            raise DeltaError(f"d={d} is larger than the number of parameters it reparameterises (D={D})")
        makers = {"fastfood": Fastfood, "dense": Dense}
        if projection not in makers:
            raise DeltaError(f"projection must be one of {', '.join(makers)}, not {projection!r}")
        self.d, self.D = d, D
        self.delta_theta = nn.Parameter(torch.zeros(d))
        self.register_buffer("delta_seed", torch.tensor(seed))
        self.projection = makers[projection](d, D, seed)
        self._kind, self._seed = projection, seed

    def _sync(self) -> None:
        """Rebuild ``P`` if a loaded delta brought another seed."""
        seed = int(self.delta_seed)
        if seed != self._seed:
            maker = {"fastfood": Fastfood, "dense": Dense}[self._kind]
            self.projection = maker(self.d, self.D, seed).to(self.delta_theta.device)
            self._seed = seed

    def offsets(self) -> dict[str, Tensor]:
        """``P theta_d``, cut into one tensor per reparameterised parameter."""
        self._sync()
        flat = self.projection(self.delta_theta)                                  # (D,)
        return {n: chunk.view(s) for n, s, chunk in
                zip(self.names, self.shapes, flat.split([math.prod(s) for s in self.shapes]))}

    def forward(self, *args, **kwargs):
        params = dict(self.model.named_parameters())
        moved = {n: params[n] + off for n, off in self.offsets().items()}
        return functional_call(self.model, moved, args, kwargs, strict=False, tie_weights=True)


def d_at(ds: list[int], scores: list[float], target: float) -> int | None:
    """The smallest ``d`` whose score reaches ``target`` (e.g. 0.9 x full fine-tuning: d90), or None."""
    for d, s in sorted(zip(ds, scores)):
        if s >= target:
            return d
    return None


__all__ = ["Dense", "Fastfood", "IntrinsicDimension", "d_at", "fwht"]
