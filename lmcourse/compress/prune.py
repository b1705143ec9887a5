"""Pruning: unstructured (weight magnitude) and structured (attention heads by importance, whole layers).

Taught in chapter 20 (Model compression).

    magnitude     zero the fraction s of each matrix's weights with the smallest |w|
    heads         importance I_h = |dL/d xi_h| (Michel et al.), xi_h a gate on head h's output; a pruned
                  head's columns of the output projection are zero (the same function as removing it)
    layers        keep a subset of the encoder's blocks (dropping the top ones works well)
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from lmcourse.nn.attention import MultiHeadAttention


def prunable_linears(model: nn.Module, skip: tuple[str, ...] = ("head", "pooler")) -> dict[str, nn.Linear]:
    """The model's ``nn.Linear`` layers by name, leaving out names that contain a ``skip`` word."""
    return {n: m for n, m in model.named_modules()
            if isinstance(m, nn.Linear) and not any(s in n.split(".") for s in skip)}


def magnitude_prune(model: nn.Module, sparsity: float, skip: tuple[str, ...] = ("head", "pooler")) -> nn.Module:
    """A copy of ``model`` with the smallest-|w| fraction ``sparsity`` of each Linear weight set to zero.

    Taught in chapter 20 (Model compression).
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    model = copy.deepcopy(model)
    with torch.no_grad():
        for lin in prunable_linears(model, skip).values():
            w = lin.weight
            k = int(sparsity * w.numel())
            if k == 0:
                continue
            threshold = w.abs().flatten().kthvalue(k).values
            w.mul_((w.abs() > threshold).to(w.dtype))
    return model


def sparsity(model: nn.Module, skip: tuple[str, ...] = ("head", "pooler")) -> float:
    """Fraction of exactly-zero weights in the prunable Linear layers."""
    lins = prunable_linears(model, skip).values()
    zeros = sum(int((m.weight == 0).sum()) for m in lins)
    return zeros / sum(m.weight.numel() for m in lins)


def attention_layers(model: nn.Module) -> list[MultiHeadAttention]:
    """The model's attention layers in order."""
    return [m for m in model.modules() if isinstance(m, MultiHeadAttention)]


def head_importance(model: nn.Module, loss_fn, batches) -> Tensor:
    """(L, H) importance |sum over batches of dL/d xi| of each head's gate xi (all gates at 1).

    ``loss_fn(model, batch)`` returns a scalar. Taught in chapter 20 (Model compression).
    """
    attns = attention_layers(model)
    if not attns:
        raise ValueError("the model has no MultiHeadAttention layers")
    gates = torch.ones(len(attns), attns[0].n_heads, requires_grad=True)
    hooks = []
    for i, a in enumerate(attns):
        def gate(mod, args, i=i, a=a):
            (x,) = args                                            # (B, T, C): the heads, concatenated
            b, t, c = x.shape
            return (x.view(b, t, a.n_heads, a.d_head) * gates[i][:, None]).view(b, t, c)
        hooks.append(a.out_proj.register_forward_pre_hook(gate))
    try:
        grads = torch.zeros_like(gates)
        for batch in batches:
            (g,) = torch.autograd.grad(loss_fn(model, batch), gates)
            grads += g
    finally:
        for h in hooks:
            h.remove()
    return grads.abs()


def prune_heads(model: nn.Module, heads: dict[int, list[int]]) -> nn.Module:
    """A copy of ``model`` with heads ``{layer: [head, ...]}`` (0-based) removed: their output columns zeroed.

    Taught in chapter 20 (Model compression).
    """
    model = copy.deepcopy(model)
    attns = attention_layers(model)
    with torch.no_grad():
        for layer, hs in heads.items():
            if not 0 <= layer < len(attns):
                raise ValueError(f"layer {layer} does not exist: the model has {len(attns)} attention layers")
            a = attns[layer]
            for h in hs:
                if not 0 <= h < a.n_heads:
                    raise ValueError(f"head {h} does not exist: layer {layer} has {a.n_heads} heads")
                a.out_proj.weight[:, h * a.d_head:(h + 1) * a.d_head] = 0.0
    return model


def least_important_heads(importance: Tensor, fraction: float) -> dict[int, list[int]]:
    """The ``fraction`` of heads with the lowest importance, as {layer: [heads]} (global ranking)."""
    n = int(round(fraction * importance.numel()))
    order = importance.flatten().argsort()[:n].tolist()
    out: dict[int, list[int]] = {}
    for i in order:
        out.setdefault(i // importance.shape[1], []).append(i % importance.shape[1])
    return out


def drop_layers(clf: nn.Module, keep: list[int]) -> nn.Module:
    """A copy of a ``BertClassifier`` whose encoder keeps only the blocks ``keep`` (0-based, in order).

    Taught in chapter 20 (Model compression).
    """
    layers = clf.bert.encoder.layers
    if not keep or any(not 0 <= i < len(layers) for i in keep):
        raise ValueError(f"keep must name some of the layers 0..{len(layers) - 1}, got {keep}")
    clf = copy.deepcopy(clf)
    clf.bert.encoder.layers = nn.ModuleList(clf.bert.encoder.layers[i] for i in keep)
    clf.bert.config.num_hidden_layers = len(keep)
    return clf


__all__ = ["attention_layers", "drop_layers", "head_importance", "least_important_heads", "magnitude_prune",
           "prunable_linears", "prune_heads", "sparsity"]
