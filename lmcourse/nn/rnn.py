"""Recurrent networks written from their gate equations: RNN, GRU and LSTM cells and layers.

Taught in chapter 4 (RNNs).

A *cell* computes one time step, ``h_t = cell(x_t, h_{t-1})``. A *layer* (``RNN``, ``GRU``,
``LSTM``) runs cells over a whole sequence: several stacked layers, optionally in both
directions, batch-first or time-first, and with per-sequence lengths for padded batches.

The parameters have the same names and shapes as ``torch.nn.RNN/GRU/LSTM``
(``weight_ih_l0``, ``weight_hh_l0_reverse``, ...), so ``ours.load_state_dict(theirs.state_dict())``
copies weights either way; the golden tests use this to check that both compute the same.

Variable lengths: a sequence of length ``L`` in a batch padded to ``T`` sees its state frozen
at padded steps (``t >= L``) and gets zero outputs there, like ``pack_padded_sequence``. The
backward direction starts from its initial state at step ``L - 1`` of each sequence.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from lmcourse.errors import LMCourseError


class RNNShapeError(LMCourseError, ValueError):
    """Input, state or lengths do not fit the layer."""


# --- cells: one time step -------------------------------------------------------------

class _Cell(nn.Module):
    """Shared parameters: ``W_ih`` (G*H, I), ``W_hh`` (G*H, H) and two biases, G gates stacked."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise RNNShapeError(f"input_size and hidden_size must be positive, not {input_size} and {hidden_size}")
        self.input_size, self.hidden_size = input_size, hidden_size
        G, H = self.gates, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(G * H, input_size))
        self.weight_hh = nn.Parameter(torch.empty(G * H, H))
        self.bias_ih = nn.Parameter(torch.empty(G * H)) if bias else None
        self.bias_hh = nn.Parameter(torch.empty(G * H)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform in ``[-1/sqrt(H), 1/sqrt(H)]``, as torch does."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _ih(self, x: torch.Tensor) -> torch.Tensor:  # (B, I) -> (B, G*H)
        return nn.functional.linear(x, self.weight_ih, self.bias_ih)

    def _hh(self, h: torch.Tensor) -> torch.Tensor:  # (B, H) -> (B, G*H)
        return nn.functional.linear(h, self.weight_hh, self.bias_hh)


class RNNCell(_Cell):
    """The plain (Elman) RNN cell: ``h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``.

    Taught in chapter 4 (RNNs).
    """

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh"):
        if nonlinearity not in ("tanh", "relu"):
            raise RNNShapeError(f"nonlinearity must be 'tanh' or 'relu', not {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        pre = self._ih(x) + self._hh(h)  # (B, H)
        return torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre)


class GRUCell(_Cell):
    """The gated recurrent unit (Cho et al., 2014), gates in torch's order r, z, n.

        r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)        reset gate
        z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)        update gate
        n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))   candidate state
        h_t = (1 - z_t) * n_t + z_t * h_{t-1}

    Taught in chapter 4 (RNNs).
    """

    gates = 3

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        xr, xz, xn = self._ih(x).chunk(3, dim=-1)  # each (B, H)
        hr, hz, hn = self._hh(h).chunk(3, dim=-1)  # each (B, H)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return (1 - z) * n + z * h


class LSTMCell(_Cell):
    """The long short-term memory cell (Hochreiter & Schmidhuber, 1997), gates in torch's order i, f, g, o.

        i_t = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)   input gate: what to write
        f_t = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf)   forget gate: what to keep of C_{t-1}
        g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)      candidate values  (C~_t in the notes)
        o_t = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)   output gate: what to show
        C_t = f_t * C_{t-1} + i_t * g_t                         cell update
        h_t = o_t * tanh(C_t)

    ``gate_values`` returns the four gates, so a chapter can plot them on a trained model.

    Taught in chapter 4 (RNNs).
    """

    gates = 4

    def gate_values(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        h, _ = state
        xi = self._ih(x) + self._hh(h)  # (B, 4H)
        i, f, g, o = xi.chunk(4, dim=-1)  # each (B, H)
        return {"input": torch.sigmoid(i), "forget": torch.sigmoid(f), "candidate": torch.tanh(g),
                "output": torch.sigmoid(o)}

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        _, c = state
        gate = self.gate_values(x, state)
        c_new = gate["forget"] * c + gate["input"] * gate["candidate"]  # (B, H)
        h_new = gate["output"] * torch.tanh(c_new)  # (B, H)
        return h_new, c_new


# --- layers: whole sequences ----------------------------------------------------------

class _RecurrentLayer(nn.Module):
    """Stacked, optionally bidirectional recurrent layer over a (padded) batch of sequences."""

    cell_class: type[_Cell] = RNNCell
    has_cell_state = False

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, bidirectional: bool = False, **cell_kwargs):
        super().__init__()
        if num_layers < 1:
            raise RNNShapeError(f"num_layers must be at least 1, not {num_layers}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.batch_first, self.bidirectional = batch_first, bidirectional
        self.num_directions = 2 if bidirectional else 1
        self.cells = nn.ModuleList()
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else hidden_size * self.num_directions
            for _ in range(self.num_directions):
                self.cells.append(self.cell_class(layer_in, hidden_size, bias, **cell_kwargs))
        # Parameters are saved and loaded under torch's names, so weights copy to and from torch.
        self._register_state_dict_hook(self._rename_to_torch)

    # torch's parameter names (weight_ih_l0, weight_hh_l1_reverse, ...) map onto our cells.
    def _torch_name(self, layer: int, direction: int, name: str) -> str:
        return f"{name}_l{layer}" + ("_reverse" if direction == 1 else "")

    def _cell(self, layer: int, direction: int) -> _Cell:
        return self.cells[layer * self.num_directions + direction]

    @staticmethod
    def _rename_to_torch(module, state_dict, prefix, local_metadata):
        """State-dict hook: store ``cells.3.weight_ih`` as torch's ``weight_ih_l1_reverse``."""
        for key in [k for k in state_dict if k.startswith(prefix + "cells.")]:
            index, name = key[len(prefix + "cells."):].split(".", 1)
            layer, direction = divmod(int(index), module.num_directions)
            state_dict[prefix + module._torch_name(layer, direction, name)] = state_dict.pop(key)
        return state_dict

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    key = prefix + self._torch_name(layer, direction, name)
                    if key in state_dict:
                        state_dict[f"{prefix}cells.{index}.{name}"] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _check(self, x: torch.Tensor, state, lengths) -> tuple[torch.Tensor, torch.Tensor | None]:
        if x.dim() != 3:
            raise RNNShapeError(f"input must be 3-D ({'(B, T, I)' if self.batch_first else '(T, B, I)'}), "
                                f"got shape {tuple(x.shape)}")
        T, B, I = x.shape
        if I != self.input_size:
            raise RNNShapeError(f"input has {I} features but the layer was built for input_size={self.input_size}")
        if T == 0:
            raise RNNShapeError("zero-length sequences: the input has no time steps")
        if state is not None:
            parts = state if self.has_cell_state else (state,)
            if self.has_cell_state and (not isinstance(state, tuple) or len(state) != 2):
                raise RNNShapeError("an LSTM's initial state must be a tuple (h0, c0)")
            want = (self.num_layers * self.num_directions, B, self.hidden_size)
            for name, s in zip(("h0", "c0"), parts):
                if tuple(s.shape) != want:
                    raise RNNShapeError(f"{name} has shape {tuple(s.shape)} but must be "
                                        f"(num_layers*num_directions, B, hidden_size) = {want}: "
                                        f"mismatched hidden size or batch")
        if lengths is None:
            return x, None
        lengths = torch.as_tensor(lengths, device=x.device)
        if lengths.dim() != 1 or lengths.numel() != B:
            raise RNNShapeError(f"lengths must hold one length per sequence ({B}), got shape {tuple(lengths.shape)}")
        if (lengths < 1).any():
            raise RNNShapeError(f"zero-length sequences are not allowed (lengths {lengths.tolist()})")
        if (lengths > T).any():
            raise RNNShapeError(f"a length ({int(lengths.max())}) is longer than the padded batch ({T} steps)")
        steps = torch.arange(T, device=x.device)
        mask = (steps[:, None] < lengths[None, :]).to(x.dtype)  # (T, B): 1 where the step is real
        return x, mask

    def _run_direction(self, cell: _Cell, x: torch.Tensor, state, mask, reverse: bool):
        """One direction of one layer: x (T, B, I) -> outputs (T, B, H), final state."""
        T = x.shape[0]
        outputs = [None] * T
        for t in (range(T - 1, -1, -1) if reverse else range(T)):
            new = cell(x[t], state)  # (B, H) or ((B, H), (B, H))
            if mask is not None:
                m = mask[t][:, None]  # (B, 1): padded steps keep the old state
                if self.has_cell_state:
                    new = tuple(m * n + (1 - m) * s for n, s in zip(new, state))
                else:
                    new = m * new + (1 - m) * state
            state = new
            h = state[0] if self.has_cell_state else state
            outputs[t] = h if mask is None else h * mask[t][:, None]  # zero outputs at padding
        return torch.stack(outputs), state

    def forward(self, x: torch.Tensor, state=None, lengths=None):
        """x: (T, B, I), or (B, T, I) if batch_first; lengths: (B,) real lengths of padded sequences.

        Returns ``(output, h_n)`` (``(output, (h_n, c_n))`` for the LSTM), as torch does:
        output (T, B, D*H) (batch-first if asked), h_n (num_layers*D, B, H), D = 2 if bidirectional.
        """
        if self.batch_first and x.dim() == 3:
            x = x.transpose(0, 1)  # (T, B, I)
        x, mask = self._check(x, state, lengths)
        T, B, _ = x.shape
        L, D, H = self.num_layers, self.num_directions, self.hidden_size
        if state is None:
            zeros = x.new_zeros(L * D, B, H)
            state = (zeros, zeros) if self.has_cell_state else zeros
        finals = []
        layer_input = x  # (T, B, I)
        for layer in range(L):
            outs = []
            for d in range(D):
                k = layer * D + d
                s0 = (state[0][k], state[1][k]) if self.has_cell_state else state[k]
                out, final = self._run_direction(self._cell(layer, d), layer_input, s0, mask, reverse=d == 1)
                outs.append(out)  # (T, B, H)
                finals.append(final)
            layer_input = torch.cat(outs, dim=-1)  # (T, B, D*H)
        output = layer_input.transpose(0, 1) if self.batch_first else layer_input
        if self.has_cell_state:
            h_n = torch.stack([f[0] for f in finals])  # (L*D, B, H)
            c_n = torch.stack([f[1] for f in finals])
            return output, (h_n, c_n)
        return output, torch.stack(finals)


class RNN(_RecurrentLayer):
    """Multi-layer, optionally bidirectional Elman RNN; same interface and weights as ``torch.nn.RNN``.

    Taught in chapter 4 (RNNs).
    """

    cell_class = RNNCell

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, bidirectional: bool = False):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, bidirectional,
                         nonlinearity=nonlinearity)


