"""Training the motion model, in one process or many (torchrun): batches drawn from reshuffled
epochs, a progress bar, validation, atomic checkpoints, resume, a CSV log (TensorBoard when
installed) and mixed precision (bf16 by default on CUDA; --amp bf16|fp16|off).

    motionext train --data phantom+sample --steps 2000 --out runs/demo
    torchrun --nproc_per_node 4 -m motionext train --data /data/cohort --cache /scratch/cache ...

Under torchrun every process trains a DistributedDataParallel replica on its own share of each
global batch (world size × --batch-size sequences); only process 0 validates, logs, shows
progress and writes checkpoints, and every process resumes from the same checkpoint.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from . import distributed
from . import validate as v
from .data.batches import EpochBatchSampler, TrainingSet, collate, model_noise
from .data.sources import check_label_values, load_sequences
from .model import ModelConfig, MotionModel, motion_loss
from .model.config import SPACING_MM
from .model.losses import propagated_label_dice
from .files import check_output_folder
from .malloc import keep_freed_memory
from .model.io import atomic_save, checkpoint_dict, read_checkpoint
from .model.latent_prior import MIN_PRIOR_SEQUENCES, fit_to_sequences
from .ops._checks import NonFiniteError

LOSS_TERMS = ["loss", "recon", "kl", "kl_frame", "lncc", "dice"]
VAL_TERMS = ["loss", "lncc", "kl_frame", "dice"]
# seconds: wall time of the step; dice: soft Dice of the propagated labels (labelled training frames)
LOG_FIELDS = ["step", *LOSS_TERMS, *[f"val_{k}" for k in VAL_TERMS], "seconds"]
# Settings that change how a run is executed but not what it computes: a run may resume with others.
RUNTIME_SETTINGS = ("steps", "out", "device", "workers", "cache")
LR_SCALING = {"none": 0.0, "sqrt": 0.5, "linear": 1.0}
# Autocast dtypes. "auto" is bf16 on CUDA and off elsewhere: on the development CPU bf16 saved only
# 9 % of a step and fp16 took 12 times as long (docs/model.md), and full precision keeps CPU runs
# comparable with the documented ones.
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}
AMP_MODES = ("auto", *AMP_DTYPES)


@dataclass
class TrainConfig:
    data: str = "phantom"
    out: str = "runs/motionext"
    steps: int = 4000
    lr: float = 1e-3                  # the paper's 1.5e-4 is the "paper" preset (docs/model.md)
    lr_scaling: str = "none"          # lr × (global batch)^k with k = 0, 1/2, 1 for none, sqrt, linear
    batch_size: int = 8               # sequences per process and step (docs/model.md: why not 1)
    num_frames: int | None = None     # resample every sequence to this many frames (batches need not: each holds one length)
    seed: int = 0
    spacing: float = 1.5
    size: tuple = (128, 128)
    augment: bool = True
    val_fraction: float = 0.1
    val_every: int = 100
    checkpoint_every: int = 100
    phantom_subjects: int = 24
    device: str = "auto"
    workers: int | None = None        # DataLoader workers per process; None: 4 on CUDA, 0 on CPU
    cache: str | None = None          # preprocessing cache folder for NIfTI sources
    init: str | None = None           # start from these weights ("pretrained" or a checkpoint): fine-tuning
    amp: str = "auto"                 # autocast: auto (bf16 on CUDA, off elsewhere), bf16, fp16 or off
    model: dict = field(default_factory=dict)
    val_data: str | None = None       # validate on this data (all of it) instead of a split of `data`
    kl_free_bits: float = 3.0         # nats per frame that the KL term does not charge
    kl_warmup: int = 500              # steps over which the KL weight rises linearly from 0 to 1
    intensity_augment: bool = True    # gamma, contrast, bias field and noise (augment.random_intensity)
    dice_weight: float = 0.0          # optional anatomical term: weight on 1 - Dice of propagated labels
    # Adam steps on the loss divided by the frames after ED, so that a step of 20-frame cines and
    # one of ED/ES pairs move the weights alike (docs/model.md); the paper sums over frames
    loss_per_frame: bool = True

    def __post_init__(self):
        c = "TrainConfig"
        if isinstance(self.amp, bool):  # runs written before the dtype could be chosen
            self.amp = "auto" if self.amp else "off"
        v.text(c, "data", self.data)
        v.text(c, "out", self.out)
        for name in ("val_data", "cache", "init"):
            v.text(c, name, getattr(self, name), optional=True)
        self.steps = v.integer(c, "steps", self.steps, minimum=1)
        self.lr = v.number(c, "lr", self.lr, minimum=0)  # 0 leaves the weights as they start
        v.choice(c, "lr_scaling", self.lr_scaling, tuple(LR_SCALING))
        self.batch_size = v.integer(c, "batch_size", self.batch_size, minimum=1)
        if self.num_frames is not None:
            self.num_frames = v.integer(c, "num_frames", self.num_frames, minimum=2)
        self.seed = v.integer(c, "seed", self.seed, minimum=0)
        self.spacing = v.number(c, "spacing", self.spacing, minimum=SPACING_MM[0], maximum=SPACING_MM[1])
        self.size = v.integers(c, "size", self.size, lengths=(2,), minimum=8)
        v.flag(c, "augment", self.augment)
        v.flag(c, "intensity_augment", self.intensity_augment)
        v.flag(c, "loss_per_frame", self.loss_per_frame)
        self.val_fraction = v.number(c, "val_fraction", self.val_fraction, minimum=0, maximum=0.9)
        self.val_every = v.integer(c, "val_every", self.val_every, minimum=1)
        self.checkpoint_every = v.integer(c, "checkpoint_every", self.checkpoint_every, minimum=1)
        self.phantom_subjects = v.integer(c, "phantom_subjects", self.phantom_subjects, minimum=1)
        if self.workers is not None:
            self.workers = v.integer(c, "workers", self.workers, minimum=0)
        v.choice(c, "amp", self.amp, AMP_MODES)
        self.kl_free_bits = v.number(c, "kl_free_bits", self.kl_free_bits, minimum=0)
        self.kl_warmup = v.integer(c, "kl_warmup", self.kl_warmup, minimum=0)
        self.dice_weight = v.number(c, "dice_weight", self.dice_weight, minimum=0)
        _check_device(self.device)
        if not isinstance(self.model, dict):
            raise ValueError(f"{c}: model must be a JSON object / dict of model settings; got {self.model!r}")
        if self.init is None:  # the settings can be checked now; with --init, once its weights are read
            self.model_config()
        if self.dice_weight > 0 and self.cache:
            raise ValueError("TrainConfig: dice_weight needs the label maps, which the preprocessing cache does not "
                             "store; train without --cache or with dice_weight 0")

    def amp_dtype(self, device: torch.device) -> torch.dtype | None:
        """The autocast dtype of this run on `device`, or None for full precision."""
        if self.amp == "auto":
            return torch.bfloat16 if device.type == "cuda" else None
        return AMP_DTYPES[self.amp]

    def kl_scale(self, step: int) -> float:
        """The KL term's weight at `step` (0-based): rising linearly to 1 over kl_warmup steps."""
        return 1.0 if self.kl_warmup == 0 else min(1.0, (step + 1) / self.kl_warmup)

    def model_config(self, init_config: dict | None = None) -> ModelConfig:
        """The model's settings; fine-tuning starts from those of the --init weights
        (`init_config`), which `model` overrides."""
        base = ModelConfig.from_dict(init_config).to_dict() if init_config else {}
        if "spacing" in self.model and float(self.model["spacing"]) != float(self.spacing):
            raise ValueError(f"TrainConfig: the model's spacing is the training spacing; set spacing "
                             f"({self.spacing}) instead of model spacing ({self.model['spacing']})")
        return ModelConfig.from_dict({**base, **self.model, "image_size": self.size, "spacing": self.spacing},
                                     saved=False)

    def learning_rate(self, world: int) -> float:
        """The learning rate for `world` processes: lr scaled by the global batch size."""
        return self.lr * (world * self.batch_size) ** LR_SCALING[self.lr_scaling]


