"""lmcourse.nn.rnn against torch.nn.RNN/GRU/LSTM with copied weights (chapter 4)."""
from __future__ import annotations

import pytest
import torch

from lmcourse.nn import rnn

KINDS = ["RNN", "GRU", "LSTM"]
CONFIGS = [  # (num_layers, bidirectional, batch_first)
    (1, False, False), (1, True, False), (2, False, True), (2, True, True), (3, True, False)]


def _pair(kind, num_layers, bidirectional, batch_first, input_size=5, hidden_size=7):
    torch.manual_seed(0)
    ref = getattr(torch.nn, kind)(input_size, hidden_size, num_layers=num_layers,
                                  bidirectional=bidirectional, batch_first=batch_first)
    ours = getattr(rnn, kind)(input_size, hidden_size, num_layers=num_layers,
                              bidirectional=bidirectional, batch_first=batch_first)
    ours.load_state_dict(ref.state_dict())
    return ours, ref


def _flat(state):
    return list(state) if isinstance(state, tuple) else [state]


def _initial_state(kind, ref, B, generator):
    D = 2 if ref.bidirectional else 1
    shape = (ref.num_layers * D, B, ref.hidden_size)
    h0 = torch.randn(shape, generator=generator)
    return (h0, torch.randn(shape, generator=generator)) if kind == "LSTM" else h0


