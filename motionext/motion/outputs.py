"""Writing results as NIfTI that ITK-SNAP, 3D Slicer and nibabel read with the right geometry,
plus .npy and CSV. Every file is written to a temporary name and renamed."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..files import atomic_write, replaced_atomically


def _affine(cine_affine, spacing):
    if cine_affine is not None:
        return np.asarray(cine_affine, dtype=np.float64)
    return np.diag(list(spacing)[:3] + [1.0] * (4 - len(list(spacing)[:3])))


def save_sequence(path, frames, affine=None, spacing=(1.0, 1.0)):
    """(T, *S) -> NIfTI (*S, T): a 2D sequence becomes (x, y, 1, t) so the time axis stays 4th."""
    from ..data.nifti import save_nifti

    array = np.moveaxis(np.asarray(frames), 0, -1)
    if array.ndim == 3:
        array = array[:, :, None, :]
    return save_nifti(path, array, _affine(affine, spacing))


def save_displacements(path, displacements, affine=None, spacing=(1.0, 1.0)):
    """(T, ndim, *S) voxel displacements -> a NIfTI vector image (x, y, z, t, 3) in mm along the
    world axes of the affine (intent 'vector'): what ITK-SNAP and Slicer expect."""
    import nibabel as nib

    u = np.asarray(displacements, dtype=np.float64)
    t, ndim = u.shape[:2]
    matrix = _affine(affine, spacing)[:3, :ndim]  # voxel offset -> world offset (mm)
    world = np.einsum("ij,tj...->t...i", matrix, u)  # (T, *S, 3)
    if ndim == 2:
        world = world[:, :, :, None, :]
    vector = np.moveaxis(world, 0, 3).astype(np.float32)  # (x, y, z, t, 3)
    image = nib.Nifti1Image(vector, _affine(affine, spacing))
    image.header.set_intent("vector")
    with replaced_atomically(path) as tmp:
        nib.save(image, str(tmp))
    return Path(path)


def save_npy(path, array):
    return atomic_write(path, lambda f: np.save(f, np.asarray(array)))


def save_csv(path, rows: list, fields: list):
    def write(f):
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        writer.writerows(rows)

    return atomic_write(path, write, text=True)
