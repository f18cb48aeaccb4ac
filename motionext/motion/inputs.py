"""Turning what a user hands the motion API (an array, a tensor, a Cine or a NIfTI path) into the
model's input: a (T, *S) float32 tensor on the model's grid and device, intensities normalised as
in training."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.cine import Cine, cycle_phases, even_phases
from ..data.preprocess import normalize_intensity, preprocess
from ..validate import sizes


@dataclass
class Sequence:
    frames: torch.Tensor   # (T, *S) float32 in [0, 1], ED first
    spacing: tuple         # mm per axis
    cine: Cine | None      # the preprocessed cine (geometry for writing outputs), if one was read
    times: torch.Tensor    # (T,) cycle phase of every frame: t / T, or a sparse cine's own (Cine.times)


def model_device(model) -> torch.device:
    return next(model.parameters()).device


def as_sequence(model, frames, spacing=None, *, min_frames: int = 2, what: str = "frames") -> Sequence:
    """(T, *S) array/tensor with ED first (`spacing`: its voxel size in mm, default the model's),
    or a Cine or NIfTI path, which is preprocessed to the model's grid (its spacing,
    ModelConfig.spacing, and its size) whatever `spacing` says. The tensors are on the model's device."""
    size = model.config.image_size
    cine = None
    if isinstance(frames, (str, Path)):
        from ..data.nifti import read_cine

        frames = read_cine(frames)
    if isinstance(frames, Cine):
        if frames.ndim != model.config.ndim:
            if frames.ndim == 3 and model.config.ndim == 2:
                raise ValueError(f"{what}: {frames.name} is a 3D cine and the model is 2D; pass cine.slice(k)")
            raise ValueError(f"{what}: a {frames.ndim}D cine does not fit a {model.config.ndim}D model")
        cine = preprocess(frames, spacing=model.config.spacing, size=size[:2])
        frames, spacing = cine.frames, cine.spacing
    array = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if array.ndim != model.config.ndim + 1:
        raise ValueError(f"{what}: expected (T, {', '.join(map(str, size))}) with ED first; got shape {array.shape}")
    if array.shape[0] < min_frames:
        raise ValueError(f"{what}: need at least {min_frames} frame(s); got {array.shape[0]}")
    if tuple(array.shape[1:]) != size:
        raise ValueError(
            f"{what}: frames of size {tuple(array.shape[1:])} do not match the model's {size}; "
            "pass a Cine or NIfTI path (preprocessed automatically) or use motionext.data.preprocess"
        )
    if array.dtype.kind not in "biuf":  # complex would lose its imaginary part; objects and strings are no image
        raise ValueError(f"{what}: values of type {array.dtype} are not real numbers; pass integer or floating-point frames")
    if not np.isfinite(array).all():
        raise ValueError(f"{what}: frames contain NaN or Inf")
    spacing = sizes(what, "spacing", spacing if spacing is not None else (model.config.spacing,) * model.config.ndim,
                    model.config.ndim)
    device = model_device(model)
    times = torch.from_numpy(cycle_phases(cine) if cine is not None else even_phases(array.shape[0])).to(device)
    frames = torch.from_numpy(normalize_intensity(array.astype(np.float32))).to(device)
    return Sequence(frames, spacing, cine, times)
