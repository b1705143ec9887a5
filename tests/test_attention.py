"""Scaled dot-product and multi-head attention: plain vs fast path, golden vs torch.nn.MultiheadAttention."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lmcourse.nn import (MaskError, MultiHeadAttention, causal_mask, padding_mask, scaled_dot_product_attention)

torch.set_num_threads(1)


def copy_mha(ours: MultiHeadAttention, ref: nn.MultiheadAttention) -> None:
    """Copy torch's packed in_proj (q; k; v stacked) into our separate q/k/v Linear layers."""
    c = ours.d_model
    with torch.no_grad():
        for i, lin in enumerate([ours.q_proj, ours.k_proj, ours.v_proj]):
            lin.weight.copy_(ref.in_proj_weight[i * c:(i + 1) * c])
            if lin.bias is not None:
                lin.bias.copy_(ref.in_proj_bias[i * c:(i + 1) * c])
        ours.out_proj.weight.copy_(ref.out_proj.weight)
        if ours.out_proj.bias is not None:
            ours.out_proj.bias.copy_(ref.out_proj.bias)


def pair(d=16, h=4, bias=True, fast=True):
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(d, h, bias=bias, batch_first=True).eval()
    ours = MultiHeadAttention(d, h, bias=bias, fast=fast).eval()
    copy_mha(ours, ref)
    return ours, ref


def test_causal_and_padding_masks():
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    assert causal_mask(1, 3).tolist() == [[True, True, True]]  # the last query sees every cached key
    assert padding_mask([2, 0, 3], 3).tolist() == [[True, True, False], [False] * 3, [True] * 3]


@pytest.mark.parametrize("causal", [False, True])
def test_plain_equals_fast(causal):
    torch.manual_seed(1)
    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 5, 8), torch.randn(2, 3, 5, 6)
    mask = torch.rand(2, 1, 5, 5) > 0.3
    mask[..., 0] = True  # every query keeps at least one key
    for m in [None, mask, torch.randn(5, 5)]:
        a = scaled_dot_product_attention(q, k, v, m, causal=causal, fast=False)
        b = scaled_dot_product_attention(q, k, v, m, causal=causal, fast=True)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_causal_fast_path_passes_no_mask_tensor(monkeypatch):
    """A purely causal square attention asks SDPA for is_causal (FlashAttention's case), with no mask tensor;
    a cached step (T_q = 1 < T_k) keeps the explicit mask, whose alignment differs from is_causal's."""
    import torch.nn.functional as F

    seen = []
    real = F.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, **kw):
        seen.append((attn_mask is None, kw.get("is_causal", False)))
        return real(q, k, v, attn_mask=attn_mask, **kw)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    torch.manual_seed(3)
    mha = MultiHeadAttention(16, 4).eval()
    x = torch.randn(2, 7, 16)
    fast = mha(x, causal=True)
    mha.fast = False
    torch.testing.assert_close(fast, mha(x, causal=True), atol=1e-5, rtol=1e-5)
    assert seen == [(True, True)]
    q, k = torch.randn(1, 2, 1, 8), torch.randn(1, 2, 4, 8)
    a = scaled_dot_product_attention(q, k, k, causal=True, fast=True)
    b = scaled_dot_product_attention(q, k, k, causal=True, fast=False)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert seen[-1] == (False, False)


def test_weights_are_a_distribution_and_respect_the_mask():
    torch.manual_seed(2)
    q = k = v = torch.randn(1, 4, 8)
    out, w = scaled_dot_product_attention(q, k, v, causal=True, return_weights=True)
    torch.testing.assert_close(w.sum(-1), torch.ones(1, 4))
    assert (w.triu(1) == 0).all()
    assert out.shape == (1, 4, 8)


def test_default_scale_is_inverse_sqrt_dk():
    torch.manual_seed(3)
    q, k, v = torch.randn(1, 3, 16), torch.randn(1, 4, 16), torch.randn(1, 4, 2)
    expected = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(16), -1) @ v
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v), expected)


@pytest.mark.golden
@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_mha_matches_torch_no_mask(fast, bias):
    ours, ref = pair(bias=bias, fast=fast)
    for t in [1, 7]:  # length 1 is the awkward one
        x = torch.randn(3, t, 16)
        expected, _ = ref(x, x, x, need_weights=False)
        torch.testing.assert_close(ours(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.golden
@pytest.mark.parametrize("fast", [False, True])
def test_mha_matches_torch_with_masks(fast):
    ours, ref = pair(fast=fast)
    torch.manual_seed(4)
    x, mem = torch.randn(3, 6, 16), torch.randn(3, 9, 16)
    lengths = torch.tensor([9, 4, 1])
    keys = padding_mask(lengths, 9)                              # True = real token
    # causal self-attention
    exp, _ = ref(x, x, x, attn_mask=~causal_mask(6), need_weights=False)  # torch: True = blocked
    torch.testing.assert_close(ours(x, causal=True), exp, atol=1e-5, rtol=1e-5)
    # cross-attention with padded memory
    exp, exp_w = ref(x, mem, mem, key_padding_mask=~keys, average_attn_weights=False)
    torch.testing.assert_close(ours(x, mem, key_mask=keys), exp, atol=1e-5, rtol=1e-5)
    out, w = ours(x, mem, key_mask=keys, return_weights=True)
    torch.testing.assert_close(out, exp, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(w, exp_w, atol=1e-5, rtol=1e-5)
    # self-attention with padding and causal mask together, and a float mask
    kx = padding_mask(torch.tensor([6, 3, 1]), 6)
    exp, _ = ref(x, x, x, attn_mask=~causal_mask(6), key_padding_mask=~kx, need_weights=False)
    torch.testing.assert_close(ours(x, key_mask=kx, causal=True), exp, atol=1e-5, rtol=1e-5)
    fmask = torch.randn(6, 6)
    exp, _ = ref(x, x, x, attn_mask=fmask, need_weights=False)
    torch.testing.assert_close(ours(x, mask=fmask), exp, atol=1e-5, rtol=1e-5)
    # a per-example (B, T, T) boolean mask
    bmask = torch.rand(3, 6, 6) > 0.4
    bmask[..., 0] = True
    exp, _ = ref(x, x, x, attn_mask=(~bmask).repeat_interleave(4, 0), need_weights=False)
    torch.testing.assert_close(ours(x, mask=bmask), exp, atol=1e-5, rtol=1e-5)


def test_gradients_match_between_paths():
    torch.manual_seed(5)
    a, _ = pair(fast=False)
    b, _ = pair(fast=True)
    x = torch.randn(2, 5, 16)
    a(x, causal=True).sum().backward()
    b(x, causal=True).sum().backward()
    torch.testing.assert_close(a.q_proj.weight.grad, b.q_proj.weight.grad, atol=1e-5, rtol=1e-4)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="does not divide"):
        MultiHeadAttention(10, 3)
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(2, 4, 8)
    with pytest.raises(MaskError, match="does not broadcast"):
        mha(x, mask=torch.ones(5, 4, dtype=torch.bool))
    with pytest.raises(MaskError, match="key_mask"):
        mha(x, key_mask=torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(MaskError, match="boolean"):
        mha(x, mask=torch.ones(4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="same width"):
        scaled_dot_product_attention(torch.randn(1, 2, 4), torch.randn(1, 2, 3), torch.randn(1, 2, 3))
