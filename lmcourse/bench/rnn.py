"""``lmcourse bench rnn``: forward + backward time of lmcourse's LSTM layer vs ``torch.nn.LSTM``.

Taught in chapter 4 (RNNs); collected in the Performance appendix.

Same shapes, same weights (copied), same input, in one run. lmcourse's layer runs one
Python-level cell call per time step and per direction (a few small matmuls and
elementwise kernels each); ``torch.nn.LSTM`` runs the whole sequence in one fused
ATen/cuDNN kernel. No target: the ratio measures what the fused kernels buy.
"""
from __future__ import annotations

import torch

from lmcourse.bench import Row
from lmcourse.bench.timing import best_time
from lmcourse.nn import rnn

#: (batch, time, input, hidden, layers, bidirectional) per profile.
SHAPES = {
    "smoke": [(32, 64, 64, 128, 1, False), (32, 64, 64, 128, 2, True)],
    "full": [(64, 256, 256, 512, 1, False), (64, 256, 256, 512, 2, True)],
}


def _time_fwd_bwd(layer: torch.nn.Module, x: torch.Tensor, repeat: int) -> float:
    """Best wall time of forward + backward over ``repeat`` runs (after one warm-up)."""
    def once():
        out, _ = layer(x)
        out.sum().backward()
    return best_time(once, repeat, device=x.device, warmup=1)[0]


def run(profile: str = "smoke", device: str | None = None, shapes: list[tuple] | None = None,
        repeat: int | None = None) -> list[Row]:
    """Time both layers on each shape ``(batch, time, input, hidden, layers, bidirectional)``."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    rows = []
    for B, T, I, H, L, bi in shapes or SHAPES["smoke" if profile == "smoke" else "full"]:
        torch.manual_seed(0)
        ref = torch.nn.LSTM(I, H, num_layers=L, bidirectional=bi, batch_first=True).to(dev)
        ours = rnn.LSTM(I, H, num_layers=L, bidirectional=bi, batch_first=True).to(dev)
        ours.load_state_dict(ref.state_dict())
        x = torch.randn(B, T, I, device=dev, requires_grad=True)
        with torch.no_grad():  # same function: check before timing
            diff = (ours(x)[0] - ref(x)[0]).abs().max().item()
        if diff > 1e-4:
            raise AssertionError(f"lmcourse LSTM differs from torch.nn.LSTM by {diff}")
        n = repeat or (5 if profile == "smoke" else 10)
        t_ours = _time_fwd_bwd(ours, x, n)
        t_ref = _time_fwd_bwd(ref, x, n)
        shape = f"B={B} T={T} I={I} H={H} layers={L}{' bidir' if bi else ''}"
        rows.append(Row("rnn", f"LSTM fwd+bwd {shape} ({dev.type})", t_ours * 1e3, t_ref * 1e3, "ms",
                        ratio=t_ref / t_ours, target="", met=None,
                        note=f"max |diff| {diff:.1e}; ratio < 1: lmcourse is slower"))
    return rows
