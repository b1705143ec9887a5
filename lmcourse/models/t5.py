"""A T5-style encoder-decoder: every task cast as text-to-text.

Taught in chapter 8 (Scaling up). The encoder and decoder are the pre-LN blocks
of chapter 6 (``lmcourse.nn.Encoder``/``Decoder``) with T5's choices:

* no absolute positions: each self-attention adds a learned *relative position bias*
  b[bucket(j - i)] per head to its scores (one table for the encoder, one for the
  decoder, shared by all layers; cross-attention has none). Distances are put in
  buckets: exact for small ones, logarithmic up to ``max_distance``;
* RMSNorm (no mean subtraction, no bias) instead of LayerNorm, no biases in linear layers;
* the output layer is tied to the input embedding and its input scaled by d_model^-1/2.

One difference is only a reparametrisation: T5 does not scale q k^T by 1/sqrt(d_head)
(it folds that into the initialisation of W_q); the blocks of chapter 6 do, so
``lmcourse.models.hf`` multiplies W_q by sqrt(d_head) when copying T5 weights in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmcourse.models.gpt import TokenError, check_ids
from lmcourse.nn import Decoder, Encoder


@dataclass
class T5Config:
    """Sizes of a T5-style model (t5-small: vocab 32128, d_model 512, 8 heads, 6+6 layers, d_ff 2048)."""
    vocab_size: int = 128
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    n_decoder_layers: int | None = None
    d_ff: int = 256
    dropout: float = 0.0
    num_buckets: int = 32
    max_distance: int = 128
    layer_norm_eps: float = 1e-6
    pad_id: int = 0
    eos_id: int = 1
    decoder_start_id: int = 0


def relative_position_bucket(relative_position: Tensor, bidirectional: bool = True, num_buckets: int = 32,
                             max_distance: int = 128) -> Tensor:
    """T5's bucket of each relative position (key position - query position).

    Half of the buckets hold exact distances 0 .. n/2-1; the other half are logarithmically
    wider up to ``max_distance`` (farther distances share the last bucket). Bidirectional
    (encoder) attention spends half of the buckets on each sign.

    Taught in chapter 8 (Scaling up).
    """
    buckets = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (relative_position > 0).long() * num_buckets
        n = relative_position.abs()
    else:
        n = -torch.clamp(relative_position, max=0)          # only the past: distance >= 0
    max_exact = num_buckets // 2
    is_small = n < max_exact
    large = max_exact + (torch.log(n.float().clamp(min=1) / max_exact) / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).long()
    large = large.clamp(max=num_buckets - 1)
    return buckets + torch.where(is_small, n, large)


class RelativePositionBias(nn.Module):
    """A learned scalar per (bucket, head), added to the attention scores: (1, H, T_q, T_k).

    Taught in chapter 8 (Scaling up).
    """

    def __init__(self, n_heads: int, bidirectional: bool, num_buckets: int = 32, max_distance: int = 128):
        super().__init__()
        self.bidirectional, self.num_buckets, self.max_distance = bidirectional, num_buckets, max_distance
        self.embedding = nn.Embedding(num_buckets, n_heads)

    def forward(self, t_q: int, t_k: int) -> Tensor:
        dev = self.embedding.weight.device
        rel = torch.arange(t_k, device=dev)[None, :] - torch.arange(t_q, device=dev)[:, None]   # (T_q, T_k)
        b = relative_position_bucket(rel, self.bidirectional, self.num_buckets, self.max_distance)
        return self.embedding(b).permute(2, 0, 1)[None]                                          # (1, H, T_q, T_k)


def _rmsnorm_blocks(stack: nn.Module, d: int, eps: float) -> None:
    """Swap the LayerNorms of a chapter-6 stack for RMSNorm (the blocks have no option for it)."""
    for layer in stack.layers:
        for name in ("norm1", "norm2", "norm3"):
            if hasattr(layer, name):
                setattr(layer, name, nn.RMSNorm(d, eps=eps))
    stack.norm = nn.RMSNorm(d, eps=eps)


class T5(nn.Module):
    """A T5-style encoder-decoder Transformer.

    ``forward(input_ids, decoder_input_ids, attention_mask=None)`` -> logits (B, T_dec, V);
    ``loss(input_ids, labels)`` shifts the labels right (decoder_start_id first) for teacher
    forcing; ``generate`` decodes greedily.

    Taught in chapter 8 (Scaling up).
    """

    def __init__(self, config: T5Config):
        super().__init__()
        self.config = c = config
        n_dec = c.n_layers if c.n_decoder_layers is None else c.n_decoder_layers
        kw = dict(norm_first=True, bias=False, activation="relu", dropout=c.dropout)
        self.shared = nn.Embedding(c.vocab_size, c.d_model)
        self.encoder = Encoder(c.n_layers, c.d_model, c.n_heads, c.d_ff, **kw)
        self.decoder = Decoder(n_dec, c.d_model, c.n_heads, c.d_ff, **kw)
        _rmsnorm_blocks(self.encoder, c.d_model, c.layer_norm_eps)
        _rmsnorm_blocks(self.decoder, c.d_model, c.layer_norm_eps)
        self.encoder_bias = RelativePositionBias(c.n_heads, True, c.num_buckets, c.max_distance)
        self.decoder_bias = RelativePositionBias(c.n_heads, False, c.num_buckets, c.max_distance)
        self.drop = nn.Dropout(c.dropout)
        nn.init.normal_(self.shared.weight, std=1.0)

    def encode(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        check_ids(input_ids, self.config.vocab_size)
        t = input_ids.shape[1]
        key_mask = None if attention_mask is None else attention_mask.bool()
        h = self.drop(self.shared(input_ids))                                        # (B, S, C)
        return self.drop(self.encoder(h, mask=self.encoder_bias(t, t), key_mask=key_mask))

    def decode(self, decoder_input_ids: Tensor, memory: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        check_ids(decoder_input_ids, self.config.vocab_size, what="decoder input ids")
        t = decoder_input_ids.shape[1]
        mem_mask = None if attention_mask is None else attention_mask.bool()
        h = self.drop(self.shared(decoder_input_ids))                                # (B, T, C)
        h = self.drop(self.decoder(h, memory, mask=self.decoder_bias(t, t), memory_key_mask=mem_mask, causal=True))
        return (h * self.config.d_model ** -0.5) @ self.shared.weight.T              # tied output: (B, T, V)

    def forward(self, input_ids: Tensor, decoder_input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        return self.decode(decoder_input_ids, self.encode(input_ids, attention_mask), attention_mask)

    def shift_right(self, labels: Tensor) -> Tensor:
        """Decoder inputs for teacher forcing: [start] + labels[:-1] (ignored labels -100 become padding)."""
        start = torch.full_like(labels[:, :1], self.config.decoder_start_id)
        shifted = torch.cat([start, labels[:, :-1]], dim=1)
        return shifted.masked_fill(shifted == -100, self.config.pad_id)

    def loss(self, input_ids: Tensor, labels: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        if labels.dim() != 2:
            raise TokenError(f"labels must be (B, T), got {tuple(labels.shape)}")
        logits = self(input_ids, self.shift_right(labels), attention_mask)
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)

    @torch.no_grad()
    def generate(self, input_ids: Tensor, max_new_tokens: int, attention_mask: Tensor | None = None) -> Tensor:
        """Greedy decoding from ``decoder_start_id`` until every row produced ``eos_id`` (rows that ended get padding)."""
        memory = self.encode(input_ids, attention_mask)
        c = self.config
        out = torch.full((input_ids.shape[0], 1), c.decoder_start_id, dtype=torch.long, device=input_ids.device)
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for _ in range(max_new_tokens):
            nxt = self.decode(out, memory, attention_mask)[:, -1].argmax(-1).masked_fill(done, c.pad_id)
            out = torch.cat([out, nxt[:, None]], dim=1)
            done |= nxt == c.eos_id
            if done.all():
                break
        return out[:, 1:]


def t5_loss(model: T5, batch) -> Tensor:
    """``loss_fn`` for ``lmcourse.train``: batch = (input_ids, attention_mask, labels).

    Taught in chapter 8 (Scaling up).
    """
    input_ids, attention_mask, labels = batch
    return model.loss(input_ids, labels, attention_mask)


__all__ = ["RelativePositionBias", "T5", "T5Config", "relative_position_bucket", "t5_loss"]
