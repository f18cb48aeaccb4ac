"""How much real hearts' LV contraction differs, from the ACDC testing patients' own labels: the
reference that samples of one ED frame are held to (docs/model.md, "How far one ED frame's
samples should spread").

    python benchmarks/hearts_contraction.py [--acdc ../shared/data/real/acdc_testing_edes]

Contraction of a slice is 1 - (ES LV blood-pool area) / (ED area), over the slices whose ED LV
covers more than 225 mm² (the 100 pixels at 1.5 mm that benchmarks/real_data.py asks). The
spread is a standard deviation: across all slices, and pooled within groups of slices that
share part of what one ED frame fixes: the heart (a patient's slices), or the diagnosis group
and the slice's position (basal, middle or apical third of the slices with an LV). One ED frame
fixes both, so its samples should spread less than either; no data here has two cycles of one
slice to say how much less. These are facts of the data, not of a model, so every patient with
labels counts, training or held out.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import nibabel as nib
import numpy as np

LV = 3
MIN_AREA_MM2 = 225.0
POSITIONS = ("basal", "middle", "apical")


def info(folder: Path) -> dict:
    pairs = (line.split(":", 1) for line in (folder / "Info.cfg").read_text().splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def slice_contractions(folder: Path) -> list:
    """(patient, group, position, contraction) of each slice of one ACDC patient folder."""
    cfg = info(folder)
    read = lambda frame: nib.load(folder / f"{folder.name}_frame{int(cfg[frame]):02d}_gt.nii.gz")  # noqa: E731
    ed_image, es_image = read("ED"), read("ES")
    ed, es = np.asarray(ed_image.dataobj), np.asarray(es_image.dataobj)
    pixel_mm2 = float(np.prod(ed_image.header.get_zooms()[:2]))
    slices = [z for z in range(ed.shape[2]) if (ed[..., z] == LV).sum() * pixel_mm2 > MIN_AREA_MM2]
    return [(folder.name, cfg["Group"], POSITIONS[min(2, 3 * k // len(slices))],
             float(1 - (es[..., z] == LV).sum() / (ed[..., z] == LV).sum())) for k, z in enumerate(slices)]


def pooled_spread(values, groups) -> tuple:
    """The standard deviation about each group's own mean, pooled over the groups of two or more
    (n - k degrees of freedom), and how many groups counted; NaN where no group has two."""
    by_group = defaultdict(list)
    for value, group in zip(values, groups):
        by_group[group].append(value)
    cells = [np.asarray(v) for v in by_group.values() if len(v) > 1]
    if not cells:
        return float("nan"), 0
    squares = sum(float(((c - c.mean()) ** 2).sum()) for c in cells)
    return float(np.sqrt(squares / (sum(len(c) for c in cells) - len(cells)))), len(cells)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--acdc", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
                                              / "acdc_testing_edes"))
    args = parser.parse_args(argv)
    folders = sorted(p for p in Path(args.acdc).glob("patient*") if (p / "Info.cfg").is_file())
    if not folders:
        raise SystemExit(f"hearts_contraction: no ACDC patient folders (with Info.cfg) in {args.acdc}")
    rows = [row for folder in folders for row in slice_contractions(folder)]
    patient, group, position, contraction = zip(*rows)
    print(f"{len(rows)} slices of {len(folders)} patients: contraction mean {np.mean(contraction):.3f}, "
          f"spread across all slices {np.std(contraction):.3f}")
    for name, keys in (("within a patient", patient), ("within a diagnosis group", group),
                       ("within a slice position", position),
                       ("within a group and position", list(zip(group, position)))):
        spread, cells = pooled_spread(contraction, keys)
        print(f"spread {name}: {spread:.3f} ({cells} groups)")


if __name__ == "__main__":
    main()
