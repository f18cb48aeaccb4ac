"""Bad input gets a clear error naming the op and the argument, from the public functions and
from the raw dispatcher ops alike; never a crash or a silent NaN."""

import pytest
import torch

from motionext import ops

from conftest import needs_compiled

IMAGE = torch.rand(2, 1, 8, 8)
FIELD = torch.zeros(2, 2, 8, 8)


@pytest.fixture(params=["compiled", "reference"])
def backend(request):
    if request.param == "compiled":
        needs_compiled(lambda: None)  # marks are not applied to fixtures; skip by hand below
        from motionext.ops._extension import compiled_available

        if not compiled_available():
            pytest.skip("compiled extension not loaded")
    with ops.use_backend(request.param):
        yield request.param


CASES = [
    # (call, exception, words the message must contain)
    (lambda: ops.warp(IMAGE[0], FIELD), ValueError, ["warp", "'image'", "(B, C, H, W)"]),
    (lambda: ops.warp(IMAGE, FIELD[:, :1]), ValueError, ["warp", "'displacement'", "(2, 2, 8, 8)"]),
    (lambda: ops.warp(IMAGE, FIELD[:1]), ValueError, ["warp", "'displacement'"]),
    (lambda: ops.warp(IMAGE, FIELD.double()), TypeError, ["warp", "'displacement'", "dtype"]),
    (lambda: ops.warp(IMAGE.long(), FIELD), TypeError, ["warp", "'image'"]),
    (lambda: ops.warp(IMAGE, FIELD, mode="cubic"), ValueError, ["warp", "'mode'", "cubic"]),
    (lambda: ops.warp(IMAGE, FIELD, padding="reflection"), ValueError, ["warp", "'padding'"]),
    (lambda: ops.warp(IMAGE[:0], FIELD[:0]), ValueError, ["warp", "'image'", "empty"]),
    (lambda: ops.warp(IMAGE, torch.full_like(FIELD, float("nan"))), ValueError, ["warp", "'displacement'", "NaN"]),
    (lambda: ops.warp("image", FIELD), TypeError, ["warp", "'image'", "Tensor"]),
    (lambda: ops.scaling_squaring(FIELD[:, :1]), ValueError, ["scaling_squaring", "'velocity'", "channels"]),
    (lambda: ops.scaling_squaring(FIELD, steps=0), ValueError, ["scaling_squaring", "'steps'"]),
    (lambda: ops.scaling_squaring(FIELD, steps=2.5), ValueError, ["scaling_squaring", "'steps'"]),
    (lambda: ops.scaling_squaring(FIELD.view(2, 2, 64)), ValueError, ["scaling_squaring", "'velocity'"]),
    (lambda: ops.scaling_squaring(torch.full_like(FIELD, float("inf"))), ValueError, ["'velocity'", "NaN or Inf"]),
    (lambda: ops.lncc(IMAGE, IMAGE, window=4), ValueError, ["lncc", "'window'", "odd"]),
    (lambda: ops.lncc(IMAGE, IMAGE, window=0), ValueError, ["lncc", "'window'"]),
    (lambda: ops.lncc(IMAGE, IMAGE, window=9), ValueError, ["lncc", "'window'", "larger than the image"]),
    (lambda: ops.lncc(IMAGE, IMAGE[:, :, :4]), ValueError, ["lncc", "same shape"]),
    (lambda: ops.lncc(IMAGE, IMAGE.double(), window=3), TypeError, ["lncc", "'b'", "dtype"]),
    (lambda: ops.lncc(IMAGE, IMAGE, window=3, reduction="max"), ValueError, ["lncc", "'reduction'"]),
    (lambda: ops.lncc(IMAGE, IMAGE * float("nan"), window=3), ValueError, ["lncc", "'b'", "NaN"]),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_public_functions_reject_bad_input(backend, case):
    call, error, words = CASES[case]
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value), f"{word!r} missing from: {info.value}"