class GRU(_RecurrentLayer):
    """Multi-layer, optionally bidirectional GRU; same interface and weights as ``torch.nn.GRU``.

    Taught in chapter 4 (RNNs).
    """

    cell_class = GRUCell


class LSTM(_RecurrentLayer):
    """Multi-layer, optionally bidirectional LSTM; same interface and weights as ``torch.nn.LSTM``.

    Taught in chapter 4 (RNNs).
    """

    cell_class = LSTMCell
    has_cell_state = True


class RNNLanguageModel(nn.Module):
    """A recurrent language model: embed ids, run an RNN/GRU/LSTM layer, predict the next id.

    ``kind`` is ``"rnn"``, ``"gru"`` or ``"lstm"``; ``fused=True`` uses ``torch.nn.RNN/GRU/LSTM``
    (one fused kernel for the whole sequence), ``fused=False`` the from-scratch layers above.
    The two hold the same parameters under the same names, so weights copy between them.

    Taught in chapter 4 (RNNs).
    """

    def __init__(self, vocab_size: int, hidden_size: int = 128, embed_size: int = 32, kind: str = "lstm",
                 num_layers: int = 1, fused: bool = True):
        super().__init__()
        layers = {"rnn": (nn.RNN, RNN), "gru": (nn.GRU, GRU), "lstm": (nn.LSTM, LSTM)}
        if kind not in layers:
            raise RNNShapeError(f"kind must be one of {', '.join(layers)}, not {kind!r}")
        self.kind, self.fused = kind, fused
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.rnn = layers[kind][0 if fused else 1](embed_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids: torch.Tensor, state=None):
        """ids (B, T) -> logits (B, T, V) and the final state (to continue a sequence)."""
        h, state = self.rnn(self.embedding(ids), state)  # (B, T, H)
        return self.head(h), state

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Mean next-id cross-entropy (nats) of an ``(x, y)`` batch."""
        x, y = batch
        logits, _ = self(x)
        return nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())

    @torch.no_grad()
    def generate(self, prefix: torch.Tensor, steps: int, temperature: float = 1.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample ``steps`` ids after ``prefix`` (1-D ids), one at a time, carrying the state."""
        if prefix.dim() != 1 or prefix.numel() == 0:
            raise RNNShapeError(f"prefix must be a non-empty 1-D tensor of ids, got shape {tuple(prefix.shape)}")
        logits, state = self(prefix[None, :])  # (1, T, V)
        out = []
        for _ in range(steps):
            probs = torch.softmax(logits[0, -1] / temperature, dim=-1)  # (V,)
            nxt = torch.multinomial(probs, 1, generator=generator)  # (1,)
            out.append(nxt)
            logits, state = self(nxt[None, :], state)
        return torch.cat(out)


__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNCell", "RNNLanguageModel", "RNNShapeError"]
