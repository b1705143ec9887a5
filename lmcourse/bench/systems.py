"""``lmcourse bench systems``: ZeRO memory and speed, ring all-reduce, pipeline bubble, in one run.

Taught in chapters 14 (Collective communication), 17 (ZeRO) and 18 (Pipeline parallelism);
collected in the Performance appendix.

One group of worker processes (gloo on CPU, NCCL when there is a GPU per worker) measures:

* per-rank bytes of params + grads + optimizer states for lmcourse ZeRO-1/2/3, over the
  paper's formula (fp32 variant, K = 8): target 1.00x up to partition padding;
* step time of lmcourse ZeRO-1 vs ``ZeroRedundancyOptimizer`` (+DDP) and of lmcourse ZeRO-3
  vs FSDP2 ``fully_shard`` on the same MLP (ratio = reference time / lmcourse time);
* chapter 14's ring all-reduce vs the backend's ``all_reduce`` (ratio likewise);
* the pipeline bubble of GPipe on 2 stages measured (wall clock, and replayed with free
  communication) over ``(p-1)/(m+p-1)``.
"""
from __future__ import annotations

from lmcourse.bench import Row

SIZES = {
    "smoke": {"world": 2, "width": 64, "hidden": 256, "depth": 4, "steps": 6, "all_reduce_numel": 1 << 18,
              "repeats": 5, "micro_batches": [1, 4]},
    "full": {"world": 4, "width": 256, "hidden": 1024, "depth": 8, "steps": 20, "all_reduce_numel": 1 << 22,
             "repeats": 10, "micro_batches": [1, 4, 8]},
}


def run(profile: str = "smoke") -> list[Row]:
    from lmcourse.systems import launch
    from lmcourse.systems.pipeline import bubble_formula
    from lmcourse.systems.workers_ch16_18 import systems_bench

    sizes = SIZES["smoke" if profile == "smoke" else "full"]
    world = sizes["world"]
    res = launch(systems_bench, world, args=(sizes,), timeout=600)[0]
    rows = []
    for stage, out in res["memory"].items():
        measured, formula = out["memory"]["total"], out["formula"]["total"]
        rows.append(Row("systems", f"ZeRO-{stage} bytes/rank (N={world})", measured, formula, "bytes",
                        measured / formula, "1.00x +pad", measured == int(out["formula_padded"]["total"]),
                        "measured / formula; fp32 Adam (K=8)"))
    for ours, ref, name in (("zero1", "zero_redundancy", "ZeRO-1 vs ZeroRedundancyOptimizer"),
                            ("zero3", "fully_shard", "ZeRO-3 vs FSDP2 fully_shard")):
        rows.append(Row("systems", f"{name} step", res[ours] * 1e3, res[ref] * 1e3, "ms", res[ref] / res[ours],
                        "", None, "reference time / lmcourse time"))
    if "ring" in res:
        rows.append(Row("systems", f"ring all-reduce vs backend ({sizes['all_reduce_numel']} fp32)",
                        res["ring"] * 1e3, res["gloo"] * 1e3, "ms", res["gloo"] / res["ring"], "", None,
                        "reference time / lmcourse time"))
    else:
        rows.append(Row("systems", "ring all-reduce", float("nan"), float("nan"), "ms", float("nan"), "", None,
                        "lmcourse.systems.collectives.ring_all_reduce missing"))
    for m, (wall, replayed) in res["bubble"].items():
        f = bubble_formula(world, m)
        rows.append(Row("systems", f"bubble p={world} m={m} wall clock", wall, f, "share", wall / f, "", None,
                        "measured / (p-1)/(m+p-1); includes send/recv"))
        rows.append(Row("systems", f"bubble p={world} m={m} replayed", replayed, f, "share", replayed / f,
                        "|diff| < 0.1", abs(replayed - f) < 0.1, "measured compute times, free communication"))
    return rows
