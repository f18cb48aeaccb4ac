"""Pure-PyTorch versions of the three motionext ops.

These are the test oracle, the fallback when the compiled extension is missing, and the
baseline in ``benchmarks/``. They follow DESIGN.md section 3 exactly: displacements in voxel
units, channel k along spatial axis k, voxel centres at integer coordinates
(``align_corners=True``), and MONAI's rectangular-window LNCC.

They check nothing: argument checks live in :mod:`motionext.ops._checks` and are applied by the
public functions in :mod:`motionext.ops`, whichever backend runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["warp", "scaling_squaring", "lncc"]


def _sampling_grid(displacement: torch.Tensor) -> torch.Tensor:
    """Turn a voxel-unit displacement (B, ndim, *S) into a grid_sample grid (B, *S, ndim)."""
    spatial = displacement.shape[2:]
    ndim = len(spatial)
    axes = [torch.arange(n, dtype=displacement.dtype, device=displacement.device) for n in spatial]
    identity = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=0)
    position = identity.unsqueeze(0) + displacement
    # grid_sample wants [-1, 1] coordinates with the last spatial axis first.
    scale = torch.tensor(
        [2.0 / max(n - 1, 1) for n in spatial], dtype=displacement.dtype, device=displacement.device
    )
    position = position * scale.view(1, ndim, *([1] * ndim)) - 1.0
    return position.flip(1).movedim(1, -1)


def warp(
    image: torch.Tensor,
    displacement: torch.Tensor,
    *,
    mode: str = "bilinear",
    padding: str = "border",
) -> torch.Tensor:
    """``image(x + displacement(x))`` with linear (or nearest) interpolation."""
    grid = _sampling_grid(displacement)
    return F.grid_sample(image, grid, mode=mode, padding_mode=padding, align_corners=True)


def scaling_squaring(
    velocity: torch.Tensor, *, steps: int = 7, padding: str = "border"
) -> torch.Tensor:
    """Displacement of exp(velocity): ``u = v / 2**steps``, then ``u = u + warp(u, u)`` ``steps`` times."""
    displacement = velocity / (2**steps)
    for _ in range(steps):
        displacement = displacement + warp(displacement, displacement, padding=padding)
    return displacement


def _box_sum(x: torch.Tensor, window: int) -> torch.Tensor:
    """Sum over a centred box of odd width ``window`` along every spatial axis, zero padded."""
    ndim = x.dim() - 2
    channels = x.shape[1]
    conv = (F.conv1d, F.conv2d, F.conv3d)[ndim - 1]
    for axis in range(ndim):
        shape = [channels, 1] + [1] * ndim
        shape[2 + axis] = window
        padding = [0] * ndim
        padding[axis] = window // 2
        kernel = torch.ones(shape, dtype=x.dtype, device=x.device)
        x = conv(x, kernel, padding=padding, groups=channels)
    return x


def lncc(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    window: int = 9,
    smooth_nr: float = 0.0,
    smooth_dr: float = 1e-5,
    reduction: str = "mean",
) -> torch.Tensor:
    """Local squared normalized cross-correlation (higher is better), MONAI's definition."""
    n = float(window ** (a.dim() - 2))
    sum_a, sum_b = _box_sum(a, window), _box_sum(b, window)
    sum_aa, sum_bb, sum_ab = _box_sum(a * a, window), _box_sum(b * b, window), _box_sum(a * b, window)
    cross = sum_ab - sum_a * sum_b / n
    floor = torch.as_tensor(smooth_dr, dtype=a.dtype, device=a.device)
    var_a = torch.maximum(sum_aa - sum_a * sum_a / n, floor)
    var_b = torch.maximum(sum_bb - sum_b * sum_b / n, floor)
    cc = (cross * cross + smooth_nr) / (var_a * var_b)
    if reduction == "mean":
        return cc.mean()
    if reduction == "sum":
        return cc.sum()
    return cc
