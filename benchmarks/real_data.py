"""The trained models on the held-out real data of the patient split (benchmarks/real_split.py),
written to docs/results.md. Run it with the installed package: PYTHONPATH=. would import the
source tree, which holds no compiled kernels, and time the reference ops.

    python benchmarks/real_data.py [--models pretrained-split,pretrained-open]
        [--split runs/real-split] [--baselines syn,elastix] [--refine 10]
        [--reference-refine pretrained-open:50] [--out docs/results.md]

- ACDC ED→ES, the held-out testing patients (2 per group), every slice labelled at ED and ES:
  Dice of the five structures, folding and spatial gradient at ES, seconds per pair; identity
  and the pairwise baselines on the same pairs.
- Sunnybrook, the held-out patient, whole-cine tracking: ES LV blood-pool Dice, in one pass and
  refined.
- `--reference-refine MODEL:STEPS`: that model refined for STEPS steps as well, in both tables
  (the figure the models' 10-step refinement is measured against: the model shipped until
  2026-11, `pretrained-open`, at the 50 steps it needed).
- The motion matrix: KL per frame on the held-out sequences; the spread of the LV contraction
  of motion sampled from held-out ED frames, from the paper's prior and the model's fitted one;
  transport of a strongly and a weakly contracting source onto the same targets; reconstruction
  of the held-out Sunnybrook cines from ED only, every 5th and every 2nd frame against
  interpolation of velocities.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from motionext import load_model, motion
from motionext.data.sources import read_path
from motionext.model.losses import kl_to_standard_normal
from motionext.motion import latent_checks, registration
from motionext.motion.evaluate import STRUCTURES, evaluate_sequence
from motionext.motion.inputs import as_sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from experiments import sunnybrook_cines, table  # noqa: E402
from hearts_contraction import pooled_spread  # noqa: E402
from real_split import SUNNYBROOK_VALIDATION  # noqa: E402

DICE = [f"dice_{name}" for name in STRUCTURES]


def runs(models: dict, refine: int, reference: tuple | None) -> list:
    """(name, model, refinement steps) of every model row: one pass and `refine` steps each, and
    the reference model at its own steps."""
    rows = [(name, model, steps) for name, model in models.items() for steps in ([0, refine] if refine else [0])]
    if reference:
        rows.append(reference)
    return rows


def row_label(name: str, steps: int) -> str:
    return name if steps == 0 else f"{name}, refined ({steps} steps)"


def acdc_rows(models: dict, cines: list, baselines: list, refine: int, reference=None) -> list:
    """One row per method: mean Dice per structure and of the five, folding and gradient at ES;
    for the models also the seconds of one `motion.track` call per pair."""
    measures = [*DICE, "folding_es", "spatial_gradient_es"]
    first = next(iter(models.values()))
    identity = [evaluate_sequence(first, c, baselines=baselines) for c in cines]
    rows = [_row(method, [{k: r[f"{k}_{method}"] for k in measures} for r in identity], measures)
            for method in ("identity", *baselines)]
    for name, model, steps in runs(models, refine, reference):
        results, seconds = timed_evaluation(model, cines, steps)
        rows.append(_row(row_label(name, steps), results, measures, seconds))
    return rows


def timed_evaluation(model, cines: list, steps: int) -> tuple:
    """evaluate_sequence of every cine, and the seconds of one `motion.track` call per cine,
    timed apart from the scoring."""
    started = time.perf_counter()
    for cine in cines:
        motion.track(model, cine, refine=steps)
    seconds = (time.perf_counter() - started) / len(cines)
    return [evaluate_sequence(model, c, refine=steps) for c in cines], seconds


def sunnybrook_rows(models: dict, cines: list, refine: int, reference=None) -> list:
    """Whole-cine tracking of the held-out cines: one line per model and step count, the mean ES
    LV blood-pool Dice and the seconds per cine (one `motion.track` call)."""
    lines = ["| method | ES LV-BP Dice | identity | s per cine |", "|---|---|---|---|"]
    for name, model, steps in runs(models, refine, reference):
        res, seconds = timed_evaluation(model, cines, steps)
        lines.append(f"| {row_label(name, steps)} | {np.mean([r['dice_LV-BP'] for r in res]):.3f} | "
                     f"{np.mean([r['dice_LV-BP_identity'] for r in res]):.3f} | {seconds:.2f} |")
    return lines


def _row(method: str, results: list, measures: list, seconds=None) -> dict:
    row = {"method": method, **{k: float(np.nanmean([r[k] for r in results])) for k in measures}}
    row["mean Dice"] = float(np.nanmean([row[k] for k in DICE]))
    row["s per pair"] = float("nan") if seconds is None else seconds
    return row


@torch.no_grad()
def kl_per_frame(model, cines: list) -> float:
    """Mean KL of the posterior from the prior per frame (nats), frames after ED."""
    values = []
    for cine in cines:
        seq = as_sequence(model, cine)
        mean, log_var = model.encode(seq.frames[None])
        values.append(float(kl_to_standard_normal(mean, log_var)[0, 1:].mean()))
    return float(np.mean(values))


def held_out_acdc(split: Path) -> list:
    """The held-out ACDC slices of the split with an LV blood pool labelled at ED and ES."""
    return [c for c in read_path(Path(split) / "val") if c.times is not None and 0 in c.labels and 1 in c.labels
            and (c.labels[0] == 3).any() and (c.labels[1] == 3).any()]


def labelled_slices(model, acdc: list) -> list:
    """Those slices on the model's grid, keeping the ones whose LV covers over 100 pixels at ED."""
    from motionext.data.preprocess import preprocess

    labelled = [preprocess(c, spacing=1.5, size=model.config.image_size) for c in acdc]
    return [c for c in labelled if (c.labels[0] == 3).sum() > 100]


