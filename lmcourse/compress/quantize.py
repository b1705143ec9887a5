"""Quantization: int8 symmetric per-channel weights with dynamic activations, ternary and binary weights,
and BinaryBERT's ternary weight splitting.

Taught in chapter 20 (Model compression).

    int8 (per output channel c)   s_c = max_j |W_cj| / 127,   q = round(W / s_c) in [-127, 127]
    dynamic activations           x -> uint8 with a scale and zero point from this batch's min and max
    ternary (TWN)                 Delta = 0.7 mean|W|,  W_t = alpha_c sign(W) [|W| > Delta],
                                  alpha_c = mean of |W_cj| over |W_cj| > Delta
    binary                        W_b = alpha_c sign(W),  alpha_c = mean_j |W_cj|
    ternary weight splitting      W_t = W_1 + W_2 with W_1, W_2 binary (each entry +-alpha_c / 2):
                                  the split binary network computes exactly its ternary parent
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmcourse.errors import LMCourseError


class UnsupportedLayerError(LMCourseError, TypeError):
    """Quantization was asked for a layer type it does not handle."""


def _check_weight(w: Tensor) -> None:
    if w.dim() != 2:
        raise ValueError(f"expected a 2-d weight (out_features, in_features), got shape {tuple(w.shape)}")


def quantize_int8(w: Tensor) -> tuple[Tensor, Tensor]:
    """Symmetric per-output-channel int8: (q int8 (out, in), scale (out,)) with w ~ q * scale[:, None]."""
    _check_weight(w)
    scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127.0                 # (out,)
    q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scale


def quantize_activations(x: Tensor, reduce_range: bool = False) -> tuple[Tensor, float, int]:
    """Asymmetric per-tensor uint8 from the batch's min and max (range includes 0): (q, scale, zero_point)."""
    qmax = 127 if reduce_range else 255
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    scale = max((hi - lo) / qmax, 1e-12)
    zero_point = int(min(max(round(-lo / scale), 0), qmax))
    q = torch.clamp(torch.round(x / scale) + zero_point, 0, qmax).to(torch.uint8)
    return q, scale, zero_point


def ternarize(w: Tensor) -> Tensor:
    """TWN ternary weights: alpha_c sign(w) where |w| > 0.7 mean|w|, else 0 (per output row alpha_c)."""
    _check_weight(w)
    delta = 0.7 * w.abs().mean(dim=1, keepdim=True)                      # (out, 1)
    keep = (w.abs() > delta).to(w.dtype)
    alpha = (w.abs() * keep).sum(1, keepdim=True) / keep.sum(1, keepdim=True).clamp(min=1)
    return alpha * torch.sign(w) * keep


def binarize(w: Tensor) -> Tensor:
    """Binary weights: alpha_c sign(w), alpha_c = mean_j |w_cj| (per output row)."""
    _check_weight(w)
    return w.abs().mean(dim=1, keepdim=True) * torch.sign(w)


class _STE(torch.autograd.Function):
    """Straight-through estimator: the forward quantizes, the backward passes the gradient unchanged."""

    @staticmethod
    def forward(ctx, w, fn):
        return fn(w)

    @staticmethod
    def backward(ctx, g):
        return g, None


class Int8Linear(nn.Module):
    """A Linear with int8 per-channel weights and dynamically quantized uint8 activations.

    The integer product is computed exactly (as y = s_x s_w sum_j (x_q - z) q_w + b), in floating point,
    so it shows the arithmetic; PyTorch's ``quantize_dynamic`` runs it on int8 kernels.
    Taught in chapter 20 (Model compression).
    """

    def __init__(self, linear: nn.Linear, reduce_range: bool = False):
        super().__init__()
        q, scale = quantize_int8(linear.weight.detach())
        self.register_buffer("qweight", q)                               # (out, in) int8
        self.register_buffer("scale", scale.float())                     # (out,)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone())
        self.in_features, self.out_features, self.reduce_range = linear.in_features, linear.out_features, reduce_range

    def forward(self, x: Tensor) -> Tensor:
        xq, sx, zp = quantize_activations(x, self.reduce_range)
        acc = (xq.float() - zp) @ self.qweight.float().t()               # integer sums, exact below 2^24
        y = acc * (sx * self.scale)
        return y if self.bias is None else y + self.bias


class QuantLinear(nn.Module):
    """A Linear whose weight is ternarized or binarized in the forward pass (latent fp32 weights, STE).

    Taught in chapter 20 (Model compression).
    """

    BITS = {"ternary": 2, "binary": 1}

    def __init__(self, linear: nn.Linear, kind: str):
        super().__init__()
        if kind not in self.BITS:
            raise ValueError(f"kind must be 'ternary' or 'binary', not {kind!r}")
        self.kind, self.bits = kind, self.BITS[kind]
        self.weight = nn.Parameter(linear.weight.detach().clone())
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone())

    def quantized_weight(self) -> Tensor:
        return _STE.apply(self.weight, ternarize if self.kind == "ternary" else binarize)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.quantized_weight(), self.bias)


