"""Encoder-decoder (seq2seq) with GRU or LSTM, with or without the notes' dot-product attention.

Taught in chapter 5 (Attention).

Encoder: embed the source and run an RNN: states ``h_1 ... h_N`` (B, N, H).
Decoder: an RNN started from the encoder's last state, reading the previous target token:
states ``s_t`` (B, T, H). Without attention, ``s_t`` alone predicts the next token, so all the
source must pass through the encoder's last state (the bottleneck). With attention:

    e_t = [s_t^T h_1, ..., s_t^T h_N]      scores        (B, T, N)
    alpha_t = softmax(e_t)                 distribution  (B, T, N)
    o_t = sum_i alpha_t,i h_i              output        (B, T, H)
    logits = W [o_t; s_t] + b              prediction    (B, T, V)

(The notes print the scores as ``[s_1^T h_1, ..., h_t^T h_N]``: every score uses the same
decoder state ``s_t``; see the errata.) Training uses teacher forcing: the decoder reads the
true previous token, so one call scores the whole target. Decoding is greedy or beam search.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lmcourse.errors import LMCourseError
from lmcourse.nn import rnn

PAD, BOS, EOS = 0, 1, 2


class Seq2SeqError(LMCourseError, ValueError):
    """Bad options or inputs for the seq2seq model."""


class DotAttention(nn.Module):
    """Attention as a weighted sum of values according to a query (the notes' definition):

        scores = query . value_i,   weights = softmax(scores),   output = sum_i weights_i value_i

    ``query`` (B, T, H) or (B, H), ``values`` (B, N, H), ``mask`` (B, N) True where a value is real.
    Returns ``(output, weights)``: (B, T, H) and (B, T, N) (or (B, H), (B, N) for a (B, H) query).

    Taught in chapter 5 (Attention).
    """

    def forward(self, query: torch.Tensor, values: torch.Tensor,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        single = query.dim() == 2
        if single:
            query = query[:, None, :]  # (B, 1, H)
        if query.dim() != 3 or values.dim() != 3:
            raise Seq2SeqError(f"query must be (B, T, H) or (B, H) and values (B, N, H); "
                               f"got {tuple(query.shape)} and {tuple(values.shape)}")
        if query.shape[0] != values.shape[0] or query.shape[-1] != values.shape[-1]:
            raise Seq2SeqError(f"query {tuple(query.shape)} and values {tuple(values.shape)} must share "
                               f"batch size and hidden size (dot-product scores need equal sizes)")
        if values.shape[1] == 0:
            raise Seq2SeqError("attention over zero values: the source is empty")
        scores = query @ values.transpose(1, 2)  # (B, T, N): e_t,i = s_t^T h_i
        if mask is not None:
            if mask.shape != values.shape[:2]:
                raise Seq2SeqError(f"mask must be (B, N) = {tuple(values.shape[:2])}, got {tuple(mask.shape)}")
            scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # (B, T, N): alpha_t
        output = weights @ values  # (B, T, H): o_t = sum_i alpha_t,i h_i
        if single:
            return output[:, 0], weights[:, 0]
        return output, weights


class Seq2Seq(nn.Module):
    """RNN encoder-decoder; ``attention=True`` adds the notes' dot-product attention.

    ``cell`` is ``"gru"`` or ``"lstm"``. ``fused=True`` uses ``torch.nn.GRU/LSTM`` (fast fused
    kernels); ``fused=False`` uses the from-scratch ``lmcourse.nn.rnn`` layers, which compute the
    same function (chapter 4's golden tests) but slower.

    Taught in chapter 5 (Attention).
    """

    def __init__(self, source_vocab: int, target_vocab: int, hidden_size: int = 128, embed_size: int = 64,
                 cell: str = "gru", attention: bool = True, num_layers: int = 1, fused: bool = True):
        super().__init__()
        if cell not in ("gru", "lstm"):
            raise Seq2SeqError(f"cell must be 'gru' or 'lstm', not {cell!r}")
        self.cell, self.use_attention, self.hidden_size = cell, attention, hidden_size
        self.source_embedding = nn.Embedding(source_vocab, embed_size, padding_idx=PAD)
        self.target_embedding = nn.Embedding(target_vocab, embed_size, padding_idx=PAD)
        layer = (nn.GRU if cell == "gru" else nn.LSTM) if fused else (rnn.GRU if cell == "gru" else rnn.LSTM)
        self.fused = fused
        self.encoder = layer(embed_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.decoder = layer(embed_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.attention = DotAttention() if attention else None
        self.out = nn.Linear(2 * hidden_size if attention else hidden_size, target_vocab)  # from [o_t; s_t] or s_t

    # --- encoder ---------------------------------------------------------------------
    def _check_source(self, source: torch.Tensor, lengths: torch.Tensor) -> None:
        if source.dim() != 2:
            raise Seq2SeqError(f"source must be (B, N) ids, got shape {tuple(source.shape)}")
        if source.shape[1] == 0 or (lengths < 1).any():
            raise Seq2SeqError("zero-length source sequences are not allowed")
        if (lengths > source.shape[1]).any():
            raise Seq2SeqError(f"a source length ({int(lengths.max())}) is longer than the padded batch "
                               f"({source.shape[1]})")

    def encode(self, source: torch.Tensor, lengths: torch.Tensor, embedded: torch.Tensor | None = None):
        """source (B, N) ids -> encoder states h (B, N, H), mask (B, N), final state.

        ``embedded`` (B, N, E) replaces the source embeddings (to measure gradients reaching them).
        """
        lengths = torch.as_tensor(lengths)
        self._check_source(source, lengths)
        x = self.source_embedding(source) if embedded is None else embedded  # (B, N, E)
        N = source.shape[1]
        if self.fused:
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            h, state = self.encoder(packed)
            h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=N)  # (B, N, H)
        else:
            h, state = self.encoder(x, lengths=lengths)  # (B, N, H)
        mask = torch.arange(N, device=source.device)[None, :] < lengths.to(source.device)[:, None]  # (B, N)
        return h, mask, state

    # --- decoder ---------------------------------------------------------------------
    def decode(self, target_in: torch.Tensor, h: torch.Tensor, mask: torch.Tensor, state):
        """Teacher-forced decoder: target_in (B, T) -> logits (B, T, V), attention (B, T, N) or None, state."""
        s, state = self.decoder(self.target_embedding(target_in), state)  # (B, T, H)
        if self.attention is None:
            return self.out(s), None, state
        o, alpha = self.attention(s, h, mask)  # (B, T, H), (B, T, N)
        logits = self.out(torch.cat([o, s], dim=-1))  # prediction from [o_t; s_t]
        return logits, alpha, state

    def forward(self, source: torch.Tensor, source_lengths: torch.Tensor, target_in: torch.Tensor,
                embedded: torch.Tensor | None = None):
        """Teacher forcing: logits (B, T, V) for every target position, and attention weights (B, T, N)."""
        h, mask, state = self.encode(source, source_lengths, embedded)
        logits, alpha, _ = self.decode(target_in, h, mask, state)
        return logits, alpha

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean cross-entropy over real target tokens (``batch`` from ``lmcourse.data.dates.encode_pairs``)."""
        logits, _ = self(batch["source"], batch["source_lengths"], batch["target_in"])
        return F.cross_entropy(logits.flatten(0, 1), batch["target_out"].flatten(), ignore_index=PAD)

    # --- decoding --------------------------------------------------------------------
    @torch.no_grad()
    def greedy(self, source: torch.Tensor, source_lengths: torch.Tensor, max_len: int = 20):
        """Greedy decoding: the most likely token at each step. Returns ids (B, <=max_len) and
        attention (B, steps, N) (None without attention)."""
        h, mask, state = self.encode(source, source_lengths)
        token = torch.full((source.shape[0], 1), BOS, dtype=torch.long, device=source.device)  # (B, 1)
        out, alphas = [], []
        done = torch.zeros(source.shape[0], dtype=torch.bool, device=source.device)
        for _ in range(max_len):
            logits, alpha, state = self.decode(token, h, mask, state)  # (B, 1, V)
            token = logits.argmax(-1)  # (B, 1)
            out.append(token)
            if alpha is not None:
                alphas.append(alpha)
            done |= token[:, 0] == EOS
            if done.all():
                break
        return torch.cat(out, 1), (torch.cat(alphas, 1) if alphas else None)

    @torch.no_grad()
    def beam(self, source: torch.Tensor, source_lengths: torch.Tensor, beam_size: int = 4,
             max_len: int = 20) -> list[tuple[list[int], float]]:
        """Beam search for ONE source (B = 1): keep the ``beam_size`` best prefixes by total
        log-probability; a prefix that emits </s> is finished. Returns finished hypotheses
        ``(ids, log_prob)``, best first."""
        if source.shape[0] != 1:
            raise Seq2SeqError(f"beam search decodes one source at a time, got a batch of {source.shape[0]}")
        if beam_size < 1:
            raise Seq2SeqError(f"beam_size must be at least 1, not {beam_size}")
        h, mask, state = self.encode(source, source_lengths)
        beams = [([], 0.0, state)]  # (ids, log prob, decoder state)
        finished = []
        for _ in range(max_len):
            candidates = []
            for ids, score, st in beams:
                token = torch.tensor([[ids[-1] if ids else BOS]], device=source.device)
                logits, _, new_state = self.decode(token, h, mask, st)
                logp = logits[0, -1].log_softmax(-1)  # (V,)
                top = logp.topk(beam_size)
                for lp, t in zip(top.values.tolist(), top.indices.tolist()):
                    candidates.append((ids + [t], score + lp, new_state))
            candidates.sort(key=lambda c: -c[1])
            beams = []
            for ids, score, st in candidates:
                (finished if ids[-1] == EOS else beams).append((ids, score, st))
                if len(beams) == beam_size:
                    break
            if not beams or (len(finished) >= beam_size and finished[0][1] > beams[0][1]):
                break
        finished += beams  # unfinished ones count at max_len
        finished.sort(key=lambda c: -c[1])
        return [(ids, score) for ids, score, _ in finished[:beam_size]]


def source_gradient_norms(model: Seq2Seq, batch: dict[str, torch.Tensor], position: int = 0) -> torch.Tensor:
    """How much gradient reaches each source position: ``|| d loss_position / d x_i ||`` for the
    source embeddings ``x_i``, where ``loss_position`` is the loss of target token ``position``.

    Returns (B, N), zero at padded source positions. Taught in chapter 5 (Attention).
    """
    was_training = model.training
    model.eval()
    embedded = model.source_embedding(batch["source"]).detach().requires_grad_()  # (B, N, E)
    logits, _ = model(batch["source"], batch["source_lengths"], batch["target_in"], embedded=embedded)
    loss = F.cross_entropy(logits[:, position], batch["target_out"][:, position], reduction="sum")
    (grad,) = torch.autograd.grad(loss, embedded)
    model.train(was_training)
    return grad.norm(dim=-1)  # (B, N)


def exact_match(model: Seq2Seq, batch: dict[str, torch.Tensor], target_vocab, max_len: int = 20) -> torch.Tensor:
    """(B,) bool: greedy decoding equals the target exactly. Taught in chapter 5 (Attention)."""
    ids, _ = model.greedy(batch["source"], batch["source_lengths"], max_len)
    preds = [target_vocab.decode(row) for row in ids]
    truth = [target_vocab.decode(row) for row in batch["target_out"]]
    return torch.tensor([p == t for p, t in zip(preds, truth)])


__all__ = ["DotAttention", "Seq2Seq", "Seq2SeqError", "exact_match", "source_gradient_norms"]
