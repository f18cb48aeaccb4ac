"""Writing results as NIfTI that ITK-SNAP, 3D Slicer and nibabel read with the right geometry,
plus .npy and CSV. Every file is written to a temporary name and renamed."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..files import atomic_write


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


def _world_vectors(displacements, affine, spacing) -> np.ndarray:
    """(T, ndim, *S) voxel displacements -> (T, x, y, z, 3): mm along the world (RAS) axes."""
    u = np.asarray(displacements, dtype=np.float64)
    ndim = u.shape[1]
    matrix = _affine(affine, spacing)[:3, :ndim]  # voxel offset -> world offset (mm)
    world = np.einsum("ij,tj...->t...i", matrix, u)  # (T, *S, 3)
    return world[:, :, :, None, :] if ndim == 2 else world


def save_displacements(path, displacements, affine=None, spacing=(1.0, 1.0)):
    """(T, ndim, *S) voxel displacements -> a NIfTI vector image (x, y, z, t, 3) in mm along the
    world axes of the affine (intent 'vector'): what ITK-SNAP and Slicer expect."""
    from ..data.nifti import save_nifti

    vector = np.moveaxis(_world_vectors(displacements, affine, spacing), 0, 3).astype(np.float32)  # (x, y, z, t, 3)
    return save_nifti(path, vector, _affine(affine, spacing), intent="vector")


# NIfTI's world axes are RAS; ITK's physical space, and so a transform's vectors, are LPS.
RAS_TO_LPS = np.array([-1.0, -1.0, 1.0])


def save_itk_transforms(folder, displacements, affine=None, spacing=(1.0, 1.0)) -> list:
    """One displacement-field transform per frame after ED, ``folder/frame_TT.nii.gz`` (TT = 01 ...
    T-1): the deformation that takes ED to frame TT, as ITK, ANTs (antsApplyTransforms,
    ants.apply_transforms) and 3D Slicer read it. Each is a (x, y, z, 1, 3) vector image on the
    frames' grid holding, at every voxel x, the offset in mm (LPS) to the point of ED it comes
    from, so that applying it to the ED frame gives frame TT's warped ED.

    A single slice's field is written as two equal planes, half a slice below and above it: ITK
    reads a vector image of one plane as 2D, and a 2D transform does not apply to the slice's 3D
    image; between the planes every point of the slice finds its own offset."""
    from ..data.nifti import save_nifti

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    world = _world_vectors(displacements, affine, spacing) * RAS_TO_LPS  # (T, x, y, z, 3)
    matrix = _affine(affine, spacing)
    if world.shape[3] == 1:
        world = np.repeat(world, 2, axis=3)
        matrix = matrix.copy()
        matrix[:3, 3] -= 0.5 * matrix[:3, 2]
    width = max(2, len(str(len(world) - 1)))
    paths = []
    for t in range(1, len(world)):
        paths.append(save_nifti(folder / f"frame_{t:0{width}d}.nii.gz", world[t][:, :, :, None, :].astype(np.float32),
                                matrix, intent="vector"))
    return paths


def save_npy(path, array):
    return atomic_write(path, lambda f: np.save(f, np.asarray(array)))


def save_csv(path, rows: list, fields: list):
    def write(f):
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        writer.writerows(rows)

    return atomic_write(path, write, text=True)
