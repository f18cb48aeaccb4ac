"""Reconstruction of real whole cines, slice by slice: how sure each comparison is.

docs/results.md gives the means over the held-out patient's 10 slices; differences of a few
thousandths there may be one slice's. Here every comparison of item 4 of the real-data issue is
a per-slice difference (the same slice rebuilt two ways), with its mean, a 95 % bootstrap
interval over the slices, and how many slices went each way. Run it with the installed package.

    python benchmarks/reconstruction_pairs.py [--models pretrained-split,pretrained-real]
        [--patients SCD0000301,SCD0000201,patient090,patient012] [--shared ../shared/data/real]
        [--refine STEPS] [--subsets ed-only,every-5th,every-2nd,frames-0-10]

SCD0000301 is the patient the split's models (all shipped models but `pretrained`, which saw every
patient) were held out from; SCD0000201 is in their training split (benchmarks/real_split.py),
which shows what the models do on a heart they saw. The whole ACDC cines (`--patients
patient090,patient012`: 12 and 30 frames) are in that training split too; only a model trained
without them (or `pretrained-open`, which saw no ACDC data) meets them unseen.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from motionext import load_model, motion
from motionext.motion import latent_checks

sys.path.insert(0, str(Path(__file__).resolve().parent))
from experiments import ACDC_CINES, SUNNYBROOK_UNSEEN, acdc_cines, sunnybrook_cines  # noqa: E402

SUBSETS = {"ED only": {}, "every 5th": {"every": 5}, "every 2nd": {"every": 2}, "frames 0 and 10": {"frames": [0, 10]}}
# their names on the command line (--subsets): a fitted rebuild takes 20-70 s per slice and subset
# on 2 cores, so a run may ask for the two that compare with interpolation alone
SUBSET_NAMES = {"ed-only": "ED only", "every-5th": "every 5th", "every-2nd": "every 2nd", "frames-0-10": "frames 0 and 10"}

# (what is compared, (subset, measure) of the first, (subset, measure) of the second); each is ordered so
# that first - second > 0 is the model's gain. "dice X" is the ES LV blood-pool Dice of the ED labels
# moved by X; the rest are intensity RMSEs.
COMPARISONS = [
    ("Dice gain, ED only -> every 5th", ("every 5th", "dice motionext"), ("ED only", "dice motionext")),
    ("Dice gain, every 5th -> every 2nd", ("every 2nd", "dice motionext"), ("every 5th", "dice motionext")),
    ("Dice, every 5th: motionext - linear", ("every 5th", "dice motionext"), ("every 5th", "dice linear")),
    ("Dice, every 5th: motionext - cubic", ("every 5th", "dice motionext"), ("every 5th", "dice cubic")),
    ("Dice, frames 0, 10: motionext - linear", ("frames 0 and 10", "dice motionext"), ("frames 0 and 10", "dice linear")),
    ("Dice, frames 0, 10: motionext - cubic", ("frames 0 and 10", "dice motionext"), ("frames 0 and 10", "dice cubic")),
    ("RMSE gain, ED only -> every 5th", ("ED only", "motionext"), ("every 5th", "motionext")),
    ("RMSE gain, every 5th -> every 2nd", ("every 5th", "motionext"), ("every 2nd", "motionext")),
    ("RMSE, every 5th: linear - motionext", ("every 5th", "linear"), ("every 5th", "motionext")),
    ("RMSE, every 5th: cubic - motionext", ("every 5th", "cubic"), ("every 5th", "motionext")),
    ("RMSE, frames 0, 10: linear - motionext", ("frames 0 and 10", "linear"), ("frames 0 and 10", "motionext")),
    ("RMSE, frames 0, 10: cubic - motionext", ("frames 0 and 10", "cubic"), ("frames 0 and 10", "motionext")),
]


def paired_interval(differences, *, resamples: int = 20000, seed: int = 0) -> dict:
    """Mean of per-slice differences, its 95 % bootstrap interval (slices drawn with replacement)
    and how many slices are above and below zero."""
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim != 1 or d.size < 2:
        raise ValueError(f"paired_interval: needs at least 2 paired differences; got {d.size}")
    if not np.isfinite(d).all():
        raise ValueError("paired_interval: the differences contain NaN or Inf")
    means = np.random.default_rng(seed).choice(d, (resamples, d.size)).mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mean": float(d.mean()), "low": float(low), "high": float(high),
            "above": int((d > 0).sum()), "below": int((d < 0).sum()), "slices": int(d.size)}


def per_slice_errors(model, cines: list, refine: int = 0, subsets=tuple(SUBSETS)) -> dict:
    """{subset: [reconstruction_errors of each slice]} for each of `subsets` (names of SUBSETS);
    `refine` > 0 fits every rebuild first."""
    return {name: [latent_checks.reconstruction_errors(model, c, motion.frame_subset(c.num_frames, **SUBSETS[name]),
                                                       refine=refine)
                   for c in cines] for name in subsets}


def comparison_rows(errors: dict) -> list:
    """One row per comparison: positive means the model gains (more frames, or motionext against
    interpolation). Comparisons of a subset that `errors` lacks are left out."""
    rows = []
    for label, (subset_a, key_a), (subset_b, key_b) in COMPARISONS:
        if subset_a not in errors or subset_b not in errors:
            continue
        pairs = [(a[key_a], b[key_b]) for a, b in zip(errors[subset_a], errors[subset_b]) if key_a in a and key_b in b]
        if len(pairs) < 2:
            continue
        r = paired_interval([x - y for x, y in pairs])
        sure = "yes" if r["low"] > 0 else ("no: the other way" if r["high"] < 0 else "not resolved")
        rows.append(f"| {label} | {r['mean']:+.4f} | [{r['low']:+.4f}, {r['high']:+.4f}] | "
                    f"{r['above']} / {r['below']} | {sure} |")
    return rows


def mean_lines(errors: dict) -> list:
    """Per subset, each method's mean RMSE of the frames not given and, where ES is not given,
    its mean ES LV blood-pool Dice: the levels the paired differences above are taken between."""
    lines = []
    for subset, each in errors.items():
        methods = [m for m in ("motionext", "linear", "cubic", "tracked") if m in each[0]]
        text = ", ".join(f"{m} {np.mean([e[m] for e in each]):.4f}" for m in methods)
        if all(f"dice {m}" in e for e in each for m in methods):
            text += "; Dice " + ", ".join(f"{m} {np.mean([e[f'dice {m}'] for e in each]):.3f}" for m in methods)
        lines.append(f"- {subset}: RMSE {text}")
    return lines


def area_lines(errors: dict) -> list:
    """Per subset, the mean ES/ED LV blood-pool area each method gives beside the labels' own: a
    method that contracts less than the model may win only because the model over-contracts."""
    lines = []
    for subset, each in errors.items():
        labelled = [e for e in each if "area labels" in e]
        if not labelled:
            continue
        means = {k: np.mean([e[f"area {k}"] for e in labelled]) for k in ("motionext", "linear", "cubic", "tracked")}
        lines.append(f"- {subset}: labels {np.mean([e['area labels'] for e in labelled]):.3f}; "
                     + ", ".join(f"{k} {v:.3f}" for k, v in means.items()))
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="pretrained-split,pretrained-real")
    parser.add_argument("--patients", default="SCD0000301,SCD0000201")
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "real"))
    parser.add_argument("--refine", type=int, default=0, metavar="STEPS",
                        help="fit each rebuild (and the tracking) to its given frames first (default 0: one pass)")
    parser.add_argument("--subsets", default=",".join(SUBSET_NAMES),
                        help=f"which subsets of frames to rebuild from (default all: {','.join(SUBSET_NAMES)})")
    args = parser.parse_args(argv)
    if args.refine < 0:
        parser.error(f"--refine must be 0 or more; got {args.refine}")
    asked = [s for s in args.subsets.split(",") if s]
    wrong = [s for s in asked if s not in SUBSET_NAMES]
    if wrong or not asked:
        parser.error(f"--subsets: {wrong or 'none given'}; choose from {', '.join(SUBSET_NAMES)}")
    subsets = [SUBSET_NAMES[s] for s in SUBSET_NAMES if s in asked]  # in SUBSETS' order, each once
    patients = [p for p in args.patients.split(",") if p]
    known = (*SUNNYBROOK_UNSEEN, *ACDC_CINES)
    unknown = [p for p in patients if p not in known]
    if unknown:
        parser.error(f"--patients: {unknown} are not among the whole cines read here ({', '.join(known)})")
    torch.manual_seed(0)
    shared = Path(args.shared)
    cines = list(sunnybrook_cines(shared)) if set(patients) & set(SUNNYBROOK_UNSEEN) else []
    cines += list(acdc_cines(shared)) if set(patients) & set(ACDC_CINES) else []
    slices = {p: [c for c in cines if c.name.split("[")[0] == p] for p in patients}  # named "pid[k]"
    missing = [p for p, chosen in slices.items() if not chosen]
    if missing:
        parser.error(f"--patients: no labelled slices of {missing} under {args.shared}")
    for name in (m for m in args.models.split(",") if m):
        model = load_model(name)
        for patient, chosen in slices.items():
            how = f", refined {args.refine} steps" if args.refine else ""
            print(f"\n### {name}{how}, {patient} ({len(chosen)} slices, ES not given in any subset)\n")
            print("| comparison (positive: the model gains) | mean | 95 % interval | slices + / - | sure? |")
            print("|---|---|---|---|---|")
            errors = per_slice_errors(model, chosen, args.refine, subsets)
            print("\n".join(comparison_rows(errors)))
            print("\nMeans over slices:\n")
            print("\n".join(mean_lines(errors)))
            print("\nES/ED LV blood-pool area where ES is not given, mean over slices:\n")
            print("\n".join(area_lines(errors)), flush=True)


if __name__ == "__main__":
    main()
