"""Transformer blocks: the feed-forward network, encoder and decoder blocks, stacks, and a small seq2seq model.

Taught in chapter 6 (Transformer). Each block has sublayers (attention, FFN), each
wrapped in a residual connection and a LayerNorm, in one of two orders:

    post-LN (the 2017 paper):  x = LN(x + Sublayer(x))
    pre-LN  (GPT-2 and later): x = x + Sublayer(LN(x))

Pre-LN keeps an un-normalised residual path from input to output, which trains
more stably in deep stacks; its stack then needs one final LayerNorm.

The names match ``torch.nn.TransformerEncoderLayer`` (``self_attn``, ``norm1``,
``norm2``; the FFN's ``fc1``/``fc2`` are its ``linear1``/``linear2``), so weights copy
across. Chapters 7-8 build GPT, BERT and T5-style models from these blocks.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmcourse.nn.attention import MultiHeadAttention
from lmcourse.nn.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding

ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,                                              # exact (erf) GELU, as BERT
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),        # GPT-2's "gelu_new"
    "silu": F.silu,
}


def get_activation(name: str):
    """The activation function called ``name`` (relu, gelu, gelu_tanh, silu). Taught in chapter 6 (Transformer)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class FeedForward(nn.Module):
    """The position-wise FFN, a 2-layer MLP applied to every position: fc2(dropout(act(fc1(x)))).

    Taught in chapter 6 (Transformer).
    """

    def __init__(self, d_model: int, d_ff: int, activation: str = "relu", dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.activation_name = activation
        self.activation = get_activation(activation)
        self.fc1 = nn.Linear(d_model, d_ff, bias=bias)
        self.fc2 = nn.Linear(d_ff, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.dropout(self.activation(self.fc1(x))))  # (B, T, C) -> (B, T, d_ff) -> (B, T, C)


class EncoderBlock(nn.Module):
    """Self-attention + FFN, each with a residual connection and a LayerNorm.

    ``norm_first=False`` is the paper's post-LN block, ``True`` the pre-LN block.
    ``forward(x, causal=True)`` makes it a decoder-only (GPT) block: masked
    self-attention without cross-attention.

    Taught in chapter 6 (Transformer).
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int | None = None, dropout: float = 0.0,
                 activation: str = "relu", norm_first: bool = False, bias: bool = True,
                 layer_norm_eps: float = 1e-5, fast: bool = True):
        super().__init__()
        d_ff = 4 * d_model if d_ff is None else d_ff
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout, bias=bias, fast=fast)
        self.ffn = FeedForward(d_model, d_ff, activation=activation, dropout=dropout, bias=bias)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def _sa(self, x: Tensor, mask, key_mask, causal) -> Tensor:
        return self.dropout1(self.self_attn(x, mask=mask, key_mask=key_mask, causal=causal))

    def forward(self, x: Tensor, *, mask: Tensor | None = None, key_mask: Tensor | None = None,
                causal: bool = False) -> Tensor:
        """x: (B, T, C) -> (B, T, C). Masks as in ``lmcourse.nn.attention`` (True = may attend / real token)."""
        if self.norm_first:
            x = x + self._sa(self.norm1(x), mask, key_mask, causal)
            x = x + self.dropout2(self.ffn(self.norm2(x)))
        else:
            x = self.norm1(x + self._sa(x, mask, key_mask, causal))
            x = self.norm2(x + self.dropout2(self.ffn(x)))
        return x


class DecoderBlock(nn.Module):
    """Masked self-attention, encoder-decoder (cross) attention, FFN; residuals and LayerNorms.

    In cross-attention the queries come from the decoder and the keys and values from
    the encoder's output (``memory``). Names match ``torch.nn.TransformerDecoderLayer``
    (``self_attn``, ``cross_attn`` = its ``multihead_attn``, ``norm1..3``).

    Taught in chapter 6 (Transformer).
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int | None = None, dropout: float = 0.0,
                 activation: str = "relu", norm_first: bool = False, bias: bool = True,
                 layer_norm_eps: float = 1e-5, fast: bool = True):
        super().__init__()
        d_ff = 4 * d_model if d_ff is None else d_ff
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout, bias=bias, fast=fast)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout, bias=bias, fast=fast)
        self.ffn = FeedForward(d_model, d_ff, activation=activation, dropout=dropout, bias=bias)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm3 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1, self.dropout2, self.dropout3 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, x: Tensor, memory: Tensor, *, key_mask: Tensor | None = None,
                memory_key_mask: Tensor | None = None, causal: bool = True, mask: Tensor | None = None) -> Tensor:
        """x: (B, T, C) decoder input; memory: (B, S, C) encoder output -> (B, T, C)."""
        def sa(h):
            return self.dropout1(self.self_attn(h, mask=mask, key_mask=key_mask, causal=causal))

        def ca(h):
            return self.dropout2(self.cross_attn(h, memory, key_mask=memory_key_mask))

        if self.norm_first:
            x = x + sa(self.norm1(x))
            x = x + ca(self.norm2(x))
            x = x + self.dropout3(self.ffn(self.norm3(x)))
        else:
            x = self.norm1(x + sa(x))
            x = self.norm2(x + ca(x))
            x = self.norm3(x + self.dropout3(self.ffn(x)))
        return x