def _check_device(name) -> None:
    """'auto' or a device torch can name ("cpu", "cuda", "cuda:1", ...)."""
    if name == "auto":
        return
    try:
        torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"TrainConfig: device must be 'auto' or a torch device such as cpu, cuda or cuda:1; "
                         f"got {name!r}") from None


# Krebs et al. 2019's training settings, where motionext's defaults depart from them (docs/model.md).
PRESETS = {"default": {}, "paper": {"lr": 1.5e-4, "kl_free_bits": 0.0, "kl_warmup": 0, "intensity_augment": False,
                                        "loss_per_frame": False}}


def preset_settings(name: str) -> dict:
    if name not in PRESETS:
        raise ValueError(f"unknown training preset {name!r}; the presets are {', '.join(PRESETS)}")
    return dict(PRESETS[name])


def _read_init(init: str | None) -> dict | None:
    """The --init checkpoint ("pretrained" is the bundled model), or None."""
    if init is None:
        return None
    from .model.io import model_path

    return read_checkpoint(model_path(init))


def _initial_weights(model: MotionModel, init: dict, name: str) -> None:
    """Load --init weights into a freshly built model, refusing ones of another architecture.
    Parameters that start at zero (TemporalNetwork.NEUTRAL_AT_INIT) may be absent: adding the
    temporal network's direct path to trained weights keeps what they compute."""
    from .model.layers import TemporalNetwork

    neutral = tuple(f"temporal.{prefix}" for prefix in TemporalNetwork.NEUTRAL_AT_INIT)
    weights = {**{k: v for k, v in model.state_dict().items() if k.startswith(neutral)}, **init["model"]}
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise ValueError(f"--init {name}: its weights do not fit this run's model (--model or --size change "
                         f"the architecture): {str(exc).splitlines()[0]}") from exc


