"""Cine sequences: reading them (NIfTI, ACDC-style folders), preprocessing, augmentation, the
synthetic phantom and the bundled Sunnybrook sample. nibabel is imported only by the readers."""

from .cine import Cine
from .phantom import Phantom, make_phantom, phantom_cohort
from .preprocess import crop_or_pad, normalize_intensity, preprocess, resample_inplane

__all__ = [
    "Cine",
    "Phantom",
    "make_phantom",
    "phantom_cohort",
    "preprocess",
    "resample_inplane",
    "crop_or_pad",
    "normalize_intensity",
    "read_cine",
    "read_acdc_patient",
    "read_frames",
    "load_sample",
]


def __getattr__(name):
    # The readers need nibabel; importing them lazily keeps `import motionext` light.
    if name in ("read_cine", "read_acdc_patient", "read_frames"):
        from . import nifti

        return getattr(nifti, name)
    if name == "load_sample":
        from .sample import load_sample

        return load_sample
    raise AttributeError(name)