@pytest.mark.golden
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("T", [1, 6])
def test_layers_equal_torch_outputs_states_and_gradients(kind, config, T):
    ours, ref = _pair(kind, *config)
    batch_first = config[2]
    g = torch.Generator().manual_seed(1)
    B = 3
    x = torch.randn((B, T, 5) if batch_first else (T, B, 5), generator=g)
    state = _initial_state(kind, ref, B, g)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_ref, s_ref = ref(x1, state)
    out_ours, s_ours = ours(x2, state)
    torch.testing.assert_close(out_ours, out_ref, atol=1e-5, rtol=1e-5)
    for a, b in zip(_flat(s_ours), _flat(s_ref)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # Gradients: a loss touching the outputs and every final state.
    w = torch.randn(out_ref.shape, generator=g)
    loss_ref = (out_ref * w).sum() + sum(s.pow(2).sum() for s in _flat(s_ref))
    loss_ours = (out_ours * w).sum() + sum(s.pow(2).sum() for s in _flat(s_ours))
    loss_ref.backward()
    loss_ours.backward()
    torch.testing.assert_close(x2.grad, x1.grad, atol=1e-5, rtol=1e-5)
    ref_grads = dict(ref.named_parameters())
    ours_named = {}
    for name, p in ours.named_parameters():  # cells.k.weight_ih -> weight_ih_l{layer}[_reverse]
        k, pname = name.split(".")[1:]
        layer, d = divmod(int(k), ours.num_directions)
        ours_named[ours._torch_name(layer, d, pname)] = p
    assert ours_named.keys() == ref_grads.keys()
    for name, p in ours_named.items():
        torch.testing.assert_close(p.grad, ref_grads[name].grad, atol=1e-5, rtol=1e-5, msg=name)


@pytest.mark.golden
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("config", [(1, False, True), (2, True, False), (2, True, True)])
def test_variable_lengths_equal_packed_sequences(kind, config):
    ours, ref = _pair(kind, *config)
    batch_first = config[2]
    g = torch.Generator().manual_seed(2)
    T, B = 7, 5
    x = torch.randn((B, T, 5) if batch_first else (T, B, 5), generator=g)
    lengths = torch.tensor([7, 1, 4, 7, 2])
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
    out_ref, s_ref = ref(packed)
    out_ref, _ = torch.nn.utils.rnn.pad_packed_sequence(out_ref, batch_first=batch_first, total_length=T)
    out_ours, s_ours = ours(x, lengths=lengths)
    torch.testing.assert_close(out_ours, out_ref, atol=1e-5, rtol=1e-5)
    for a, b in zip(_flat(s_ours), _flat(s_ref)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.golden
@pytest.mark.parametrize("kind", KINDS)
def test_cells_equal_torch_cells(kind):
    torch.manual_seed(3)
    ref = getattr(torch.nn, kind + "Cell")(4, 6)
    ours = getattr(rnn, kind + "Cell")(4, 6)
    ours.load_state_dict(ref.state_dict())
    x, h = torch.randn(2, 4), torch.randn(2, 6)
    state = (h, torch.randn(2, 6)) if kind == "LSTM" else h
    for a, b in zip(_flat(ours(x, state)), _flat(ref(x, state))):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_weights_copy_back_to_torch():
    ours = rnn.LSTM(3, 4, num_layers=2, bidirectional=True)
    ref = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(5, 2, 3)
    torch.testing.assert_close(ours(x)[0], ref(x)[0], atol=1e-5, rtol=1e-5)


def test_lstm_gates_are_in_range():
    cell = rnn.LSTMCell(3, 4)
    gates = cell.gate_values(torch.randn(2, 3), (torch.zeros(2, 4), torch.zeros(2, 4)))
    assert set(gates) == {"input", "forget", "candidate", "output"}
    for name in ("input", "forget", "output"):
        assert ((gates[name] > 0) & (gates[name] < 1)).all()


def test_bad_input_gives_clear_errors():
    layer = rnn.GRU(4, 8, num_layers=2)
    x = torch.randn(5, 3, 4)
    with pytest.raises(rnn.RNNShapeError, match="mismatched hidden size"):
        layer(x, torch.zeros(2, 3, 6))
    with pytest.raises(rnn.RNNShapeError, match="input_size=4"):
        layer(torch.randn(5, 3, 9))
    with pytest.raises(rnn.RNNShapeError, match="zero-length"):
        layer(torch.randn(0, 3, 4))
    with pytest.raises(rnn.RNNShapeError, match="zero-length"):
        layer(x, lengths=torch.tensor([5, 0, 2]))
    with pytest.raises(rnn.RNNShapeError, match="longer than the padded batch"):
        layer(x, lengths=torch.tensor([5, 6, 2]))
    with pytest.raises(rnn.RNNShapeError, match="one length per sequence"):
        layer(x, lengths=torch.tensor([5, 2]))
    with pytest.raises(rnn.RNNShapeError, match=r"\(h0, c0\)"):
        rnn.LSTM(4, 8)(x, torch.zeros(1, 3, 8))
    with pytest.raises(rnn.RNNShapeError, match="3-D"):
        layer(torch.randn(3, 4))
    with pytest.raises(ValueError):  # RNNShapeError is a ValueError too
        rnn.RNN(4, 0)


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_language_model_fused_and_from_scratch_agree(kind):
    torch.manual_seed(0)
    fused = rnn.RNNLanguageModel(11, hidden_size=8, embed_size=4, kind=kind, num_layers=2, fused=True)
    scratch = rnn.RNNLanguageModel(11, hidden_size=8, embed_size=4, kind=kind, num_layers=2, fused=False)
    scratch.load_state_dict(fused.state_dict())
    x, y = torch.randint(0, 11, (3, 5)), torch.randint(0, 11, (3, 5))
    torch.testing.assert_close(fused.loss((x, y)), scratch.loss((x, y)), atol=1e-5, rtol=1e-5)
    g = torch.Generator().manual_seed(0)
    out = fused.generate(torch.tensor([1, 2, 3]), 7, generator=g)
    assert out.shape == (7,) and out.max() < 11
    with pytest.raises(rnn.RNNShapeError, match="non-empty"):
        fused.generate(torch.tensor([], dtype=torch.long), 3)
    with pytest.raises(rnn.RNNShapeError, match="kind"):
        rnn.RNNLanguageModel(11, kind="transformer")


def test_char_batches_for_the_language_model():
    import numpy as np

    from lmcourse.data.text_batches import BatchError, CharVocab, random_batches, sequential_batches

    text = "to be or not to be"
    vocab = CharVocab(text)
    ids = vocab.encode(text)
    assert vocab.decode(ids) == text and vocab.encode("z")[0] == 0  # unseen -> unk
    x, y = next(random_batches(ids, 4, 6, seed=0))
    assert x.shape == y.shape == (4, 6)
    assert (x[:, 1:] == y[:, :-1]).all()  # y is x shifted one step
    seq = sequential_batches(np.arange(101), 2, 10)
    assert len(seq) == 5 and seq[0][0][1, 0].item() == 10 and seq[0][1][0, -1].item() == 10
    with pytest.raises(BatchError, match="too few"):
        next(random_batches(ids[:3], 2, 5))
    with pytest.raises(BatchError, match="positive"):
        sequential_batches(ids, 0, 3)
