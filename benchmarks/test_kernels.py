"""pytest-benchmark suite: each op, compiled and reference, forward and forward+backward.

    make bench                      # CPU sizes
    pytest benchmarks -k 3d-gpu     # on a GPU machine
"""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cases import OPS, PASSES, applies, case_gradients, make_case, voxels  # noqa: E402

from motionext import ops  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
SIZES = ["2d-seq", "3d-gpu"] if DEVICE == "cuda" else ["2d-seq", "3d-cpu"]
# (size, field): the model's fields exist at 2d-seq only, and LNCC takes no field
CASES = [(size, "noise") for size in SIZES] + [("2d-seq", "model")]


@pytest.mark.parametrize("size,field", CASES)
@pytest.mark.parametrize("pass_", PASSES)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_kernel(benchmark, backend, op, pass_, size, field):
    if op == "lncc" and field != "noise":
        pytest.skip("LNCC takes no field")
    if not applies(op, pass_):
        pytest.skip("scaling-and-squaring has one input")
    with ops.use_backend(backend):
        fn = make_case(op, size, case_gradients(pass_), DEVICE, field=field)
        benchmark.extra_info["voxels"] = voxels(size)
        benchmark.group = f"{op} {pass_} {size} {field}"
        benchmark.pedantic(fn, rounds=5, iterations=1, warmup_rounds=1)
