"""The ops under mixed precision: in float32, whatever autocast made of their inputs.

Under autocast a network's outputs come out in bfloat16 or float16 while the images stay in
float32. The ops take one dtype, and their results (displacements of several voxels, local
variances) lose too much in 8 or 11 bits of mantissa, so under autocast they cast half-precision
inputs to float32 and run with autocast off, as torch runs its own precision-sensitive ops. Outside
autocast a half-precision input stays half precision; the kernels then still accumulate in float32.
"""

from __future__ import annotations

import contextlib
import functools

import torch

HALF = (torch.float16, torch.bfloat16)
AUTOCAST_DEVICES = ("cpu", "cuda")


def autocast_active(tensor: torch.Tensor) -> bool:
    device = tensor.device.type
    return device in AUTOCAST_DEVICES and torch.is_autocast_enabled(device)


def autocast_off(tensor: torch.Tensor):
    """A context with autocast off on `tensor`'s device (a no-op where autocast does not exist)."""
    device = tensor.device.type
    return torch.autocast(device, enabled=False) if device in AUTOCAST_DEVICES else contextlib.nullcontext()


def float32_under_autocast(op):
    """Wrap a public op: under autocast its half-precision tensor arguments become float32 and it
    runs with autocast off."""

    @functools.wraps(op)
    def wrapper(*args, **kwargs):
        first = next((a for a in args if isinstance(a, torch.Tensor)), None)
        if first is None or not autocast_active(first):
            return op(*args, **kwargs)
        args = [a.float() if isinstance(a, torch.Tensor) and a.dtype in HALF else a for a in args]
        with autocast_off(first):
            return op(*args, **kwargs)

    return wrapper


def register_float32_autocast(name: str) -> None:
    """The same rule for the raw torch.ops.motionext op `name`, for code that calls it directly."""
    for device in AUTOCAST_DEVICES:
        torch.library.register_autocast(name, device, torch.float32)
