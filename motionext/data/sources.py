"""Turning what a user points `motionext train` at into preprocessed 2D cine sequences: the
phantom, the bundled sample, a NIfTI file, a folder of NIfTI cines, or an ACDC-style tree.

A path is first split into *units*: one NIfTI file or one patient folder each. A unit is what
is decoded at once and what the preprocessing cache stores as one entry."""

from __future__ import annotations

from pathlib import Path

from .cine import Cine
from .preprocess import normalize_intensity, preprocess


def _slices(cine: Cine) -> list:
    """2D sequences of a cine: itself, or every slice of a 3D one."""
    return [cine] if cine.ndim == 2 else [cine.slice(k) for k in range(cine.shape[2])]


def load_sequences(source: str, *, spacing: float = 1.5, size=(128, 128), seed: int = 0,
                   phantom_subjects: int = 24, cache=None, workers: int = 0, progress: bool = False) -> list:
    """Preprocessed 2D sequences (ED first) from `source`: "phantom", "sample", "phantom+sample",
    a NIfTI cine file, a folder of NIfTI cines, or a folder of ACDC-style patient folders (each
    with Info.cfg), joined with "+".

    Without `cache` the sequences are `Cine` objects in memory. With `cache` (a
    `motionext.data.cache.PreprocessCache`), files are preprocessed once into the cache and come
    back as `CachedSequence` objects that read their frames from it when asked; both have
    `.frames`, `.spacing` and `.name`."""
    parts = str(source).split("+")
    if not all(part.strip() for part in parts):  # an empty path would read the working folder
        raise ValueError(f"data {source!r} has an empty part; join sources as phantom+sample+/path/to/cines")
    sequences = []
    for part in parts:
        if part == "phantom":
            from .phantom import phantom_cohort

            for i, p in enumerate(phantom_cohort(phantom_subjects, seed=seed, size=tuple(size), spacing=spacing)):
                cine = p.to_cine(name=f"phantom{i:03d}")
                cine.frames = normalize_intensity(cine.frames)
                sequences.append(cine)
        elif part == "sample":
            from .sample import load_sample

            sequences += [preprocess(c, spacing=spacing, size=size) for c in _slices(load_sample(slice=None))]
        elif cache is not None:
            sequences += cache.sequences(source_units(Path(part)), workers=workers, progress=progress)
        else:
            sequences += [preprocess(c, spacing=spacing, size=size) for c in read_path(Path(part))]
    if not sequences:
        raise ValueError(f"no cine sequences found in {source!r}")
    return sequences


def check_label_values(sequences, source) -> None:
    """Refuse label maps with values other than ACDC's (0 background, 1 RV, 2 myocardium, 3 LV
    blood pool): the Dice of training and evaluation reads them by those values, and a cohort
    labelled another way would be scored, or trained, on the wrong structures."""
    import numpy as np

    from .phantom import LABELS

    known = sorted(LABELS.values())
    for sequence in sequences:
        for frame, labels in (getattr(sequence, "labels", None) or {}).items():
            other = np.setdiff1d(np.unique(labels), known)
            if other.size:
                raise ValueError(f"{source}: the labels of {sequence.name} (frame {frame}) hold the value(s) "
                                 f"{other[:5].tolist()}; motionext reads ACDC's labels (0 background, 1 RV, "
                                 "2 myocardium, 3 LV blood pool): map the cohort's labels to them")


def source_units(path: Path) -> list:
    """The units under `path`, sorted: the file itself, a patient folder, the patient folders of
    an ACDC tree, or the NIfTI files of a folder."""
    from .nifti import NIFTI_SUFFIXES

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    if path.is_file() or (path / "Info.cfg").exists():
        return [path]
    patients = sorted(p for p in path.iterdir() if p.is_dir() and (p / "Info.cfg").exists())
    if patients:
        return patients
    files = sorted(p for p in path.iterdir() if p.name.endswith(NIFTI_SUFFIXES))
    if not files:
        raise ValueError(f"{path}: no NIfTI cines (*.nii, *.nii.gz) or ACDC patient folders found")
    return files


def read_unit(unit: Path) -> list:
    """Every 2D sequence (not preprocessed) of one NIfTI cine or one patient folder. A patient's
    ``*_4d`` cine with its ``Info.cfg`` beside it starts at the ED frame named there, as in the verbs."""
    from .nifti import acdc_ed_index, read_acdc_patient, read_cine

    unit = Path(unit)
    try:
        return _slices(read_acdc_patient(unit) if unit.is_dir() else read_cine(unit, ed=acdc_ed_index(unit) or 0))
    except (ValueError, FileNotFoundError) as exc:
        # a cohort is used whole or not at all: no run on part of it without saying so
        raise type(exc)(f"{exc} (stopping: fix or remove {unit})") from None


def read_path(path: Path) -> list:
    """Every 2D sequence (not preprocessed) of a NIfTI cine, a folder of them, a patient folder or an ACDC tree."""
    return [s for unit in source_units(path) for s in read_unit(unit)]
