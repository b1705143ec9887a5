import pytest
import torch
from torch import nn

from lmcourse.compress import (Int8Linear, QuantLinear, SplitBinaryLinear, UnsupportedLayerError, binarize,
                               model_size_bytes, quantize_int8, quantize_layer, quantize_model, ternarize,
                               torch_dynamic_int8)
from tests.test_distill import tiny_clf


def test_int8_roundtrip_error_below_half_step():
    w = torch.randn(7, 13)
    q, s = quantize_int8(w)
    assert q.dtype == torch.int8 and q.abs().max() <= 127
    assert ((q.float() * s[:, None] - w).abs() <= s[:, None] / 2 + 1e-7).all()


@pytest.mark.golden
@pytest.mark.parametrize("shape", [(1, 1, 16), (2, 5, 16), (3, 16)])
def test_int8_dynamic_matches_pytorch(shape):
    torch.manual_seed(0)
    lin = nn.Linear(16, 24)
    x = torch.randn(*shape) * 2 + 0.5
    ref = torch_dynamic_int8(nn.Sequential(lin))
    ours = Int8Linear(lin)
    with torch.no_grad():
        y_fp, y_ref, y_ours = lin(x), ref(x), ours(x)
    # worst-case error of a quantized product, per output: sum_j |x_j| dw_c + |w_cj| dx + dw_c dx
    dx = (max(x.max().item(), 0) - min(x.min().item(), 0)) / 127 / 2    # PyTorch may use a 7-bit range
    dw = lin.weight.abs().amax(1) / 127 / 2
    bound = x.abs().sum(-1, keepdim=True) * dw + lin.weight.abs().sum(1) * dx + 16 * dw * dx
    assert ((y_ours - y_fp).abs() <= bound + 1e-5).all()
    assert ((y_ref - y_fp).abs() <= bound + 1e-5).all()
    assert ((y_ours - y_ref).abs() <= 2 * bound + 1e-5).all()
    assert (y_ours - y_ref).abs().max() < 0.05 * y_fp.abs().max()


def test_ternary_and_binary_values():
    w = torch.randn(6, 10)
    t, b = ternarize(w), binarize(w)
    for r in range(6):
        assert len(torch.unique(t[r].abs())) <= 2 and len(torch.unique(b[r].abs())) == 1
    assert (torch.sign(b) == torch.sign(w)).all()


@pytest.mark.golden
def test_split_binary_equals_ternary_parent():
    torch.manual_seed(0)
    clf = tiny_clf()
    tern = quantize_model(clf, "ternary")
    split = quantize_model(tern, "split")
    assert any(isinstance(m, SplitBinaryLinear) for m in split.modules())
    assert not any(isinstance(m, QuantLinear) for m in split.modules())
    ids = torch.randint(1, 50, (3, 9))
    with torch.no_grad():
        assert torch.allclose(split(ids), tern(ids), atol=1e-5)
    lin = QuantLinear(nn.Linear(10, 4), "ternary")
    s = SplitBinaryLinear(lin)
    for wi in (s.weight1, s.weight2):                                # each half is binary: one |value| per row
        assert torch.allclose(binarize(wi), wi)
    x = torch.randn(1, 10)
    assert torch.allclose(s(x), lin(x), atol=1e-6)


def test_sizes_and_unsupported_layer():
    clf = tiny_clf()
    sizes = {k: model_size_bytes(quantize_model(clf, k)) for k in ("int8", "ternary", "binary")}
    fp = model_size_bytes(clf)
    assert fp > sizes["int8"] > sizes["ternary"] > sizes["binary"]
    with pytest.raises(UnsupportedLayerError, match="Embedding"):
        quantize_layer(nn.Embedding(5, 3), "int8")
    with pytest.raises(UnsupportedLayerError, match="Conv1d"):
        quantize_layer(nn.Conv1d(2, 2, 1), "binary")
    with pytest.raises(ValueError, match="kind"):
        quantize_layer(nn.Linear(2, 2), "int4")
