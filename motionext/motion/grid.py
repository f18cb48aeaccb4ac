"""Bringing results back onto the input's own voxel grid. The model works on a resampled,
cropped copy of the input (the model's spacing and size); preprocessing only scales and shifts the
in-plane axes, so every input voxel has a position on the model's grid, where displacements and
maps are interpolated."""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import map_coordinates


class InputGrid:
    """The map between a 2D input cine (`source`) and its preprocessed copy (`prepared`)."""

    def __init__(self, source, prepared):
        if source.affine is None or prepared.affine is None:
            raise ValueError(f"{source.name}: results can go back to the input grid only for inputs with an affine "
                             f"(NIfTI); use the model grid")
        if source.ndim != 2:
            raise ValueError(f"{source.name}: the input grid needs a 2D cine (one slice); got {source.ndim}D")
        to_model = np.linalg.inv(np.asarray(prepared.affine, float)) @ np.asarray(source.affine, float)
        # preprocessing scales and shifts in-plane only; anything else means another slice plane
        if not np.allclose(to_model[:3, 2], [0, 0, 1], atol=1e-4) or not np.allclose(to_model[2, :2], 0, atol=1e-4):
            raise ValueError(f"{source.name}: the preprocessed cine is not in the input's slice plane")
        self.source = source
        self.matrix, offset = to_model[:2, :2], to_model[:2, 3]
        index = np.indices(source.shape).reshape(2, -1)
        self.positions = (self.matrix @ index + offset[:, None]).reshape(2, *source.shape)

    @property
    def affine(self):
        return self.source.affine

    @property
    def spacing(self):
        return self.source.spacing

    def resample(self, maps, order: int = 1) -> np.ndarray:
        """Maps (..., *S_model) on the model grid -> (..., *S_input); beyond the model's crop the
        border values continue, as in warping."""
        maps = np.asarray(maps.detach().cpu() if isinstance(maps, torch.Tensor) else maps, dtype=np.float64)
        flat = maps.reshape(-1, *maps.shape[-2:])
        out = np.stack([map_coordinates(m, self.positions, order=order, mode="nearest") for m in flat])
        return out.reshape(*maps.shape[:-2], *self.source.shape)

    def displacements(self, u) -> np.ndarray:
        """Displacements (T, 2, *S_model) in model voxels -> (T, 2, *S_input) in input voxels."""
        sampled = self.resample(u)
        return np.einsum("ij,tj...->ti...", np.linalg.inv(self.matrix), sampled).astype(np.float32)
