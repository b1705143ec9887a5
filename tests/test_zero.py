"""lmcourse.systems.zero: ZeRO-1/2/3 take the same steps as one process, ZeroRedundancyOptimizer and
FSDP2, and hold exactly the bytes of the ZeRO paper's formulas (up to partition padding)."""
import os
import subprocess
import sys

import pytest

from lmcourse.systems import launch
from lmcourse.systems.workers_ch16_18 import zero_all
from lmcourse.systems.zero import ZeroAdam, ZeroError, zero_memory_formula

WORLD = 2


@pytest.fixture(scope="module")
def runs():
    return launch(zero_all, WORLD, args=(4,), timeout=240)


@pytest.mark.golden
def test_all_stages_and_references_match_one_process(runs):
    for rank_out in runs:
        for stage in (1, 2, 3):
            assert rank_out[f"zero{stage}"]["max_diff"] < 1e-5
        assert rank_out["zero_redundancy"] < 1e-5
        assert rank_out["fully_shard"] < 1e-5


@pytest.mark.golden
@pytest.mark.parametrize("stage", [1, 2, 3])
def test_measured_bytes_equal_the_formula(runs, stage):
    for rank_out in runs:
        out = rank_out[f"zero{stage}"]
        assert out["memory"] == {k: int(v) for k, v in out["formula_padded"].items()}
        pad_bytes = 4 * (out["padded"] - out["psi"]) * 3   # params, grads, optimizer: at most a pad each
        assert abs(out["memory"]["total"] - out["formula"]["total"]) <= pad_bytes
        assert out["memory"]["optimizer"] == 8 * out["padded"] // WORLD          # fp32: K = 8


def test_bf16_weights_keep_an_fp32_master_slice(runs):
    out = runs[0]["zero3_bf16"]
    assert out["memory"] == {k: int(v) for k, v in out["formula_padded"].items()}
    assert out["memory"]["optimizer"] == 12 * out["padded"] // WORLD         # K = 12, the paper's mixed precision


@pytest.mark.parametrize("stage,volume", [(1, 2), (2, 2), (3, 3)])
def test_communication_per_step(runs, stage, volume):
    out = runs[0][f"zero{stage}"]
    assert out["comm_per_step"] == volume * out["padded"]


def test_formula_reproduces_the_papers_figure():
    psi, n = 7.5e9, 64                       # ZeRO paper, fig. 1: 7.5B params, 64 GPUs
    gb = [zero_memory_formula(s, psi, n)["total"] / 1e9 for s in range(4)]
    assert [round(g, 1) for g in gb] == [120.0, 31.4, 16.6, 1.9]
    fp32 = zero_memory_formula(2, 100, 4, param_bytes=4)
    assert fp32 == {"params": 400, "grads": 100, "optimizer": 200, "total": 700}


def test_bad_stage_is_a_clear_error():
    with pytest.raises(ZeroError, match="stage must be 1, 2 or 3"):
        ZeroAdam(None, stage=4)
    with pytest.raises(ZeroError, match="stage must be"):
        zero_memory_formula(5, 10, 2)


def test_torchrun_entry_point():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "lmcourse.systems.zero", "--stage", "3", "--steps", "2"],
                         capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    line = [l for l in out.stdout.splitlines() if l.startswith("ZeRO-3 on 2 ranks")]
    assert line, out.stdout
    diff = float(line[0].split("= ")[1].split(";")[0])
    assert diff < 1e-5 and "moved 3 Psi per step" in line[0]
