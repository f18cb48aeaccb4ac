"""A synthetic short-axis cine phantom with known motion: an LV blood pool, myocardium and an
RV crescent that contract and relax over a realistic cycle (ejection, rapid filling, diastasis,
atrial kick), with tissue texture, noise and a coil-bias field. 2D slices or 3D stacks.

Every frame is the ED frame warped by the ground-truth displacement, so
``frames[t] == warp(frames[0], displacements[t])`` (before noise) and labels follow likewise.
The myocardium keeps its area (incompressible wall); motion fades out away from the heart.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import torch

from .. import validate
from ..ops import reference
from .cine import Cine

LABELS = {"background": 0, "RV": 1, "myocardium": 2, "LV": 3}  # the ACDC convention


@dataclass
class Phantom:
    frames: np.ndarray         # (T, *S) float32, ED first
    labels: np.ndarray         # (T, *S) uint8, LABELS
    displacements: np.ndarray  # (T, ndim, *S) float32, voxels: frame_t(x) = frame_0(x + u_t(x))
    spacing: tuple             # mm per spatial axis
    es: int                    # end-systolic frame
    contraction: np.ndarray    # (T,) 0 at ED .. 1 at ES

    def to_cine(self, name: str = "phantom") -> Cine:
        return Cine(self.frames, self.spacing, None, {t: self.labels[t] for t in range(len(self.labels))}, es=self.es, name=name)


def cardiac_cycle(num_frames: int, *, systole: float = 0.35, filling: float = 0.25, kick_start: float = 0.8,
                  diastasis_level: float = 0.22) -> np.ndarray:
    """Contraction c(t) in [0, 1] over one cycle sampled at `num_frames` frames (ED at t = 0)."""
    tau = np.arange(num_frames) / num_frames
    c = np.empty(num_frames)
    for i, p in enumerate(tau):
        if p < systole:  # ejection
            c[i] = 0.5 * (1 - np.cos(np.pi * p / systole))
        elif p < systole + filling:  # rapid filling
            q = (p - systole) / filling
            c[i] = diastasis_level + (1 - diastasis_level) * 0.5 * (1 + np.cos(np.pi * q))
        elif p < kick_start:  # diastasis: a slow drift
            q = (p - systole - filling) / (kick_start - systole - filling)
            c[i] = diastasis_level * (1 - 0.15 * q)
        else:  # atrial kick
            q = (p - kick_start) / (1 - kick_start)
            c[i] = diastasis_level * 0.85 * 0.5 * (1 + np.cos(np.pi * q))
    return c


# The cycle's timing at cycle_variation 1: each parameter of cardiac_cycle drawn uniformly from
# these ranges (end-systole at 25-45 % of the cycle, around the default 35 %; filling,
# diastasis and the atrial kick to match). At v in (0, 1) a parameter moves v of the way from
# its default to its draw.
CYCLE_RANGES = {"systole": (0.25, 0.45), "filling": (0.15, 0.30), "diastasis_level": (0.12, 0.35)}
KICK_RANGE = (0.70, 0.90)  # and at least 0.05 after filling ends


def subject_cycle(num_frames: int, seed: int, variation: float = 0.0) -> np.ndarray:
    """One subject's contraction curve: cardiac_cycle with its timing drawn from `seed`, as far
    from the defaults as `variation` (0: the default cycle of every subject). The draws use their
    own generator, so a subject's anatomy and texture are the same at every variation."""
    if variation == 0:
        return cardiac_cycle(num_frames)
    rng = np.random.default_rng([int(seed), 0xC1C1E])  # a stream of its own, apart from the anatomy's
    defaults = {name: p.default for name, p in inspect.signature(cardiac_cycle).parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY}
    params = {k: defaults[k] + variation * (rng.uniform(*CYCLE_RANGES[k]) - defaults[k]) for k in CYCLE_RANGES}
    kick = rng.uniform(max(KICK_RANGE[0], params["systole"] + params["filling"] + 0.05), KICK_RANGE[1])
    params["kick_start"] = defaults["kick_start"] + variation * (kick - defaults["kick_start"])
    return cardiac_cycle(num_frames, **params)


