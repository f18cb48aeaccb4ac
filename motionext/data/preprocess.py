"""Preprocessing as in Krebs et al. 2019: in-plane resampling to a fixed spacing, crop/pad to a
fixed size around a centre, and robust intensity normalisation. Labels follow the same geometry
with nearest-neighbour sampling; the affine is updated so outputs keep their world position."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from ..validate import number
from .cine import Cine

# Bump when a change here alters preprocessed output: cached entries of older versions are rebuilt.
PREPROCESSING_VERSION = 1

# In-plane sizes a resampling may give: beyond them the spacings (the header's, or the one asked
# for) are almost surely not both in mm, and the image would be memory-sized or a few voxels.
RESAMPLED_SIZE = (4, 4096)


def _scale_affine(affine, factors):
    if affine is None:
        return None
    scale = np.eye(4)
    for k, f in enumerate(factors):
        scale[k, k] = f
    # Voxel centres stay centred: new index i maps to old index (i + 0.5) * f - 0.5.
    for k, f in enumerate(factors):
        scale[k, 3] = 0.5 * f - 0.5
    return affine @ scale


def resample_inplane(cine: Cine, spacing: float = 1.5) -> Cine:
    """Resample the two in-plane axes (the first two spatial axes) to `spacing` mm."""
    if spacing <= 0:
        raise ValueError(f"resample_inplane: spacing must be positive; got {spacing}")
    old = cine.spacing
    size = [max(1, int(round(n * old[k] / spacing))) if k < 2 else n for k, n in enumerate(cine.shape)]
    if not RESAMPLED_SIZE[0] <= min(size[:2]) <= max(size[:2]) <= RESAMPLED_SIZE[1]:
        raise ValueError(f"resampling the {cine.shape[0]} x {cine.shape[1]} image of {old[0]:g} x {old[1]:g} mm voxels to "
                         f"{spacing:g} mm would make it {size[0]} x {size[1]} voxels (at most {RESAMPLED_SIZE[1]}, at "
                         f"least {RESAMPLED_SIZE[0]}); are both spacings in mm? Check the header's pixdim and units, "
                         "and --spacing")
    if list(cine.shape) == size:
        return cine
    mode = "bilinear" if cine.ndim == 2 else "trilinear"
    frames = torch.from_numpy(cine.frames).unsqueeze(1)
    frames = F.interpolate(frames, size=size, mode=mode, align_corners=False).squeeze(1).numpy()
    labels = {
        t: F.interpolate(torch.from_numpy(v.astype(np.float32))[None, None], size=size, mode="nearest")[0, 0]
        .numpy()
        .astype(v.dtype)
        for t, v in cine.labels.items()
    }
    factors = [cine.shape[k] / size[k] for k in range(cine.ndim)]
    new_spacing = tuple(old[k] * factors[k] for k in range(cine.ndim))
    return replace(cine, frames=frames, labels=labels, spacing=new_spacing, affine=_scale_affine(cine.affine, factors))


def crop_or_pad(cine: Cine, size=(128, 128), centre=None) -> Cine:
    """Crop or zero-pad the in-plane axes to `size` around `centre` (voxels; default the image centre)."""
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"crop_or_pad: size must be two positive integers; got {size}")
    shape = cine.shape
    centre = [n / 2.0 for n in shape[:2]] if centre is None else list(centre)[:2]
    starts = [int(round(centre[k] - size[k] / 2.0)) for k in range(2)]

    def window(array, lead):
        out = np.zeros(array.shape[:lead] + size + array.shape[lead + 2 :], dtype=array.dtype)
        src, dst = [slice(None)] * lead, [slice(None)] * lead
        for k in range(2):
            lo, hi = max(starts[k], 0), min(starts[k] + size[k], shape[k])
            if hi <= lo:
                raise ValueError(f"crop_or_pad: the window around {centre} misses the image of shape {shape}")
            src.append(slice(lo, hi))
            dst.append(slice(lo - starts[k], hi - starts[k]))
        out[tuple(dst)] = array[tuple(src)]
        return out

    affine = None
    if cine.affine is not None:
        shift = np.eye(4)
        shift[0, 3], shift[1, 3] = starts
        affine = cine.affine @ shift
    return replace(
        cine,
        frames=window(cine.frames, 1),
        labels={t: window(v, 0) for t, v in cine.labels.items()},
        affine=affine,
    )


def normalize_intensity(frames: np.ndarray, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """Map the `low`..`high` percentiles of the whole sequence to 0..1 and clip (robust to outliers)."""
    lo, hi = np.percentile(frames, [low, high])
    if hi <= lo:
        return np.zeros_like(frames, dtype=np.float32)
    return np.clip((frames - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def preprocess(cine: Cine, *, spacing: float | None = 1.5, size=(128, 128), centre=None) -> Cine:
    """Resample in-plane to `spacing` mm (None keeps it), crop/pad to `size`, normalise intensities.
    `centre` is in voxels of the input grid."""
    if spacing is not None:
        spacing = number("preprocess", "spacing", spacing, positive=True)
        scale = [cine.spacing[k] / spacing for k in range(2)]
        cine = resample_inplane(cine, spacing)
        if centre is not None:
            centre = [(centre[k] + 0.5) * scale[k] - 0.5 for k in range(2)]
    if size is not None:
        cine = crop_or_pad(cine, size, centre)
    return replace(cine, frames=normalize_intensity(cine.frames))


def resample_time(frames: np.ndarray, num_frames: int) -> np.ndarray:
    """Resample a cyclic sequence (T, *spatial) to `num_frames` frames by linear interpolation in
    time; frame 0 (ED) is kept as it is."""
    if num_frames < 2:
        raise ValueError(f"resample_time: num_frames must be at least 2; got {num_frames}")
    count = frames.shape[0]
    if count == num_frames:
        return frames
    position = np.arange(num_frames) * count / num_frames
    before = np.floor(position).astype(int)
    weight = (position - before).reshape(-1, *[1] * (frames.ndim - 1)).astype(np.float32)
    return (1 - weight) * frames[before] + weight * frames[(before + 1) % count]
