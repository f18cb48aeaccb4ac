"""Argument checks of the public ops, shared by both backends. Each message names the op and
the argument.

The value check (NaN/Inf) costs one summing pass over the data and reads one number back. On the
CPU that is cheap (benchmarks/RESULTS.md); on a GPU reading it back waits for every queued kernel,
once per op call, so by default it runs on CPU tensors only. On other devices the inputs of the
motion API are checked where they enter and training checks its loss once per step.
MOTIONEXT_CHECK_FINITE=1 checks on every device, 0 on none. Under torch.compile and torch.func
transforms it never runs."""

from __future__ import annotations

import os

import torch

FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


class NonFiniteError(ValueError):
    """An op's input holds NaN or Inf (a ValueError, so that bad input is caught as before; training
    tells it apart: there it means the run diverged)."""


def check_spatial(op: str, name: str, t) -> None:
    """A non-empty floating (B, C, H, W) or (B, C, D, H, W) tensor."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{op}: argument '{name}' must be a torch.Tensor; got {type(t).__name__}")
    if t.dim() not in (4, 5):
        raise ValueError(
            f"{op}: argument '{name}' must be (B, C, H, W) or (B, C, D, H, W); got shape {tuple(t.shape)}"
        )
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: argument '{name}' must be float16/bfloat16/float32/float64; got {t.dtype}")
    if t.numel() == 0:
        raise ValueError(f"{op}: argument '{name}' is empty (shape {tuple(t.shape)})")


def check_like(op: str, ref_name: str, ref: torch.Tensor, name: str, other: torch.Tensor) -> None:
    """Same device and dtype."""
    if other.device != ref.device:
        raise ValueError(f"{op}: argument '{name}' is on {other.device} but '{ref_name}' is on {ref.device}")
    if other.dtype != ref.dtype:
        raise TypeError(f"{op}: argument '{name}' has dtype {other.dtype} but '{ref_name}' has {ref.dtype}")


def check_field(op: str, name: str, field, image_name: str, image: torch.Tensor) -> None:
    """A (B, ndim, *spatial) displacement or velocity field matching ``image``."""
    check_spatial(op, name, field)
    ndim = image.dim() - 2
    expected = (image.shape[0], ndim, *image.shape[2:])
    if tuple(field.shape) != expected:
        raise ValueError(
            f"{op}: argument '{name}' must have shape {expected} (B, ndim, *spatial) to match "
            f"'{image_name}' {tuple(image.shape)}; got {tuple(field.shape)}"
        )
    check_like(op, image_name, image, name, field)


def check_choice(op: str, name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{op}: argument '{name}' must be one of {choices}; got {value!r}")


def check_odd_window(op: str, name: str, window) -> None:
    """A box window's width: a positive odd integer, so that it has a centre voxel."""
    if isinstance(window, bool) or not isinstance(window, int) or window < 1 or window % 2 == 0:
        raise ValueError(f"{op}: argument '{name}' must be a positive odd integer; got {window!r}")


CHECK_FINITE_VAR = "MOTIONEXT_CHECK_FINITE"


def finite_check_applies(t: torch.Tensor) -> bool:
    """Whether check_finite looks at `t`: see the module's docstring. Never under torch.compile,
    never on the meta device (no values)."""
    if torch.compiler.is_compiling() or t.device.type == "meta":
        return False
    setting = os.environ.get(CHECK_FINITE_VAR, "auto").strip().lower()
    if setting not in ("auto", "0", "1"):
        raise ValueError(f"{CHECK_FINITE_VAR}={setting!r}: use 1 (check on every device), 0 (never) or auto "
                         "(CPU tensors only, the default)")
    return setting == "1" or (setting == "auto" and t.device.type == "cpu")


def check_finite(op: str, name: str, t: torch.Tensor) -> None:
    # nor under a torch.func transform: vmap's values cannot decide a branch
    if not finite_check_applies(t) or torch._C._functorch.is_functorch_wrapped_tensor(t):
        return
    # A sum is a single vectorised pass without a temporary, and any NaN or Inf makes it
    # non-finite. Finite values that overflow the sum (beyond 1e38 in float32) are rare; the
    # exact element-wise test settles that case.
    if bool(torch.isfinite(t.sum(dtype=torch.float64 if t.dtype == torch.float64 else torch.float32))):
        return
    if not bool(torch.isfinite(t).all()):
        raise NonFiniteError(f"{op}: argument '{name}' contains NaN or Inf")
