"""``lmcourse bench gpt``: training throughput of lmcourse GPT vs ``transformers.GPT2LMHeadModel``, and MFU.

Rows
----
GPT training tokens/s   lmcourse ``GPT`` and ``GPT2LMHeadModel`` built from the same config with the same
                        weights, trained (forward + backward + AdamW step) on the same batches, alternated;
                        ratio = lmcourse tokens/s / transformers tokens/s (target >= 1.0x)
matmul peak             the measured matmul FLOP/s of this machine, in the training's precision (the MFU
                        reference)
GPT MFU                 model FLOPs utilisation = tokens/s * (6N + 12 L d T) / peak (nanoGPT's formula);
                        reported for both models
GPT MFU vs bf16 peak    on a GPU whose bf16 dense peak is in ``BF16_DENSE_PEAK``: the same tokens/s over
                        the datasheet's peak (target >= 40%)

On a CPU both models train in fp32, as written. On a CUDA GPU both train the way a GPU run is
made fast: bf16 autocast, fused AdamW, ``torch.compile`` (off with ``compile=False``), and
attention through PyTorch's fused kernel (SDPA, causal, no mask tensor: FlashAttention).

Taught in chapter 7 (Pretrained language models); results in the Performance appendix.
"""
from __future__ import annotations

import contextlib
import time

import torch

from lmcourse.bench import Row
from lmcourse.bench.timing import alternated, best_time

SIZES = {
    "smoke": {"batch": 4, "seq": 128, "layers": 4, "d": 256, "heads": 4, "vocab": 4096, "steps": 6, "mm": 1024},
    "full": {"batch": 16, "seq": 1024, "layers": 12, "d": 768, "heads": 12, "vocab": 50304, "steps": 20,
             "mm": 8192},
}

#: Dense bf16 tensor-core peaks (FLOP/s, without sparsity) from NVIDIA's datasheets, by a name fragment of
#: ``torch.cuda.get_device_name``; the first fragment that matches wins.
BF16_DENSE_PEAK = [("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12), ("GH200", 989e12),
                   ("A100", 312e12), ("L40S", 362e12), ("L4", 121e12)]


def bf16_dense_peak(name: str) -> float | None:
    """The datasheet's dense bf16 peak of a GPU named ``name`` (FLOP/s), or None if not listed."""
    for fragment, peak in BF16_DENSE_PEAK:
        if fragment in name:
            return peak
    return None


def matmul_peak(n: int, device: torch.device, dtype: torch.dtype = torch.float32, repeats: int = 5) -> float:
    """Measured FLOP/s of an n x n x n matmul (best of ``repeats``): the machine's practical peak."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    seconds, _ = best_time(lambda: a @ b, repeats, device=device, warmup=1)
    return 2 * n ** 3 / seconds


def run(profile: str = "smoke", fast: bool | None = None, compile: bool = True) -> list[Row]:
    """The rows above. ``fast`` (default: on a GPU) trains with bf16 autocast, fused AdamW and, with
    ``compile``, ``torch.compile``; off, both models train in fp32 as written."""
    if profile not in SIZES:
        raise ValueError(f"unknown profile {profile!r}: choose smoke or full")
    from transformers import GPT2Config, GPT2LMHeadModel

    from lmcourse.models.gpt import flops_per_token
    from lmcourse.models.hf import gpt_from_hf

    s = SIZES[profile]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gpu = device.type == "cuda"
    fast = gpu if fast is None else fast
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=s["vocab"], n_positions=s["seq"], n_embd=s["d"], n_layer=s["layers"],
                     n_head=s["heads"], resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0,
                     eos_token_id=0)
    ref = GPT2LMHeadModel(cfg).train()
    ours = gpt_from_hf(ref).to(device).train()
    ref = ref.to(device)
    fpt = flops_per_token(ours, s["seq"])
    g = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, s["vocab"], (s["batch"], s["seq"] + 1), generator=g).to(device)
               for _ in range(s["steps"] + 1)]
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4, fused=fast)
    opt_ref = torch.optim.AdamW(ref.parameters(), lr=1e-4, fused=fast)
    fwd_ours, fwd_ref = (torch.compile(ours), torch.compile(ref)) if fast and compile else (ours, ref)

    def precision():
        return torch.autocast(device.type, dtype=torch.bfloat16) if fast else contextlib.nullcontext()

    def step_ours(b):
        with precision():
            _, loss = fwd_ours(b[:, :-1], b[:, 1:])
        loss.backward()
        opt_ours.step()
        opt_ours.zero_grad(set_to_none=True)

    def step_ref(b):
        with precision():
            logits = fwd_ref(b[:, :-1]).logits
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), b[:, 1:].flatten())
        loss.backward()
        opt_ref.step()
        opt_ref.zero_grad(set_to_none=True)

    t0 = time.perf_counter()
    feed_ours, feed_ref = iter(batches), iter(batches)   # the same batches, in the same order, on both sides
    t = alternated({"ours": lambda: step_ours(next(feed_ours)), "ref": lambda: step_ref(next(feed_ref))},
                   s["steps"], device=device)            # the warm-up step also compiles, on a GPU
    tokens = s["batch"] * s["seq"]
    tps_ours, tps_ref = tokens / t["ours"], tokens / t["ref"]
    dtype = torch.bfloat16 if fast else torch.float32
    peak = matmul_peak(s["mm"], device, dtype=dtype)
    how = (f"bf16 autocast, fused AdamW, {'torch.compile' if compile else 'eager'}" if fast
           else "fp32, AdamW, eager") + ", SDPA"
    where = torch.cuda.get_device_name(0) if gpu else "cpu"
    shape = f"L={s['layers']} d={s['d']} H={s['heads']} V={s['vocab']} B={s['batch']} T={s['seq']}, {where}"
    rows = [
        Row("gpt", "GPT training tokens/s", tps_ours, tps_ref, "tok/s", tps_ours / tps_ref, ">= 1.0x",
            tps_ours / tps_ref >= 1.0, f"vs transformers GPT2LMHeadModel, {how}, {shape}; "
                                       f"{time.perf_counter() - t0:.0f} s with warm-up"),
        Row("gpt", f"matmul peak ({'bf16' if fast else 'fp32'})", peak / 1e9, peak / 1e9, "GFLOP/s", 1.0, "", None,
            f"measured {s['mm']}^3 matmul, the MFU reference"),
        Row("gpt", "GPT MFU (6N + 12LdT)", 100 * tps_ours * fpt / peak, 100 * tps_ref * fpt / peak, "% MFU",
            tps_ours / tps_ref, "report", None, f"{fpt / 1e6:.3g} MFLOP per token over the measured peak; "
                                                "reference column = transformers"),
    ]
    spec = bf16_dense_peak(where) if gpu and fast else None
    if spec:
        mfu_ours, mfu_ref = 100 * tps_ours * fpt / spec, 100 * tps_ref * fpt / spec
        rows.append(Row("gpt", "GPT MFU vs the GPU's bf16 dense peak", mfu_ours, mfu_ref, "% MFU", mfu_ours / 40,
                        ">= 1x (40% MFU)", mfu_ours >= 40, f"datasheet peak {spec / 1e12:.0f} TFLOP/s ({where}); "
                                                         "ratio = MFU / 40%"))
    return rows
