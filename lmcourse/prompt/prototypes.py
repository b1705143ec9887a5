"""Virtual tokens as label words: class prototypes learned in the hidden space at the answer slot.

Taught in chapter 11 (Verbalizers and prompt tuning).

A manual verbalizer reads the model's output distribution at the answer slot through a
few chosen words. Two learned alternatives skip choosing words:

* ``VirtualLabelTokens`` (WARP, Hambardzumyan et al. 2021): one trainable output
  embedding per class, a "virtual label word", scored exactly like a vocabulary word
  (a dot product with the hidden state that feeds the LM head), initialised at the
  output embedding of a real label word (or its mean over several words).
* ``PrototypeVerbalizer`` (ProtoVerb, Cui et al. 2022): project the hidden state into a
  small space and compare it with one learned **prototype** per class by cosine
  similarity; trained with a contrastive loss that pulls each example to its class's
  prototype (instance-prototype) and to the other examples of its class
  (instance-instance).

Both read the hidden state at the answer slot, ``answer_states``: the vector the LM head
turns into next-token logits (after the final norm), taken with a forward hook on the
model's output embedding so any Hugging Face causal LM (or a soft-prompt wrapper around
one) works. With the model frozen these states are computed once and cached; training a
prototype is then a few thousand multiply-adds per example.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmcourse.errors import LMCourseError


class PrototypeError(LMCourseError, ValueError):
    """Bad input to a learned verbalizer (shapes, class counts)."""


def _output_embedding(model: nn.Module) -> nn.Module:
    inner = getattr(model, "model", None)                        # lmcourse.prompt.soft wrappers keep .model
    for m in (model, inner):
        if m is not None and hasattr(m, "get_output_embeddings") and m.get_output_embeddings() is not None:
            return m.get_output_embeddings()
    raise PrototypeError("answer_states needs a causal LM with get_output_embeddings() (the LM head)")


def answer_states(scorer, prompts: list[str], batch_size: int = 16) -> Tensor:
    """(N, H) hidden states at the answer slot of a causal scorer's prompts (what the LM head reads).

    Uses the scorer's own encoding (``scorer.split``, its tokenizer), so the slot is the same
    position where ``scorer.word_logprobs`` reads a label word's first token. Differentiable
    (wrap in ``torch.no_grad()`` to cache states of a frozen model). Taught in chapter 11.
    """
    if getattr(scorer, "kind", None) != "causal":
        raise PrototypeError(f"answer_states reads the last position: it needs a causal scorer, not "
                             f"{getattr(scorer, 'kind', type(scorer).__name__)!r}")
    if isinstance(prompts, str) or not prompts:
        raise PrototypeError("prompts must be a non-empty list of strings")
    scorer._check(prompts, ["x"])
    head = _output_embedding(scorer.model)
    seqs = [scorer.tok.encode(scorer.split(p)[0], special=True) for p in prompts]
    out = []
    for start in range(0, len(seqs), batch_size):
        chunk = seqs[start:start + batch_size]
        t = max(len(s) for s in chunk)
        ids = torch.full((len(chunk), t), scorer.tok.pad_id, dtype=torch.long)
        mask = torch.zeros(len(chunk), t, dtype=torch.long)
        for i, s in enumerate(chunk):
            ids[i, :len(s)], mask[i, :len(s)] = torch.tensor(s), 1     # right padding: the causal mask keeps
        seen: list[Tensor] = []                                          # real positions exact
        hook = head.register_forward_hook(lambda m, args, _out: seen.append(args[0]))
        try:
            scorer.model(input_ids=ids.to(scorer.device), attention_mask=mask.to(scorer.device))
        finally:
            hook.remove()
        hidden = seen[-1]                                                # (B, T, H)
        last = torch.tensor([len(s) - 1 for s in chunk], device=hidden.device)
        out.append(hidden[torch.arange(len(chunk), device=hidden.device), last])   # (B, H)
    return torch.cat(out)


class VirtualLabelTokens(nn.Module):
    """WARP's verbalizer: one trainable output embedding per class; logits = h @ E^T (+ bias).

    ``init`` (C, H): e.g. the LM head's rows of the label words, so training starts from the
    manual verbalizer. Taught in chapter 11.
    """

    def __init__(self, init: Tensor, bias: bool = True):
        super().__init__()
        if init.ndim != 2 or init.shape[0] < 2:
            raise PrototypeError(f"init must be (classes >= 2, hidden), not {tuple(init.shape)}")
        self.embedding = nn.Parameter(init.detach().clone().float())         # (C, H)
        self.bias = nn.Parameter(torch.zeros(init.shape[0])) if bias else None

    @classmethod
    def from_label_words(cls, lm_head_weight: Tensor, word_ids: list[list[int]], bias: bool = True) -> "VirtualLabelTokens":
        """Start each class at the mean LM-head row of its label words' first tokens."""
        if any(not ids for ids in word_ids):
            raise PrototypeError("every class needs at least one label-word token id")
        rows = torch.stack([lm_head_weight.detach()[ids].float().mean(0) for ids in word_ids])
        return cls(rows, bias)

    def forward(self, h: Tensor) -> Tensor:                                  # (B, H) -> (B, C)
        if h.ndim != 2 or h.shape[1] != self.embedding.shape[1]:
            raise PrototypeError(f"hidden states must be (B, {self.embedding.shape[1]}), not {tuple(h.shape)}")
        logits = h.float() @ self.embedding.T
        return logits + self.bias if self.bias is not None else logits


