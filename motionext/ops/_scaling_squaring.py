"""motionext.ops.scaling_squaring: the public function, and the fake and autograd of
torch.ops.motionext.scaling_squaring."""

from __future__ import annotations

import torch

from . import _checks, _second_order, reference
from ._autocast import float32_under_autocast, register_float32_autocast
from ._extension import compiled_available, use_compiled

OP = "motionext.ops.scaling_squaring"
PADDINGS = ("border", "zeros")
MAX_STEPS = 30


@float32_under_autocast
def scaling_squaring(velocity: torch.Tensor, *, steps: int = 7, padding: str = "border") -> torch.Tensor:
    """Displacement (voxels) of exp(velocity) by scaling and squaring.

    ``u = velocity / 2**steps``, then ``u = u + warp(u, u)`` ``steps`` times. ``velocity`` is
    (B, ndim, *spatial) in voxel units. The compiled backward is written by hand: it walks the
    saved fields in reverse instead of keeping an autograd graph of ``steps`` warps.
    """
    _checks.check_spatial(OP, "velocity", velocity)
    ndim = velocity.dim() - 2
    if velocity.shape[1] != ndim:
        raise ValueError(
            f"{OP}: argument 'velocity' must have {ndim} channels (one per spatial axis); got shape {tuple(velocity.shape)}"
        )
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"{OP}: argument 'steps' must be an integer in [1, {MAX_STEPS}]; got {steps!r}")
    _checks.check_choice(OP, "padding", padding, PADDINGS)
    _checks.check_finite(OP, "velocity", velocity)
    if use_compiled(OP, velocity):
        keep = torch.is_grad_enabled() and velocity.requires_grad
        return torch.ops.motionext.scaling_squaring(velocity, steps, padding, keep)[0]
    return reference.scaling_squaring(velocity, steps=steps, padding=padding)


def _opmath(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _register() -> None:
    @torch.library.register_fake("motionext::scaling_squaring")
    def _(velocity, steps, padding, keep_trajectory):
        out = torch.empty_like(velocity, memory_format=torch.contiguous_format)
        slots = steps - 1 if keep_trajectory else 0
        trajectory = velocity.new_empty((slots, *velocity.shape), dtype=_opmath(velocity.dtype))
        return out, trajectory

    @torch.library.register_fake("motionext::scaling_squaring_backward")
    def _(grad_output, velocity, trajectory, steps, padding):
        return torch.empty_like(velocity, memory_format=torch.contiguous_format)

    def setup_context(ctx, inputs, output):
        velocity, steps, padding, keep_trajectory = inputs
        ctx.save_for_backward(velocity, output[1])
        ctx.steps, ctx.padding, ctx.kept = steps, padding, keep_trajectory
        ctx.mark_non_differentiable(output[1])
        # Otherwise autograd hands backward a zero-filled gradient for the trajectory: N fields.
        ctx.set_materialize_grads(False)

    def backward(ctx, grad, _grad_trajectory):
        if grad is None:
            return None, None, None, None
        velocity, trajectory = ctx.saved_tensors
        if _second_order.recorded():
            grad_velocity, = _second_order.reference_gradients(
                lambda v: reference.scaling_squaring(v, steps=ctx.steps, padding=ctx.padding), (velocity,), (True,), grad)
            return grad_velocity, None, None, None
        if not ctx.kept:
            raise RuntimeError(
                f"{OP}: backward needs the trajectory; call the op with keep_trajectory=True "
                "(motionext.ops.scaling_squaring does this whenever the velocity requires grad)"
            )
        grad_velocity = torch.ops.motionext.scaling_squaring_backward(
            grad, velocity, trajectory, ctx.steps, ctx.padding
        )
        return grad_velocity, None, None, None

    torch.library.register_autograd("motionext::scaling_squaring", backward, setup_context=setup_context)
    register_float32_autocast("motionext::scaling_squaring")


if compiled_available():
    _register()