class Encoder(nn.Module):
    """A stack of ``EncoderBlock``s (plus a final LayerNorm for pre-LN stacks, with the blocks' eps and bias).

    Taught in chapter 6 (Transformer).
    """

    def __init__(self, n_layers: int, d_model: int, n_heads: int, d_ff: int | None = None, norm_first: bool = False,
                 **block_kwargs):
        super().__init__()
        self.layers = nn.ModuleList(EncoderBlock(d_model, n_heads, d_ff, norm_first=norm_first, **block_kwargs)
                                    for _ in range(n_layers))
        eps, bias = block_kwargs.get("layer_norm_eps", 1e-5), block_kwargs.get("bias", True)
        self.norm = nn.LayerNorm(d_model, eps=eps, bias=bias) if norm_first else nn.Identity()

    def forward(self, x: Tensor, **masks) -> Tensor:
        for layer in self.layers:
            x = layer(x, **masks)
        return self.norm(x)


class Decoder(nn.Module):
    """A stack of ``DecoderBlock``s (plus a final LayerNorm for pre-LN stacks).

    Taught in chapter 6 (Transformer).
    """

    def __init__(self, n_layers: int, d_model: int, n_heads: int, d_ff: int | None = None, norm_first: bool = False,
                 **block_kwargs):
        super().__init__()
        self.layers = nn.ModuleList(DecoderBlock(d_model, n_heads, d_ff, norm_first=norm_first, **block_kwargs)
                                    for _ in range(n_layers))
        eps, bias = block_kwargs.get("layer_norm_eps", 1e-5), block_kwargs.get("bias", True)
        self.norm = nn.LayerNorm(d_model, eps=eps, bias=bias) if norm_first else nn.Identity()

    def forward(self, x: Tensor, memory: Tensor, **masks) -> Tensor:
        for layer in self.layers:
            x = layer(x, memory, **masks)
        return self.norm(x)


class Seq2SeqTransformer(nn.Module):
    """An encoder-decoder Transformer: embeddings + positions, encoder, decoder, output layer.

    ``forward(src, tgt_in)`` returns logits (B, T, vocab) for the next target token at
    every position; ``greedy_decode`` generates one token at a time. ``pad_id`` marks
    padding in both sequences.

    Taught in chapter 6 (Transformer).
    """

    def __init__(self, vocab_size: int, d_model: int = 64, n_heads: int = 4, n_layers: int = 2,
                 d_ff: int | None = None, dropout: float = 0.0, max_len: int = 256, pad_id: int = 0,
                 norm_first: bool = True, positional: str = "sinusoidal", activation: str = "relu"):
        super().__init__()
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be positive, not {vocab_size}: the vocabulary is empty")
        self.d_model, self.pad_id = d_model, pad_id
        self.embed = nn.Embedding(vocab_size, d_model)
        if positional == "sinusoidal":
            self.pos = SinusoidalPositionalEncoding(d_model, max_len)
        elif positional == "learned":
            self.pos = LearnedPositionalEmbedding(d_model, max_len)
        else:
            raise ValueError(f"positional must be 'sinusoidal' or 'learned', not {positional!r}")
        kw = dict(d_ff=d_ff, norm_first=norm_first, dropout=dropout, activation=activation)
        self.encoder = Encoder(n_layers, d_model, n_heads, **kw)
        self.decoder = Decoder(n_layers, d_model, n_heads, **kw)
        self.drop = nn.Dropout(dropout)
        self.lm_head = nn.Linear(d_model, vocab_size)

    def _embed(self, ids: Tensor) -> Tensor:
        return self.drop(self.pos(self.embed(ids) * math.sqrt(self.d_model)))  # (B, T, C)

    def encode(self, src: Tensor) -> Tensor:
        return self.encoder(self._embed(src), key_mask=src != self.pad_id)

    def decode(self, tgt_in: Tensor, memory: Tensor, src: Tensor) -> Tensor:
        h = self.decoder(self._embed(tgt_in), memory, key_mask=tgt_in != self.pad_id,
                         memory_key_mask=src != self.pad_id, causal=True)
        return self.lm_head(h)                                                   # (B, T, vocab)

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        return self.decode(tgt_in, self.encode(src), src)

    @torch.no_grad()
    def greedy_decode(self, src: Tensor, bos_id: int, eos_id: int, max_len: int) -> Tensor:
        """Most likely next token, one at a time, from ``bos_id`` until ``eos_id`` or ``max_len`` tokens."""
        memory = self.encode(src)
        out = torch.full((src.shape[0], 1), bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
        for _ in range(max_len):
            nxt = self.decode(out, memory, src)[:, -1].argmax(-1)
            nxt = nxt.masked_fill(done, self.pad_id)
            out = torch.cat([out, nxt[:, None]], dim=1)
            done |= nxt == eos_id
            if done.all():
                break
        return out[:, 1:]


__all__ = ["ACTIVATIONS", "Decoder", "DecoderBlock", "Encoder", "EncoderBlock", "FeedForward",
           "Seq2SeqTransformer", "get_activation"]