def subject_of(name: str) -> str:
    """The subject a sequence comes from: its name without the slice suffix."""
    return name.split("[slice")[0]


def split_by_subject(names: list, fraction: float, seed: int):
    """(train, validation) sequence indices; all slices of a subject fall on the same side, and
    about `fraction` of the subjects (at least one, never all) are held out."""
    subjects = sorted({subject_of(n) for n in names})
    order = np.random.default_rng(seed).permutation(len(subjects))
    count = len(subjects)
    n_val = min(count - 1, max(1, int(round(count * fraction)))) if count > 1 and fraction > 0 else 0
    held_out = {subjects[i] for i in order[:n_val]}
    train = [i for i, n in enumerate(names) if subject_of(n) not in held_out]
    val = [i for i, n in enumerate(names) if subject_of(n) in held_out]
    return train, val


@torch.no_grad()
def validate(model: MotionModel, sequences, device, num_frames: int | None = None) -> dict:
    """Mean measures on held-out sequences (resampled to `num_frames` when given; sparse ones
    keep their frames): posterior means, no TDS, no augmentation. "loss", "lncc" and
    "kl_frame" (the KL per frame, nats) over all sequences; "dice" (the ED labels propagated to
    the other labelled frames by nearest neighbour: Dice of RV, myocardium and LV blood pool) over
    the labelled ones."""
    if not sequences:
        return {}
    was_training = model.training
    model.eval()
    data = TrainingSet(sequences, num_frames=num_frames, augment=False)
    totals, dices = {"loss": 0.0, "lncc": 0.0, "kl_frame": 0.0}, []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for index in range(len(sequences)):
            item = collate([data[(index, 0)]])
            frames = item["frames"].to(device)
            out = model(frames, sequences[index].spacing, item["times"].to(device), sample=False)
            terms = motion_loss(model, frames, out)
            for k in totals:
                totals[k] += float(terms[k]) / len(sequences)
            dice = propagated_label_dice(item["labels"].to(device), item["labelled"],
                                         out["displacement"], mode="nearest")
            if dice is not None:
                dices.append(float(dice))
    model.train(was_training)
    return {**totals, "dice": float(np.mean(dices)) if dices else ""}


