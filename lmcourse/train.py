"""The course's one training loop: every chapter that trains a model calls ``train``.

    history = train(model, batches, loss_fn, optimizer, steps=300, eval_fn=..., eval_every=50)

``batches`` is any iterable (re-iterated when it runs out); ``loss_fn(model, batch)``
returns a scalar loss; ``eval_fn(model)`` returns a dict of metrics. The loop keeps a
``History`` of every metric with the step it was taken at, shows a tqdm bar when
asked (off in notebooks by default: progress bars write to stderr, which the stored
outputs must not hold), and stops with a clear error on a non-finite loss.
"""
from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm import tqdm  # the plain bar: tqdm.auto warns in notebooks without ipywidgets

from lmcourse.errors import LMCourseError


class TrainingDiverged(LMCourseError, FloatingPointError):
    """The loss became NaN or infinite."""


@dataclass
class History:
    """Metric name -> list of (step, value)."""

    metrics: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    def log(self, step: int, **values: float) -> None:
        for name, value in values.items():
            self.metrics.setdefault(name, []).append((step, float(value)))

    def steps(self, name: str) -> list[int]:
        return [s for s, _ in self[name]]

    def values(self, name: str) -> list[float]:
        return [v for _, v in self[name]]

    def last(self, name: str) -> float:
        return self[name][-1][1]

    def __getitem__(self, name: str) -> list[tuple[int, float]]:
        if name not in self.metrics:
            raise KeyError(f"no metric {name!r} was logged; logged: {sorted(self.metrics)}")
        return self.metrics[name]

    def __contains__(self, name: str) -> bool:
        return name in self.metrics


def _show_progress(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    return os.environ.get("LMCOURSE_PROGRESS", "0") == "1"


def train(model: torch.nn.Module, batches: Iterable[Any],
          loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor],
          optimizer: torch.optim.Optimizer, steps: int, *,
          eval_fn: Callable[[torch.nn.Module], dict[str, float]] | None = None,
          eval_every: int = 0, scheduler: Any | None = None, clip_grad: float | None = None,
          log_every: int = 1, progress: bool | None = None, history: History | None = None) -> History:
    """Train for ``steps`` optimizer steps; return the metric history.

    Logged: ``loss`` (training loss, every ``log_every`` steps), ``lr``, and whatever
    ``eval_fn`` returns, every ``eval_every`` steps and after the last step (the model
    is put in eval mode and no gradients are kept while it runs).
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, not {steps}")
    history = history if history is not None else History()
    start = history.metrics.get("loss", [(0, 0.0)])[-1][0] if "loss" in history else 0
    stream = itertools.chain.from_iterable(itertools.repeat(batches))
    bar = tqdm(total=steps, disable=not _show_progress(progress), leave=False)
    model.train()
    for i, batch in zip(range(1, steps + 1), stream):
        loss = loss_fn(model, batch)
        if not torch.isfinite(loss):
            bar.close()
            raise TrainingDiverged(f"loss became {loss.item()} at step {start + i}: lower the learning rate")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        step = start + i
        if i % log_every == 0 or i == steps:
            history.log(step, loss=loss.item(), lr=optimizer.param_groups[0]["lr"])
        if eval_fn is not None and ((eval_every and i % eval_every == 0) or i == steps):
            history.log(step, **evaluate(model, eval_fn))
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4g}")
    bar.close()
    return history


def evaluate(model: torch.nn.Module, eval_fn: Callable[[torch.nn.Module], dict[str, float]]) -> dict[str, float]:
    """Run ``eval_fn`` in eval mode without gradients; restore the previous mode."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        metrics = eval_fn(model)
    model.train(was_training)
    bad = {k: v for k, v in metrics.items() if not math.isfinite(float(v))}
    if bad:
        raise TrainingDiverged(f"evaluation gave non-finite metrics: {bad}")
    return {k: float(v) for k, v in metrics.items()}