@needs_compiled
@pytest.mark.parametrize(
    "call, words",
    [
        (lambda m: m.warp(IMAGE[0], FIELD, "bilinear", "border"), ["motionext.warp", "'image'"]),
        (lambda m: m.warp(IMAGE, FIELD[:, :1], "bilinear", "border"), ["motionext.warp", "'displacement'"]),
        (lambda m: m.warp(IMAGE, FIELD, "cubic", "border"), ["motionext.warp", "'mode'"]),
        (lambda m: m.warp(IMAGE, FIELD, "bilinear", "mirror"), ["motionext.warp", "'padding'"]),
        (lambda m: m.warp(IMAGE[:0], FIELD[:0], "bilinear", "border"), ["motionext.warp", "empty"]),
        (lambda m: m.warp(IMAGE.double(), FIELD, "bilinear", "border"), ["motionext.warp", "dtype"]),
        (lambda m: m.warp_backward(IMAGE[:1], IMAGE, FIELD, "bilinear", "border", [True, True]), ["'grad_output'"]),
        (lambda m: m.scaling_squaring(FIELD, 31, "border", False), ["motionext.scaling_squaring", "'steps'"]),
        (lambda m: m.scaling_squaring_backward(FIELD, FIELD, FIELD, 7, "border"), ["'trajectory'"]),
        (lambda m: m.scaling_squaring_backward(FIELD[:1], FIELD, FIELD, 7, "border"), ["'grad_output'"]),
        (lambda m: m.lncc(IMAGE, IMAGE, 2, 0.0, 1e-5), ["motionext.lncc", "'window'"]),
        (lambda m: m.lncc(IMAGE, IMAGE, 11, 0.0, 1e-5), ["motionext.lncc", "larger than the image"]),
        (lambda m: m.lncc(IMAGE, IMAGE[:1], 3, 0.0, 1e-5), ["motionext.lncc", "same shape"]),
        (lambda m: m.lncc_backward(IMAGE[:1], IMAGE, IMAGE, 3, 0.0, 1e-5, [True, True]), ["'grad_cc'"]),
    ],
)
def test_dispatcher_ops_reject_bad_input(call, words):
    with pytest.raises((ValueError, TypeError, RuntimeError)) as info:
        call(torch.ops.motionext)
    for word in words:
        assert word in str(info.value), f"{word!r} missing from: {info.value}"


@needs_compiled
def test_kernels_survive_non_finite_and_huge_displacements():
    # With the value checks off, the kernels still index safely: non-finite points give NaN,
    # huge finite ones read padding.
    image = torch.rand(1, 1, 6, 6, dtype=torch.float64)
    field = torch.zeros(1, 2, 6, 6, dtype=torch.float64)
    field[0, 0, 0, 0] = float("nan")
    field[0, 1, 1, 1] = float("inf")
    field[0, 0, 2, 2] = 1e300
    field[0, 1, 3, 3] = -1e300
    m = torch.ops.motionext
    for padding in ("border", "zeros"):
        out = m.warp(image, field, "bilinear", padding)
        assert torch.isnan(out[0, 0, 0, 0]) and torch.isnan(out[0, 0, 1, 1])
        assert torch.isfinite(out[0, 0, 2:]).all()
        gi, gu = m.warp_backward(torch.ones_like(image), image, field, "bilinear", padding, [True, True])
        assert torch.isfinite(gi).all() and torch.isnan(gu[0, :, 0, 0]).all()
    assert m.warp(image, field, "bilinear", "zeros")[0, 0, 2, 2] == 0
    assert m.warp(image, field, "bilinear", "border")[0, 0, 2, 2] == image[0, 0, 5, 2]


def test_check_finite_can_be_disabled(monkeypatch, backend):
    monkeypatch.setenv("MOTIONEXT_CHECK_FINITE", "0")
    field = FIELD.clone()
    field[0, 0, 0, 0] = float("nan")
    out = ops.warp(IMAGE, field)  # no error with the check off
    assert torch.isfinite(out[1]).all()
    if backend == "compiled":
        # grid_sample turns a NaN sample point into a finite value; the kernels keep it NaN.
        assert torch.isnan(out[0, 0, 0, 0])
