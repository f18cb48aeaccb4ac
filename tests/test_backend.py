"""Choosing a backend, build information, and the fallback when the extension cannot load."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from motionext import ops
from motionext.ops import _extension

from conftest import needs_compiled


def test_build_info_fields():
    info = ops.build_info()
    for key in ("compiled", "cuda", "torch_version", "cuda_version", "backend"):
        assert key in info
    assert info["torch_version"] == torch.__version__
    assert info["compiled"] == _extension.compiled_available()


@needs_compiled
def test_reference_backend_is_forced(monkeypatch):
    image = torch.rand(1, 1, 8, 8)
    field = torch.randn(1, 2, 8, 8)
    calls = []
    real = ops.reference.warp
    monkeypatch.setattr(ops.reference, "warp", lambda *a, **k: calls.append(1) or real(*a, **k))
    ops.warp(image, field)
    assert calls == []
    monkeypatch.setenv("MOTIONEXT_BACKEND", "reference")
    assert ops.get_backend() == "reference"
    ops.warp(image, field)
    assert calls == [1]
    monkeypatch.setenv("MOTIONEXT_BACKEND", "compiled")
    with ops.use_backend("reference"):
        ops.warp(image, field)
    assert calls == [1, 1] and ops.get_backend() == "compiled"


def test_unknown_backend_is_rejected(monkeypatch):
    with pytest.raises(ValueError, match="unknown backend"):
        ops.set_backend("fast")
    monkeypatch.setenv("MOTIONEXT_BACKEND", "gpu")
    with pytest.raises(ValueError, match="MOTIONEXT_BACKEND"):
        ops.get_backend()


def test_import_without_extension_falls_back_and_warns_once():
    script = textwrap.dedent(
        """
        import sys, warnings, torch
        sys.modules["motionext._C"] = None  # makes `from .. import _C` fail as a missing build would
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import motionext
            from motionext import ops
            x = torch.rand(1, 1, 8, 8); u = torch.zeros(1, 2, 8, 8)
            assert torch.allclose(ops.warp(x, u), x, atol=1e-6)
            ops.lncc(x, x, window=3); ops.scaling_squaring(u)
        said = [w for w in caught if "compiled kernels unavailable" in str(w.message)]
        assert len(said) == 1, [str(w.message) for w in caught]
        info = ops.build_info()
        assert info["compiled"] is False and info["load_error"]
        try:
            with ops.use_backend("compiled"):
                ops.warp(x, u)
        except RuntimeError as e:
            assert "could not be loaded" in str(e)
        else:
            raise AssertionError("compiled backend without extension must fail")
        print("ok")
        """
    )
    env = dict(os.environ, MOTIONEXT_BACKEND="auto")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
