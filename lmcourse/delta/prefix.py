"""Prefix-tuning (Li & Liang 2021): trainable keys and values prepended at every attention layer.

Taught in chapter 12 (Delta tuning); the same machinery is P-tuning v2 in chapter 10 (Templates).

A frozen model attends, at every layer, to ``n_prefix`` extra key/value pairs that
belong to no input token. The prefixes are the only trainable tensors. Li & Liang
found that optimising them directly is unstable, so during training they are
*reparameterised*: a small table ``P'`` (n_prefix, d) goes through an MLP to the full
prefix tensor; after training :meth:`PrefixTuning.drop_reparam` computes the prefixes
once and throws the MLP away (inference and saving need only the prefixes).

The layout of the parameters follows ``peft.PrefixTuningConfig`` exactly (so the
trainable counts and, with copied values, the logits agree; see
``tests/test_prompt_soft.py``):

* without reparameterisation: ``embedding`` (n_prefix, L * 2 * d_kv);
* with it: ``embedding`` (n_prefix, d_kv) -> Linear(d_kv, h) -> tanh -> Linear(h, L * 2 * d_kv),

where ``d_kv = n_kv_heads * head_dim`` (the model width, except for grouped-query
attention such as SmolLM2, where keys and values are narrower than the model). The flat
vector of one prefix position is laid out as (layer, key|value, head, head_dim).

The prefixes reach the model through its own key/value cache (a ``transformers``
``DynamicCache`` filled with the prefixes before the forward pass), so real tokens sit
at positions ``n_prefix ... n_prefix + T - 1``, as in ``peft``. Supported: Hugging Face
decoder-only models that take a cache (Llama/SmolLM2, GPT-2, ...) and ``BertModel``
(MiniLM). Encoder-decoder models are not supported (clear error).
"""
from __future__ import annotations

import inspect

import torch
from torch import Tensor, nn

from lmcourse.errors import LMCourseError


class PrefixError(LMCourseError, ValueError):
    """A model or an argument prefix-tuning cannot work with."""


def attention_geometry(model: nn.Module) -> dict[str, int]:
    """Layers, heads and widths of a Hugging Face model's attention, read from its config.

    Returns ``{"layers", "heads", "kv_heads", "head_dim", "d_kv", "hidden"}``.
    Taught in chapter 12 (Delta tuning).
    """
    cfg = getattr(model, "config", None)
    if cfg is None or not hasattr(cfg, "num_hidden_layers"):
        raise PrefixError(f"prefix-tuning needs a Hugging Face model with a config (num_hidden_layers, hidden_size, "
                          f"num_attention_heads); got {type(model).__name__}")
    if getattr(cfg, "is_encoder_decoder", False):
        raise PrefixError(f"prefix-tuning of encoder-decoder models ({type(model).__name__}) is not supported here; "
                          "use a decoder-only model (SmolLM2) or an encoder (MiniLM)")
    hidden, heads = cfg.hidden_size, cfg.num_attention_heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or hidden // heads
    return {"layers": cfg.num_hidden_layers, "heads": heads, "kv_heads": kv_heads, "head_dim": head_dim,
            "d_kv": kv_heads * head_dim, "hidden": hidden}


def _cache_kwarg(model: nn.Module) -> str:
    """The name under which ``model.forward`` takes a key/value cache (transformers 5 renamed it)."""
    params = inspect.signature(model.forward).parameters
    if "cache" in params:
        return "cache"
    if "past_key_values" in params:
        return "past_key_values"
    raise PrefixError(f"{type(model).__name__}.forward takes no key/value cache; prefix-tuning needs one")


