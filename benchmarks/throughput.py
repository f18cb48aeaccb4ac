"""Training throughput of `motionext train` and the data-loading rate it is fed at.

1. Training, sequences per second at the paper's size (T = 25, 128 × 128, default model, one
   sequence per process and step): compiled kernels vs MOTIONEXT_BACKEND=reference, 1 process
   vs 2 processes under torchrun (gloo on CPU, NCCL on GPUs). Each run is the real
   `motionext train` on phantom data; the rate comes from the per-step wall times in its
   log.csv (the first steps, warm-up, are dropped). The processes share the machine's cores.
2. Data loading, sequences per second: decoding and preprocessing a cohort of compressed NIfTI
   cines, against reading it from the preprocessing cache, alone and through the training
   DataLoader (augmentation included) with 0 and 2 workers.

    python benchmarks/throughput.py [--steps 12] [--rounds 2] [--subjects 6] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

TRAIN_ARGS = ["train", "--data", "phantom", "--phantom-subjects", "4", "--batch-size", "1", "--val-every", "1000000",
              "--checkpoint-every", "1000000", "--quiet"]


def training_rate(backend: str, processes: int, steps: int, device: str, folder: Path, *, size: int = 128,
                  frames: int = 25) -> float:
    """Sequences per second of `motionext train` (median step time after 2 warm-up steps)."""
    out = folder / f"{backend}-{processes}"
    shutil.rmtree(out, ignore_errors=True)  # each round is a fresh run (train refuses to write over one)
    folder.mkdir(parents=True, exist_ok=True)
    launcher = [sys.executable, "-m", "motionext"] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes), "-m", "motionext"]
    env = {**os.environ, "MOTIONEXT_BACKEND": backend}
    if processes > 1 and device == "cpu":  # share the cores instead of oversubscribing them
        env["OMP_NUM_THREADS"] = str(max(1, torch.get_num_threads() // processes))
    command = [*launcher, *TRAIN_ARGS, "--frames", str(frames), "--size", str(size), str(size), "--steps", str(steps),
               "--device", device, "--out", str(out)]
    # run outside the checkout: `python -m` puts the working directory first on the path, where the
    # source tree (without the compiled kernels) would shadow the installed package
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=folder)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    with open(out / "log.csv") as f:
        seconds = [float(r["seconds"]) for r in csv.DictReader(f)][2:]
    return processes / statistics.median(seconds)


def write_cohort(folder: Path, subjects: int) -> list:
    """Phantom stacks written as compressed int16 NIfTI: 25 frames of 192 × 192 × 8 at 1.25 mm."""
    import nibabel as nib

    from motionext.data import make_phantom

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(subjects):
        phantom = make_phantom(25, (192, 192, 8), spacing=1.25, seed=i)
        data = np.moveaxis(np.round(phantom.frames * 1000), 0, 3).astype(np.int16)  # (x, y, z, t)
        image = nib.Nifti1Image(data, np.diag([1.25, 1.25, 8.0, 1.0]))
        image.header.set_zooms((1.25, 1.25, 8.0, 40.0))
        paths.append(folder / f"subject{i:03d}.nii.gz")
        nib.save(image, str(paths[-1]))
    return paths


def loading_rates(paths: list, cache_folder: Path) -> dict:
    from torch.utils.data import DataLoader

    from motionext.data.batches import EpochBatchSampler, TrainingSet, collate
    from motionext.data.cache import PreprocessCache
    from motionext.data.preprocess import preprocess
    from motionext.data.sources import read_unit

    rates = {}
    t0 = time.perf_counter()
    count = sum(len([preprocess(c) for c in read_unit(p)]) for p in paths)
    rates["raw NIfTI: decode + preprocess"] = count / (time.perf_counter() - t0)
    cache = PreprocessCache(cache_folder)
    t0 = time.perf_counter()
    sequences = cache.sequences(paths)
    rates["building the cache (once)"] = len(sequences) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    sequences = cache.sequences(paths)
    for sequence in sequences:
        sequence.frames
    rates["cache: open + read (memory-mapped, CRC-checked)"] = len(sequences) / (time.perf_counter() - t0)
    for workers in (0, 2):
        loader = DataLoader(TrainingSet(sequences, num_frames=25), batch_sampler=EpochBatchSampler(len(sequences), 1),
                            collate_fn=collate, num_workers=workers)
        batches = iter(loader)
        next(batches)  # start-up of the workers
        n = 4 * len(sequences)
        t0 = time.perf_counter()
        for _ in itertools.islice(batches, n):
            pass
        rates[f"cache → DataLoader with augmentation, {workers} workers"] = n / (time.perf_counter() - t0)
    return rates


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12, help="training steps per run (2 are warm-up)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each training configuration, interleaved")
    parser.add_argument("--subjects", type=int, default=6, help="NIfTI subjects (8 slices each) for the loading rates")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=128, help="training image size (square)")
    parser.add_argument("--frames", type=int, default=25, help="training frames per sequence")
    parser.add_argument("--skip-loading", action="store_true",
                        help="skip the data-loading rates (they write NIfTI and need nibabel)")
    parser.add_argument("--markdown", help="also write the tables to this file")
    args = parser.parse_args(argv)

    lines = [f"- machine: {platform.machine()}, {os.cpu_count()} cores, device {args.device}, "
             f"torch {torch.__version__}, {torch.get_num_threads()} threads; training at {args.frames} frames of "
             f"{args.size} × {args.size}", ""]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = {}
        for _ in range(args.rounds):
            for processes, backend in itertools.product(args.processes, ("compiled", "reference")):
                rate = training_rate(backend, processes, args.steps, args.device, tmp / "runs", size=args.size,
                                     frames=args.frames)
                runs.setdefault((processes, backend), []).append(rate)
                print(f"training, {processes} process(es), {backend}: {rate:.2f} sequences/s", flush=True)
        lines += ["| processes | compiled seq/s | reference seq/s | compiled / reference |", "|---|---|---|---|"]
        for processes in args.processes:
            c, r = (statistics.median(runs[(processes, b)]) for b in ("compiled", "reference"))
            lines.append(f"| {processes} | {c:.2f} | {r:.2f} | {c / r:.2f}× |")
        if not args.skip_loading:
            rates = loading_rates(write_cohort(tmp / "cohort", args.subjects), tmp / "cache")
            lines += ["", "| data loading | sequences/s |", "|---|---|"]
            lines += [f"| {name} | {rate:.1f} |" for name, rate in rates.items()]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")


if __name__ == "__main__":
    main()