def _last_logged_row(path: Path) -> dict:
    """The last row of a run's log.csv, numbers as numbers, empty fields left out ({} without one)."""
    if not path.exists():
        return {}
    with open(path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    return {k: int(v) if k == "step" else float(v) for k, v in rows[-1].items() if v not in ("", None)}


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
            for name, value in row.items():
                if name != "step" and value != "":
                    self.board.add_scalar(name, value, row["step"])

    def close(self):
        self.file.close()
        if self.board is not None:
            self.board.close()


def _load_data(config: TrainConfig, procs: distributed.Processes, progress: bool, source: str) -> list:
    """The preprocessed sequences of `source`; with a cache, process 0 builds missing entries
    while the others wait."""
    cache = None
    if config.cache:
        from .data.cache import PreprocessCache

        cache = PreprocessCache(config.cache, spacing=config.spacing, size=config.size)
    load = lambda: load_sequences(source, spacing=config.spacing, size=config.size, seed=config.seed,  # noqa: E731
                                  phantom_subjects=config.phantom_subjects, cache=cache,
                                  workers=config.workers or 0, progress=progress)
    if procs.main:
        sequences = load()
        check_label_values(sequences, source)  # the Dice of training and validation reads them
        if cache is not None:
            print(f"motionext train: preprocessing cache {config.cache}: {cache.built} entries built, "
                  f"{cache.reused} reused", file=sys.stderr)
    procs.barrier()
    if not procs.main:
        sequences = load()
    return sequences


def _loader(config: TrainConfig, sequences: list, procs: distributed.Processes, start: int) -> DataLoader:
    workers = config.workers if config.workers is not None else (4 if procs.device.type == "cuda" else 0)
    # sequences of several lengths (ED/ES pairs beside whole cines) go into batches of one length each
    lengths = [config.num_frames or s.num_frames for s in sequences]
    sampler = EpochBatchSampler(len(sequences), config.batch_size, rank=procs.rank, world=procs.world,
                                seed=config.seed, start_step=start, lengths=lengths)
    return DataLoader(TrainingSet(sequences, num_frames=config.num_frames, augment=config.augment,
                                  intensity=config.intensity_augment),
                      batch_sampler=sampler, collate_fn=collate, num_workers=workers,
                      pin_memory=procs.device.type == "cuda", persistent_workers=workers > 0)


def step_terms(model: MotionModel, replica, batch: dict, config: TrainConfig, step: int,
               device: torch.device) -> dict:
    """The loss terms of one training step (0-based `step`) on `batch`, under the run's autocast:
    the model's objective, plus the optional anatomical term when dice_weight > 0. "dice" is the
    soft Dice of the ED labels propagated to the labelled frames, NaN when none after ED is.
    "step_loss" is what the optimizer steps on: "loss", with the model's objective per frame after
    ED when loss_per_frame (the anatomical term, a mean over labelled frames, is not divided)."""
    c = model.config
    frames = batch["frames"].to(device, non_blocking=True)
    times = batch["times"].to(device, non_blocking=True)
    noise = model_noise(batch["seeds"], frames.shape[1], c.latent_dim, c.tds_probability, device, c.tds_fill)
    dtype = config.amp_dtype(device)
    # autocast exists on CPU and CUDA only; elsewhere (e.g. the meta device) the run is full precision
    with torch.autocast(device.type if device.type in ("cpu", "cuda") else "cpu", dtype=dtype, enabled=dtype is not None):
        result = replica(frames, (config.spacing,) * c.ndim, times, **noise)  # every sequence was resampled to it
        terms = motion_loss(model, frames, result, kl_free_bits=config.kl_free_bits, kl_scale=config.kl_scale(step))
        dice = propagated_label_dice(batch["labels"].to(device), batch["labelled"], result["displacement"])
    # per frame after ED: ED's own terms carry no gradient, so a pair counts one frame
    terms["step_loss"] = terms["loss"] / (frames.shape[1] - 1) if config.loss_per_frame else terms["loss"]
    if dice is not None and config.dice_weight > 0:
        # a mean over the labelled frames already: a cine's labels weigh as much as a pair's
        anatomical = config.dice_weight * (1 - dice)
        terms["loss"] = terms["loss"] + anatomical
        terms["step_loss"] = terms["step_loss"] + anatomical
    terms["dice"] = dice if dice is not None else torch.full((), float("nan"), device=device)
    return terms


def _progress_line(row: dict, val: dict) -> dict:
    """The progress bar's figures: this step's loss and KL per frame, the last validation's."""
    line = {"loss": f"{row['loss']:.1f}", "kl/frame": f"{row['kl_frame']:.2f}"}
    for key in ("val_loss", "val_kl_frame", "val_dice"):
        if val.get(key, "") != "":
            line[key] = f"{val[key]:.3g}"
    return line


def _read_resume_state(config: TrainConfig, path: Path, procs: distributed.Processes) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"--resume: no checkpoint at {path}")
    state = read_checkpoint(path)
    # runs written before loss_per_frame existed summed the loss over frames
    saved = TrainConfig(**{"loss_per_frame": False, **state["train_config"], "size": tuple(state["train_config"]["size"])})
    then, now = asdict(saved), asdict(config)
    changed = [f"{k} {then[k]!r} then, {now[k]!r} now" for k in now if k not in RUNTIME_SETTINGS and then[k] != now[k]]
    if changed:
        raise ValueError(f"--resume: {path} was written with other settings ({'; '.join(changed)}); "
                         f"start a new --out folder or use the same settings")
    if state.get("world_size", 1) != procs.world and procs.main:
        warnings.warn(f"--resume: {path} was written by {state.get('world_size', 1)} processes and this run has "
                      f"{procs.world}: the global batch, the learning rate scaling and the data order change",
                      stacklevel=3)
    return state