def sampling_rows(model, labelled: list) -> dict:
    """Sampling from 12 held-out ED frames (10 samples each), from each prior the model has."""
    priors = ("standard", "fitted") if model.latent_prior is not None else ("standard",)
    sampling = {}
    for prior in priors:
        spreads = [latent_checks.sampling_spread(model, c.frames[0], c.labels[0], num_samples=10, seed=i, prior=prior)
                   for i, c in enumerate(labelled[:12])]
        sampling[prior] = {"spread": float(np.mean([s["spread"] for s in spreads])),
                           "contraction": float(np.mean([s["contraction"].mean() for s in spreads])),
                           "cycle_like": float(np.mean([s["cycle_like"] for s in spreads])), "samples": len(spreads)}
    return sampling


def sampling_lines(sampling: dict) -> list:
    return [f"- Sampling from the {prior} prior, 10 samples of 20 frames from each of {f['samples']} "
            f"held-out ED frames: LV contraction {f['contraction']:.3f} on average, spread (std across "
            f"samples) {f['spread']:.3f}; {100 * f['cycle_like']:.0f} % of the samples' LV area curves look "
            "like a cycle (`latent_checks.looks_like_a_cycle`)." for prior, f in sampling.items()]


def latent_rows(model, acdc: list, sunnybrook: list) -> dict:
    """The three checks of the motion matrix on held-out real data."""
    labelled = labelled_slices(model, acdc)
    sampling = sampling_rows(model, labelled)
    # transport: the sources contracting most and least by their own labels
    ratio = [float((c.labels[1] == 3).sum() / (c.labels[0] == 3).sum()) for c in labelled]
    order = np.argsort(ratio)
    strong, weak = labelled[order[0]], labelled[order[-1]]
    targets = [labelled[i] for i in order[len(order) // 3: len(order) // 3 + 10]]
    carried = {label: [latent_checks.transported_contraction(model, source, t.frames[0], t.labels[0]) for t in targets]
               for label, source in (("strong", strong), ("weak", weak))}
    # reconstruction of the held-out cines
    recon = {}
    for label, kw in (("ED only", {}), ("every 5th", {"every": 5}), ("every 2nd", {"every": 2})):
        errors = [latent_checks.reconstruction_errors(model, c, motion.frame_subset(c.num_frames, **kw))
                  for c in sunnybrook]
        # the label Dice only where ES is not among the given frames
        keys = dict.fromkeys(k for e in errors for k in e)
        recon[label] = {k: float(np.mean([e[k] for e in errors if k in e])) for k in keys}
        recon[label]["labelled cines"] = sum("dice motionext" in e for e in errors)
    return {"kl_frame": kl_per_frame(model, acdc + sunnybrook),
            "sampling": sampling,
            # what sampling is held to: how the held-out hearts themselves contract, slice by slice
            "hearts": (float(np.mean([1 - r for r in ratio])), float(np.std([1 - r for r in ratio])), len(ratio),
                       pooled_spread([1 - r for r in ratio], [c.name.split("[")[0] for c in labelled])[0]),
            "source_ratios": (ratio[order[0]], ratio[order[-1]]),
            "carried": {k: float(np.mean(v)) for k, v in carried.items()}, "targets": len(targets),
            "reconstruction": recon}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="pretrained-split,pretrained-open")
    parser.add_argument("--split", default="runs/real-split", help="the folders benchmarks/real_split.py wrote")
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "real"))
    parser.add_argument("--baselines", default="syn,elastix")
    parser.add_argument("--refine", type=int, default=10)
    parser.add_argument("--reference-refine", default="",
                        help="MODEL:STEPS, that model refined for STEPS steps as an extra row (e.g. pretrained-open:50)")
    parser.add_argument("--limit", type=int, help="only the first N ACDC slices and Sunnybrook slices (a quick check)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "results.md"))
    parser.add_argument("--sampling-only", action="store_true",
                        help="only print each model's sampling lines (of its motion-matrix section); write nothing")
    given = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(given)
    torch.manual_seed(0)
    reference = None
    if args.reference_refine:
        name, _, steps = args.reference_refine.rpartition(":")
        if not name or not steps.isdigit() or int(steps) < 1:
            parser.error(f"--reference-refine takes MODEL:STEPS with STEPS >= 1, not {args.reference_refine!r}")
    models = {name: load_model(name) for name in args.models.split(",") if name}
    if args.reference_refine:
        reference = (name, models.get(name) or load_model(name), int(steps))
    baselines = [b for b in args.baselines.split(",") if b and registration.missing(b) is None]
    acdc = held_out_acdc(Path(args.split))
    if args.sampling_only:
        for name, model in models.items():
            print(f"### {name}", *sampling_lines(sampling_rows(model, labelled_slices(model, acdc))), sep="\n")
        return
    sunnybrook = [c for c in sunnybrook_cines(Path(args.shared)) if c.name.split("[")[0] in SUNNYBROOK_VALIDATION]
    if args.limit:
        acdc, sunnybrook = acdc[: args.limit], sunnybrook[: args.limit]
    patients = sorted({c.name.split("[")[0] for c in acdc})
    lines = ["# Held-out real data", "",
             f"Generated by `{shlex.join(['python', 'benchmarks/real_data.py', *given])}` on {datetime.date.today()} "
             f"({platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads). "
             "Means over slices; as measured.", "",
             f"Split (benchmarks/real_split.py): validation = ACDC testing patients {', '.join(patients)} "
             f"and Sunnybrook {', '.join(SUNNYBROOK_VALIDATION)}; no model here saw them.", "",
             f"## ACDC ED→ES, {len(acdc)} slices of {len(patients)} held-out patients (real spacing)", "",
             "Every method sees the (ED, ES) pair; the models at its true phase. Seconds per pair: one "
             "`motion.track` call (preprocessing and the model).", ""]
    rows = acdc_rows(models, acdc, baselines, args.refine, reference)
    lines += [table(rows, ["method", *[f"Dice {n}" for n in STRUCTURES], "folding at ES", "spatial gradient at ES",
                           "mean Dice", "s per pair"]), ""]
    if sunnybrook:
        lines += [f"## Sunnybrook {', '.join(SUNNYBROOK_VALIDATION)}, whole-cine tracking, {len(sunnybrook)} slices", "",
                  "ED labels propagated through every frame of the cine to ES. Seconds per cine: one "
                  "`motion.track` call.", "",
                  *sunnybrook_rows(models, sunnybrook, args.refine, reference), ""]
    lines += ["## The motion matrix", ""]
    for name, model in models.items():
        m = latent_rows(model, acdc, sunnybrook)
        rec = m["reconstruction"]
        lines += [f"### {name}", "",
                  f"- KL per frame on the held-out sequences: {m['kl_frame']:.2f} nats.",
                  *sampling_lines(m["sampling"]),
                  f"- The held-out hearts' own ES contraction (their labels, {m['hearts'][2]} slices): mean "
                  f"{m['hearts'][0]:.3f}, spread {m['hearts'][1]:.3f} across slices, {m['hearts'][3]:.3f} within a "
                  "patient (pooled about each patient's mean; `benchmarks/hearts_contraction.py` gives it for all "
                  "50 patients).",
                  f"- Transport onto {m['targets']} held-out ED frames: the source contracting most (its labels' ES/ED "
                  f"LV area {m['source_ratios'][0]:.2f}) contracts them by {m['carried']['strong']:.3f}, the one "
                  f"contracting least ({m['source_ratios'][1]:.2f}) by {m['carried']['weak']:.3f}.",
                  "- Reconstruction of the held-out Sunnybrook cines, RMSE of the frames not given "
                  "(intensities in [0, 1]); linear and cubic interpolate the velocities the model gives the "
                  "given frames from those alone; tracked is every frame seen "
                  "(`latent_checks.reconstruction_errors`):", "",
                  "| frames given | motionext | motionext, prior-mean codes | linear | cubic | tracked |",
                  "|---|---|---|---|---|---|"]
        keys = ("motionext", "motionext-prior", "linear", "cubic", "tracked")
        lines += [f"| {k} | " + " | ".join(f"{v[key]:.4f}" for key in keys) + " |" for k, v in rec.items()]
        lines += ["", "  The same rebuilds by the ED labels moved to ES, where ES is not given: ES LV blood-pool "
                  "Dice (the intensity error above has a floor no motion removes; this measures the motion):", "",
                  "| frames given | cines | motionext | motionext, prior-mean codes | linear | cubic | tracked "
                  "| no motion |", "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {k} | {v['labelled cines']} | " + " | ".join(f"{v.get('dice ' + key, float('nan')):.3f}"
                                                             for key in (*keys, "no motion")) + " |"
                  for k, v in rec.items()]
        lines.append("")
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
