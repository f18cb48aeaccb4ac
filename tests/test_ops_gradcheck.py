"""torch.autograd.gradcheck in float64 on small sizes, through the public functions."""

import pytest
import torch
from torch.autograd import gradcheck

from motionext import ops

from conftest import devices, needs_compiled, needs_cuda

pytestmark = needs_compiled

# On CUDA the scatter (warp's image gradient, every squaring step's adjoint) adds with atomics in
# no fixed order, so two backward passes may differ in the last bits of a float64.
NONDET_TOL = {"cpu": 0.0, "cuda": 1e-12}


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("spatial", [(6, 7), (4, 5, 6)], ids=["2d", "3d"])
@pytest.mark.parametrize("padding", ["border", "zeros"])
def test_warp_gradcheck(device, spatial, padding):
    image = torch.rand(2, 2, *spatial, dtype=torch.float64, device=device, requires_grad=True)
    field = (torch.randn(2, len(spatial), *spatial, dtype=torch.float64, device=device) * 1.5).requires_grad_()
    assert gradcheck(lambda i, u: ops.warp(i, u, padding=padding), (image, field), nondet_tol=NONDET_TOL[device])


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("spatial", [(6, 7), (4, 5, 6)], ids=["2d", "3d"])
@pytest.mark.parametrize("padding", ["border", "zeros"])
def test_scaling_squaring_gradcheck(device, spatial, padding):
    velocity = (torch.randn(1, len(spatial), *spatial, dtype=torch.float64, device=device) * 2).requires_grad_()
    assert gradcheck(lambda v: ops.scaling_squaring(v, steps=4, padding=padding), (velocity,),
                     nondet_tol=NONDET_TOL[device])


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("spatial", [(6, 7), (4, 5, 6)], ids=["2d", "3d"])
def test_lncc_gradcheck(device, spatial):
    a = torch.rand(2, 1, *spatial, dtype=torch.float64, device=device, requires_grad=True)
    b = torch.rand(2, 1, *spatial, dtype=torch.float64, device=device, requires_grad=True)
    assert gradcheck(lambda x, y: ops.lncc(x, y, window=3, reduction="none"), (a, b))


@pytest.mark.cuda
@needs_cuda
def test_cuda_scatter_backwards_obey_deterministic_mode():
    """The atomics-summed backwards refuse torch.use_deterministic_algorithms, as grid_sample's
    do; warp's gradient to the displacement alone (a gather) stays allowed."""
    image = torch.rand(1, 1, 8, 8, device="cuda", requires_grad=True)
    field = torch.randn(1, 2, 8, 8, device="cuda", requires_grad=True)
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        ops.warp(image.detach(), field).sum().backward()
        assert field.grad is not None
        with pytest.raises(RuntimeError, match="warp_backward"):
            ops.warp(image, field).sum().backward()
        with pytest.raises(RuntimeError, match="scaling_squaring_backward"):
            ops.scaling_squaring(field, steps=3).sum().backward()
    finally:
        torch.use_deterministic_algorithms(previous)
