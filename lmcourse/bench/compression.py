"""``lmcourse bench compression``: inference speed and size of compressed models, side by side in one run.

Rows
----
int8 vs fp32 latency        a MiniLM-sized ``BertClassifier`` (random weights) in fp32 vs the same model with
                            PyTorch's dynamic int8 Linear kernels (``compress.torch_dynamic_int8``);
                            ratio = fp32 time / int8 time (the speed-up)
int8 vs fp32 size           ``compress.model_size_bytes`` of the lmcourse int8 model vs fp32; ratio = fp32 / int8
Int8Linear vs PyTorch       lmcourse's ``Int8Linear`` (integer arithmetic emulated in fp32) vs PyTorch's
                            int8 kernels on the same model; ratio = PyTorch time / lmcourse time
student vs teacher latency  2-layer student vs 6-layer teacher of the same width; ratio = teacher / student

Taught in chapter 20 (Model compression); results in the Performance appendix.
"""
from __future__ import annotations

from functools import partial

import torch

from lmcourse.bench import Row
from lmcourse.bench.timing import alternated

SIZES = {
    "smoke": {"batch": 16, "seq": 32, "layers": 6, "student": 2, "d": 384, "heads": 12, "ff": 1536,
              "vocab": 30522, "repeats": 5},
    # BERT-base sizes; int8 kernels are CPU-only, so this runs on the CPU even on a GPU machine: 5 rounds
    "full": {"batch": 16, "seq": 128, "layers": 12, "student": 4, "d": 768, "heads": 12, "ff": 3072,
             "vocab": 30522, "repeats": 5},
}


def run(profile: str = "smoke") -> list[Row]:
    if profile not in SIZES:
        raise ValueError(f"unknown profile {profile!r}: choose smoke or full")
    from lmcourse import compress
    from lmcourse.models import BERT, BertClassifier, BertConfig

    s = SIZES[profile]
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=s["vocab"], hidden_size=s["d"], num_hidden_layers=s["layers"],
                     num_attention_heads=s["heads"], intermediate_size=s["ff"], max_position_embeddings=512,
                     dropout=0.0)
    teacher = BertClassifier(BERT(cfg), 3, dropout=0.0).eval()       # CPU: PyTorch's int8 kernels are CPU-only
    student = compress.drop_layers(teacher, list(range(s["student"]))).eval()
    int8_torch = compress.torch_dynamic_int8(teacher).eval()
    int8_ours = compress.quantize_model(teacher, "int8").eval()
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, s["vocab"], (s["batch"], s["seq"]), generator=g)
    x = (ids, None, torch.ones_like(ids))
    models = {"fp32": teacher, "int8": int8_torch, "ours": int8_ours, "student": student}
    with torch.no_grad():
        t = alternated({k: partial(m, *x) for k, m in models.items()}, s["repeats"], device="cpu")
    size_fp, size_q = compress.model_size_bytes(teacher), compress.model_size_bytes(int8_ours)
    lin_fp = sum(m.weight.numel() * 4 for m in compress.prunable_linears(teacher).values())
    lin_q = sum(m.qweight.numel() + 4 * m.scale.numel() for m in int8_ours.modules()
                if isinstance(m, compress.Int8Linear))
    shape = (f"L={s['layers']} d={s['d']} H={s['heads']} B={s['batch']} T={s['seq']}, cpu, "
             f"{torch.get_num_threads()} threads")
    ms = {k: 1000 * v for k, v in t.items()}
    return [
        Row("compression", "int8 dynamic (PyTorch kernels) latency", ms["int8"], ms["fp32"], "ms",
            ms["fp32"] / ms["int8"], "report", None, f"vs fp32 forward, {shape}"),
        Row("compression", "int8 model size", size_q / 1e6, size_fp / 1e6, "MB", size_fp / size_q, "report", None,
            f"whole model (fp32 embeddings kept); Linear weights alone {lin_fp / lin_q:.3g}x smaller"),
        Row("compression", "lmcourse Int8Linear (emulated) latency", ms["ours"], ms["int8"], "ms",
            ms["int8"] / ms["ours"], "report", None, "reference = PyTorch quantize_dynamic; ours shows the "
            "arithmetic in fp32, not a fast kernel"),
        Row("compression", f"student ({s['student']} layers) latency", ms["student"], ms["fp32"], "ms",
            ms["fp32"] / ms["student"], f">= {s['layers'] / s['student'] / 2:.3g}x",
            ms["fp32"] / ms["student"] >= s["layers"] / s["student"] / 2,
            f"reference = teacher ({s['layers']} layers), same width"),
    ]


__all__ = ["run"]