def _smooth_noise(shape, rng, sigma_vox: float) -> torch.Tensor:
    """Gaussian-filtered white noise scaled to [0, 1]: tissue texture and bias fields."""
    noise = torch.from_numpy(rng.standard_normal(shape).astype(np.float32))[None, None]
    radius = max(1, int(3 * sigma_vox))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma_vox) ** 2)
    kernel /= kernel.sum()
    conv = (torch.nn.functional.conv2d, torch.nn.functional.conv3d)[len(shape) - 2]
    for axis in range(len(shape)):
        k = kernel.view([1, 1] + [-1 if a == axis else 1 for a in range(len(shape))])
        pad = [0] * len(shape)
        pad[axis] = radius
        noise = conv(noise, k, padding=tuple(pad))
    noise = noise[0, 0]
    return (noise - noise.min()) / (noise.max() - noise.min() + 1e-12)


def _soft(signed_distance: torch.Tensor, width: float = 0.6) -> torch.Tensor:
    """A smooth inside-indicator from a signed distance in mm (positive inside)."""
    return torch.sigmoid(signed_distance / width)


def make_phantom(
    num_frames: int = 20,
    size=(128, 128),
    *,
    spacing: float = 1.5,
    slice_spacing: float = 8.0,
    seed: int = 0,
    ejection_fraction: float | None = None,
    noise: float = 0.03,
    bias: float = 0.25,
    cycle_variation: float = 0.0,
) -> Phantom:
    """One phantom subject. `size` (H, W) gives a 2D slice, (H, W, D) a stack of D slices from base
    to apex. Shape, position, ejection fraction and texture vary with `seed`; with
    `cycle_variation` > 0 the timing of the cycle does too (see subject_cycle)."""
    size = tuple(int(s) for s in size)
    if len(size) not in (2, 3) or min(size) < 8:
        raise ValueError(f"make_phantom: size must be (H, W) or (H, W, D) with every axis >= 8; got {size}")
    if num_frames < 2:
        raise ValueError(f"make_phantom: num_frames must be at least 2; got {num_frames}")
    cycle_variation = validate.number("make_phantom", "cycle_variation", cycle_variation, minimum=0, maximum=1)
    spacing = validate.number("make_phantom", "spacing", spacing, positive=True)  # 0 made every displacement NaN
    slice_spacing = validate.number("make_phantom", "slice_spacing", slice_spacing, positive=True)
    rng = np.random.default_rng(seed)
    ndim = len(size)
    spacing_mm = (spacing, spacing) + ((slice_spacing,) if ndim == 3 else ())
    ef = float(rng.uniform(0.45, 0.65)) if ejection_fraction is None else float(ejection_fraction)
    fov = min(size[0], size[1]) * spacing
    r_endo = float(rng.uniform(0.13, 0.18)) * fov
    r_epi = r_endo + float(rng.uniform(0.055, 0.075)) * fov
    centre = np.array([size[0] / 2, size[1] / 2]) * spacing + rng.uniform(-0.04, 0.04, 2) * fov
    rv_angle = float(rng.uniform(0.8, 1.2) * np.pi)
    rv_dir = np.array([np.cos(rv_angle), np.sin(rv_angle)])
    rv_centre = centre + rv_dir * r_epi * 0.95
    rv_radius = r_endo * float(rng.uniform(1.05, 1.3))

    axes = [torch.arange(n, dtype=torch.float32) * spacing_mm[k] for k, n in enumerate(size)]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"))  # (ndim, *S) mm
    dx, dy = grid[0] - float(centre[0]), grid[1] - float(centre[1])
    rho = torch.sqrt(dx * dx + dy * dy)
    if ndim == 3:
        # Long axis along the third axis, base at slice 0: the ventricle narrows toward the apex.
        length = size[2] * slice_spacing * 1.15
        taper = torch.sqrt(torch.clamp(1 - (grid[2] / length) ** 2, min=0.05))
    else:
        taper = torch.ones_like(rho)

    # ED geometry and intensities.
    endo, epi = r_endo * taper, r_epi * taper
    lv = _soft(endo - rho)
    wall = _soft(epi - rho) - lv
    rv_dist = torch.sqrt((grid[0] - float(rv_centre[0])) ** 2 + (grid[1] - float(rv_centre[1])) ** 2)
    rv = _soft(rv_radius * taper - rv_dist) * (1 - _soft(epi + 1.5 - rho))
    texture = _smooth_noise(size, rng, sigma_vox=2.0)
    body = _soft(0.47 * fov - torch.sqrt((grid[0] - size[0] * spacing / 2) ** 2 + (grid[1] - size[1] * spacing / 2) ** 2), 3.0)
    image0 = body * (0.12 + 0.3 * texture)
    image0 = image0 * (1 - lv - wall - rv) + 0.92 * lv + (0.25 + 0.1 * texture) * wall + 0.82 * rv
    labels0 = torch.zeros(size, dtype=torch.float32)
    labels0[rv > 0.5] = LABELS["RV"]
    labels0[wall > 0.5] = LABELS["myocardium"]
    labels0[lv > 0.5] = LABELS["LV"]

    # Ground-truth motion: frame-t radius rho came from ED radius R.
    cycle = subject_cycle(num_frames, seed, cycle_variation)
    displacements = torch.zeros((num_frames, ndim, *size))
    for t, c in enumerate(cycle):
        endo_t = endo * float(np.sqrt(1 - c * ef))
        epi_t = torch.sqrt(epi**2 - endo**2 + endo_t**2)
        inside = endo / endo_t * rho
        wall_r = torch.sqrt(rho**2 + endo**2 - endo_t**2)
        fade = torch.exp(-0.5 * (torch.clamp(rho - epi_t, min=0) / (0.08 * fov)) ** 2)
        source = torch.where(rho < endo_t, inside, rho + fade * (wall_r - rho))
        ratio = torch.where(rho > 1e-6, source / torch.clamp(rho, min=1e-6), endo / endo_t)
        displacements[t, 0] = (ratio - 1) * dx / spacing_mm[0]
        displacements[t, 1] = (ratio - 1) * dy / spacing_mm[1]
        if ndim == 3:
            # The base descends toward the apex in systole (longitudinal shortening, up to ~10 mm).
            shortening = 10.0 * c * (1 - grid[2] / (size[2] * slice_spacing)) * fade
            displacements[t, 2] = -shortening / slice_spacing

    image = image0[None, None].expand(num_frames, 1, *size)
    frames = reference.warp(image, displacements, padding="border")[:, 0]
    labels = reference.warp(labels0[None, None].expand(num_frames, 1, *size), displacements, mode="nearest", padding="zeros")[:, 0]

    # Acquisition: a static coil-bias field and Rician noise per frame.
    bias_field = 1 + bias * (_smooth_noise(size, rng, sigma_vox=max(size) / 4) - 0.5)
    frames = frames * bias_field
    if noise > 0:
        n1 = torch.from_numpy(rng.standard_normal(frames.shape).astype(np.float32)) * noise
        n2 = torch.from_numpy(rng.standard_normal(frames.shape).astype(np.float32)) * noise
        frames = torch.sqrt((frames + n1) ** 2 + n2**2)
    return Phantom(
        frames=frames.numpy().astype(np.float32),
        labels=labels.numpy().astype(np.uint8),
        displacements=displacements.numpy().astype(np.float32),
        spacing=spacing_mm,
        es=int(np.argmax(cycle)),
        contraction=cycle.astype(np.float32),
    )


def phantom_cohort(count: int, *, seed: int = 0, frames=(16, 25), **kwargs) -> list:
    """`count` phantom subjects with different anatomy, ejection fraction and number of frames."""
    count = validate.integer("phantom_cohort", "count", count, minimum=0)
    rng = np.random.default_rng(seed)
    return [
        make_phantom(int(rng.integers(frames[0], frames[1] + 1)), seed=seed * 100_003 + i, **kwargs)
        for i in range(count)
    ]
