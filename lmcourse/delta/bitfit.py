"""BitFit: train only the bias terms of a frozen model (specification-based delta tuning).

Taught in chapter 12 (Delta tuning), after Ben Zaken et al. (2022).

No module is added: BitFit *specifies* which of the backbone's own tensors train. With
``subset="all"`` every bias does (attention, feed-forward, LayerNorm); ``subset="paper"`` keeps
the two kinds Ben Zaken et al. found to carry most of the gain: the query bias ``b_q`` of every
attention layer and the bias ``b_m2`` of the second feed-forward linear.
"""
from __future__ import annotations

from torch import nn

from lmcourse.delta.core import DeltaError, freeze, matches

#: name patterns of the paper's subset (b_q and b_m2) in Hugging Face BERT / Llama and lmcourse models
PAPER_SUBSET = ("attention.self.query.bias", "re:.*(?<!attention\\.)output\\.dense\\.bias",   # HF BERT
                "q_proj.bias", "ffn.fc2.bias", "mlp.down_proj.bias", "mlp.c_proj.bias")


def bias_names(model: nn.Module) -> list[str]:
    """Names of every bias tensor (a parameter whose name ends with ``bias``)."""
    return [n for n, _ in model.named_parameters() if n.split(".")[-1] == "bias"]


def bitfit(model: nn.Module, subset: str = "all") -> list[str]:
    """Freeze ``model`` except its biases (``"all"``) or the paper's ``b_q`` and ``b_m2`` (``"paper"``).

    Returns the names made trainable; a model without biases (Llama, SmolLM2) is an error.
    Taught in chapter 12 (Delta tuning).
    """
    if subset not in ("all", "paper"):
        raise DeltaError(f"subset must be 'all' or 'paper', not {subset!r}")
    names = bias_names(model)
    if subset == "paper":
        names = [n for n in names if any(matches(n, p) for p in PAPER_SUBSET)]
    if not names:
        raise DeltaError(f"the model has no {'bias' if subset == 'all' else 'b_q / b_m2 bias'} parameters "
                         "for BitFit to train (Llama-style models such as SmolLM2 have none)")
    freeze(model)
    params = dict(model.named_parameters())
    for n in names:
        params[n].requires_grad_(True)
    return names


__all__ = ["PAPER_SUBSET", "bias_names", "bitfit"]
