"""Evaluation measures: overlap (Dice), surface distance (HD95), end-point error of
displacements, and the Jacobian determinant of the deformation (folding)."""

from __future__ import annotations

import numpy as np


def _same_grid(what: str, a, b) -> None:
    """Two maps compared voxel by voxel; NumPy would broadcast a (1, W) map against an (H, W) one."""
    if np.shape(a) != np.shape(b):
        raise ValueError(f"{what}: the two maps differ in shape: {np.shape(a)} and {np.shape(b)}")


def dice(a: np.ndarray, b: np.ndarray, label) -> float:
    """Dice overlap of `label` (an int or a collection of ints merged into one structure).
    NaN when the structure is absent from both."""
    _same_grid("dice", a, b)
    labels = np.atleast_1d(label)
    ma, mb = np.isin(a, labels), np.isin(b, labels)
    total = ma.sum() + mb.sum()
    return float("nan") if total == 0 else float(2.0 * np.logical_and(ma, mb).sum() / total)


def hausdorff95(a: np.ndarray, b: np.ndarray, label, spacing) -> float:
    """95th-percentile symmetric surface distance (mm) of `label` between two label maps; NaN if
    the structure is missing from either."""
    from scipy import ndimage

    _same_grid("hausdorff95", a, b)
    labels = np.atleast_1d(label)
    ma, mb = np.isin(a, labels), np.isin(b, labels)
    if not ma.any() or not mb.any():
        return float("nan")
    surface = lambda m: m & ~ndimage.binary_erosion(m)  # noqa: E731
    sa, sb = surface(ma), surface(mb)
    to_b = ndimage.distance_transform_edt(~sb, sampling=spacing)
    to_a = ndimage.distance_transform_edt(~sa, sampling=spacing)
    return float(np.percentile(np.concatenate([to_b[sa], to_a[sb]]), 95))


def endpoint_error(u: np.ndarray, v: np.ndarray, spacing=None, mask: np.ndarray | None = None) -> float:
    """Mean Euclidean distance between two displacement fields (ndim, *S), in mm when `spacing`
    is given (else voxels), over `mask` if given."""
    _same_grid("endpoint_error", u, v)
    scale = np.ones(u.shape[0]) if spacing is None else np.asarray(spacing, dtype=np.float64)
    diff = (u - v) * scale.reshape(-1, *([1] * (u.ndim - 1)))
    error = np.sqrt((diff**2).sum(0))
    return float(error[mask].mean() if mask is not None else error.mean())


def heart_endpoint_error(u, truth, labels, spacing) -> float:
    """Mean over frames of the end-point error (mm) inside each frame's heart (labels > 0):
    u and truth (T, ndim, *S) in voxels, labels (T, *S)."""
    return float(np.mean([endpoint_error(np.asarray(u[t]), truth[t], spacing, labels[t] > 0) for t in range(len(truth))]))


def jacobian_determinant(u: np.ndarray) -> np.ndarray:
    """det(I + grad u) of a voxel-unit displacement (ndim, *S), by central differences."""
    ndim = u.shape[0]
    grads = [np.gradient(u[k], axis=tuple(range(ndim))) for k in range(ndim)]
    grads = [[g] if ndim == 1 else g for g in grads]
    jac = np.empty(u.shape[1:] + (ndim, ndim))
    for i in range(ndim):
        for j in range(ndim):
            jac[..., i, j] = grads[i][j] + (1.0 if i == j else 0.0)
    return np.linalg.det(jac)


def folding_fraction(u: np.ndarray) -> float:
    """Fraction of voxels where the deformation folds (Jacobian determinant <= 0)."""
    return float((jacobian_determinant(u) <= 0).mean())
