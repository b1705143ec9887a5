"""``lmcourse bench gpt``: training throughput of lmcourse GPT vs ``transformers.GPT2LMHeadModel``, and MFU.

Rows
----
GPT training tokens/s   lmcourse ``GPT`` and ``GPT2LMHeadModel`` built from the same config with the same
                        weights, trained (forward + backward + AdamW step) on the same batches, alternated;
                        ratio = lmcourse tokens/s / transformers tokens/s (target >= 1.0x)
matmul peak             the measured fp32 (or bf16 on GPU) matmul FLOP/s of this machine (the MFU reference)
GPT MFU                 model FLOPs utilisation = tokens/s * (6N + 12 L d T) / peak (nanoGPT's formula);
                        reported for both models

Taught in chapter 7 (Pretrained language models); results in the Performance appendix.
"""
from __future__ import annotations

import statistics
import time

import torch

from lmcourse.bench import Row

SIZES = {
    "smoke": {"batch": 4, "seq": 128, "layers": 4, "d": 256, "heads": 4, "vocab": 4096, "steps": 6, "mm": 1024},
    "full": {"batch": 16, "seq": 1024, "layers": 12, "d": 768, "heads": 12, "vocab": 50304, "steps": 20,
             "mm": 8192},
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(n: int, device: torch.device, dtype: torch.dtype = torch.float32, repeats: int = 5) -> float:
    """Measured FLOP/s of an n x n x n matmul (best of ``repeats``): the machine's practical peak."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def run(profile: str = "smoke") -> list[Row]:
    if profile not in SIZES:
        raise ValueError(f"unknown profile {profile!r}: choose smoke or full")
    from transformers import GPT2Config, GPT2LMHeadModel

    from lmcourse.models.gpt import flops_per_token
    from lmcourse.models.hf import gpt_from_hf

    s = SIZES[profile]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=s["vocab"], n_positions=s["seq"], n_embd=s["d"], n_layer=s["layers"],
                     n_head=s["heads"], resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0,
                     eos_token_id=0)
    ref = GPT2LMHeadModel(cfg).to(device).train()
    ours = gpt_from_hf(ref.cpu()).to(device).train()
    ref = ref.to(device)
    g = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, s["vocab"], (s["batch"], s["seq"] + 1), generator=g).to(device)
               for _ in range(s["steps"] + 1)]
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4)
    opt_ref = torch.optim.AdamW(ref.parameters(), lr=1e-4)

    def step_ours(b):
        _, loss = ours(b[:, :-1], b[:, 1:])
        loss.backward()
        opt_ours.step()
        opt_ours.zero_grad(set_to_none=True)

    def step_ref(b):
        logits = ref(b[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), b[:, 1:].flatten())
        loss.backward()
        opt_ref.step()
        opt_ref.zero_grad(set_to_none=True)

    step_ours(batches[0])                                 # warm up both
    step_ref(batches[0])
    t_ours, t_ref = [], []
    for b in batches[1:]:                                 # alternate, so machine noise hits both alike
        for fn, times in ((step_ours, t_ours), (step_ref, t_ref)):
            _sync(device)
            t = time.perf_counter()
            fn(b)
            _sync(device)
            times.append(time.perf_counter() - t)
    tokens = s["batch"] * s["seq"]
    tps_ours, tps_ref = tokens / statistics.median(t_ours), tokens / statistics.median(t_ref)
    peak = matmul_peak(s["mm"], device, dtype=torch.float32)
    fpt = flops_per_token(ours, s["seq"])
    shape = f"L={s['layers']} d={s['d']} H={s['heads']} V={s['vocab']} B={s['batch']} T={s['seq']}, {device.type}"
    return [
        Row("gpt", "GPT training tokens/s", tps_ours, tps_ref, "tok/s", tps_ours / tps_ref, ">= 1.0x",
            tps_ours / tps_ref >= 1.0, f"vs transformers GPT2LMHeadModel, fp32 AdamW, {shape}"),
        Row("gpt", "matmul peak (fp32)", peak / 1e9, peak / 1e9, "GFLOP/s", 1.0, "", None,
            f"measured {s['mm']}^3 matmul, the MFU reference"),
        Row("gpt", "GPT MFU (6N + 12LdT)", 100 * tps_ours * fpt / peak, 100 * tps_ref * fpt / peak, "%",
            tps_ours / tps_ref, "report", None, f"{fpt / 1e6:.3g} MFLOP per token; reference column = transformers"),
    ]


__all__ = ["matmul_peak", "run"]
