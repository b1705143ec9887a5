"""``lmcourse bench efficiency``: activation checkpointing and optimizer offloading, memory saved vs time added.

Taught in chapter 19 (Mixed precision, offloading, overlapping, checkpointing).

* checkpointing: a GPT's activation bytes (measured peak: kept + one recomputed segment)
  with the measured best number ``k`` of checkpoints over the plain run, and the step time of
  lmcourse's ``Checkpoint`` vs ``torch.utils.checkpoint`` and vs no checkpointing;
* offloading: optimizer-state bytes left on the device by ``OffloadAdam`` vs on-device
  ``torch.optim.Adam``, and the step time of each (the copies included).
"""
from __future__ import annotations

from dataclasses import replace

import torch

from lmcourse.bench import Row
from lmcourse.bench.timing import alternated

SIZES = {"smoke": {"n_layer": 8, "n_embd": 32, "block": 32, "batch": 4, "vocab": 64, "repeats": 5, "steps": 5},
         "full": {"n_layer": 16, "n_embd": 256, "block": 256, "batch": 16, "vocab": 1024, "repeats": 5, "steps": 8}}


def run(profile: str = "smoke") -> list[Row]:
    from lmcourse.models import GPT, GPTConfig
    from lmcourse.systems.checkpoint import activation_memory, checkpointed_forward
    from lmcourse.systems.offload import compare_offload

    s = SIZES["smoke" if profile == "smoke" else "full"]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=s["vocab"], block_size=s["block"], n_layer=s["n_layer"], n_head=4, n_embd=s["n_embd"])
    model = GPT(cfg).to(device)
    idx = torch.randint(0, s["vocab"], (s["batch"], s["block"]), device=device)
    tgt = torch.roll(idx, -1, dims=1)
    mem = {k: activation_memory(model, idx, tgt, k) for k in range(s["n_layer"] + 1)}
    k = min(range(1, s["n_layer"] + 1), key=lambda j: mem[j]["peak"])      # measured best (see chapter 19)
    plain, ckpt = mem[0], mem[k]

    def ckpt_step(segments: int, use_torch: bool = False):
        def go():
            model.zero_grad(set_to_none=True)
            checkpointed_forward(model, idx, tgt, segments, use_torch=use_torch).backward()
        return go

    t = alternated({"plain": ckpt_step(0), "ours": ckpt_step(k), "torch": ckpt_step(k, use_torch=True)},
                   s["repeats"], device=device)                              # a busy CPU hits all three
    t_plain, t_ours, t_torch = t["plain"], t["ours"], t["torch"]
    rows = [
        Row("efficiency", f"checkpoint activation bytes (k={k} of n={s['n_layer']})", ckpt["peak"], plain["peak"],
            "bytes", plain["peak"] / ckpt["peak"], "> 1x", plain["peak"] > ckpt["peak"],
            "no-checkpoint bytes / checkpointed bytes (memory saved)"),
        Row("efficiency", "checkpoint step time vs none", t_ours * 1e3, t_plain * 1e3, "ms", t_ours / t_plain,
            "", None, "checkpointed / plain time (time added; ~1.33x expected)"),
        Row("efficiency", "checkpoint step time vs torch.utils.checkpoint", t_ours * 1e3, t_torch * 1e3, "ms",
            t_torch / t_ours, "", None, "reference time / lmcourse time"),
    ]
    small = GPTConfig(vocab_size=s["vocab"], block_size=s["block"], n_layer=2, n_head=4, n_embd=s["n_embd"])
    off = compare_offload(lambda: GPT(small), lambda m: m(idx, tgt)[1], steps=s["steps"], device=device)
    dev_b, off_b = off["device"]["device_state_bytes"], off["offload"]["device_state_bytes"]
    rows += [
        Row("efficiency", "offload optimizer-state bytes on device", off_b, dev_b, "bytes",
            (dev_b - off_b) / max(dev_b, 1), "1.00 saved", off_b == 0 and off["max_param_diff"] == 0,
            f"share of Adam's state bytes moved off the device; params equal: {off['max_param_diff'] == 0}"),
        Row("efficiency", "offload step time vs on-device Adam", off["offload"]["step_seconds"] * 1e3,
            off["device"]["step_seconds"] * 1e3, "ms", off["offload"]["step_seconds"] / off["device"]["step_seconds"],
            "", None, f"offload / on-device time; copies {off['offload']['copy_seconds'] * 1e3:.3g} ms/step "
                      f"({device}: no PCIe on a CPU-only machine)"),
    ]
    # int8 vs fp32 inference and student vs teacher speed (chapter 20), side by side in the same run
    from lmcourse.bench import compression

    return rows + [replace(r, benchmark="efficiency") for r in compression.run(profile)]
