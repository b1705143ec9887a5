"""Run profiles, device choice, seeding and thread count: the one setup every chapter calls.

Taught in the Setup appendix; every chapter's second cell is

    P = lmcourse.setup(profile, device, seed)

Profiles
--------
``smoke``  CPU-sized: every chapter runs in under 2 minutes on 2 cores. The stored
           outputs of the notebooks are those of this profile on a CPU.
``full``   GPU-sized: bigger corpora, models and step counts.

A chapter picks its own sizes with ``P.pick(smoke=..., full=...)`` so that the two
profiles' numbers sit side by side in the chapter's code.
"""
from __future__ import annotations

import inspect
import os
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lmcourse.errors import ConfigError

PROFILES = ("smoke", "full")

#: CPU threads per profile, unless ``LMCOURSE_THREADS`` says otherwise. The smoke profile
#: (whose outputs the chapters store) uses one fixed thread: reductions then run in one
#: order, so outputs reproduce bit for bit, and two chapters checked side by side on a
#: 2-core machine do not fight over the cores (the course's small models are faster on
#: one thread than on two shared ones). ``None`` keeps torch's default (all cores).
DEFAULT_THREADS = {"smoke": 1, "full": None}


@dataclass(frozen=True)
class Profile:
    """What ``setup`` returns: the profile's name, the device, the seed, and its sizes."""

    name: str
    device: torch.device
    seed: int
    threads: int
    sizes: dict[str, Any] = field(default_factory=dict)

    @property
    def is_smoke(self) -> bool:
        return self.name == "smoke"

    def pick(self, *, smoke: Any, full: Any) -> Any:
        """The value for this profile: ``P.pick(smoke=20_000, full=2_000_000)``."""
        return smoke if self.is_smoke else full

    def __getitem__(self, key: str) -> Any:
        if key not in self.sizes:
            raise ConfigError(f"profile {self.name!r} has no size {key!r}; known: {sorted(self.sizes)}")
        return self.sizes[key]


#: Shared sizes; chapters with needs of their own use ``Profile.pick``.
SIZES = {
    "smoke": {"max_tokens": 300_000, "train_steps": 300, "batch_size": 32, "eval_batches": 10},
    "full": {"max_tokens": None, "train_steps": 5_000, "batch_size": 64, "eval_batches": 100},
}


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` means CUDA when present, else the CPU; anything else must exist here."""
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise ConfigError(f"device must be a string such as 'auto', 'cpu' or 'cuda', not {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ConfigError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but this machine has no CUDA GPU (use 'cpu' or 'auto')")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"device type {dev.type!r} is not supported by the course: use 'cpu' or 'cuda'")
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every GPU)."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"seed must be an int, not {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def setup(profile: str = "smoke", device: str | torch.device = "auto", seed: int = 0,
          threads: int | None = None) -> Profile:
    """Seed everything, fix the thread count, pick the device; return the profile.

    Every chapter calls this once, in the cell after its parameters cell.
    """
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")
    dev = pick_device(device)
    if threads is None and "LMCOURSE_THREADS" in os.environ:
        env = os.environ["LMCOURSE_THREADS"]
        try:
            threads = int(env)
        except ValueError:
            raise ConfigError(f"LMCOURSE_THREADS must be a whole number, not {env!r}") from None
    if threads is None:
        threads = DEFAULT_THREADS[profile] or os.cpu_count() or 1
    if threads < 1:
        raise ConfigError(f"threads must be at least 1, not {threads}")
    torch.set_num_threads(threads)
    seed_everything(seed)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    from lmcourse import plot  # the house style, for every chapter's figures

    plot.use_style()
    return Profile(name=profile, device=dev, seed=seed, threads=threads, sizes=dict(SIZES[profile]))


def show(obj: Any) -> None:
    """Display the source of a package object, so a chapter shows the code it runs.

    In a notebook the source is shown as a Markdown code block (the book highlights it
    when it builds, so the stored output is the plain source); elsewhere it is printed.
    """
    source = inspect.getsource(obj).rstrip()
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:  # pragma: no cover - IPython comes with the book extra
        print(source)
        return
    if get_ipython() is None:
        print(source)
    else:
        display(Markdown(f"```python\n{source}\n```"))
