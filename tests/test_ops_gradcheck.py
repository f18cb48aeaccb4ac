"""torch.autograd.gradcheck in float64 on small sizes, through the public functions."""

import pytest
import torch
from torch.autograd import gradcheck

from motionext import ops

from conftest import devices, needs_compiled

pytestmark = needs_compiled


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("spatial", [(6, 7), (4, 5, 6)], ids=["2d", "3d"])
@pytest.mark.parametrize("padding", ["border", "zeros"])
def test_warp_gradcheck(device, spatial, padding):
    image = torch.rand(2, 2, *spatial, dtype=torch.float64, device=device, requires_grad=True)
    field = (torch.randn(2, len(spatial), *spatial, dtype=torch.float64, device=device) * 1.5).requires_grad_()
    assert gradcheck(lambda i, u: ops.warp(i, u, padding=padding), (image, field))


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("spatial", [(6, 7), (4, 5, 6)], ids=["2d", "3d"])
@pytest.mark.parametrize("padding", ["border", "zeros"])
def test_scaling_squaring_gradcheck(device, spatial, padding):
    velocity = (torch.randn(1, len(spatial), *spatial, dtype=torch.float64, device=device) * 2).requires_grad_()
    assert gradcheck(lambda v: ops.scaling_squaring(v, steps=4, padding=padding), (velocity,))


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("spatial", [(6, 7), (4, 5, 6)], ids=["2d", "3d"])
def test_lncc_gradcheck(device, spatial):
    a = torch.rand(2, 1, *spatial, dtype=torch.float64, device=device, requires_grad=True)
    b = torch.rand(2, 1, *spatial, dtype=torch.float64, device=device, requires_grad=True)
    assert gradcheck(lambda x, y: ops.lncc(x, y, window=3, reduction="none"), (a, b))
