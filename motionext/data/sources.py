"""Turning what a user points `motionext train` at into preprocessed 2D cine sequences: the
phantom, the bundled sample, a NIfTI file, a folder of NIfTI cines, or an ACDC-style tree."""

from __future__ import annotations

from pathlib import Path

from .cine import Cine
from .preprocess import normalize_intensity, preprocess


def _slices(cine: Cine) -> list:
    """2D sequences of a cine: itself, or every slice of a 3D one."""
    return [cine] if cine.ndim == 2 else [cine.slice(k) for k in range(cine.shape[2])]


def load_sequences(source: str, *, spacing: float = 1.5, size=(128, 128), seed: int = 0,
                   phantom_subjects: int = 24) -> list:
    """Preprocessed 2D sequences (Cine, ED first) from `source`:
    "phantom", "sample", "phantom+sample", a NIfTI cine file, a folder of NIfTI cines, or a
    folder of ACDC-style patient folders (each with Info.cfg)."""
    sequences = []
    for part in str(source).split("+"):
        if part == "phantom":
            from .phantom import phantom_cohort

            for i, p in enumerate(phantom_cohort(phantom_subjects, seed=seed, size=tuple(size), spacing=spacing)):
                cine = p.to_cine(name=f"phantom{i:03d}")
                cine.frames = normalize_intensity(cine.frames)
                sequences.append(cine)
        elif part == "sample":
            from .sample import load_sample

            sequences += [preprocess(c, spacing=spacing, size=size) for c in _slices(load_sample(slice=None))]
        else:
            sequences += [preprocess(c, spacing=spacing, size=size) for c in read_path(Path(part))]
    if not sequences:
        raise ValueError(f"no cine sequences found in {source!r}")
    return sequences


def read_path(path: Path) -> list:
    """Every 2D sequence (not preprocessed) of a NIfTI cine, a folder of them, a patient folder or an ACDC tree."""
    from .nifti import NIFTI_SUFFIXES, read_acdc_patient, read_cine

    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    if path.is_file():
        return _slices(read_cine(path))
    if (path / "Info.cfg").exists():
        return _slices(read_acdc_patient(path))
    patients = sorted(p for p in path.iterdir() if p.is_dir() and (p / "Info.cfg").exists())
    if patients:
        return [s for p in patients for s in _slices(read_acdc_patient(p))]
    files = sorted(p for p in path.iterdir() if p.name.endswith(NIFTI_SUFFIXES))
    if not files:
        raise ValueError(f"{path}: no NIfTI cines (*.nii, *.nii.gz) or ACDC patient folders found")
    return [s for f in files for s in _slices(read_cine(f))]
