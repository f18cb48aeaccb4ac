"""On-the-fly augmentation applied identically to every frame of a sequence (and its labels):
random in-plane shift, rotation, scaling and mirroring."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def random_affine(rng: np.random.Generator, *, max_shift: float = 0.1, max_rotation: float = math.pi / 9,
                  scale_range=(0.9, 1.1), mirror: float = 0.0) -> np.ndarray:
    """A random 2×3 in-plane affine in grid_sample's normalised coordinates. Short-axis views come
    in one orientation within a few tens of degrees, so rotations stay within ±20° and there is no
    mirroring by default: the decoder need not learn to move the wall of a heart in any
    orientation (docs/model.md gives the probe this was measured in)."""
    angle = rng.uniform(-max_rotation, max_rotation)
    scale = rng.uniform(*scale_range)
    flip = -1.0 if rng.uniform() < mirror else 1.0
    c, s = math.cos(angle) / scale, math.sin(angle) / scale
    shift = rng.uniform(-max_shift, max_shift, 2) * 2
    return np.array([[c * flip, -s, shift[0]], [s * flip, c, shift[1]]], dtype=np.float32)


def apply_affine(frames: torch.Tensor, matrix: np.ndarray, labels: torch.Tensor | None = None):
    """Apply one in-plane affine to (T, H, W) or (T, H, W, D) frames (the first two spatial axes)
    and optionally to labels of the same shape. Returns (frames, labels)."""
    theta = torch.as_tensor(matrix, dtype=torch.float32)
    ndim = frames.dim() - 1
    if ndim == 3:  # treat the third axis as a batch of slices
        t, h, w, d = frames.shape
        moved = apply_affine(frames.permute(0, 3, 1, 2).reshape(t * d, h, w), matrix,
                             None if labels is None else labels.permute(0, 3, 1, 2).reshape(-1, h, w))
        back = lambda x: x.reshape(-1, d, h, w).permute(0, 2, 3, 1)  # noqa: E731
        return back(moved[0]), None if labels is None else back(moved[1])
    # grid_sample's grid is (x, y) = (last axis, first axis); our matrix acts on (row, column)
    swap = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    theta = torch.cat([swap @ theta[:, :2] @ swap, (swap @ theta[:, 2:])], dim=1)
    n = frames.shape[0]
    grid = F.affine_grid(theta.expand(n, 2, 3), (n, 1, *frames.shape[1:]), align_corners=False)
    out = F.grid_sample(frames.unsqueeze(1).float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]
    if labels is None:
        return out, None
    lab = F.grid_sample(labels.unsqueeze(1).float(), grid[: labels.shape[0]], mode="nearest", padding_mode="zeros",
                        align_corners=False)[:, 0]
    return out, lab.to(labels.dtype)


def random_intensity(frames: torch.Tensor, rng: np.random.Generator, *, gamma_range=(0.7, 1.5),
                     contrast_range=(0.8, 1.2), max_bias: float = 0.3, max_noise: float = 0.05) -> torch.Tensor:
    """What differs between real MRI scans but not their motion, drawn once per sequence: a gamma
    curve, contrast and brightness, a smooth multiplicative bias field (coil sensitivity) and
    Rician-like noise of one level. Frames (T, *S) in [0, 1] stay in [0, 1]."""
    out = frames.clamp(0, 1) ** float(rng.uniform(*gamma_range))
    out = (out - 0.5) * float(rng.uniform(*contrast_range)) + 0.5 + float(rng.uniform(-0.1, 0.1))
    spatial = frames.shape[1:]
    # a bias field: a random linear ramp plus a quadratic bump over the image, the same in every frame
    axes = torch.meshgrid(*[torch.linspace(-1, 1, n) for n in spatial], indexing="ij")
    ramp = sum(float(rng.uniform(-1, 1)) * a for a in axes) + float(rng.uniform(-1, 1)) * sum(a * a for a in axes) / len(axes)
    out = out * (1 + max_bias * ramp / max(1.0, float(ramp.abs().max())))
    sigma = float(rng.uniform(0, max_noise))
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    noise = torch.randn(2, *frames.shape, generator=generator) * sigma
    out = torch.sqrt((out + noise[0]) ** 2 + noise[1] ** 2)  # magnitude images have Rician noise
    return out.clamp(0, 1)