class SplitBinaryLinear(nn.Module):
    """BinaryBERT's ternary weight splitting: two binary Linears whose sum is the ternary parent.

    Built from a ternary ``QuantLinear``: where W_t = +-alpha both halves are +-alpha/2; where W_t = 0
    they are +alpha/2 and -alpha/2 (signed by the latent weight). Each half is then binarized on its own
    (alpha_i = mean|W_i|), so at the split the outputs equal the parent's and fine-tuning can go on.
    Taught in chapter 20 (Model compression).
    """

    bits = 1

    def __init__(self, ternary: QuantLinear):
        super().__init__()
        if not isinstance(ternary, QuantLinear) or ternary.kind != "ternary":
            raise UnsupportedLayerError("ternary weight splitting needs a ternary QuantLinear, got "
                                        f"{type(ternary).__name__}")
        with torch.no_grad():
            wt = ternarize(ternary.weight)                                # (out, in) in {-a, 0, a}
            alpha = wt.abs().amax(dim=1, keepdim=True)                    # each row's a
            sign = torch.where(ternary.weight >= 0, 1.0, -1.0)
            zero = wt == 0
            w1 = torch.where(zero, sign * alpha / 2, wt / 2)
            w2 = torch.where(zero, -sign * alpha / 2, wt / 2)
        self.weight1, self.weight2 = nn.Parameter(w1), nn.Parameter(w2)
        self.bias = None if ternary.bias is None else nn.Parameter(ternary.bias.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        w = _STE.apply(self.weight1, binarize) + _STE.apply(self.weight2, binarize)
        return F.linear(x, w, self.bias)


def quantize_layer(module: nn.Module, kind: str) -> nn.Module:
    """The quantized version of one layer: kind "int8", "ternary", "binary" (nn.Linear) or
    "split" (a ternary QuantLinear -> SplitBinaryLinear). Other layer types raise UnsupportedLayerError.

    Taught in chapter 20 (Model compression).
    """
    if kind == "split":
        return SplitBinaryLinear(module)
    if kind not in ("int8", "ternary", "binary"):
        raise ValueError(f"kind must be one of int8, ternary, binary, split; not {kind!r}")
    if type(module) is not nn.Linear:
        raise UnsupportedLayerError(f"cannot quantize a {type(module).__name__} to {kind}: only nn.Linear layers "
                                    "are supported (embeddings, LayerNorms and convolutions stay in fp32)")
    return Int8Linear(module) if kind == "int8" else QuantLinear(module, kind)


def quantize_model(model: nn.Module, kind: str, skip: tuple[str, ...] = ("head",)) -> nn.Module:
    """A copy of ``model`` with every supported layer replaced by ``quantize_layer(layer, kind)``.

    Layers whose dotted name contains a ``skip`` part (the classifier head by default) stay as they are.
    Taught in chapter 20 (Model compression).
    """
    want = QuantLinear if kind == "split" else nn.Linear
    model = copy.deepcopy(model)
    for name, mod in list(model.named_modules()):
        if type(mod) is not want or any(s in name.split(".") for s in skip):
            continue
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, quantize_layer(mod, kind))
    return model


def torch_dynamic_int8(model: nn.Module, per_channel: bool = True) -> nn.Module:
    """PyTorch's own dynamic int8 quantization of the model's Linear layers (int8 kernels), on a copy.

    ``torch.ao.quantization.quantize_dynamic`` with per-channel (or per-tensor) int8 weights; its
    deprecation warnings are silenced. The reference for ``Int8Linear``. Taught in chapter 20.
    """
    import warnings

    from torch.ao import quantization as tq
    qconfig = tq.per_channel_dynamic_qconfig if per_channel else tq.default_dynamic_qconfig
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tq.quantize_dynamic(copy.deepcopy(model), {nn.Linear: qconfig}, dtype=torch.qint8)


def model_size_bytes(model: nn.Module) -> int:
    """Storage of a model: fp32 tensors at 4 bytes, int8 at 1 byte; ternary / binary weights at 2 / 1 bits
    per weight plus one fp32 scale per row (packed storage). Taught in chapter 20 (Model compression)."""
    total = 0
    for mod in model.modules():
        tensors = list(mod.named_parameters(recurse=False)) + list(mod.named_buffers(recurse=False))
        for name, t in tensors:
            if isinstance(mod, QuantLinear) and name == "weight":
                total += (t.numel() * mod.bits + 7) // 8 + 4 * t.shape[0]
            elif isinstance(mod, SplitBinaryLinear) and name in ("weight1", "weight2"):
                total += (t.numel() + 7) // 8 + 4 * t.shape[0]
            else:
                total += t.numel() * t.element_size()
    return total


__all__ = ["Int8Linear", "QuantLinear", "SplitBinaryLinear", "UnsupportedLayerError", "binarize",
           "model_size_bytes", "quantize_activations", "quantize_int8", "quantize_layer", "quantize_model",
           "ternarize", "torch_dynamic_int8"]
