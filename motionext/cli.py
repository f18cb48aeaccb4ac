"""The `motionext` command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .malloc import keep_freed_memory


def _train(args) -> int:
    from .train import TrainConfig, preset_settings, train

    given = {key: getattr(args, key) for key in _TRAIN_OPTIONS if getattr(args, key) is not None}
    config = TrainConfig(**{
        **preset_settings(args.preset), **given,
        "data": args.data, "out": args.out, "size": tuple(args.size), "augment": not args.no_augment,
        "amp": "off" if args.no_amp else args.amp, "model": _json_object("--model", args.model) if args.model else {},
    })
    row = train(config, resume=args.resume, progress=not args.quiet)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, only process 0 reports
        print(json.dumps(row))
    return 0


def _fit_prior(args) -> int:
    from .data.sources import load_sequences
    from .model.io import atomic_save, checkpoint_dict, load_model, model_path, read_checkpoint
    from .model.latent_prior import HARMONICS, fit_to_sequences

    harmonics = HARMONICS if args.harmonics is None else args.harmonics
    if harmonics < 0:
        raise ValueError(f"--harmonics must be 0 or more; got {harmonics}")
    out = Path(args.out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; fit-prior writes one checkpoint file (e.g. {out / 'model.pt'})")
    if out.exists() and not args.overwrite:
        raise ValueError(f"--out {out} exists; choose another path or pass --overwrite")
    source = model_path(args.model)
    model = load_model(source)
    c = model.config
    sequences = load_sequences(args.data, spacing=c.spacing, size=c.image_size, seed=args.seed,
                               phantom_subjects=args.phantom_subjects, progress=not args.quiet)
    model.latent_prior = fit_to_sequences(model, sequences, progress=not args.quiet, harmonics=harmonics)
    # everything else the checkpoint held (its step, training settings) is kept
    kept = {k: v for k, v in read_checkpoint(source).items()
            if k not in ("format", "format_version", "motionext_version", "config", "model", "latent_prior")}
    atomic_save(checkpoint_dict(model, **kept), out)
    print(f"motionext fit-prior: a prior fitted to {len(sequences)} sequences of {args.data}, its mean following "
          f"the cycle phase with {model.latent_prior.harmonics} harmonic(s); wrote {out}")
    return 0


# train options whose default comes from TrainConfig or the chosen --preset
_TRAIN_OPTIONS = ("steps", "lr", "lr_scaling", "batch_size", "num_frames", "seed", "spacing", "val_every",
                  "checkpoint_every", "phantom_subjects", "device", "workers", "cache", "init", "val_data",
                  "kl_free_bits", "kl_warmup", "intensity_augment", "dice_weight", "loss_per_frame")


def _common(p, inputs=("input",)):
    for name in inputs:
        p.add_argument(name, help="a NIfTI cine: 4D (x, y, z, t) or 3D (x, y, t)")
    p.add_argument("--model", default="pretrained", help="a checkpoint, or a shipped model: 'pretrained', 'pretrained-split', 'pretrained-pairs' or 'pretrained-real' (ACDC's non-commercial terms), or 'pretrained-open'")
    p.add_argument("--out", required=True, help="output folder (created; must be new or empty)")
    p.add_argument("--ed", type=int, help="index of the ED frame in the input (default: the one an ACDC Info.cfg "
                                          "beside a *_4d cine names, otherwise 0)")
    p.add_argument("--slice", type=int, help="slice of a 4D input (default: the middle one)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an output folder that motionext wrote earlier (never a folder of your own)")
    p.add_argument("--grid", choices=["input", "model"], default="input",
                   help="write outputs on the input's voxel grid (default; images warped at its resolution and "
                        "intensities) or on the model's grid (its spacing, 1.5 mm for the shipped models; its size, "
                        "128 x 128; normalised intensities)")


def _refine_option(p, good_start: int = 50, what: str = "each sequence"):
    p.add_argument("--refine", type=int, default=0, metavar="STEPS",
                   help=f"fit the model's motion to {what} for STEPS optimisation steps (default 0: the "
                        f"encoder's one-shot estimate). {good_start} is a good start; more accurate on data unlike the "
                        "training cohort, at about 0.23 s per step for 20 frames of 128 x 128 on 2 CPU cores. "
                        "See docs/model.md")
    p.add_argument("--refine-settings", metavar="JSON",
                   help='change refinement settings (with --refine), e.g. \'{"similarity_window": 21, '
                        '"curvature_weight": 5000}\'. The settings and their defaults: code_rate 0.05, '
                        'residual_rate 1.5 (voxels), residual_sigma_mm 5, smoothness_weight 500, '
                        'curvature_weight 3000, temporal_smoothness_weight 50, similarity_window 15, '
                        'global_similarity_weight 0 '
                        '(docs/model.md)')


def _refine_settings(args):
    """The RefineSettings that --refine-settings asks for, or None for the defaults (and for the
    verbs that do not refine)."""
    from .motion.refine import check_steps, settings_from_json

    if hasattr(args, "refine"):
        check_steps(args.refine)
    if getattr(args, "refine_settings", None) is None:
        return None

    if args.refine <= 0:
        raise ValueError("--refine-settings needs --refine STEPS (more than 0): without it nothing is refined")
    return settings_from_json(args.refine_settings)


def _json_object(option: str, text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{option}: not valid JSON ({exc.msg}): {text!r}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{option}: expected a JSON object of settings, e.g. '{{\"latent_dim\": 16}}'; got {text!r}")
    return value


def _numbers(option: str, text: str, kind):
    """Comma-separated numbers of `kind` (int or float) from an option's value."""
    try:
        values = [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        what = "frame indices" if kind is int else "numbers"
        raise ValueError(f"{option}: expected comma-separated {what}; got {text!r}") from None
    if not values:
        raise ValueError(f"{option}: no values given")
    return values


def _motion_verb(args) -> int:
    from . import load_model
    from .data.nifti import acdc_ed_index
    from .motion import commands, frame_subset

    model = load_model(args.model)

    def read(path, **kw):
        ed = args.ed if args.ed is not None else acdc_ed_index(path)
        if args.ed is None and ed:
            print(f"motionext {args.verb}: ED is frame {ed + 1:02d} of {Path(path).name}, as the Info.cfg beside it "
                  "says (--ed overrides)", file=sys.stderr)
        return commands.read_input(path, ed=ed, slice_index=args.slice, **kw)

    if args.verb == "transport":
        source, target = read(args.source), read(args.target)
    else:
        cine = read(args.input, labels=getattr(args, "labels", None))
    settings = _refine_settings(args)
    given = None
    if args.verb == "reconstruct":
        choices = [x for x in (args.every, args.first, args.frames, args.ed_only or None) if x is not None]
        if len(choices) > 1:
            raise ValueError("reconstruct: choose one of --every, --first, --frames, --ed-only")
        given = frame_subset(cine.num_frames, every=args.every, first=args.first,
                             frames=_numbers("--frames", args.frames, int) if args.frames is not None else None)
    inputs = [getattr(args, name, None) for name in ("input", "source", "target", "labels", "model")]
    with commands.output_folder(args.out, args.overwrite, keep=inputs) as out:
        if args.verb == "track":
            commands.run_track(model, cine, out, grid=args.grid, refine=args.refine, settings=settings)
        elif args.verb == "compensate":
            commands.run_compensate(model, cine, out, grid=args.grid, refine=args.refine, settings=settings)
        elif args.verb == "transport":
            commands.run_transport(model, source, target, out, grid=args.grid)
        elif args.verb == "sample":
            commands.run_sample(model, cine, out, num_frames=args.num_frames, num_samples=args.num_samples, seed=args.seed,
                                grid=args.grid, prior=args.prior)
        else:
            commands.run_reconstruct(model, cine, out, given=given,
                                     times=_numbers("--times", args.times, float) if args.times is not None else None, grid=args.grid,
                                     fill=args.fill, refine=args.refine, settings=settings)
    print(f"motionext {args.verb}: wrote {args.out}")
    return 0


def _evaluate(args) -> int:
    from . import load_model
    from .motion import figures, registration
    from .motion.commands import output_folder
    from .motion.evaluate import evaluate, is_curve, summarize
    from .motion.outputs import save_csv

    settings = _refine_settings(args)
    baselines = []
    for name in _names(args.baselines):
        reason = registration.missing(name)
        if reason is None:
            baselines.append(name)
        else:
            print(f"motionext evaluate: skipping {name}: {reason}", file=sys.stderr)
    model = load_model(args.model)
    rows = evaluate(model, args.data, subjects=args.subjects, baselines=baselines, refine=args.refine,
                    refine_settings=settings, progress=not args.quiet)
    summary = summarize(rows)
    methods = {"motionext": "", "identity": "_identity", **{b: f"_{b}" for b in baselines}}
    with output_folder(args.out, args.overwrite, keep=[args.data, args.model]) as out:
        save_csv(out / "subjects.csv", rows, sorted(rows[0], key=is_curve))  # the long curves last
        save_csv(out / "summary.csv", [summary], list(summary))
        curves = {r["subject"]: r["lv_volume_curve"] for r in rows[:6]}
        figures.volume_curves(out / "lv_volume_curves.png", curves, ylabel="LV blood pool (mm² per slice)")
        first = {m: rows[0]["lv_volume_curve" + suffix] for m, suffix in methods.items()}
        figures.volume_curves(out / "lv_volume_methods.png", first, ylabel=f"LV blood pool of {rows[0]['subject']} (mm²)")
    print(f"{len(rows)} subjects from {args.data}; mean over subjects:")
    print("| measure | " + " | ".join(methods) + " |\n|---|" + "---|" * len(methods))
    others = tuple(suffix for suffix in methods.values() if suffix)
    for key in summary:
        if not key.endswith(others) and key != "ef_labels":  # the model's measures, one row each
            values = [summary.get(key + suffix) for suffix in methods.values()]
            print(f"| {key} | " + " | ".join("" if v is None else f"{v:.3f}" for v in values) + " |")
    print(f"| ef_labels | {summary['ef_labels']:.3f} |" + " |" * (len(methods) - 1))
    return 0


def _names(text):
    return [x.strip() for x in text.split(",") if x.strip()] if text else []


def _demo(args) -> int:
    from .motion.demo import run_demo

    run_demo(args.out, args.model)
    return 0


def _info(args) -> int:
    from . import __version__, ops

    print(json.dumps({"motionext": __version__, **ops.build_info(),
                      "malloc_keeps_freed_memory": keep_freed_memory()}, indent=2))
    return 0


def _prune_cache(args) -> int:
    from .data.cache_prune import prune_cache

    report = prune_cache(args.folder, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for path, reason in report.removed:
        print(f"{verb} {path}: {reason}")
    print(f"{verb} {len(report.removed)} files ({report.freed_bytes / 1e6:.1f} MB); kept {report.kept} entries")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="motionext", description="Probabilistic motion models for cine MRI.")
    verbs = parser.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("train", help="train a motion model",
                         description="Train the motion model on NIfTI cines, an ACDC-style tree, the bundled "
                                     "sample or the synthetic phantom. Writes config.json, log.csv, "
                                     "checkpoint.pt (atomically, every --checkpoint-every steps) and model.pt. "
                                     "Runs unchanged under torchrun (one process per GPU, NCCL; gloo on CPU): "
                                     "torchrun --nproc_per_node N -m motionext train ...")
    p.add_argument("--data", default="phantom",
                   help="phantom | sample | phantom+sample | a NIfTI cine | a folder of cines | an ACDC tree")
    p.add_argument("--out", default="runs/motionext", help="run folder")
    p.add_argument("--preset", choices=["default", "paper"], default="default",
                   help="default: motionext's recipe for real cine-MRI (docs/model.md says where and why it departs "
                        "from the paper); paper: Krebs et al. 2019's settings. Options given explicitly override it")
    p.add_argument("--val-data", help="validate on this data (held-out patients; same forms as --data) instead of "
                                      "holding out 10%% of the --data subjects")
    p.add_argument("--steps", type=int, help="training steps (default 4000)")
    p.add_argument("--lr", type=float, help="learning rate before --lr-scaling (default 1e-3; paper 1.5e-4)")
    p.add_argument("--lr-scaling", choices=["none", "sqrt", "linear"],
                   help="multiply --lr by the global batch size (processes × --batch-size), or its square root")
    p.add_argument("--kl-free-bits", type=float, help="nats per frame the KL term does not charge (default 3; paper 0)")
    p.add_argument("--kl-warmup", type=int, help="steps over which the KL weight rises from 0 to 1 (default 500; paper 0)")
    p.add_argument("--intensity-augment", action=argparse.BooleanOptionalAction,
                   help="gamma, contrast, bias-field and noise augmentation (default on; paper off)")
    p.add_argument("--loss-per-frame", action=argparse.BooleanOptionalAction,
                   help="step on the loss divided by the frames after ED, so that steps of cines and of ED/ES "
                        "pairs weigh alike (default on; paper off: the sum over frames)")
    p.add_argument("--dice-weight", type=float,
                   help="optional anatomical term: weight on 1 - Dice of the ED labels propagated to labelled frames "
                        "(default 0: unsupervised, as in the paper)")
    p.add_argument("--batch-size", type=int, help="sequences per process and step (default 8; batches of 1 learn far slower, docs/model.md)")
    p.add_argument("--frames", dest="num_frames", type=int,
                   help="resample every sequence to this many frames (not needed for batching: "
                        "batches hold sequences of one length; sparse ED/ES pairs are refused)")
    p.add_argument("--cache", help="preprocessing cache folder: NIfTI data is preprocessed once into it and "
                                   "memory-mapped afterwards")
    p.add_argument("--workers", type=int, help="data-loading processes per training process (default: 4 on CUDA, 0 on CPU)")
    p.add_argument("--seed", type=int)
    p.add_argument("--spacing", type=float, help="in-plane spacing to resample to (mm, default 1.5)")
    p.add_argument("--size", type=int, nargs=2, default=[128, 128], help="in-plane size to crop/pad to")
    p.add_argument("--val-every", type=int, help="steps between validations (default 100)")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default 100)")
    p.add_argument("--phantom-subjects", type=int)
    p.add_argument("--device")
    p.add_argument("--model", help='model settings as JSON, e.g. \'{"tds_probability": 0.0}\'')
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--init", help="start from these weights: a shipped model's name (motionext/pretrained/README.md) or a checkpoint (fine-tuning; the "
                                  "optimizer starts fresh)")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--amp", choices=["auto", "bf16", "fp16", "off"], default="auto",
                   help="mixed precision (autocast): auto (default) is bf16 on CUDA and off on the CPU; bf16 also "
                        "runs on the CPU; fp16 scales the loss (GradScaler) and is for GPUs: on a CPU it is many "
                        "times slower")
    p.add_argument("--no-amp", action="store_true", help="the same as --amp off")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_train)

    p = verbs.add_parser("track", help="displacement of every frame to ED, warped ED, propagated labels, z",
                         description="Register every frame to ED. Writes displacements.nii.gz (vector image, mm), "
                                     "transforms/frame_TT.nii.gz (ED to frame TT as a displacement-field transform "
                                     "for ANTs, ITK and 3D Slicer), "
                                     "frames.nii.gz, warped_ed.nii.gz, labels.nii.gz (with --labels) and z.npy.")
    _common(p)
    p.add_argument("--labels", help="ED label map (NIfTI on the input grid) to propagate to every frame")
    _refine_option(p)
    p.set_defaults(run=_motion_verb)

    p = verbs.add_parser("compensate", help="every frame warped back to ED with the inverse deformation",
                         description="Writes compensated.nii.gz: each frame warped onto ED with exp(-v).")
    _common(p)
    _refine_option(p)
    p.set_defaults(run=_motion_verb)

    p = verbs.add_parser("transport", help="subject A's motion applied to subject B's ED frame",
                         description="Writes transported.nii.gz (B's ED frame moving as A), displacements.nii.gz and "
                                     "z_source.npy (A's motion matrix).")
    _common(p, inputs=("source", "target"))
    p.set_defaults(run=_motion_verb)

    p = verbs.add_parser("sample", help="sequences simulated from the ED frame alone, with an uncertainty map",
                         description="Writes sample_NN.nii.gz, uncertainty.nii.gz (per-voxel std of displacement "
                                     "across samples) and z.npy.")
    _common(p)
    p.add_argument("--num-samples", type=int, default=5)
    p.add_argument("--num-frames", type=int, default=20)
    p.add_argument("--seed", type=int)
    p.add_argument("--prior", choices=["auto", "fitted", "standard"], default="auto",
                   help="where the codes come from: 'standard' N(0, I) per frame (the paper's), 'fitted' the "
                        "Gaussian fitted to the model's training codes (samples differ more), 'auto' (default) "
                        "fitted when the model has one (docs/model.md)")
    p.set_defaults(run=_motion_verb)

    p = verbs.add_parser("reconstruct", help="the full sequence from a subset of frames (or at arbitrary times)",
                         description="Writes reconstructed.nii.gz and displacements.nii.gz. Frames not given are "
                                     "filled in by the model; --times asks for normalised instants in [0, 1).")
    _common(p)
    p.add_argument("--every", type=int, help="keep every k-th frame")
    p.add_argument("--first", type=int, help="keep the first n frames")
    p.add_argument("--frames", help="comma-separated frame indices to keep (ED is always kept)")
    p.add_argument("--ed-only", action="store_true", help="keep only ED")
    p.add_argument("--times", help="comma-separated normalised times in [0, 1) to reconstruct instead of the frames")
    p.add_argument("--fill", choices=["interpolate", "prior"], default="interpolate",
                   help="the codes of the frames not given: interpolated in time between the given frames' (default), "
                        "or the prior mean (the paper's)")
    _refine_option(p, good_start=30, what="the given frames")
    p.set_defaults(run=_motion_verb)

    p = verbs.add_parser("evaluate", help="the paper's measures on labelled data, against the identity",
                         description="Dice and HD95 (mm) of ED labels propagated to ES for LV-Myo, LV-BP, LV, RV "
                                     "and LV+RV; folding fraction; RMSE; spatial and temporal gradients of the "
                                     "displacements; LV volume curves and ejection fraction; end-point error where "
                                     "the true motion is known; for the model, the identity and --baselines. "
                                     "Writes subjects.csv, summary.csv and two figures.")
    p.add_argument("--data", default="phantom", help="phantom (held-out subjects) or labelled NIfTI data (ACDC-style)")
    p.add_argument("--subjects", type=int, default=8, help="phantom subjects")
    p.add_argument("--baselines", help="comma-separated classical registrations to compare: syn (ANTsPy), elastix "
                                       "(itk-elastix); needs pip install 'motionext[baselines]'. Each frame is registered "
                                       "to ED, which takes seconds per frame")
    _refine_option(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--model", default="pretrained")
    p.add_argument("--out", required=True)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(run=_evaluate)

    p = verbs.add_parser("demo", help="the pretrained model on the embedded data, with outputs and figures",
                         description="Track, sample, transport and reconstruct on the bundled Sunnybrook slice "
                                     "and a held-out phantom subject with the pretrained model; write NIfTI, "
                                     ".npy, CSV and figures to OUT and print a summary table.")
    p.add_argument("--out", default="motionext-demo", help="output folder")
    p.add_argument("--model", default="pretrained", help="a checkpoint, or a shipped model: 'pretrained', 'pretrained-split', 'pretrained-pairs' or 'pretrained-real' (ACDC's non-commercial terms), or 'pretrained-open'")
    p.set_defaults(run=_demo)

    p = verbs.add_parser("fit-prior", help="fit the sampling prior of a trained model to its training data",
                         description="Encode every sequence of --data and fit a Gaussian to the codes (a mean that "
                                     "follows the cycle phase, a sequence-level and a frame-level part), which "
                                     "`sample` then draws from. `train` does this "
                                     "at its end; this adds one to a model trained without it. Writes a copy of "
                                     "the checkpoint with the prior.")
    p.add_argument("--model", default="pretrained", help="a checkpoint or a shipped model's name")
    p.add_argument("--data", required=True, help="the model's training data, as given to train --data")
    p.add_argument("--phantom-subjects", type=int, default=24, help="phantom subjects, when --data has the phantom")
    p.add_argument("--seed", type=int, default=0, help="the phantom's seed, as given to train")
    p.add_argument("--harmonics", type=int, default=None,
                   help="harmonics of the cycle phase in the prior's mean (default: latent_prior.HARMONICS, 2; "
                        "0: one mean for every phase, as priors fitted before 2026-12-07)")
    p.add_argument("--out", required=True, help="the checkpoint to write")
    p.add_argument("--overwrite", action="store_true", help="replace --out when it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_fit_prior)

    p = verbs.add_parser("prune-cache", help="remove the preprocessing-cache entries that can never be used again",
                         description="Remove from a --cache folder the entries whose source is gone or changed, "
                                     "that another cache format or preprocessing version wrote, or that are "
                                     "incomplete, and the partial files of killed builds. Valid entries for "
                                     "other --spacing/--size settings are kept. Do not run it while another "
                                     "machine is building the same cache.")
    p.add_argument("folder", help="the cache folder (as given to train --cache)")
    p.add_argument("--dry-run", action="store_true", help="list what would be removed; remove nothing")
    p.set_defaults(run=_prune_cache)

    p = verbs.add_parser("info", help="versions and how the kernels were built")
    p.set_defaults(run=_info)
    return parser


def _fail(verb: str, message, code: int) -> int:
    """Report on one line (the message's first) and return the exit code."""
    text = str(message).strip()
    print(f"motionext {verb}: error: {text.splitlines()[0] if text else repr(message)}", file=sys.stderr)
    return code


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    try:
        return args.run(args)
    except (FileNotFoundError, ValueError, FloatingPointError) as exc:  # bad input, named where it was found
        return _fail(args.verb, exc, 2)
    except OSError as exc:  # the file system refused: a permission, a full disk
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(args.verb, f"{where}{exc.strerror or exc}", 2)
    except KeyboardInterrupt:
        return _fail(args.verb, "interrupted", 130)
    except MemoryError:
        return _fail(args.verb, "not enough memory for this input and these options", 2)
    except Exception as exc:
        if "can't allocate memory" in str(exc) or "out of memory" in str(exc).lower():  # torch's allocators
            return _fail(args.verb, f"not enough memory for this input and these options ({str(exc).splitlines()[0][:200]})", 2)
        if os.environ.get("MOTIONEXT_TRACEBACK") == "1":
            raise
        return _fail(args.verb, f"internal error ({type(exc).__name__}: {exc}); this is a bug in motionext: "
                                "please report it with the output of MOTIONEXT_TRACEBACK=1 motionext ...", 1)


if __name__ == "__main__":
    sys.exit(main())
