"""The paper's reconstruction baselines: velocities of the given frames interpolated in time
(linear or cubic), then exponentiated and applied to ED."""

from __future__ import annotations

import numpy as np
import torch

from .. import ops


def interpolate_velocities(velocities: torch.Tensor, given: list, num_frames: int, kind: str = "linear") -> torch.Tensor:
    """Velocities (len(given), ndim, *S) at frames `given` -> (num_frames, ndim, *S), periodic in time
    (the frame after the last wraps to ED)."""
    if kind not in ("linear", "cubic"):
        raise ValueError(f"kind must be 'linear' or 'cubic'; got {kind!r}")
    if len(given) < 2:
        return velocities[:1].expand(num_frames, *velocities.shape[1:]).clone()  # ED alone: no motion known
    from scipy.interpolate import CubicSpline, interp1d

    known_t = np.asarray(list(given) + [num_frames], dtype=np.float64)  # the cycle closes at ED
    values = torch.cat([velocities, velocities[:1]]).double().numpy()
    if kind == "cubic" and len(known_t) >= 3:
        curve = CubicSpline(known_t, values, axis=0, bc_type="periodic")
    else:
        curve = interp1d(known_t, values, axis=0, kind="linear")
    return torch.from_numpy(curve(np.arange(num_frames))).to(velocities.dtype)


def reconstruct_by_interpolation(ed: torch.Tensor, velocities: torch.Tensor, given: list, num_frames: int,
                                 kind: str = "linear", steps: int = 7):
    """Frames and displacements of the interpolation baseline: (T, *S), (T, ndim, *S)."""
    v = interpolate_velocities(velocities, given, num_frames, kind)
    displacement = ops.scaling_squaring(v, steps=steps)
    frames = ops.warp(ed[None, None].expand(num_frames, 1, *ed.shape).to(displacement.dtype), displacement)[:, 0]
    return frames, displacement
