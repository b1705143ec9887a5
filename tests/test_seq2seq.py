"""lmcourse.models.seq2seq: the notes' attention, encoder-decoder, decoding (chapter 5)."""
from __future__ import annotations

import pytest
import torch

from lmcourse.data import dates
from lmcourse.models.seq2seq import DotAttention, Seq2Seq, Seq2SeqError, exact_match, source_gradient_norms


@pytest.mark.golden
def test_attention_equals_the_notes_formula():
    g = torch.Generator().manual_seed(0)
    B, T, N, H = 3, 4, 6, 5
    s, h = torch.randn(B, T, H, generator=g), torch.randn(B, N, H, generator=g)
    out, alpha = DotAttention()(s, h)
    for b in range(B):
        for t in range(T):
            e = torch.stack([s[b, t] @ h[b, i] for i in range(N)])  # e_t = [s_t^T h_1, ..., s_t^T h_N]
            a = torch.exp(e) / torch.exp(e).sum()  # alpha_t = softmax(e_t)
            o = sum(a[i] * h[b, i] for i in range(N))  # o_t = sum_i alpha_t,i h_i
            torch.testing.assert_close(alpha[b, t], a, atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(out[b, t], o, atol=1e-6, rtol=1e-5)
    # a single (B, H) query gives the same as a length-1 query sequence
    o1, a1 = DotAttention()(s[:, 0], h)
    torch.testing.assert_close(o1, out[:, 0])
    torch.testing.assert_close(a1, alpha[:, 0])


def test_attention_ignores_padded_values():
    s, h = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    out, alpha = DotAttention()(s, h, mask)
    assert (alpha[1, :, 2:] == 0).all()
    ref, _ = DotAttention()(s[1:], h[1:, :2])
    torch.testing.assert_close(out[1:], ref)
    with pytest.raises(Seq2SeqError, match="hidden size"):
        DotAttention()(torch.randn(2, 3, 4), torch.randn(2, 5, 6))


def _batch(n=6, seed=0):
    return dates.encode_pairs(dates.make_pairs(n, seed=seed, max_filler=2))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("attention", [True, False])
def test_fused_and_from_scratch_models_agree(cell, attention):
    torch.manual_seed(0)
    V_s, V_t = len(dates.SOURCE_VOCAB), len(dates.TARGET_VOCAB)
    fused = Seq2Seq(V_s, V_t, hidden_size=16, embed_size=8, cell=cell, attention=attention, fused=True)
    scratch = Seq2Seq(V_s, V_t, hidden_size=16, embed_size=8, cell=cell, attention=attention, fused=False)
    scratch.load_state_dict(fused.state_dict())
    b = _batch()
    l1, a1 = fused(b["source"], b["source_lengths"], b["target_in"])
    l2, a2 = scratch(b["source"], b["source_lengths"], b["target_in"])
    torch.testing.assert_close(l1, l2, atol=1e-5, rtol=1e-5)
    assert (a1 is None) == (not attention)
    if attention:
        assert a1.shape == (6, 11, b["source"].shape[1])
        torch.testing.assert_close(a1.sum(-1), torch.ones(6, 11))
        # padded source positions get no attention
        pad = b["source"] == dates.PAD
        assert (a1.masked_select(pad[:, None, :].expand_as(a1)) == 0).all()


def test_training_learns_and_decoders_agree_on_a_tiny_task():
    torch.manual_seed(0)
    pairs = dates.make_pairs(64, seed=0, formats=["iso"])
    b = dates.encode_pairs(pairs)
    model = Seq2Seq(len(dates.SOURCE_VOCAB), len(dates.TARGET_VOCAB), hidden_size=32, embed_size=16)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    first = model.loss(b).item()
    for _ in range(150):
        loss = model.loss(b)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 5
    model.eval()
    acc = exact_match(model, b, dates.TARGET_VOCAB).float().mean().item()
    assert acc > 0.5
    ids, alpha = model.greedy(b["source"][:1], b["source_lengths"][:1])
    best = model.beam(b["source"][:1], b["source_lengths"][:1], beam_size=3)
    assert best[0][1] >= best[-1][1]
    # beam search with beam 1 is greedy search
    one = model.beam(b["source"][:1], b["source_lengths"][:1], beam_size=1)
    assert one[0][0] == ids[0, :len(one[0][0])].tolist()
    assert alpha.shape[:2] == ids.shape


def test_gradient_norms_are_zero_on_padding():
    torch.manual_seed(0)
    model = Seq2Seq(len(dates.SOURCE_VOCAB), len(dates.TARGET_VOCAB), hidden_size=16, embed_size=8)
    b = _batch()
    g = source_gradient_norms(model, b, position=0)
    assert g.shape == b["source"].shape
    assert (g[b["source"] == dates.PAD] == 0).all() and (g[b["source"] != dates.PAD] > 0).all()


def test_bad_input_gives_clear_errors():
    model = Seq2Seq(len(dates.SOURCE_VOCAB), len(dates.TARGET_VOCAB), hidden_size=8, embed_size=4)
    b = _batch(3)
    with pytest.raises(Seq2SeqError, match="zero-length"):
        model(b["source"], torch.tensor([3, 0, 2]), b["target_in"])
    with pytest.raises(Seq2SeqError, match="longer than the padded batch"):
        model(b["source"], torch.tensor([3, 999, 2]), b["target_in"])
    with pytest.raises(Seq2SeqError, match="one source at a time"):
        model.beam(b["source"], b["source_lengths"])
    with pytest.raises(Seq2SeqError, match="cell"):
        Seq2Seq(10, 10, cell="transformer")
