"""The ops as PyTorch dispatcher ops: opcheck (schema, fake tensors, autograd registration)
and torch.compile(fullgraph=True)."""

import pytest
import torch

from motionext import ops
from motionext.ops import reference

from conftest import devices, needs_compiled

pytestmark = needs_compiled


def _samples(device):
    f64 = dict(dtype=torch.float64, device=device)
    image = torch.rand(2, 2, 6, 7, **f64, requires_grad=True)
    field = (torch.randn(2, 2, 6, 7, **f64) * 2).requires_grad_()
    volume = torch.rand(1, 1, 4, 5, 6, **f64, requires_grad=True)
    field3 = (torch.randn(1, 3, 4, 5, 6, **f64) * 2).requires_grad_()
    return image, field, volume, field3


@pytest.mark.parametrize("device", devices())
def test_opcheck_all_ops(device):
    image, field, volume, field3 = _samples(device)
    m = torch.ops.motionext
    cases = [
        (m.warp.default, (image, field, "bilinear", "border")),
        (m.warp.default, (volume, field3, "bilinear", "zeros")),
        (m.warp.default, (image, field, "nearest", "zeros")),
        (m.warp_with_gradient.default, (image, field, "border")),
        (m.warp_with_gradient.default, (volume, field3, "zeros")),
        (m.scaling_squaring.default, (field, 3, "border", True)),
        (m.scaling_squaring.default, (field3, 2, "zeros", True)),
        (m.lncc.default, (image, image.detach().flip(2), 3, 0.0, 1e-5)),
        (m.lncc.default, (volume, volume.detach().flip(3), 3, 0.0, 1e-5)),
    ]
    for op, args in cases:
        torch.library.opcheck(op, args)
    grad = torch.randn(2, 2, 6, 7, dtype=torch.float64, device=device)
    torch.library.opcheck(m.warp_backward.default, (grad, image.detach(), field.detach(), "bilinear", "border", [True, False]))
    velocity = field.detach()
    _, trajectory = m.scaling_squaring(velocity, 3, "border", True)
    torch.library.opcheck(m.scaling_squaring_backward.default, (grad, velocity, trajectory, 3, "zeros"))
    torch.library.opcheck(m.scaling_squaring.default, (velocity, 1, "border", False))
    torch.library.opcheck(m.lncc_backward.default, (grad, image.detach(), image.detach().flip(3), 5, 0.0, 1e-5, [False, True]))


@pytest.mark.parametrize("device", devices())
def test_torch_compile_fullgraph(device):
    torch._dynamo.reset()

    def loss(image, velocity, target):
        displacement = ops.scaling_squaring(velocity, steps=4)
        return ops.lncc(ops.warp(image, displacement), target, window=3)

    image = torch.rand(2, 1, 16, 16, device=device)
    target = torch.rand(2, 1, 16, 16, device=device)
    velocity = (torch.randn(2, 2, 16, 16, device=device)).requires_grad_()
    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
    value = compiled(image, velocity, target)
    value.backward()
    grad = velocity.grad.clone()
    velocity.grad = None
    expected = loss(image, velocity, target)
    expected.backward()
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(grad, velocity.grad)
    with ops.use_backend("reference"):
        torch.testing.assert_close(
            value, reference.lncc(reference.warp(image, reference.scaling_squaring(velocity, steps=4)), target, window=3),
            rtol=1e-4, atol=1e-5,
        )
