"""Mixture of Experts: a feed-forward layer made of E expert FFNs, each token routed to k of them.

Taught in chapter 8 (Scaling up). For each token x a router (one linear layer)
gives probabilities p(x) = softmax(W_r x) over the experts; the token goes to its
top-k experts and the output is their weighted sum (weights renormalised over the k):

    y = sum_{i in topk(p(x))} g_i(x) FFN_i(x),   g_i = p_i / sum_{j in topk} p_j

Only k of the E FFNs run per token: E times the parameters for k times the compute.
Left alone, the router collapses onto a few experts; the load-balancing loss
(Switch Transformer, Fedus et al. 2021, as Mixtral in ``transformers``) pushes the
fraction of tokens sent to each expert, f_i, and the mean router probability, P_i,
towards uniform:

    L_balance = E * sum_i f_i P_i      (= k when perfectly balanced; f sums to k)

``capacity_factor`` caps each expert at ceil(factor * k * T / E) tokens per batch;
assignments beyond it are dropped (the token keeps only its residual path).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmcourse.nn import FeedForward


@dataclass
class RouterOutput:
    """What a routing step decided, for the loss and for plots."""
    probs: Tensor          # (N, E) router probabilities
    experts: Tensor        # (N, k) chosen experts
    weights: Tensor        # (N, k) gate weights (renormalised over the k)
    kept: Tensor           # (N, k) False where the expert was over capacity
    balance_loss: Tensor   # scalar


def load_balancing_loss(probs: Tensor, experts: Tensor, n_experts: int) -> Tensor:
    """E * sum_i f_i P_i with f_i the fraction of tokens routed to expert i and P_i its mean probability.

    probs: (N, E); experts: (N, k). Taught in chapter 8 (Scaling up).
    """
    routed = F.one_hot(experts, n_experts).sum(1).float()      # (N, E): 1 where token n goes to expert i
    f = routed.mean(0)                                          # (E,) sums to k
    p = probs.mean(0)                                           # (E,) sums to 1
    return n_experts * (f * p).sum()


class MoEFeedForward(nn.Module):
    """A drop-in replacement for ``lmcourse.nn.FeedForward``: E experts, a router, top-k gating.

    ``forward(x)`` returns y with x's shape and stores the last ``RouterOutput`` in
    ``self.last`` (its ``balance_loss`` is added to the training loss by the caller).

    Taught in chapter 8 (Scaling up).
    """

    def __init__(self, d_model: int, d_ff: int, n_experts: int = 4, top_k: int = 2, activation: str = "gelu",
                 capacity_factor: float | None = None, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if not 1 <= top_k <= n_experts:
            raise ValueError(f"top_k must be between 1 and n_experts={n_experts}, got {top_k}")
        if capacity_factor is not None and capacity_factor <= 0:
            raise ValueError(f"capacity_factor must be positive, got {capacity_factor}")
        self.n_experts, self.top_k, self.capacity_factor = n_experts, top_k, capacity_factor
        self.router = nn.Linear(d_model, n_experts, bias=False)
        self.experts = nn.ModuleList(FeedForward(d_model, d_ff, activation=activation, dropout=dropout, bias=bias)
                                     for _ in range(n_experts))
        self.last: RouterOutput | None = None

    def route(self, x: Tensor) -> RouterOutput:
        """x: (N, C) -> the routing decision for each of the N tokens."""
        probs = F.softmax(self.router(x), dim=-1)                          # (N, E)
        top_p, experts = probs.topk(self.top_k, dim=-1)                    # (N, k)
        weights = top_p / top_p.sum(-1, keepdim=True)                      # renormalise over the k chosen
        kept = torch.ones_like(experts, dtype=torch.bool)
        if self.capacity_factor is not None:
            cap = self.capacity(x.shape[0])
            onehot = F.one_hot(experts.T.reshape(-1), self.n_experts)      # (k*N, E), first choices first
            position = (onehot.cumsum(0) * onehot).sum(-1) - 1             # rank of the assignment at its expert
            kept = (position < cap).reshape(self.top_k, -1).T              # (N, k)
        return RouterOutput(probs, experts, weights, kept, load_balancing_loss(probs, experts, self.n_experts))

    def capacity(self, n_tokens: int) -> int:
        """Most tokens one expert takes per batch: ceil(capacity_factor * k * N / E)."""
        if self.capacity_factor is None:
            return n_tokens
        return math.ceil(self.capacity_factor * self.top_k * n_tokens / self.n_experts)

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])                                    # (N, C)
        r = self.route(flat)
        self.last = r
        y = torch.zeros_like(flat)
        gate = r.weights * r.kept                                          # dropped assignments weigh 0
        for e, expert in enumerate(self.experts):
            token, slot = torch.where((r.experts == e) & r.kept)            # the tokens this expert serves
            if token.numel():
                y.index_add_(0, token, gate[token, slot, None] * expert(flat[token]))
        return y.reshape(shape)

    def active_params(self) -> int:
        """Parameters used per token: the router and k experts."""
        per_expert = sum(p.numel() for p in self.experts[0].parameters())
        return self.router.weight.numel() + self.top_k * per_expert


def moe_balance_loss(model: nn.Module) -> Tensor:
    """Sum of the balance losses of every ``MoEFeedForward`` in a model (after a forward pass).

    Taught in chapter 8 (Scaling up).
    """
    losses = [m.last.balance_loss for m in model.modules() if isinstance(m, MoEFeedForward) and m.last is not None]
    return torch.stack(losses).sum() if losses else torch.zeros(())


def moe_gpt(config, n_experts: int = 4, top_k: int = 2, capacity_factor: float | None = None):
    """A ``GPT`` whose FFNs are ``MoEFeedForward`` layers (same attention, same widths per expert).

    Taught in chapter 8 (Scaling up).
    """
    from lmcourse.models.gpt import GPT
    model = GPT(config)
    for block in model.blocks:
        block.ffn = MoEFeedForward(config.n_embd, 4 * config.n_embd, n_experts, top_k, activation=config.activation,
                                   capacity_factor=capacity_factor, dropout=config.dropout, bias=config.bias)
        for e in block.ffn.experts:
            nn.init.normal_(e.fc1.weight, std=0.02)
            nn.init.normal_(e.fc2.weight, std=0.02 / math.sqrt(2 * config.n_layer))
            nn.init.zeros_(e.fc1.bias)
            nn.init.zeros_(e.fc2.bias)
        nn.init.normal_(block.ffn.router.weight, std=0.02)
    return model


__all__ = ["MoEFeedForward", "RouterOutput", "load_balancing_loss", "moe_balance_loss", "moe_gpt"]
