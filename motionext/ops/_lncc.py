"""motionext.ops.lncc: the public function, and the fake and autograd of torch.ops.motionext.lncc."""

from __future__ import annotations

import torch

from . import _checks, _second_order, reference
from ._autocast import float32_under_autocast, register_float32_autocast
from ._extension import compiled_available, use_compiled

OP = "motionext.ops.lncc"
REDUCTIONS = ("mean", "sum", "none")


@float32_under_autocast
def lncc(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    window: int = 9,
    smooth_nr: float = 0.0,
    smooth_dr: float = 1e-5,
    reduction: str = "mean",
) -> torch.Tensor:
    """Local squared normalized cross-correlation of ``a`` and ``b`` (B, C, *spatial); higher is better.

    Box window of odd width ``window`` per axis, zero padded; equals
    ``-monai.losses.LocalNormalizedCrossCorrelationLoss(kernel_type="rectangular")`` at the
    same options. ``reduction`` is "mean", "sum" or "none" (the per-voxel map).
    """
    _checks.check_spatial(OP, "a", a)
    _checks.check_spatial(OP, "b", b)
    if a.shape != b.shape:
        raise ValueError(f"{OP}: arguments 'a' and 'b' must have the same shape; got {tuple(a.shape)} and {tuple(b.shape)}")
    _checks.check_like(OP, "a", a, "b", b)
    _checks.check_odd_window(OP, "window", window)
    for axis, size in enumerate(a.shape[2:]):
        if window > size:
            raise ValueError(
                f"{OP}: argument 'window' ({window}) is larger than the image along spatial axis {axis} (size {size})"
            )
    _checks.check_choice(OP, "reduction", reduction, REDUCTIONS)
    _checks.check_finite(OP, "a", a)
    _checks.check_finite(OP, "b", b)
    if not use_compiled(OP, a, b):
        return reference.lncc(a, b, window=window, smooth_nr=smooth_nr, smooth_dr=smooth_dr, reduction=reduction)
    cc = torch.ops.motionext.lncc(a, b, window, float(smooth_nr), float(smooth_dr))
    if reduction == "mean":
        return cc.mean()
    if reduction == "sum":
        return cc.sum()
    return cc


def _register() -> None:
    @torch.library.register_fake("motionext::lncc")
    def _(a, b, window, smooth_nr, smooth_dr):
        return torch.empty_like(a, memory_format=torch.contiguous_format)

    @torch.library.register_fake("motionext::lncc_backward")
    def _(grad_cc, a, b, window, smooth_nr, smooth_dr, output_mask):
        grad_a = torch.empty_like(a, memory_format=torch.contiguous_format) if output_mask[0] else a.new_empty(0)
        grad_b = torch.empty_like(b, memory_format=torch.contiguous_format) if output_mask[1] else b.new_empty(0)
        return grad_a, grad_b

    def setup_context(ctx, inputs, output):
        a, b, window, smooth_nr, smooth_dr = inputs
        ctx.save_for_backward(a, b)
        ctx.options = (window, smooth_nr, smooth_dr)

    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad[:2]
        if _second_order.recorded():
            window, smooth_nr, smooth_dr = ctx.options
            return (*_second_order.reference_gradients(
                lambda x, y: reference.lncc(x, y, window=window, smooth_nr=smooth_nr, smooth_dr=smooth_dr, reduction="none"),
                (a, b), (need_a, need_b), grad), None, None, None)
        grad_a, grad_b = torch.ops.motionext.lncc_backward(grad, a, b, *ctx.options, [need_a, need_b])
        return (grad_a if need_a else None, grad_b if need_b else None, None, None, None)

    torch.library.register_autograd("motionext::lncc", backward, setup_context=setup_context)
    register_float32_autocast("motionext::lncc")


if compiled_available():
    _register()