class PrototypeVerbalizer(nn.Module):
    """ProtoVerb: project h to ``dim``, score = ``scale`` * cosine(projection, prototype_c). Taught in chapter 11.

    ``forward(h)`` (B, H) -> (B, C) logits; ``loss(h, y)`` = instance-prototype cross-entropy +
    ``instance_weight`` * supervised instance-instance contrastive loss (Cui et al. 2022, eq. 4-6).
    """

    def __init__(self, hidden_size: int, n_classes: int, dim: int = 128, scale: float = 10.0,
                 instance_weight: float = 1.0, seed: int = 0):
        super().__init__()
        if n_classes < 2 or hidden_size < 1 or dim < 1:
            raise PrototypeError(f"need n_classes >= 2, hidden_size >= 1, dim >= 1 "
                                 f"(got {n_classes}, {hidden_size}, {dim})")
        g = torch.Generator().manual_seed(seed)
        self.proj = nn.Linear(hidden_size, dim)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(dim, hidden_size, generator=g) / hidden_size ** 0.5)
            self.proj.bias.zero_()
        self.prototypes = nn.Parameter(torch.randn(n_classes, dim, generator=g))      # (C, d)
        self.scale, self.instance_weight = scale, instance_weight
        self.register_buffer("mean", torch.zeros(hidden_size))
        self.register_buffer("std", torch.ones(hidden_size))

    def standardize_with(self, h: Tensor) -> "PrototypeVerbalizer":
        """Fix the per-feature mean/std used to standardise hidden states (from the training states)."""
        self.mean.copy_(h.detach().float().mean(0))
        self.std.copy_(h.detach().float().std(0, unbiased=False).clamp_min(1e-6))
        return self

    def embed(self, h: Tensor) -> Tensor:                                    # (B, H) -> (B, d), unit norm
        if h.ndim != 2 or h.shape[1] != self.proj.in_features:
            raise PrototypeError(f"hidden states must be (B, {self.proj.in_features}), not {tuple(h.shape)}")
        return F.normalize(self.proj((h.float() - self.mean) / self.std), dim=-1)

    def forward(self, h: Tensor) -> Tensor:                                  # (B, C)
        return self.scale * self.embed(h) @ F.normalize(self.prototypes, dim=-1).T

    def loss(self, h: Tensor, y: Tensor) -> Tensor:
        if y.shape != (h.shape[0],):
            raise PrototypeError(f"labels must be (B,) = ({h.shape[0]},), not {tuple(y.shape)}")
        if int(y.max()) >= self.prototypes.shape[0] or int(y.min()) < 0:
            raise PrototypeError(f"labels must lie in 0..{self.prototypes.shape[0] - 1}")
        z = self.embed(h)                                                    # (B, d)
        proto = F.cross_entropy(self.scale * z @ F.normalize(self.prototypes, dim=-1).T, y)
        if self.instance_weight == 0 or h.shape[0] < 2:
            return proto
        sim = self.scale * z @ z.T                                           # (B, B)
        eye = torch.eye(len(y), dtype=torch.bool, device=z.device)
        same = (y[:, None] == y[None, :]) & ~eye
        logp = sim.masked_fill(eye, float("-inf")).log_softmax(dim=1)
        has = same.any(1)
        if not has.any():
            return proto
        inst = -(logp.masked_fill(~same, 0.0).sum(1)[has] / same.sum(1)[has]).mean()
        return proto + self.instance_weight * inst


__all__ = ["PrototypeError", "PrototypeVerbalizer", "VirtualLabelTokens", "answer_states"]
