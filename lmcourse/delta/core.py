"""Delta tuning's common machinery: freeze, count, find target modules, save and load only the delta.

Taught in chapter 12 (Delta tuning).

A *delta* is the small set of tensors a method trains while the pretrained backbone stays
fixed. Every delta module of ``lmcourse.delta`` registers its tensors under a name that has a
part starting with ``delta_`` (``...query.delta_lora.A``), so ``delta_state_dict`` finds them in
any model; a specification-based method (BitFit) trains some of the backbone's own tensors,
which are found because they are the trainable ones. ``save_delta`` writes only those tensors
to a safetensors file, with a fingerprint of the base model (the names and shapes of its
other tensors) in the metadata: ``load_delta`` refuses a delta saved for another model.
"""
from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from lmcourse.errors import LMCourseError

DELTA_PREFIX = "delta_"
FORMAT = "lmcourse.delta/1"


class DeltaError(LMCourseError, ValueError):
    """Bad input to a delta-tuning method (a target that matches nothing, a rank too large, ...)."""


def freeze(model: nn.Module) -> nn.Module:
    """Stop gradients for every parameter of ``model``; return it. Taught in chapter 12 (Delta tuning)."""
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _unique_parameters(model: nn.Module) -> list[nn.Parameter]:
    seen, out = set(), []
    for p in model.parameters():           # tied weights (an LM head tied to its embedding) count once
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


def count_parameters(model: nn.Module) -> dict:
    """``{"trainable": int, "total": int, "percent": float}`` (tied tensors counted once).

    Taught in chapter 12 (Delta tuning).
    """
    params = _unique_parameters(model)
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    return {"trainable": trainable, "total": total, "percent": 100.0 * trainable / max(total, 1)}


def is_delta_name(name: str) -> bool:
    """True when a state-dict name belongs to a delta module (a part of it starts with ``delta_``)."""
    return any(part.startswith(DELTA_PREFIX) for part in name.split("."))


def delta_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """Only the delta's tensors: those under a ``delta_`` name, plus every trainable backbone tensor.

    Taught in chapter 12 (Delta tuning).
    """
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    out = {}
    for name, t in model.state_dict(keep_vars=True).items():
        if is_delta_name(name) or id(t) in trainable:
            out[name] = t.detach()
    return out


def fingerprint(model: nn.Module) -> str:
    """A hash of the names and shapes of the model's non-delta tensors: which base model a delta belongs to."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        if not is_delta_name(name):
            h.update(f"{name}:{tuple(t.shape)};".encode())
    return h.hexdigest()[:32]


def _check_not_merged(model: nn.Module, what: str) -> None:
    merged = [n for n, m in model.named_modules() if getattr(m, "merged", False)]
    if merged:
        raise DeltaError(f"cannot {what} while deltas are merged into the weights ({merged[0]}, ...): "
                         "call unmerge() first")


def save_delta(model: nn.Module, path: str | os.PathLike, overwrite: bool = False) -> dict[str, int]:
    """Write only the delta to a safetensors file; return ``{"tensors": n, "bytes": size of the file}``.

    Refuses to overwrite an existing file unless ``overwrite=True``. Taught in chapter 12 (Delta tuning).
    """
    from safetensors.torch import save_file
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise DeltaError(f"{path} exists: pass overwrite=True to replace it")
    _check_not_merged(model, "save a delta")
    sd = delta_state_dict(model)
    if not sd:
        raise DeltaError("the model has no delta to save (no delta_ modules and no trainable tensors)")
    tensors = {k: v.contiguous().cpu().clone() for k, v in sd.items()}    # clone: shared storages are refused
    save_file(tensors, path, metadata={"format": FORMAT, "fingerprint": fingerprint(model)})
    return {"tensors": len(tensors), "bytes": os.path.getsize(path)}


def load_delta(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Copy a saved delta into ``model`` (which carries the same delta modules); return the model.

    Refuses a file made for another base model (fingerprint), or with other delta tensors.
    Taught in chapter 12 (Delta tuning).
    """
    from safetensors import safe_open
    from safetensors.torch import load_file
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DeltaError(f"no delta file at {path}")
    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != FORMAT:
        raise DeltaError(f"{path} is not an lmcourse delta file (format {meta.get('format')!r})")
    if meta.get("fingerprint") != fingerprint(model):
        raise DeltaError(f"{path} was saved for another base model (fingerprint {meta.get('fingerprint')} "
                         f"!= {fingerprint(model)} of this one)")
    _check_not_merged(model, "load a delta")
    saved, own = load_file(path), delta_state_dict(model)
    missing, unexpected = sorted(set(own) - set(saved)), sorted(set(saved) - set(own))
    if missing or unexpected:
        raise DeltaError(f"the delta in {path} does not fit this model's delta modules: "
                         f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
                         f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}")
    with torch.no_grad():
        for k, t in own.items():
            if t.shape != saved[k].shape:
                raise DeltaError(f"{k}: saved shape {tuple(saved[k].shape)} != model's {tuple(t.shape)}")
            t.copy_(saved[k])
    return model


