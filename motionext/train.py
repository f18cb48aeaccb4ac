"""Training the motion model: single process, progress bar, validation, atomic checkpoints,
resume, CSV log (TensorBoard when installed) and mixed precision on CUDA.

    motionext train --data phantom+sample --steps 2000 --out runs/demo
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .data.augment import apply_affine, random_affine
from .data.sources import load_sequences
from .model import ModelConfig, MotionModel, motion_loss
from .model.io import atomic_save, checkpoint_dict, read_checkpoint

LOG_FIELDS = ["step", "loss", "recon", "kl", "lncc", "val_loss", "val_lncc"]


@dataclass
class TrainConfig:
    data: str = "phantom"
    out: str = "runs/motionext"
    steps: int = 1000
    lr: float = 1.5e-4
    seed: int = 0
    spacing: float = 1.5
    size: tuple = (128, 128)
    augment: bool = True
    val_fraction: float = 0.1
    val_every: int = 100
    checkpoint_every: int = 100
    phantom_subjects: int = 24
    device: str = "auto"
    amp: bool = True
    model: dict = field(default_factory=dict)

    def __post_init__(self):
        self.size = tuple(int(s) for s in self.size)
        if self.steps < 1:
            raise ValueError(f"TrainConfig: steps must be positive; got {self.steps}")
        if self.val_every < 1 or self.checkpoint_every < 1:
            raise ValueError("TrainConfig: val_every and checkpoint_every must be positive")

    def model_config(self) -> ModelConfig:
        return ModelConfig.from_dict({"image_size": self.size, **self.model})


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _split(count: int, fraction: float, seed: int):
    order = np.random.default_rng(seed).permutation(count)
    n_val = min(count - 1, max(1, int(round(count * fraction)))) if count > 1 and fraction > 0 else 0
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


def _batch(cine, device, rng=None):
    frames = torch.from_numpy(cine.frames)
    if rng is not None:
        frames, _ = apply_affine(frames, random_affine(rng))
    return frames.unsqueeze(0).to(device)


@torch.no_grad()
def validate(model: MotionModel, sequences, device) -> dict:
    """Mean loss terms on held-out sequences: posterior means, no TDS, no augmentation."""
    if not sequences:
        return {}
    was_training = model.training
    model.eval()
    totals = {"loss": 0.0, "lncc": 0.0}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for cine in sequences:
            frames = _batch(cine, device)
            out = model(frames, cine.spacing, sample=False)
            terms = motion_loss(model, frames, out)
            for k in totals:
                totals[k] += float(terms[k]) / len(sequences)
    model.train(was_training)
    return totals


class _Log:
    """CSV log (rows after `start` from an interrupted run are dropped) and optional TensorBoard."""

    def __init__(self, folder: Path, start: int):
        self.path = folder / "log.csv"
        rows = []
        if start and self.path.exists():
            with open(self.path) as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= start]
        self.file = open(self.path, "w", newline="")
        self.writer = csv.DictWriter(self.file, LOG_FIELDS)
        self.writer.writeheader()
        self.writer.writerows(rows)
        self.board = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.board = SummaryWriter(str(folder / "tensorboard"))
        except Exception:  # TensorBoard is optional
            pass

    def write(self, row: dict):
        self.writer.writerow({k: row.get(k, "") for k in LOG_FIELDS})
        self.file.flush()
        if self.board is not None:
            for k, v in row.items():
                if k != "step" and v != "":
                    self.board.add_scalar(k, v, row["step"])

    def close(self):
        self.file.close()
        if self.board is not None:
            self.board.close()


def train(config: TrainConfig, *, resume: bool = False, progress: bool = True, stop_after: int | None = None) -> dict:
    """Train; returns the last logged row. `stop_after` ends the run early after that many steps
    (as a kill would, but cleanly) — used to test resuming."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out / "checkpoint.pt"
    device = _device(config.device)
    model_config = config.model_config()

    start = 0
    state = None
    if resume:
        if not checkpoint_path.exists():
            raise FileNotFoundError(f"--resume: no checkpoint at {checkpoint_path}")
        state = read_checkpoint(checkpoint_path)
        saved = TrainConfig(**{**state["train_config"], "size": tuple(state["train_config"]["size"])})
        if asdict(saved) | {"steps": 0, "out": ""} != asdict(config) | {"steps": 0, "out": ""}:
            raise ValueError(f"--resume: {checkpoint_path} was written with different settings; "
                             f"start a new --out folder or use the same settings")
        start = int(state["step"])
    (out / "config.json").write_text(json.dumps({"train": asdict(config), "model": model_config.to_dict()}, indent=2))

    torch.manual_seed(config.seed)
    sequences = load_sequences(config.data, spacing=config.spacing, size=config.size, seed=config.seed,
                               phantom_subjects=config.phantom_subjects)
    train_ids, val_ids = _split(len(sequences), config.val_fraction, config.seed)
    model = MotionModel(model_config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
    model.train()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=config.amp and device.type == "cuda")

    log = _Log(out, start)
    row = {}
    steps = range(start, config.steps)
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, initial=start, total=config.steps, desc="train", dynamic_ncols=True)
    try:
        for step in steps:
            # Per-step generator: the data a step sees does not depend on where a run resumed.
            rng = np.random.default_rng([config.seed, step])
            cine = sequences[train_ids[int(rng.integers(len(train_ids)))]]
            frames = _batch(cine, device, rng if config.augment else None)
            with autocast:
                result = model(frames, cine.spacing)
                terms = motion_loss(model, frames, result)
            loss_value = float(terms["loss"].detach())
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"step {step + 1}: the loss is not finite ({loss_value}); "
                                         "lower the learning rate or check the data")
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            optimizer.step()
            row = {"step": step + 1, **{k: float(v.detach()) for k, v in terms.items()}}
            if (step + 1) % config.val_every == 0 or step + 1 == config.steps:
                val = validate(model, [sequences[i] for i in val_ids], device)
                row.update({f"val_{k}": v for k, v in val.items()})
            log.write(row)
            if progress:
                steps.set_postfix(loss=f"{row['loss']:.1f}", kl=f"{row['kl']:.2f}", lncc=f"{row['lncc']:.3f}")
            if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps:
                atomic_save(checkpoint_dict(model, optimizer=optimizer.state_dict(), step=step + 1,
                                            rng=torch.get_rng_state(), train_config=asdict(config)), checkpoint_path)
            if stop_after is not None and step + 1 - start >= stop_after:
                break
        else:
            atomic_save(checkpoint_dict(model, step=config.steps, train_config=asdict(config)), out / "model.pt")
    finally:
        log.close()
    return row
