"""motionext.ops.warp: the public function, and the fake and autograd of torch.ops.motionext.warp."""

from __future__ import annotations

import torch

from . import _checks, _second_order, reference
from ._autocast import float32_under_autocast, register_float32_autocast
from ._extension import compiled_available, use_compiled

OP = "motionext.ops.warp"
MODES = ("bilinear", "trilinear", "nearest")
PADDINGS = ("border", "zeros")


@float32_under_autocast
def warp(
    image: torch.Tensor,
    displacement: torch.Tensor,
    *,
    mode: str = "bilinear",
    padding: str = "border",
) -> torch.Tensor:
    """Warp ``image`` (B, C, *spatial) by a voxel-unit ``displacement`` (B, ndim, *spatial).

    ``out(x) = image(x + displacement(x))``; channel k of the displacement moves along spatial
    axis k; voxel centres sit at integer coordinates. ``mode`` is "bilinear" (= "trilinear" in 3D)
    or "nearest" (for label maps); ``padding`` is "border" or "zeros".
    """
    _checks.check_spatial(OP, "image", image)
    _checks.check_field(OP, "displacement", displacement, "image", image)
    _checks.check_choice(OP, "mode", mode, MODES)
    _checks.check_choice(OP, "padding", padding, PADDINGS)
    _checks.check_finite(OP, "displacement", displacement)
    if use_compiled(OP, image, displacement):
        if _keep_gradient(image, displacement, mode):
            return torch.ops.motionext.warp_with_gradient(image, displacement, padding)[0]
        return torch.ops.motionext.warp(image, displacement, mode, padding)
    return _reference_warp(image, displacement, mode, padding)


def _keep_gradient(image: torch.Tensor, displacement: torch.Tensor, mode: str) -> bool:
    """Whether the forward should also return the image's gradient at the sample points, so that
    the displacement's gradient is a product rather than a second sampling pass: when autograd
    will ask for the displacement's gradient alone (the image's is a scatter, which the general
    backward does in the same pass), for linear warps in float32/float64 (half precision keeps
    the general backward, which sums in float32)."""
    return (mode != "nearest" and displacement.requires_grad and not image.requires_grad
            and torch.is_grad_enabled() and displacement.dtype in (torch.float32, torch.float64))


def _reference_warp(image, displacement, mode, padding):
    """The pure-PyTorch warp ("trilinear" is grid_sample's "bilinear")."""
    return reference.warp(image, displacement, mode="nearest" if mode == "nearest" else "bilinear", padding=padding)


def _reference_gradients(image, displacement, mode, padding, needs, grad) -> list:
    """The backward recorded for second-order gradients (_second_order.py)."""
    return _second_order.reference_gradients(lambda i, d: _reference_warp(i, d, mode, padding),
                                             (image, displacement), needs, grad)


def _register() -> None:
    @torch.library.register_fake("motionext::warp")
    def _(image, displacement, mode, padding):
        return torch.empty_like(image, memory_format=torch.contiguous_format)

    @torch.library.register_fake("motionext::warp_backward")
    def _(grad_output, image, displacement, mode, padding, output_mask):
        grad_image = torch.empty_like(image, memory_format=torch.contiguous_format) if output_mask[0] else image.new_empty(0)
        grad_field = (
            torch.empty_like(displacement, memory_format=torch.contiguous_format) if output_mask[1] else image.new_empty(0)
        )
        return grad_image, grad_field

    def setup_context(ctx, inputs, output):
        image, displacement, mode, padding = inputs
        ctx.save_for_backward(image, displacement)
        ctx.mode, ctx.padding = mode, padding

    def backward(ctx, grad):
        image, displacement = ctx.saved_tensors
        need_image, need_field = ctx.needs_input_grad[:2]
        if _second_order.recorded():
            return (*_reference_gradients(image, displacement, ctx.mode, ctx.padding, (need_image, need_field), grad),
                    None, None)
        grad_image, grad_field = torch.ops.motionext.warp_backward(
            grad, image, displacement, ctx.mode, ctx.padding, [need_image, need_field]
        )
        return (grad_image if need_image else None, grad_field if need_field else None, None, None)

    torch.library.register_autograd("motionext::warp", backward, setup_context=setup_context)
    register_float32_autocast("motionext::warp")

    @torch.library.register_fake("motionext::warp_with_gradient")
    def _(image, displacement, padding):
        out = torch.empty_like(image, memory_format=torch.contiguous_format)
        return out, image.new_empty((*image.shape[:2], image.dim() - 2, *image.shape[2:]))

    def setup_with_gradient(ctx, inputs, output):
        image, displacement, padding = inputs
        ctx.mark_non_differentiable(output[1])
        ctx.set_materialize_grads(False)  # no zeros for the kept gradient, which takes none
        ctx.save_for_backward(image, displacement, output[1])
        ctx.padding = padding

    def backward_with_gradient(ctx, grad, _):
        image, displacement, gradient = ctx.saved_tensors
        need_image, need_field = ctx.needs_input_grad[:2]
        if grad is None:
            return None, None, None
        if _second_order.recorded():
            return (*_reference_gradients(image, displacement, "bilinear", ctx.padding, (need_image, need_field), grad),
                    None)
        if need_image:
            # the image's gradient (a scatter): the general backward, which does both in one pass
            grad_image, grad_field = torch.ops.motionext.warp_backward(
                grad, image, displacement, "bilinear", ctx.padding, [need_image, need_field])
            return (grad_image if need_image else None, grad_field if need_field else None, None)
        if not need_field:
            return None, None, None
        # the sum over channels of grad_output times the image's gradient at the sample points
        grad_field = gradient[:, 0] * grad if grad.shape[1] == 1 else (grad.unsqueeze(2) * gradient).sum(1)
        return None, grad_field, None

    torch.library.register_autograd("motionext::warp_with_gradient", backward_with_gradient,
                                    setup_context=setup_with_gradient)
    register_float32_autocast("motionext::warp_with_gradient")


if compiled_available():
    _register()
