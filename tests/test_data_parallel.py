"""lmcourse.systems.data_parallel: parameter server and DDP give one process's parameters."""
import os
import subprocess
import sys

import numpy as np
import pytest

from lmcourse.systems import LaunchError, launch
from lmcourse.systems.data_parallel import train_one_process, train_worker

STEPS, BATCH = 4, 12


@pytest.mark.golden
def test_one_process_ps_ddp_and_torch_ddp_agree():
    ref = train_one_process(STEPS, BATCH)
    runs = {m: launch(train_worker, 2, (m, STEPS, BATCH, 0, "sgd", 0.0005)) for m in ("ps", "ddp", "torch_ddp")}
    for method, outs in runs.items():
        for rank, out in enumerate(outs):
            for name, p in ref["params"].items():
                assert np.abs(out["params"][name] - p).max() < 1e-5, (method, rank, name)
            assert np.allclose(out["losses"], ref["losses"], atol=1e-6), method
    # tiny buckets: several buckets, started in backward's order (last layer first)
    buckets = runs["ddp"][0]["buckets"]
    assert len(buckets) > 1 and buckets[0][0].startswith("4.")
    assert runs["ddp"][0]["launch_order"] == list(range(len(buckets)))


@pytest.mark.golden
def test_three_workers_with_adam():
    ref = train_one_process(3, 12, optimizer="adam")
    for out in launch(train_worker, 3, ("ddp", 3, 12, 0, "adam")):
        for name, p in ref["params"].items():
            assert np.abs(out["params"][name] - p).max() < 1e-5, name


def test_unused_parameter_is_a_clear_error():
    with pytest.raises(LaunchError, match=r"no gradient in this backward: \['unused.weight', 'unused.bias'\]|"
                                          r"no gradient in this backward: \['unused.bias', 'unused.weight'\]"):
        launch(train_worker, 2, ("ddp", 2, 4, 0, "sgd", 25.0, True), timeout=60)


def test_batch_that_does_not_split_is_a_clear_error():
    with pytest.raises(LaunchError, match="does not split into 2 equal shards"):
        launch(train_worker, 2, ("ddp", 1, 5), timeout=60)


def test_torchrun_entry_point():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                          "--standalone", "-m", "lmcourse.systems.data_parallel", "--steps", "5",
                          "--batch-size", "8"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "world 2, 5 steps, final loss" in out.stdout
