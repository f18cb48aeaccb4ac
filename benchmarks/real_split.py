"""The patient split of the real cohort in ../shared/data/real, as folders that `motionext train
--data` / `--val-data` and `motionext evaluate --data` read as they are.

    python benchmarks/real_split.py [--shared ../shared/data/real] [--out runs/real-split]
        [--sunnybrook-labels] [--no-hold-out]

It writes OUT/train and OUT/val: symbolic links to the ACDC patient folders, and ACDC-style
folders (Info.cfg with ED, ES and NbFrame, a link to the 4D cine) for the Sunnybrook patients,
whose files are named otherwise. Sunnybrook's labels (1 = LV blood pool, 2 = myocardium at ED)
are not linked, since ACDC's 1 is the RV; with --sunnybrook-labels the training patients' ED and
ES labels are written converted to ACDC's numbers (LV blood pool 3, myocardium 2), as
`*_frameXX_gt.nii.gz` (CC0 data, derived). No image is copied.

- ACDC testing patients 101-150 (ED/ES only): 2 per diagnosis group held out for validation.
- ACDC training patients 090 and 012 (full cines): training.
- Sunnybrook (CC0): SCD0000101 and SCD0000201 train, SCD0000301 is held out.

With --no-hold-out every patient goes to OUT/train (and OUT/val is not written): the data of a
model trained on all of the cohort once the split has measured its recipe.
"""

from __future__ import annotations

import argparse
from pathlib import Path

# the two highest-numbered testing patients of each ACDC group (DCM, HCM, MINF, NOR, RV)
ACDC_VALIDATION = ("patient136", "patient149", "patient142", "patient146", "patient145", "patient148",
                   "patient144", "patient150", "patient141", "patient147")
# Sunnybrook patients: 1-based ED and ES frames (SOURCES.md gives them 0-based) and the cycle length
SUNNYBROOK = {"SCD0000101": (19, 8, 20), "SCD0000201": (20, 7, 20), "SCD0000301": (20, 7, 20)}
SUNNYBROOK_VALIDATION = ("SCD0000301",)


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target.resolve())


def _converted_labels(source: Path, target: Path) -> None:
    """A Sunnybrook label volume written with ACDC's numbers: 1 (LV blood pool) -> 3, 2 -> 2."""
    import nibabel as nib
    import numpy as np

    image = nib.load(str(source))
    labels = np.asarray(image.dataobj)
    converted = np.where(labels == 1, 3, np.where(labels == 2, 2, 0)).astype(np.uint8)
    nib.save(nib.Nifti1Image(converted, image.affine, image.header), str(target))


def make_split(shared: Path, out: Path, *, sunnybrook_labels: bool = False, hold_out: bool = True) -> dict:
    """Write the split under `out`; returns {"train": [...], "val": [...]} of subject names.
    `hold_out` False puts every patient in train."""
    names = {"train": [], "val": []}
    for patient in sorted((shared / "acdc_testing_edes").glob("patient*")):
        side = "val" if hold_out and patient.name in ACDC_VALIDATION else "train"
        _link(patient, out / side / patient.name)
        names[side].append(patient.name)
    for patient in sorted((shared / "acdc_cine").glob("patient*")):
        _link(patient, out / "train" / patient.name)
        names["train"].append(patient.name)
    for pid, (ed, es, count) in SUNNYBROOK.items():
        cine = shared / "sunnybrook_scd5" / "nifti" / f"{pid}_cine4d.nii.gz"
        if not cine.exists():
            continue
        side = "val" if hold_out and pid in SUNNYBROOK_VALIDATION else "train"
        folder = out / side / pid
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "Info.cfg").write_text(f"ED: {ed}\nES: {es}\nNbFrame: {count}\n")
        _link(cine, folder / f"{pid}_4d.nii.gz")
        if sunnybrook_labels and side == "train":
            for phase, frame in (("ED", ed), ("ES", es)):
                source = cine.parent / f"{pid}_{phase}_frame{frame - 1:02d}_label.nii.gz"
                _converted_labels(source, folder / f"{pid}_frame{frame:02d}_gt.nii.gz")
        names[side].append(pid)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"))
    parser.add_argument("--out", default="runs/real-split")
    parser.add_argument("--sunnybrook-labels", action="store_true",
                        help="also write the training Sunnybrook patients' ED/ES labels, in ACDC's numbers")
    parser.add_argument("--no-hold-out", action="store_true",
                        help="every patient trains: the data of a model trained on all of the cohort")
    args = parser.parse_args()
    names = make_split(Path(args.shared), Path(args.out), sunnybrook_labels=args.sunnybrook_labels,
                       hold_out=not args.no_hold_out)
    for side, subjects in names.items():
        print(f"{side}: {len(subjects)} subjects: {' '.join(subjects)}")


if __name__ == "__main__":
    main()