def train(config: TrainConfig, *, resume: bool = False, progress: bool = True, stop_after: int | None = None) -> dict:
    """Train; returns the last logged row. Under torchrun, every process calls this. `stop_after`
    ends the run early after that many steps (as a kill would, but cleanly) — used to test resuming.
    Sets glibc's malloc to keep freed memory for the next step (motionext.malloc)."""
    keep_freed_memory()
    procs = distributed.start(config.device)
    try:
        return _train(config, procs, resume=resume, progress=progress and procs.main, stop_after=stop_after)
    finally:
        procs.close()


def _train(config: TrainConfig, procs: distributed.Processes, *, resume: bool, progress: bool,
           stop_after: int | None) -> dict:
    out = Path(config.out)
    checkpoint_path = out / "checkpoint.pt"
    device = procs.device
    init = _read_init(config.init)
    model_config = config.model_config(init["config"] if init is not None else None)
    state = _read_resume_state(config, checkpoint_path, procs) if resume else None
    start = int(state["step"]) if state is not None else 0
    if state is not None and start > config.steps:  # the loop would skip, and model.pt would name the wrong step
        raise ValueError(f"--resume: {checkpoint_path} is at step {start}, past --steps {config.steps}; "
                         f"give --steps above {start} to train further")
    if state is not None and start == config.steps and (out / "model.pt").exists():
        if procs.main:
            print(f"motionext train: {out} has reached --steps {config.steps}; nothing to resume "
                  "(give more --steps to train further)", file=sys.stderr)
        return _last_logged_row(out / "log.csv")
    if state is not None and procs.main:
        print(f"motionext train: resuming from {checkpoint_path} at step {start}", file=sys.stderr)
    lr = config.learning_rate(procs.world)
    check_output_folder(out)
    found = [] if resume else [name for name in ("checkpoint.pt", "model.pt", "config.json", "log.csv")
                               if (out / name).exists()]
    if {"checkpoint.pt", "model.pt"} & set(found):
        raise ValueError(f"--out {out} holds a training run already; continue it with --resume or choose another --out")
    if found:  # a file of the user's own by a common name: a new run would write over it
        raise ValueError(f"--out {out} holds {found[0]}, which a new run would replace; choose another --out")

    torch.manual_seed(config.seed)  # the same initial weights in every process
    sequences = _load_data(config, procs, progress, config.data)
    if config.val_data:  # held-out data of its own: every sequence of --data trains
        train_set = sequences
        val_set = _load_data(config, procs, progress, config.val_data) if procs.main else []
    else:
        train_ids, val_ids = split_by_subject([s.name for s in sequences], config.val_fraction, config.seed)
        train_set, val_set = [sequences[i] for i in train_ids], [sequences[i] for i in val_ids]
    loader = _loader(config, train_set, procs, start)
    model = MotionModel(model_config)
    if state is not None:
        model.load_state_dict(state["model"])
    elif init is not None:
        _initial_weights(model, init, config.init)
    model = model.to(device)
    replica = model
    if procs.world > 1:
        replica = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        for group in optimizer.param_groups:
            group["lr"] = lr
    model.train()
    # fp16's narrow range needs the loss scaled so that small gradients do not vanish; bf16 does not
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp_dtype(device) == torch.float16)
    if state is not None and state.get("grad_scaler"):
        scaler.load_state_dict(state["grad_scaler"])

    if procs.main:  # only once the data and the model are known to be good: no run folder for bad input
        out.mkdir(parents=True, exist_ok=True)
        run = {"world_size": procs.world, "global_batch": procs.world * config.batch_size, "lr": lr}
        (out / "config.json").write_text(json.dumps({"train": asdict(config), "run": run,
                                                     "model": model_config.to_dict()}, indent=2))
    log = _Log(out, start) if procs.main else None
    row, last_val = {}, {}
    steps = range(start, config.steps)
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, initial=start, total=config.steps, desc="train", dynamic_ncols=True)
    batches = iter(loader)
    try:
        for step in steps:
            started = time.perf_counter()
            try:
                terms = step_terms(model, replica, next(batches), config, step, device)
            except NonFiniteError as exc:  # the inputs were checked when read: the weights diverged
                raise FloatingPointError(f"step {step + 1}: the model's motion is not finite ({exc}); the run "
                                         "diverged: lower the learning rate") from None
            # Logged terms are the means over all processes; the check is then the same everywhere.
            values = procs.mean(torch.stack([terms[k].detach().float() for k in LOSS_TERMS])).tolist()
            if not math.isfinite(values[0]):
                raise FloatingPointError(f"step {step + 1}: the loss is not finite ({values[0]}); "
                                         "lower the learning rate or check the data")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(terms["step_loss"]).backward()
            scaler.step(optimizer)
            scaler.update()
            row = {"step": step + 1, **{k: v if math.isfinite(v) else "" for k, v in zip(LOSS_TERMS, values)},
                   "seconds": time.perf_counter() - started}
            if procs.main:
                if (step + 1) % config.val_every == 0 or step + 1 == config.steps:
                    val = validate(model, val_set, device, config.num_frames)
                    row.update({f"val_{k}": v for k, v in val.items()})
                    last_val = row
                log.write(row)
                if progress:
                    steps.set_postfix(_progress_line(row, last_val))
                if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps:
                    atomic_save(checkpoint_dict(model, optimizer=optimizer.state_dict(), step=step + 1,
                                                world_size=procs.world, train_config=asdict(config),
                                                grad_scaler=scaler.state_dict()), checkpoint_path)
            if stop_after is not None and step + 1 - start >= stop_after:
                break
        else:
            if procs.main:
                # the codes of the training data, for sampling (latent_prior.py); one sequence has no spread
                if len(train_set) >= MIN_PRIOR_SEQUENCES:
                    model.latent_prior = fit_to_sequences(model, train_set, progress=progress)
                else:
                    print(f"motionext train: {len(train_set)} training sequence(s): too few to fit a sampling prior; "
                          "`sample` will draw from N(0, I)", file=sys.stderr)
                atomic_save(checkpoint_dict(model, step=config.steps, train_config=asdict(config)), out / "model.pt")
        procs.barrier()
    finally:
        if log is not None:
            log.close()
    return row or _last_logged_row(out / "log.csv")  # no step ran: a resume that only wrote model.pt
