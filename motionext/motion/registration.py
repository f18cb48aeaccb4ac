"""Classical pairwise registration as baselines for `evaluate` and the experiments: SyN
(ANTsPy) and B-spline elastix (itk-elastix). Both are optional extras:
``pip install 'motionext[baselines]'``.

Each registers the ED frame (moving) to every frame (fixed), one pair at a time, and returns
displacements in motionext's convention: (T, ndim, *S) in voxels with
``warp(ED, u[t]) ≈ frame t``. Images are passed with their voxel spacing and an identity
direction, so the methods' physical displacements (mm along the array axes) are divided by the
spacing.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

BASELINES = {"syn": ("ants", "antspyx"), "elastix": ("itk", "itk-elastix")}


def missing(name: str) -> str | None:
    """Why baseline `name` cannot run here (None when it can)."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose from {sorted(BASELINES)}")
    module, package = BASELINES[name]
    try:
        imported = __import__(module)
        if name == "elastix" and not hasattr(imported, "elastix_registration_method"):
            raise ImportError("itk without elastix")
    except ImportError:
        return f"the {name} baseline needs {package}: pip install 'motionext[baselines]'"
    return None


def _require(name: str):
    reason = missing(name)
    if reason is not None:
        raise ImportError(reason)
    return __import__(BASELINES[name][0])


def _in_voxels(field: np.ndarray, spacing) -> np.ndarray:
    """A displacement field (*S, ndim) in mm along the array axes -> (ndim, *S) in voxels."""
    scale = np.asarray(spacing, dtype=np.float64).reshape(-1, *[1] * len(spacing))
    return np.moveaxis(field, -1, 0).astype(np.float64) / scale


def syn_pair(moving: np.ndarray, fixed: np.ndarray, spacing) -> np.ndarray:
    """SyN (ANTs' symmetric normalisation, deformable only: frames of one subject need no affine)."""
    ants = _require("syn")
    images = [ants.from_numpy(np.ascontiguousarray(a, dtype=np.float32), spacing=tuple(float(s) for s in spacing))
              for a in (fixed, moving)]
    result = ants.registration(fixed=images[0], moving=images[1], type_of_transform="SyNOnly", random_seed=0)
    files = set(result["fwdtransforms"]) | set(result["invtransforms"])
    try:
        warps = [f for f in result["fwdtransforms"] if f.endswith((".nii", ".nii.gz"))]
        affines = [f for f in result["fwdtransforms"] if f.endswith(".mat")]
        for path in affines:  # SyNOnly writes an identity affine; anything else would be lost below
            parameters = np.asarray(ants.read_transform(path).parameters)
            if not np.allclose(parameters, np.eye(len(spacing)).ravel().tolist() + [0.0] * len(spacing), atol=1e-6):
                raise RuntimeError(f"SyN returned a non-identity affine {parameters.tolist()}")
        field = ants.image_read(warps[0]).numpy()  # (*S, ndim) in mm
    finally:
        for path in files:
            if os.path.exists(path):
                os.remove(path)
    return _in_voxels(field, spacing)


def elastix_pair(moving: np.ndarray, fixed: np.ndarray, spacing) -> np.ndarray:
    """elastix's default B-spline registration: 3 resolutions, mutual information with a
    bending-energy penalty, an 8 mm final control-point grid."""
    itk = _require("elastix")
    ndim = len(spacing)

    def image(array):
        # ITK's x axis is the array's last; transposing makes it motionext's first spatial axis.
        out = itk.image_view_from_array(np.ascontiguousarray(np.asarray(array, dtype=np.float32).T))
        out.SetSpacing([float(s) for s in spacing])
        return out

    fixed_image, moving_image = image(fixed), image(moving)
    parameters = itk.ParameterObject.New()
    parameter_map = parameters.GetDefaultParameterMap("bspline", 3, 8.0)
    parameter_map["WriteResultImage"] = ["false"]
    parameter_map["RandomSeed"] = ["0"]
    parameters.AddParameterMap(parameter_map)
    _, transform = itk.elastix_registration_method(fixed_image, moving_image, parameter_object=parameters,
                                                   log_to_console=False)
    with tempfile.TemporaryDirectory(prefix="motionext-elastix-") as scratch:
        # transformix writes deformationField.nii into its output directory (by default the
        # working directory, where it would overwrite a user's file of that name).
        deformation = itk.transformix_deformation_field(moving_image, transform, output_directory=scratch)
        field = np.array(itk.array_from_image(deformation))  # reversed axes; a copy that outlives the folder
    field = np.transpose(field, (*reversed(range(ndim)), ndim))  # (*S, ndim) in mm
    return _in_voxels(field, spacing)


PAIRWISE = {"syn": syn_pair, "elastix": elastix_pair}


def register_sequence(name: str, frames: np.ndarray, spacing) -> np.ndarray:
    """Displacements (T, ndim, *S) in voxels of ED registered to every frame by baseline `name`."""
    _require(name)
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim - 1 != len(spacing):
        raise ValueError(f"{name}: frames {frames.shape} do not match the spacing {tuple(spacing)}")
    out = np.zeros((frames.shape[0], len(spacing), *frames.shape[1:]), dtype=np.float32)
    for t in range(1, frames.shape[0]):
        out[t] = PAIRWISE[name](frames[0], frames[t], spacing)
    return out
