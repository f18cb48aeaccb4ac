"""The prepared GPU check (benchmarks/gpu_check.sh): its CPU-runnable parts run here, small, and
write the report a GPU run would, so the script a lent GPU runs once is known to work."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"
pytestmark = pytest.mark.skipif(not SCRIPT.exists(), reason="benchmarks/ is not part of this checkout")


def test_the_cpu_parts_of_the_gpu_check_run_and_report(tmp_path):
    out = tmp_path / "check"
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(["bash", str(SCRIPT), "--cpu", str(out)], capture_output=True, text=True, env=env,
                            timeout=600)
    report = (out / "gpu_check.md").read_text()
    assert result.returncode == 0, result.stdout[-3000:] + report
    for step in ("kernels", "compare", "train", "train-checked", "throughput"):
        assert f"| {step} | ok |" in report, report
    assert "kernel_smoke: 0 mismatch(es) on cpu" in report
    assert "| warp | 2d-seq | noise | forward+backward |" in report
    assert "median step time" in report and "compiled / reference" in report


def test_a_step_that_fails_is_reported_and_fails_the_check(tmp_path):
    # a python that cannot run anything: every step fails, the report says so, the exit code is 1
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    out = tmp_path / "check"
    result = subprocess.run(["bash", str(SCRIPT), "--cpu", str(out)], capture_output=True, text=True,
                            env={**os.environ, "PYTHON": str(fake)}, timeout=120)
    report = (out / "gpu_check.md").read_text()
    assert result.returncode == 1
    assert "| kernels | failed (exit 3) |" in report and "| throughput | failed (exit 3) |" in report
