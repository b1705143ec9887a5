"""The benchmarks' shared timing (alternation, medians, warm-up) and the GPT benchmark's recipes."""
import math

import pytest

from lmcourse.bench import timing


def test_alternated_swaps_the_order_each_round_and_keeps_medians(monkeypatch):
    calls = []
    fake = {"a": iter([5.0, 1.0, 3.0]), "b": iter([2.0, 2.0, 100.0])}

    def fake_timed(fn, device=None):
        fn()
        return next(fake[calls[-1]])

    monkeypatch.setattr(timing, "timed", fake_timed)
    out = timing.alternated({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3)
    assert calls == ["a", "b",             # warm-up, untimed
                     "a", "b", "b", "a", "a", "b"]
    assert out == {"a": 3.0, "b": 2.0}     # medians: one slow outlier does not move them


def test_best_time_returns_the_fastest_and_the_result():
    n = []
    seconds, out = timing.best_time(lambda: n.append(1) or len(n), repeats=3, warmup=2)
    assert out == 5 and len(n) == 5 and 0 <= seconds < 1


@pytest.mark.parametrize("fn", [timing.alternated, timing.best_time])
def test_no_repeats_is_an_error(fn):
    with pytest.raises(ValueError, match="repeats must be at least 1"):
        fn({"a": lambda: None} if fn is timing.alternated else (lambda: None), 0)


def test_bf16_peaks_by_device_name():
    from lmcourse.bench.gpt import bf16_dense_peak

    assert bf16_dense_peak("NVIDIA H200") == 989e12
    assert bf16_dense_peak("NVIDIA H100 PCIe") == 756e12     # the PCIe card is slower than the SXM one
    assert bf16_dense_peak("NVIDIA H100 80GB HBM3") == 989e12
    assert bf16_dense_peak("NVIDIA A100-SXM4-80GB") == 312e12
    assert bf16_dense_peak("NVIDIA GeForce GTX 1080") is None


def test_gpt_benchmark_fast_recipe_runs_on_the_cpu():
    """bf16 autocast and fused AdamW (what a GPU run uses), without torch.compile's minute of compiling."""
    from lmcourse.bench import gpt

    rows = {r.component: r for r in gpt.run("smoke", fast=True, compile=False)}
    tps = rows["GPT training tokens/s"]
    assert tps.lmcourse > 0 and tps.reference > 0 and "bf16 autocast" in tps.note
    assert "bf16" in next(k for k in rows if k.startswith("matmul peak"))
    mfu = rows["GPT MFU (6N + 12LdT)"]
    assert math.isfinite(mfu.lmcourse) and 0 < mfu.lmcourse < 100
    assert "GPT MFU vs the GPU's bf16 dense peak" not in rows   # only on a GPU with a known peak


def test_results_file_round_trip_and_no_silent_overwrite(tmp_path, capsys, monkeypatch):
    """`lmcourse bench --out DIR` records rows with machine, date, commit and seconds; it never replaces a
    results.json it did not just write without --yes."""
    import lmcourse.bench as bench
    from lmcourse.bench import Row, load_results
    from lmcourse.cli import main

    fake = type("M", (), {"run": staticmethod(lambda profile: [Row("ngram", "x", 1.0, 2.0, "s", 2.0, ">= 1x", True)])})
    monkeypatch.setattr(bench.importlib, "import_module", lambda name: fake)
    assert main(["bench", "ngram", "--out", str(tmp_path)]) == 0
    meta, rows = load_results(tmp_path / "results.json")
    assert rows == [Row("ngram", "x", 1.0, 2.0, "s", 2.0, ">= 1x", True)]
    assert meta["profile"] == "smoke" and "cpu" in meta["machine"] and meta["date"].endswith("UTC")
    assert set(meta["seconds"]) == {"ngram"} and "commit" in meta
    capsys.readouterr()
    assert main(["bench", "ngram", "--out", str(tmp_path)]) == 2
    assert "exists: pass --yes" in capsys.readouterr().err
    assert main(["bench", "ngram", "--out", str(tmp_path), "--yes"]) == 0


def test_results_markdown_is_a_table_with_the_machine():
    from lmcourse.bench import Row, format_markdown

    meta = {"profile": "full", "machine": {"cpu": "Some CPU", "gpu": "Some GPU"}, "date": "2026-12-05 03:00 UTC",
            "commit": "abc1234"}
    md = format_markdown([Row("ngram", "a | b", 1.0, 2.0, "s", 2.0, ">= 1x", True),
                          Row("gpt", "peak", 3.0, 3.0, "GFLOP/s", 1.0)], meta).splitlines()
    assert "full" in md[0] and "Some GPU" in md[0] and "abc1234" in md[0]
    assert md[2].startswith("| benchmark |") and set(md[3]) <= set("|-:")
    assert md[4] == r"| ngram | a \| b | 1 | 2 | s | 2x | >= 1x | yes |"
    assert all(line.count("|") - line.count(r"\|") == 9 for line in md[2:])
