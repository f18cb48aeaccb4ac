"""The paper-style experiments on the data at hand, written to docs/results-phantom.md.

    python benchmarks/experiments.py [--model pretrained] [--no-tds-model runs/notds/model.pt]
                                     [--shared ../shared/data/real] [--out docs/results-phantom.md]

- Registration ED→ES: held-out phantom subjects (true motion known), the two Sunnybrook patients
  the shipped model never saw, and ACDC ED/ES pairs (ACDC is read from --shared only, never
  copied; needs h5py). The methods are identity, SyN (ANTsPy) and B-spline elastix (when
  installed: motionext[baselines]), motionext, motionext refined to each sequence
  (motionext.motion.refine), and motionext trained without TDS.
- Reconstruction on held-out phantoms from subsets of frames (every 2nd, every 5th, the first
  five, ED and frame 10, ED only), against linear and cubic interpolation of velocities.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

import motionext
from motionext import load_model, motion
from motionext.data import Cine, make_phantom, read_acdc_patient, read_cine
from motionext.evaluation import HELD_OUT_SEED, held_out_phantoms
from motionext.metrics import heart_endpoint_error
from motionext.motion.baselines import reconstruct_by_interpolation
from motionext.motion import registration
from motionext.motion.evaluate import evaluate_sequence, summarize
from motionext.motion.latent_checks import LV_BLOOD_POOL
from motionext.motion.refine import settings_from_json

SUNNYBROOK_UNSEEN = {"SCD0000201": (19, 6), "SCD0000301": (19, 6)}  # (ED, ES) frames; 0101 is the bundled sample


def sunnybrook_cines(root: Path):
    folder = root / "sunnybrook_scd5" / "nifti"
    for pid, (ed, es) in SUNNYBROOK_UNSEEN.items():
        cine_path = folder / f"{pid}_cine4d.nii.gz"
        if not cine_path.exists():
            continue
        cine = read_cine(cine_path, ed=ed, es=es, labels={ed: folder / f"{pid}_ED_frame{ed:02d}_label.nii.gz",
                                                          es: folder / f"{pid}_ES_frame{es:02d}_label.nii.gz"})
        for k in range(cine.shape[2]):
            s = cine.slice(k)
            if (s.labels[0] > 0).any() and (s.labels[s.es] > 0).any():
                # Sunnybrook: 1 = LV blood pool, 2 = myocardium (ED only) -> motionext's ACDC labels
                s.labels = {t: np.where(v == 1, 3, np.where(v == 2, 2, 0)).astype(np.uint8) for t, v in s.labels.items()}
                s.name = f"{pid}[{k}]"
                yield s


ACDC_CINES = ("patient090", "patient012")  # the whole ACDC cines in ../shared (acdc_cine/)


def acdc_cines(root: Path):
    """The slices of the whole ACDC cines whose LV blood pool is labelled at ED and at ES."""
    for pid in ACDC_CINES:
        folder = root / "acdc_cine" / pid
        if not folder.is_dir():
            continue
        cine = read_acdc_patient(folder)
        for k in range(cine.shape[2]):
            s = cine.slice(k)
            if (s.labels[0] == LV_BLOOD_POOL).any() and (s.labels[s.es] == LV_BLOOD_POOL).any():
                s.name = f"{pid}[{k}]"
                yield s


def acdc_pairs(root: Path):
    try:
        import h5py
    except ImportError:
        return
    for ed_path in sorted((root / "acdc_ssl4mis_h5").glob("patient*_frame01.h5")):
        es_path = ed_path.with_name(ed_path.name.replace("frame01", "frame02"))
        with h5py.File(ed_path) as f, h5py.File(es_path) as g:
            ed_img, ed_lab, es_img, es_lab = f["image"][:], f["label"][:], g["image"][:], g["label"][:]
        for k in range(ed_img.shape[0]):
            if (ed_lab[k] == 3).sum() > 50 and (es_lab[k] == 3).sum() > 20:
                # no spacing is stored: ACDC's typical 1.5 mm in-plane is assumed
                yield Cine(np.stack([ed_img[k], es_img[k]]), (1.5, 1.5), None, {0: ed_lab[k].astype(np.uint8), 1: es_lab[k].astype(np.uint8)},
                           es=1, name=f"{ed_path.stem[:10]}[{k}]")


REGISTRATION_MEASURES = ("dice_LV-BP", "dice_LV-Myo", "dice_RV", "hd95_LV-BP", "hd95_RV", "epe", "folding_es",
                         "spatial_gradient_es")


def ed_es_pair(cine, truth):
    """The ED and ES frames of a labelled sequence, as a 2-frame sequence (and its true motion)."""
    es = cine.es
    pair = Cine(cine.frames[[0, es]], cine.spacing, cine.affine, {0: cine.labels[0], 1: cine.labels[es]}, es=1,
                name=cine.name)
    return pair, None if truth is None else truth[[0, es]]


def registration_rows(models: dict, cines, baselines) -> list:
    """Identity and the pairwise baselines on the ED/ES pairs; the models (name: (model, refine
    steps, refine settings or None)) on the whole sequences (they use every frame). All measures
    are at ES."""
    cines = list(cines)
    pairs = [ed_es_pair(c, t) for c, t in cines]
    first = next(iter(models.values()))[0]
    summary = summarize([evaluate_sequence(first, c, truth=t, baselines=baselines) for c, t in pairs])
    rows = [{"method": m, **{k: summary.get(f"{k}_{m}", float("nan")) for k in REGISTRATION_MEASURES}}
            for m in ("identity", *baselines)]
    for name, (model, refine, settings) in models.items():
        summary = summarize([evaluate_sequence(model, c, truth=t, refine=refine, refine_settings=settings)
                             for c, t in cines])
        rows.append({"method": name, **{k: summary.get(k, float("nan")) for k in REGISTRATION_MEASURES}})
    return rows


def reconstruction_rows(model, count) -> list:
    subsets = {"every 2nd": dict(every=2), "every 5th": dict(every=5), "first five": dict(first=5),
               "ED and frame 10": dict(frames=[10]), "ED only": {}}
    rows = []
    for label, kw in subsets.items():
        scores = {"motionext": [], "linear": [], "cubic": []}
        for i in range(count):
            p = make_phantom(20, (128, 128), seed=HELD_OUT_SEED + i)
            given = motion.frame_subset(20, **kw)
            rec = motion.reconstruct(model, p.frames, given, spacing=p.spacing)
            epe = lambda u: heart_endpoint_error(u, p.displacements, p.labels, p.spacing)  # noqa: E731
            scores["motionext"].append(epe(rec.displacements.numpy()))
            for kind in ("linear", "cubic"):
                _, u = reconstruct_by_interpolation(rec.frames[0], rec.velocities[given], given, 20, kind)
                scores[kind].append(epe(u.numpy()))
        rows.append({"frames given": label, **{k: float(np.mean(v)) for k, v in scores.items()}})
    return rows


def table(rows, header_names) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(header_names) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        lines.append("| " + " | ".join(str(r[k]) if isinstance(r[k], str) else ("–" if np.isnan(r[k]) else f"{r[k]:.3f}") for k in keys) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="pretrained")
    parser.add_argument("--no-tds-model")
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "real"))
    parser.add_argument("--phantoms", type=int, default=8)
    parser.add_argument("--refine", type=int, default=50, help="also the shipped model with --refine STEPS (0: not)")
    parser.add_argument("--refine-settings", metavar="JSON",
                        help="refinement settings for the refined row, as `motionext track --refine-settings`")
    parser.add_argument("--baselines", default="syn,elastix", help="pairwise baselines to run when installed")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "results-phantom.md"))
    given = sys.argv[1:] if argv is None else list(argv)  # to name the exact command in the report
    args = parser.parse_args(given)
    checkout, package = Path(__file__).resolve().parents[1], Path(motionext.__file__).resolve().parent
    if package != checkout / "motionext":
        # a plain `pip install .` leaves the installed copy first on the path: tables would
        # silently measure the code as installed, not as edited here
        print(f"experiments: measuring the installed motionext ({package}), not this checkout ({checkout}); "
              "reinstall, or build in place and run with PYTHONPATH=.", file=sys.stderr)
    torch.manual_seed(0)
    shipped = load_model(args.model)
    try:
        settings = settings_from_json(args.refine_settings) if args.refine_settings else None
    except ValueError as exc:
        parser.error(str(exc))
    models = {"motionext": (shipped, 0, None)}
    if args.refine:
        models[f"motionext, refined ({args.refine} steps)"] = (shipped, args.refine, settings)
    if args.no_tds_model:
        models["motionext without TDS"] = (load_model(args.no_tds_model), 0, None)
    shared = Path(args.shared)
    baselines, skipped = [], []
    for name in [b for b in args.baselines.split(",") if b]:
        reason = registration.missing(name)
        if reason:
            skipped.append(f"{name}: {reason}")
        else:
            baselines.append(name)
    reg_header = ["method", "Dice LV-BP", "Dice LV-Myo", "Dice RV", "HD95 LV-BP (mm)", "HD95 RV (mm)", "EPE (mm)",
                  "folding at ES (det J ≤ 0)", "spatial gradient at ES"]
    sections = []
    sections.append(("Held-out phantom subjects, ED→ES", registration_rows(models, held_out_phantoms(args.phantoms), baselines)))
    sb = [(c, None) for c in sunnybrook_cines(shared)]
    if sb:
        sections.append((f"Sunnybrook SCD0000201 and SCD0000301, {len(sb)} labelled slices, ED→ES (no RV labels; "
                         "myocardium labelled at ED only)", registration_rows(models, sb, baselines)))
    acdc = [(c, None) for c in acdc_pairs(shared)]
    if acdc:
        sections.append((f"ACDC ED/ES pairs (5 patients, {len(acdc)} slices; pairwise: 2-frame sequences)",
                         registration_rows(models, acdc, baselines)))
    recon = reconstruction_rows(shipped, args.phantoms)

    lines = ["# Experiments", "",
             f"Generated by `{shlex.join(['python', 'benchmarks/experiments.py', *given])}` "
             f"on {datetime.date.today()} ({platform.machine()}, torch {torch.__version__}). "
             "Numbers are as measured; means over subjects/slices.", "",
             "## Registration ED→ES", "",
             "Identity, SyN and elastix are measured on the ED/ES pair. motionext sees the whole sequence. "
             "Every measure is at ES. SyN is ANTsPy's `SyNOnly`; elastix is the default B-spline map "
             "(3 resolutions, mutual information + bending energy, 8 mm grid); both with their default "
             "settings, untuned.", ""]
    if skipped:
        lines += ["Not run here: " + "; ".join(skipped) + ".", ""]
    for title, rows in sections:
        lines += [f"### {title}", "", table(rows, reg_header), ""]
    lines += ["## Reconstruction from subsets of frames (held-out phantoms)", "",
              "End-point error in the heart (mm) against the true motion, mean over all 20 frames:", "",
              table(recon, ["frames given", "motionext", "linear interpolation of velocities", "cubic interpolation of velocities"]), ""]
    if not acdc:
        lines += ["ACDC: not found or h5py missing; not evaluated.", ""]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