# --------------------------------------------------------------------------- finding target modules

def _linear_types() -> tuple[type, ...]:
    types: tuple[type, ...] = (nn.Linear,)
    try:
        from transformers.pytorch_utils import Conv1D   # GPT-2's "linear" with a transposed weight
        types += (Conv1D,)
    except ImportError:
        pass
    return types


def linear_dims(module: nn.Module) -> tuple[int, int]:
    """(in_features, out_features) of an ``nn.Linear`` or a transformers ``Conv1D``."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    w = module.weight                        # Conv1D: weight (in, out)
    return w.shape[0], w.shape[1]


def matches(name: str, target: str) -> bool:
    """peft's rule: a target matches a module whose full name equals it or ends with ``.target``;
    a target starting with ``re:`` is a regular expression matched against the full name."""
    if target.startswith("re:"):
        return re.fullmatch(target[3:], name) is not None
    return name == target or name.endswith("." + target)


def find_modules(model: nn.Module, targets: str | Iterable[str],
                 types: tuple[type, ...] | None = None) -> list[tuple[str, nn.Module]]:
    """The (name, module) pairs whose names match any of ``targets`` (and are of ``types``, linear by default).

    A target that matches nothing is an error naming the module names that exist.
    Taught in chapter 12 (Delta tuning).
    """
    types = _linear_types() if types is None else types
    targets = [targets] if isinstance(targets, str) else list(targets)
    if not targets:
        raise DeltaError("no target modules given")
    named = [(n, m) for n, m in model.named_modules() if n and not is_delta_name(n)]
    found = []
    for t in targets:
        hits = [(n, m) for n, m in named if matches(n, t) and isinstance(m, types)]
        if not hits:
            kinds = ", ".join(x.__name__ for x in types)
            suffixes = sorted({n.split(".")[-1] for n, m in named if isinstance(m, types)})
            raise DeltaError(f"target {t!r} matches no {kinds} module; the {kinds} modules are named "
                             f"(last part): {', '.join(suffixes) or 'none'}")
        found += [h for h in hits if all(h[0] != f[0] for f in found)]
    return found


def remove_deltas(model: nn.Module, kind: str | None = None) -> nn.Module:
    """Detach the hook-based delta modules (adapters, LoRA; only those of ``kind`` if given); return the model."""
    for name, m in list(model.named_modules()):
        for child_name, child in list(m.named_children()):
            if (child_name.startswith(DELTA_PREFIX) and hasattr(child, "detach_hook")
                    and (kind is None or getattr(child, "kind", None) == kind)):
                if getattr(child, "merged", False):
                    child.unmerge()
                child.detach_hook()
                delattr(m, child_name)
    return model


class HookDelta(nn.Module):
    """Base of the deltas that attach to a host module with a forward hook (adapters, LoRA).

    The host keeps its own parameter names (so the base model's state dict is unchanged);
    the delta lives as a child ``delta_<kind>`` of the host, and the hook adds its output:
    ``out = host(x) + gate * delta(x, out)``. ``gate`` is None (plain 1) except under structure search.
    """

    kind = "delta"

    def __init__(self):
        super().__init__()
        self.gate: nn.Parameter | None = None
        self._handle = None

    def attach(self, host: nn.Module) -> "HookDelta":
        name = DELTA_PREFIX + self.kind
        if hasattr(host, name):
            raise DeltaError(f"{type(host).__name__} already carries a {name} module")
        host.add_module(name, self)
        self._handle = host.register_forward_hook(self._hook, with_kwargs=True)
        return self

    def detach_hook(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def update(self, x: Tensor, out: Tensor) -> Tensor:
        """The change ``delta h`` of the host's output, from its input ``x`` and output ``out``."""
        raise NotImplementedError

    def _hook(self, module, args, kwargs, out):
        x = args[0] if args else next(v for v in kwargs.values() if isinstance(v, Tensor))
        first = out[0] if isinstance(out, tuple) else out
        dh = self.update(x, first)
        if dh is None:
            return out
        if self.gate is not None:
            dh = self.gate * dh
        new = first + dh
        return (new,) + tuple(out[1:]) if isinstance(out, tuple) else new


def attach(model: nn.Module, targets, make, types=None) -> dict[str, HookDelta]:
    """Attach ``make(name, module)`` (a HookDelta) to every module matching ``targets``; return them by name."""
    out = {}
    for name, module in find_modules(model, targets, types):
        out[name] = make(name, module).attach(module)
    return out


__all__ = ["DELTA_PREFIX", "DeltaError", "HookDelta", "attach", "count_parameters", "delta_state_dict",
           "find_modules", "fingerprint", "freeze", "is_delta_name", "linear_dims", "load_delta", "matches",
           "remove_deltas", "save_delta"]
