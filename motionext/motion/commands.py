"""The file-level verbs of the `motionext` command: read a NIfTI cine, run one use of the model,
write NIfTI/.npy into an output folder. Outputs are written to a temporary folder that is
renamed into place only when everything succeeded, so a failure leaves nothing behind.

Outputs lie on the model's grid (the input resampled in-plane to 1.5 mm and cropped/padded to
128 × 128) with an affine that keeps their world position, so viewers overlay them on the input.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..data.nifti import read_cine
from . import api
from .inputs import as_sequence
from .outputs import save_displacements, save_npy, save_sequence


@contextlib.contextmanager
def output_folder(out, overwrite: bool = False):
    """A temporary folder beside `out`, renamed to `out` when the block succeeds."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"output folder {out} exists and is not empty; choose another --out or pass --overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)


def read_input(path, *, ed: int = 0, slice_index: int | None = None, labels=None):
    """A 2D cine from a NIfTI path: 4D inputs give one slice (default: the middle one)."""
    cine = read_cine(path, ed=ed, labels={ed: labels} if labels else None)
    if cine.ndim == 3:
        k = cine.shape[2] // 2 if slice_index is None else slice_index
        cine = cine.slice(k)
    elif slice_index is not None:
        raise ValueError(f"{path}: --slice given but the cine has a single slice")
    return cine


def _geometry(prepared):
    """(affine, spacing) of a preprocessed input: where outputs on the model's grid lie."""
    cine = prepared.cine
    return (cine.affine if cine is not None else None), prepared.spacing


def run_track(model, cine, out):
    result = api.track(model, cine)
    affine, spacing = _geometry(result)
    save_displacements(out / "displacements.nii.gz", result.displacements.numpy(), affine, spacing)
    save_sequence(out / "frames.nii.gz", result.frames.numpy(), affine, spacing)
    save_sequence(out / "warped_ed.nii.gz", result.warped.numpy(), affine, spacing)
    if result.labels is not None:
        save_sequence(out / "labels.nii.gz", result.labels.numpy().astype(np.uint8), affine, spacing)
    save_npy(out / "z.npy", result.z.numpy())
    return result


def run_compensate(model, cine, out):
    compensated = api.compensate(model, cine)
    affine, spacing = _geometry(as_sequence(model, cine))
    save_sequence(out / "compensated.nii.gz", compensated.numpy(), affine, spacing)
    return compensated


def run_transport(model, source, target, out):
    target_seq = as_sequence(model, target, what="transport target")  # B on the model grid
    moved = api.transport(model, source, target_seq.frames[0], spacing=target_seq.spacing)
    affine, spacing = _geometry(target_seq)
    save_sequence(out / "transported.nii.gz", moved.warped.numpy(), affine, spacing)
    save_displacements(out / "displacements.nii.gz", moved.displacements.numpy(), affine, spacing)
    save_npy(out / "z_source.npy", moved.z.numpy())
    return moved


def run_sample(model, cine, out, *, num_frames: int, num_samples: int, seed: int | None):
    base = as_sequence(model, cine)
    result = api.sample(model, base.frames[0], num_frames=num_frames, num_samples=num_samples,
                        spacing=base.spacing, seed=seed)
    affine, spacing = _geometry(base)
    for i, frames in enumerate(result.frames):
        save_sequence(out / f"sample_{i:02d}.nii.gz", frames.numpy(), affine, spacing)
    save_sequence(out / "uncertainty.nii.gz", result.uncertainty.numpy(), affine, spacing)
    save_npy(out / "z.npy", result.z.numpy())
    return result


def run_reconstruct(model, cine, out, *, given, times=None):
    result = api.reconstruct(model, cine, given, times=times)
    affine, spacing = _geometry(as_sequence(model, cine))
    save_sequence(out / "reconstructed.nii.gz", result.warped.numpy(), affine, spacing)
    save_displacements(out / "displacements.nii.gz", result.displacements.numpy(), affine, spacing)
    if times is not None:
        np.savetxt(out / "times.txt", np.asarray(times, dtype=float))
    return result