class PrefixTuning(nn.Module):
    """Prefix-tuning of a frozen Hugging Face model: ``n_prefix`` trainable keys/values at every layer.

    ``reparam_hidden`` is the width of the reparameterising MLP (``None``: train the
    prefixes directly). ``forward(input_ids, attention_mask=None, **kw)`` returns the
    model's own output, its logits / hidden states aligned with ``input_ids``.

    Taught in chapter 12 (Delta tuning); P-tuning v2 in chapter 10 (Templates).
    """

    def __init__(self, model: nn.Module, n_prefix: int, reparam_hidden: int | None = 512):
        super().__init__()
        if n_prefix < 1:
            raise PrefixError(f"n_prefix must be >= 1, got {n_prefix}")
        if reparam_hidden is not None and reparam_hidden < 1:
            raise PrefixError(f"reparam_hidden must be >= 1 or None, got {reparam_hidden}")
        self.geometry = g = attention_geometry(model)
        self.cache_kwarg = _cache_kwarg(model)
        self.model = model
        for p in model.parameters():                              # the model stays frozen
            p.requires_grad_(False)
        self.n_prefix = n_prefix
        flat = g["layers"] * 2 * g["d_kv"]                        # one prefix position, all layers, keys and values
        if reparam_hidden is None:
            self.embedding = nn.Embedding(n_prefix, flat)        # the prefixes themselves
            self.transform = None
        else:                                                     # P = MLP(P'), Li & Liang 2021, section 4.3
            self.embedding = nn.Embedding(n_prefix, g["d_kv"])
            self.transform = nn.Sequential(nn.Linear(g["d_kv"], reparam_hidden), nn.Tanh(),
                                           nn.Linear(reparam_hidden, flat))
        dev = next(model.parameters()).device
        self.embedding.to(dev)
        if self.transform is not None:
            self.transform.to(dev)

    def flat_prefixes(self) -> Tensor:
        """(n_prefix, L * 2 * d_kv): the prefixes of all layers, through the MLP if there is one."""
        p = self.embedding.weight
        return p if self.transform is None else self.transform(p)

    def prefixes(self, batch_size: int) -> list[tuple[Tensor, Tensor]]:
        """Per layer ``(keys, values)``, each (B, n_kv_heads, n_prefix, head_dim)."""
        g = self.geometry
        dtype = next(self.model.parameters()).dtype
        flat = self.flat_prefixes().to(dtype)                                   # (n, L*2*d_kv)
        kv = flat.view(self.n_prefix, g["layers"] * 2, g["kv_heads"], g["head_dim"])
        kv = kv.permute(1, 2, 0, 3)                                             # (L*2, H_kv, n, hd)
        kv = kv.unsqueeze(1).expand(-1, batch_size, -1, -1, -1)                 # (L*2, B, H_kv, n, hd)
        return [(kv[2 * i], kv[2 * i + 1]) for i in range(g["layers"])]

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, **kw):
        from transformers import DynamicCache

        if input_ids.dim() != 2 or input_ids.shape[1] < 1:
            raise PrefixError(f"input_ids must be (B, T) with T >= 1, got shape {tuple(input_ids.shape)}")
        if "position_ids" in kw or "inputs_embeds" in kw or self.cache_kwarg in kw:
            raise PrefixError("PrefixTuning.forward takes input_ids (and attention_mask); position_ids, "
                              "inputs_embeds and a cache are set by the prefixes")
        B = input_ids.shape[0]
        if attention_mask is not None:                                           # the prefixes are always visible
            ones = torch.ones(B, self.n_prefix, dtype=attention_mask.dtype, device=attention_mask.device)
            attention_mask = torch.cat([ones, attention_mask], dim=1)            # (B, n + T)
        cache = DynamicCache([(k, v) for k, v in self.prefixes(B)])
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, **{self.cache_kwarg: cache}, **kw)
        return out

    @torch.no_grad()
    def drop_reparam(self) -> None:
        """Compute the prefixes once and drop the MLP (for inference and saving); the outputs do not change."""
        if self.transform is None:
            return
        flat = self.flat_prefixes().detach().clone()
        self.embedding = nn.Embedding.from_pretrained(flat, freeze=False)
        self.transform = None

    def extra_repr(self) -> str:
        g = self.geometry
        return (f"n_prefix={self.n_prefix}, layers={g['layers']}, d_kv={g['d_kv']}, "
                f"reparam={'no' if self.transform is None else self.transform[0].out_features}")
