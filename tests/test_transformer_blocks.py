"""Transformer blocks vs torch.nn.TransformerEncoderLayer / DecoderLayer with copied weights; positional encodings."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lmcourse.nn import (DecoderBlock, EncoderBlock, FeedForward, LearnedPositionalEmbedding,
                         Seq2SeqTransformer, SinusoidalPositionalEncoding, causal_mask, padding_mask,
                         sinusoidal_encoding)
from test_attention import copy_mha

torch.set_num_threads(1)


def copy_ffn(ours: FeedForward, layer) -> None:
    with torch.no_grad():
        ours.fc1.weight.copy_(layer.linear1.weight)
        ours.fc1.bias.copy_(layer.linear1.bias)
        ours.fc2.weight.copy_(layer.linear2.weight)
        ours.fc2.bias.copy_(layer.linear2.bias)


def copy_norms(ours, layer, n: int) -> None:
    for i in range(1, n + 1):
        getattr(ours, f"norm{i}").load_state_dict(getattr(layer, f"norm{i}").state_dict())


def encoder_pair(norm_first: bool, activation: str = "relu", d=16, h=4, ff=32):
    torch.manual_seed(0)
    ref = nn.TransformerEncoderLayer(d, h, ff, dropout=0.0, activation=activation, batch_first=True,
                                     norm_first=norm_first)
    ours = EncoderBlock(d, h, ff, activation=activation, norm_first=norm_first)
    with torch.no_grad():  # give the LayerNorms non-trivial parameters
        for n in (ref.norm1, ref.norm2):
            n.weight.uniform_(0.5, 1.5)
            n.bias.uniform_(-0.5, 0.5)
    copy_mha(ours.self_attn, ref.self_attn)
    copy_ffn(ours.ffn, ref)
    copy_norms(ours, ref, 2)
    return ours, ref


@pytest.mark.golden
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_block_matches_torch(norm_first, activation):
    ours, ref = encoder_pair(norm_first, activation)
    for t in [1, 6]:
        x = torch.randn(3, t, 16)
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours(x, causal=True), ref(x, src_mask=~causal_mask(t), is_causal=True),
                                   atol=1e-5, rtol=1e-5)


@pytest.mark.golden
@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_block_matches_torch_with_padding(norm_first):
    ours, ref = encoder_pair(norm_first)
    x = torch.randn(3, 6, 16)
    keys = padding_mask([6, 3, 1], 6)
    ref.train()  # dropout is 0; train mode keeps torch off its nested-tensor fast path (zeros at padding)
    torch.testing.assert_close(ours(x, key_mask=keys), ref(x, src_key_padding_mask=~keys), atol=1e-5, rtol=1e-5)
    ref.eval()
    ours.eval()
    with torch.no_grad():  # torch's inference fast path: equal on the real tokens
        a, b = ours(x, key_mask=keys), ref(x, src_key_padding_mask=~keys)
    torch.testing.assert_close(a[keys], b[keys], atol=1e-5, rtol=1e-5)


@pytest.mark.golden
def test_encoder_block_gradients_match_torch():
    ours, ref = encoder_pair(False)
    x = torch.randn(2, 5, 16)
    ours(x).pow(2).sum().backward()
    ref(x).pow(2).sum().backward()
    torch.testing.assert_close(ours.ffn.fc1.weight.grad, ref.linear1.weight.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ours.self_attn.q_proj.weight.grad, ref.self_attn.in_proj_weight.grad[:16],
                               atol=1e-4, rtol=1e-4)


@pytest.mark.golden
@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_block_matches_torch(norm_first):
    torch.manual_seed(0)
    d, h, ff = 16, 4, 32
    ref = nn.TransformerDecoderLayer(d, h, ff, dropout=0.0, batch_first=True, norm_first=norm_first)
    ours = DecoderBlock(d, h, ff, norm_first=norm_first)
    copy_mha(ours.self_attn, ref.self_attn)
    copy_mha(ours.cross_attn, ref.multihead_attn)
    copy_ffn(ours.ffn, ref)
    copy_norms(ours, ref, 3)
    x, mem = torch.randn(3, 5, d), torch.randn(3, 7, d)
    mk = padding_mask([7, 2, 1], 7)
    expected = ref(x, mem, tgt_mask=~causal_mask(5), memory_key_padding_mask=~mk)
    torch.testing.assert_close(ours(x, mem, memory_key_mask=mk), expected, atol=1e-5, rtol=1e-5)


def test_pre_ln_residual_stream_and_post_ln_normalised_output():
    torch.manual_seed(1)
    x = torch.randn(2, 4, 16) * 3
    y = EncoderBlock(16, 4, norm_first=False).eval()(x)
    torch.testing.assert_close(y.mean(-1), torch.zeros(2, 4), atol=1e-5, rtol=0)  # LayerNorm is last


def test_causal_block_ignores_the_future():
    torch.manual_seed(2)
    for block in [EncoderBlock(16, 2, norm_first=True), DecoderBlock(16, 2)]:
        x = torch.randn(1, 6, 16)
        x2 = x.clone()
        x2[:, 4:] = torch.randn(1, 2, 16)
        args = () if isinstance(block, EncoderBlock) else (torch.randn(1, 3, 16),)
        kw = {"causal": True} if isinstance(block, EncoderBlock) else {}
        torch.testing.assert_close(block(x, *args, **kw)[:, :4], block(x2, *args, **kw)[:, :4])


def test_sinusoidal_formula():
    pe = sinusoidal_encoding(50, 8)
    pos, i = 17, 1
    assert math.isclose(pe[pos, 2 * i].item(), math.sin(pos / 10000 ** (2 * i / 8)), rel_tol=1e-5)
    assert math.isclose(pe[pos, 2 * i + 1].item(), math.cos(pos / 10000 ** (2 * i / 8)), rel_tol=1e-5)
    x = torch.zeros(2, 5, 8)
    torch.testing.assert_close(SinusoidalPositionalEncoding(8, 50)(x, offset=3)[0], pe[3:8])
    learned = LearnedPositionalEmbedding(8, 10)
    assert learned.weight.shape == (10, 8)
    torch.testing.assert_close(learned(x)[1], learned.weight[:5])
    with pytest.raises(ValueError, match="max_len"):
        learned(torch.zeros(1, 11, 8))
    with pytest.raises(ValueError, match="even"):
        sinusoidal_encoding(4, 7)


def test_attention_without_positions_is_permutation_equivariant():
    torch.manual_seed(3)
    block = EncoderBlock(16, 4).eval()
    x = torch.randn(1, 5, 16)
    perm = torch.tensor([3, 0, 4, 1, 2])
    torch.testing.assert_close(block(x)[:, perm], block(x[:, perm]), atol=1e-5, rtol=1e-5)


def test_seq2seq_transformer_shapes_and_errors():
    torch.manual_seed(4)
    model = Seq2SeqTransformer(vocab_size=13, d_model=16, n_heads=2, n_layers=1, max_len=20)
    src = torch.tensor([[3, 4, 5, 0], [6, 7, 0, 0]])
    tgt = torch.tensor([[1, 5, 4], [1, 7, 0]])
    assert model(src, tgt).shape == (2, 3, 13)
    out = model.greedy_decode(src, bos_id=1, eos_id=2, max_len=5)
    assert out.shape[0] == 2 and out.shape[1] <= 5
    with pytest.raises(ValueError, match="empty"):
        Seq2SeqTransformer(vocab_size=0)
    with pytest.raises(ValueError, match="activation"):
        FeedForward(8, 16, activation="tanh")
    with pytest.raises(ValueError, match="does not divide"):
        EncoderBlock(12, 5)
