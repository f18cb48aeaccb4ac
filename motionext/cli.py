"""The `motionext` command."""

from __future__ import annotations

import argparse
import json
import sys


def _train(args) -> int:
    from .train import TrainConfig, train

    model = json.loads(args.model) if args.model else {}
    config = TrainConfig(
        data=args.data, out=args.out, steps=args.steps, lr=args.lr, seed=args.seed, spacing=args.spacing,
        size=tuple(args.size), augment=not args.no_augment, val_every=args.val_every,
        checkpoint_every=args.checkpoint_every, phantom_subjects=args.phantom_subjects, device=args.device,
        amp=not args.no_amp, model=model,
    )
    row = train(config, resume=args.resume, progress=not args.quiet)
    print(json.dumps(row))
    return 0


def _demo(args) -> int:
    from .motion.demo import run_demo

    run_demo(args.out, args.model)
    return 0


def _info(args) -> int:
    from . import __version__, ops

    print(json.dumps({"motionext": __version__, **ops.build_info()}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="motionext", description="Probabilistic motion models for cine MRI.")
    verbs = parser.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("train", help="train a motion model",
                         description="Train the motion model on NIfTI cines, an ACDC-style tree, the bundled "
                                     "sample or the synthetic phantom. Writes config.json, log.csv, "
                                     "checkpoint.pt (atomically, every --checkpoint-every steps) and model.pt.")
    p.add_argument("--data", default="phantom",
                   help="phantom | sample | phantom+sample | a NIfTI cine | a folder of cines | an ACDC tree")
    p.add_argument("--out", default="runs/motionext", help="run folder")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--lr", type=float, default=1.5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--spacing", type=float, default=1.5, help="in-plane spacing to resample to (mm)")
    p.add_argument("--size", type=int, nargs=2, default=[128, 128], help="in-plane size to crop/pad to")
    p.add_argument("--val-every", type=int, default=100)
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--phantom-subjects", type=int, default=24)
    p.add_argument("--device", default="auto")
    p.add_argument("--model", help='model settings as JSON, e.g. \'{"tds_probability": 0.0}\'')
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_train)

    p = verbs.add_parser("demo", help="the pretrained model on the embedded data, with outputs and figures",
                         description="Track, sample, transport and reconstruct on the bundled Sunnybrook slice "
                                     "and a held-out phantom subject with the pretrained model; write NIfTI, "
                                     ".npy, CSV and figures to OUT and print a summary table.")
    p.add_argument("--out", default="motionext-demo", help="output folder")
    p.add_argument("--model", default="pretrained", help="a checkpoint, or 'pretrained'")
    p.set_defaults(run=_demo)

    p = verbs.add_parser("info", help="versions and how the kernels were built")
    p.set_defaults(run=_info)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (FileNotFoundError, ValueError, FloatingPointError) as exc:
        print(f"motionext {args.verb}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
