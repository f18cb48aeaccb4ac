"""motionext.ops.warp: the public function, and the fake and autograd of torch.ops.motionext.warp."""

from __future__ import annotations

import torch

from . import _checks, reference
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
    if use_compiled(OP, image):
        return torch.ops.motionext.warp(image, displacement, mode, padding)
    return reference.warp(image, displacement, mode="nearest" if mode == "nearest" else "bilinear", padding=padding)


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
        grad_image, grad_field = torch.ops.motionext.warp_backward(
            grad, image, displacement, ctx.mode, ctx.padding, [need_image, need_field]
        )
        return (grad_image if need_image else None, grad_field if need_field else None, None, None)

    torch.library.register_autograd("motionext::warp", backward, setup_context=setup_context)
    register_float32_autocast("motionext::warp")


if compiled_available():
    _register()
