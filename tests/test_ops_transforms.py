"""torch.func transforms and forward-mode AD through the public ops. The compiled kernels have no
batching rules and no forward derivatives, so under these the reference runs; these tests would
see the compiled ops' silent zero tangents and their refusals inside torch.func."""

import pytest
import torch
import torch.autograd.forward_ad as fwAD

from motionext import ops
from motionext.ops import reference

from conftest import needs_compiled

pytestmark = needs_compiled

IMAGE = torch.rand(2, 1, 9, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
# x (2, 2, 9, 10) -> a scalar, through each op; `library` is ops or ops.reference
LOSSES = {
    "warp": lambda library, x: library.warp(IMAGE, x).pow(2).sum(),
    "scaling_squaring": lambda library, x: library.scaling_squaring(x, steps=3).pow(2).sum(),
    "lncc": lambda library, x: library.lncc(x[:, :1], x[:, 1:], window=3),
}
TRANSFORMS = {
    "grad": lambda loss, x: torch.func.grad(loss)(x),
    "jacrev": lambda loss, x: torch.func.jacrev(loss)(x),
    "vmap": lambda loss, x: torch.vmap(lambda item: loss(item[None].expand(2, -1, -1, -1)))(x),
    "grad of vmap": lambda loss, x: torch.func.grad(lambda y: torch.vmap(lambda item: loss(item[None].expand(2, -1, -1, -1)))(y).sum())(x),
}


def _field():
    return torch.randn(2, 2, 9, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 1.5


@pytest.mark.parametrize("transform", sorted(TRANSFORMS))
@pytest.mark.parametrize("op", sorted(LOSSES))
def test_torch_func_transforms_equal_the_reference_s(op, transform):
    x = _field()
    got = TRANSFORMS[transform](lambda y: LOSSES[op](ops, y), x)
    want = TRANSFORMS[transform](lambda y: LOSSES[op](reference, y), x)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def _tangent(library, op, x, direction):
    with fwAD.dual_level():
        return fwAD.unpack_dual(LOSSES[op](library, fwAD.make_dual(x, direction))).tangent


def test_forward_mode_ad_gives_the_reference_s_tangent_or_its_refusal():
    x, direction = _field(), torch.ones(2, 2, 9, 10, dtype=torch.float64)
    tangent = _tangent(ops, "lncc", x, direction)
    assert tangent is not None and float(tangent.abs()) > 0
    torch.testing.assert_close(tangent, _tangent(reference, "lncc", x, direction))
    assert torch.func.jvp(lambda y: LOSSES["lncc"](ops, y), (x,), (direction,))[1] == pytest.approx(float(tangent))
    for op in ("warp", "scaling_squaring"):  # grid_sample has no forward derivative: torch says so
        with pytest.raises(NotImplementedError, match="forward AD"):
            _tangent(ops, op, x, direction)


def test_a_forced_compiled_backend_refuses_a_transform_by_name():
    with ops.use_backend("compiled"), pytest.raises(RuntimeError, match="scaling_squaring: the compiled kernels "
                                                                       "support no torch.func transform"):
        torch.func.grad(lambda v: ops.scaling_squaring(v).sum())(_field())


def test_plain_calls_still_run_the_compiled_kernels():
    with torch.profiler.profile() as profile:
        ops.scaling_squaring(_field().requires_grad_(), steps=3).sum().backward()
    names = {event.name for event in profile.events()}
    assert {"motionext::scaling_squaring", "motionext::scaling_squaring_backward"} <= names
