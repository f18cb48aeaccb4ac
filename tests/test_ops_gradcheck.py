"""torch.autograd.gradcheck in float64 on small sizes, through the public functions."""

import warnings

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from motionext import ops
from motionext.ops import reference

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


# Second-order gradients (backward with create_graph=True) of x -> op(x): the compiled backward
# kernels have no derivative of their own, and torch then backpropagates through them as if they
# were constants, with only a warning. Where the image is a slice of the field, each argument must
# get its own partial derivative.
def _fixed_image(x):
    return torch.cos(torch.arange(x[0, 0].numel(), dtype=x.dtype, device=x.device)).view(1, 1, *x.shape[2:]).expand(
        x.shape[0], 1, *x.shape[2:])


SECOND_ORDER = {
    "warp, image and field": lambda o, x: o.warp(x[:, :1] * x[:, :1], x),
    "warp, field alone": lambda o, x: o.warp(_fixed_image(x), x),
    "scaling_squaring": lambda o, x: o.scaling_squaring(x, steps=3),
    "lncc": lambda o, x: o.lncc(x[:, :1], x[:, 1:2] * x[:, :1], window=3, reduction="none"),
}


def _hessian_vector_product(library, case, x, weights, vector):
    x = x.clone().requires_grad_()
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*autograd kernel was not registered")
        (grad,) = torch.autograd.grad((SECOND_ORDER[case](library, x) * weights).sum(), x, create_graph=True)
        (grad * vector).sum().backward()
    return grad.detach(), x.grad


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("spatial", [(6, 7), (4, 5, 6)], ids=["2d", "3d"])
@pytest.mark.parametrize("case", sorted(SECOND_ORDER))
def test_second_order_gradients_equal_the_reference_s(device, spatial, case):
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(2, len(spatial), *spatial, generator=g, dtype=torch.float64) * 1.5).to(device)
    probes = [torch.randn(*x.shape, generator=g, dtype=torch.float64).to(device) for _ in range(2)]
    weights = probes[0] if case != "lncc" else probes[0][:, :1]
    compiled = _hessian_vector_product(ops, case, x, weights, probes[1])
    expected = _hessian_vector_product(reference, case, x, weights, probes[1])
    for got, want in zip(compiled, expected):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("case", sorted(SECOND_ORDER))
def test_gradgradcheck(case):
    x = (torch.randn(1, 2, 5, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 1.5).requires_grad_()
    assert gradgradcheck(lambda v: SECOND_ORDER[case](ops, v), (x,))


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
