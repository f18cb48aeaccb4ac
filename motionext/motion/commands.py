"""The file-level verbs of the `motionext` command: read a NIfTI cine, run one use of the model,
write NIfTI/.npy into an output folder. Outputs are written to a temporary folder that is
renamed into place only when everything succeeded, so a failure leaves nothing behind.

Outputs lie on the input's grid by default: displacements are interpolated from the model's
grid (the input resampled in-plane to the model's spacing, 1.5 mm for the shipped models, and
cropped/padded to 128 × 128) and images are warped at the input's resolution and intensities. With grid="model" they stay on the model's
grid, with an affine that keeps their world position.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..data.nifti import acdc_ed_index, acdc_label_frame, read_cine
from ..files import check_output_folder
from . import api
from .grid import InputGrid
from .inputs import as_sequence
from .outputs import save_displacements, save_itk_transforms, save_npy, save_sequence

GRIDS = ("input", "model")


# Written into every output folder: --overwrite replaces only a folder that holds it, never one of
# the user's own (the working folder, a data folder, /tmp), whose files it would delete.
OUTPUT_MARK = ".motionext-output"


@contextlib.contextmanager
def output_folder(out, overwrite: bool = False, keep=()):
    """A temporary folder beside `out`, renamed to `out` when the block succeeds. An existing `out`
    is replaced only with `overwrite`, only if motionext wrote it, and never when it is the working
    folder or holds it, or holds one of the paths in `keep` (the run's inputs)."""
    out = check_output_folder(out)
    where, here = out.resolve(), Path.cwd().resolve()
    if where == here or where in here.parents:
        raise ValueError(f"--out {out} is the working folder or holds it; choose a folder of its own")
    inside = [str(k) for k in keep if k is not None and where in Path(k).resolve().parents]
    if inside:
        raise ValueError(f"--out {out} holds the input {inside[0]}; choose another --out")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(f"output folder {out} exists and is not empty; choose another --out or pass --overwrite")
        if not (out / OUTPUT_MARK).is_file():
            raise ValueError(f"--overwrite replaces only a folder that motionext wrote (one holding {OUTPUT_MARK}); "
                             f"{out} is not one: remove it yourself or choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    (tmp / OUTPUT_MARK).write_text("written by motionext: --overwrite may replace this folder\n")
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)


def read_input(path, *, ed: int | None = None, slice_index: int | None = None, labels=None):
    """A 2D cine from a NIfTI path: 4D inputs give one slice (default: the middle one). ED is frame
    `ed`; by default the one an ACDC ``Info.cfg`` beside a ``*_4d`` cine names, otherwise frame 0.
    ACDC labels (``*_frameYY_gt``) of another frame than ED are refused: they would be propagated
    as ED's."""
    if ed is None:
        ed = acdc_ed_index(path) or 0
    named = acdc_label_frame(labels) if labels else None
    if named is not None and named != ed:
        raise ValueError(f"{labels}: by its name it holds the labels of frame {named + 1:02d} (index {named}), but "
                         f"ED is index {ed} of {Path(path).name}; give the ED frame's labels, or --ed {named} if "
                         "that frame is ED")
    cine = read_cine(path, ed=ed, labels={ed: labels} if labels else None)
    if cine.ndim == 3:
        k = cine.shape[2] // 2 if slice_index is None else slice_index
        cine = cine.slice(k)
    elif slice_index is not None:
        raise ValueError(f"{path}: --slice given but the cine has a single slice")
    return cine


class _Placement:
    """Where a verb's outputs go: the input's own grid (default) or the model's grid. Holds that
    grid's frames (the input's intensities, or the normalised model input), ED labels, affine
    and spacing, and brings model-grid displacements and maps onto it."""

    def __init__(self, source, prepared, grid: str):
        if grid not in GRIDS:
            raise ValueError(f"grid must be one of {GRIDS}; got {grid!r}")
        self.input_grid = InputGrid(source, prepared) if grid == "input" else None
        on = source if grid == "input" else prepared
        self.frames, self.labels, self.affine, self.spacing = on.frames, on.labels.get(0), on.affine, on.spacing

    def displacements(self, u) -> np.ndarray:
        if self.input_grid is None:
            return np.asarray(u.detach().cpu() if isinstance(u, torch.Tensor) else u, dtype=np.float32)
        return self.input_grid.displacements(u)

    def warp(self, image, u, mode: str = "bilinear") -> np.ndarray:
        return api.warp_each(image, np.ascontiguousarray(u), mode).cpu().numpy()

    def save_sequence(self, path, frames):
        save_sequence(path, frames, self.affine, self.spacing)

    def save_displacements(self, path, u):
        save_displacements(path, u, self.affine, self.spacing)


def _place(model, cine, grid):
    return _Placement(cine, as_sequence(model, cine).cine, grid)


def run_track(model, cine, out, *, grid: str = "input", refine: int = 0, settings=None):
    result = api.track(model, cine, refine=refine, refine_settings=settings, progress=refine > 0)
    place = _Placement(cine, result.cine, grid)
    u = place.displacements(result.displacements)
    place.save_displacements(out / "displacements.nii.gz", u)
    save_itk_transforms(out / "transforms", u, place.affine, place.spacing)  # for ANTs, ITK and Slicer
    place.save_sequence(out / "frames.nii.gz", place.frames)
    place.save_sequence(out / "warped_ed.nii.gz", place.warp(place.frames[0], u))
    if place.labels is not None:
        labels = place.warp(place.labels, u, mode="nearest").round().astype(np.uint8)
        place.save_sequence(out / "labels.nii.gz", labels)
    save_npy(out / "z.npy", result.z.cpu().numpy())
    return result


def run_compensate(model, cine, out, *, grid: str = "input", refine: int = 0, settings=None):
    result = api.track(model, cine, refine=refine, refine_settings=settings, progress=refine > 0)
    place = _Placement(cine, result.cine, grid)
    inverse = place.displacements(model.exponentiate(-result.velocities[None])[0])  # exp(-v)
    compensated = place.warp(place.frames, inverse)  # frame t moved back onto ED
    place.save_sequence(out / "compensated.nii.gz", compensated)
    return compensated


def run_transport(model, source, target, out, *, grid: str = "input"):
    target_seq = as_sequence(model, target, what="transport target")  # B on the model grid
    moved = api.transport(model, source, target_seq.frames[0], spacing=target_seq.spacing)
    place = _Placement(target, target_seq.cine, grid)
    u = place.displacements(moved.displacements)
    place.save_sequence(out / "transported.nii.gz", place.warp(place.frames[0], u))
    place.save_displacements(out / "displacements.nii.gz", u)
    save_npy(out / "z_source.npy", moved.z.cpu().numpy())
    return moved


def run_sample(model, cine, out, *, num_frames: int, num_samples: int, seed: int | None, grid: str = "input",
               prior: str = "auto"):
    base = as_sequence(model, cine)
    result = api.sample(model, base.frames[0], num_frames=num_frames, num_samples=num_samples,
                        spacing=base.spacing, seed=seed, prior=prior)
    place = _Placement(cine, base.cine, grid)
    fields = np.stack([place.displacements(u) for u in result.displacements])  # (N, T, 2, *S)
    for i, u in enumerate(fields):
        place.save_sequence(out / f"sample_{i:02d}.nii.gz", place.warp(place.frames[0], u))
    magnitude = np.sqrt((fields.astype(np.float64) ** 2).sum(2))  # (N, T, *S), voxels of the output grid
    place.save_sequence(out / "uncertainty.nii.gz", magnitude.std(0).astype(np.float32))
    save_npy(out / "z.npy", result.z.cpu().numpy())
    return result


def run_reconstruct(model, cine, out, *, given, times=None, grid: str = "input", fill: str = "interpolate",
                    refine: int = 0, settings=None):
    result = api.reconstruct(model, cine, given, times=times, fill=fill, refine=refine, refine_settings=settings,
                             progress=refine > 0)
    place = _place(model, cine, grid)
    u = place.displacements(result.displacements)
    place.save_sequence(out / "reconstructed.nii.gz", place.warp(place.frames[0], u))
    place.save_displacements(out / "displacements.nii.gz", u)
    if times is not None:
        np.savetxt(out / "times.txt", np.asarray(times, dtype=float))
    return result
