"""GPT: a decoder-only Transformer language model (GPT-2 layout), trained to predict the next token.

Taught in chapter 7 (Pretrained language models). Built from the pre-LN
``lmcourse.nn.EncoderBlock`` run with a causal mask (masked self-attention, no
cross-attention), as in nanoGPT:

    h_0 = W_e[x] + W_p[0..T-1]                      token + learned position embeddings
    h_l = Block(h_{l-1}),  l = 1..L                  x = x + MHA(LN(x), causal);  x = x + FFN(LN(x))
    P(x_{t+1} | x_{<=t}) = softmax(LN(h_L) W_e^T)    the output layer is tied to the token embedding

The parameter names follow the blocks of chapter 6 (``self_attn.q_proj``, ``ffn.fc1``,
``norm1``); ``lmcourse.models.hf`` copies weights from and to ``GPT2LMHeadModel``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmcourse.errors import LMCourseError
from lmcourse.nn import EncoderBlock, LearnedPositionalEmbedding


class TokenError(LMCourseError, ValueError):
    """Token ids outside the vocabulary, or a sequence longer than the model's context."""


def check_ids(idx: Tensor, vocab_size: int, max_len: int | None = None, what: str = "input ids") -> None:
    """Clear errors for the bad inputs of a token model: wrong dtype, ids outside [0, vocab), too long."""
    if not isinstance(idx, Tensor) or idx.dtype not in (torch.long, torch.int, torch.int32, torch.int16):
        raise TokenError(f"{what} must be an integer tensor of token ids, got "
                         f"{getattr(idx, 'dtype', type(idx).__name__)}")
    if idx.dim() != 2:
        raise TokenError(f"{what} must be (B, T), got shape {tuple(idx.shape)}")
    if idx.shape[1] == 0:
        raise TokenError(f"{what} are empty (T = 0): give at least one token")
    # reading the ids' range waits for the device; under torch.compile it would break the graph, so it is
    # left out there (an out-of-range id then fails inside the embedding, less clearly)
    if idx.numel() and not torch.compiler.is_compiling() and (int(idx.min()) < 0 or int(idx.max()) >= vocab_size):
        bad = idx[(idx < 0) | (idx >= vocab_size)][:5].tolist()
        raise TokenError(f"{what} contain ids outside the vocabulary [0, {vocab_size}): {bad}")
    if max_len is not None and idx.shape[1] > max_len:
        raise TokenError(f"{what} have length {idx.shape[1]}, longer than the context of {max_len} tokens: "
                         f"crop them (idx[:, -{max_len}:]) or build the model with a larger block_size")


@dataclass
class GPTConfig:
    """Sizes of a GPT. GPT-2 small is (vocab 50257, block 1024, 12 layers, 12 heads, 768)."""
    vocab_size: int = 256
    block_size: int = 128
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True
    activation: str = "gelu_tanh"  # GPT-2's "gelu_new"
    layer_norm_eps: float = 1e-5
    causal: bool = True            # False only for chapter 7's demonstration of the "see themselves" leak


class GPT(nn.Module):
    """A GPT-2-style decoder-only language model with tied input/output embeddings.

    ``forward(idx, targets=None)`` -> ``(logits (B, T, V), loss or None)``;
    ``generate(idx, n, temperature, top_k)`` samples continuations.

    Taught in chapter 7 (Pretrained language models).
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        if config.vocab_size < 1 or config.block_size < 1:
            raise ValueError(f"vocab_size and block_size must be positive, got {config}")
        self.config = c = config
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)                     # token embeddings W_e
        self.wpe = LearnedPositionalEmbedding(c.n_embd, c.block_size)       # position embeddings W_p
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            EncoderBlock(c.n_embd, c.n_head, 4 * c.n_embd, dropout=c.dropout, activation=c.activation,
                         norm_first=True, bias=c.bias, layer_norm_eps=c.layer_norm_eps)
            for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.n_embd, eps=c.layer_norm_eps, bias=c.bias)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight                               # weight tying
        self.apply(self._init_weights)
        for name, p in self.named_parameters():                             # GPT-2: scaled init of residual projections
            if name.endswith("out_proj.weight") or name.endswith("fc2.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameters (the tied output layer counted once); without position embeddings by default, as nanoGPT."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.wpe.weight.numel() if non_embedding else n

    def hidden_states(self, idx: Tensor) -> Tensor:
        """(B, T) ids -> (B, T, C) final hidden states (after the last LayerNorm)."""
        check_ids(idx, self.config.vocab_size, self.config.block_size)
        x = self.drop(self.wpe(self.wte(idx)))                              # (B, T, C)
        for block in self.blocks:
            x = block(x, causal=self.config.causal)
        return self.ln_f(x)

    def forward(self, idx: Tensor, targets: Tensor | None = None):
        """idx (B, T) -> logits (B, T, V), and the mean cross-entropy if ``targets`` (B, T) is given (-100 = ignore)."""
        logits = self.lm_head(self.hidden_states(idx))                      # (B, T, V)
        loss = None
        if targets is not None:
            if targets.shape != idx.shape:
                raise TokenError(f"targets {tuple(targets.shape)} must have the shape of idx {tuple(idx.shape)}")
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        return logits, loss

    @torch.no_grad()
    def generate(self, idx: Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 greedy: bool = False, generator: torch.Generator | None = None) -> Tensor:
        """Append ``max_new_tokens`` tokens to idx (B, T), one at a time.

        Each step feeds the last ``block_size`` tokens, divides the last logits by
        ``temperature`` (< 1 sharper, > 1 flatter), keeps the ``top_k`` most likely
        tokens, and samples (or takes the argmax with ``greedy=True``).
        """
        if temperature <= 0 and not greedy:
            raise ValueError(f"temperature must be > 0 (got {temperature}); use greedy=True for the argmax")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        check_ids(idx, self.config.vocab_size)
        for _ in range(max_new_tokens):
            ctx = idx[:, -self.config.block_size:]                          # crop to the context window
            logits = self(ctx)[0][:, -1, :]                                 # (B, V)
            if greedy:
                nxt = logits.argmax(-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k is not None:
                    kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, [-1]]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                probs = F.softmax(logits, dim=-1)
                nxt = torch.multinomial(probs, 1, generator=generator)      # (B, 1)
            idx = torch.cat([idx, nxt], dim=1)
        return idx


def lm_loss(model: nn.Module, batch) -> Tensor:
    """Next-token loss for ``lmcourse.train``: batch = (x, y) with y = x shifted by one.

    Taught in chapter 7 (Pretrained language models).
    """
    x, y = batch
    return model(x, y)[1]


def flops_per_token(model: GPT, seq_len: int | None = None) -> float:
    """Training FLOPs per token, nanoGPT's estimate 6N + 12 L d T (N non-embedding parameters).

    Taught in chapter 7 (Pretrained language models); used by ``lmcourse bench gpt``.
    """
    c = model.config
    t = c.block_size if seq_len is None else seq_len
    return 6 * model.num_params() + 12 * c.n_layer * c.n_embd * t


__all__ = ["GPT", "GPTConfig", "TokenError", "check_ids", "flops_per_token", "lm_loss"]
