"""`pip wheel --no-build-isolation .` builds a wheel that installs on its own and runs the
compiled ops (the build directory is cached, so this rebuilds little)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not (ROOT / "pyproject.toml").exists(), reason="needs the source tree")


def test_wheel_builds_installs_and_runs(tmp_path):
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps", "-w", str(wheels), str(ROOT)],
        check=True, timeout=1200,
    )
    (wheel,) = wheels.glob("motionext-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True, timeout=300,
    )
    script = textwrap.dedent(
        f"""
        import torch, motionext
        from motionext import ops
        assert motionext.__file__.startswith({str(site)!r}), motionext.__file__
        assert ops.build_info()["compiled"], ops.build_info()
        x = torch.rand(1, 1, 8, 8); u = torch.zeros(1, 2, 8, 8, requires_grad=True)
        ops.lncc(ops.warp(x, ops.scaling_squaring(u)), x, window=3).backward()
        print("ok")
        """
    )
    env = dict(os.environ, PYTHONPATH=str(site))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")
