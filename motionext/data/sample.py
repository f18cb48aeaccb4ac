"""The bundled real sample: three mid-ventricular slices of one Sunnybrook cine (CC0).
See motionext/data/sample/ATTRIBUTION.md."""

from __future__ import annotations

from pathlib import Path

from .cine import Cine
from .nifti import read_cine

SAMPLE_DIR = Path(__file__).resolve().parent / "sample"
SOURCE_ED, SOURCE_ES = 18, 7


def load_sample(slice: int | None = 1) -> Cine:
    """The Sunnybrook sample with ED first; `slice` 0–2 gives one 2D slice (1 is the middle),
    None the 3-slice stack. Labels (ED and ES): 2 = LV myocardium (ED only), 3 = LV blood pool."""
    cine = read_cine(
        SAMPLE_DIR / "sunnybrook_SCD0000101_cine.nii.gz",
        ed=SOURCE_ED,
        es=SOURCE_ES,
        labels={
            SOURCE_ED: SAMPLE_DIR / "sunnybrook_SCD0000101_ED_frame18_label.nii.gz",
            SOURCE_ES: SAMPLE_DIR / "sunnybrook_SCD0000101_ES_frame07_label.nii.gz",
        },
    )
    cine.name = "sunnybrook_SC-HF-I-1"
    return cine if slice is None else cine.slice(slice)
