"""Batches for training, one process or many: a dataset of sequences, a sampler that walks
through reshuffled epochs split across processes, and a collate function.

Every random draw made for one sequence (its augmentation, and the model's noise) is seeded by
where the sequence falls in its epoch, not by which process handles it: a step's global batch is
then the same set of augmented sequences for any number of processes."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler

from .augment import apply_affine, random_affine, random_intensity
from .preprocess import resample_time
from .cine import cycle_phases, even_phases
from ..model.code_fill import drop_rate
from ..model.motion_model import TDS_MIN_FRAMES


def item_seed(seed: int, epoch: int, position: int) -> int:
    """A 63-bit seed for the sequence at `position` of epoch `epoch`."""
    return int(np.random.SeedSequence([seed, epoch, position]).generate_state(1, np.uint64)[0] >> np.uint64(1))


class TrainingSet(Dataset):
    """Items are (sequence index, item seed) pairs; each gives the sequence's frames, resampled
    to `num_frames` when set and augmented when `augment` (geometry; also intensities when
    `intensity`), their cycle phases, and the label maps of the labelled frames."""

    def __init__(self, sequences, *, num_frames: int | None = None, augment: bool = True, intensity: bool = False):
        self.sequences = sequences
        self.num_frames = num_frames
        self.augment = augment
        self.intensity = intensity
        sparse = [s.name for s in sequences if getattr(s, "times", None) is not None and s.num_frames != num_frames]
        if num_frames is not None and sparse:
            raise ValueError(f"--frames {num_frames}: {sparse[0]} (and {len(sparse) - 1} more) are sparse sequences "
                             f"(ED and ES only), which cannot be resampled in time; train them without --frames "
                             f"(batches then hold sequences of one length)")

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, item) -> dict:
        index, seed = item
        sequence = self.sequences[index]
        frames, times = sequence.frames, cycle_phases(sequence)
        labels = getattr(sequence, "labels", None) or {}
        if self.num_frames is not None and self.num_frames != len(frames):
            frames, times, labels = resample_time(frames, self.num_frames), even_phases(self.num_frames), {}
        count = len(frames)
        times = torch.from_numpy(times)
        frames = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))
        label_maps = torch.zeros(frames.shape, dtype=torch.uint8)
        labelled = torch.zeros(count, dtype=torch.bool)
        for t, lab in labels.items():
            label_maps[t], labelled[t] = torch.from_numpy(np.asarray(lab, dtype=np.uint8)), True
        if self.augment:
            rng = np.random.default_rng(seed)
            frames, label_maps = apply_affine(frames, random_affine(rng), label_maps)
            if self.intensity:
                frames = random_intensity(frames, np.random.default_rng([seed, 2]))
        return {"frames": frames, "seed": seed, "times": times, "labels": label_maps, "labelled": labelled}


def collate(items: list) -> dict:
    lengths = sorted({item["frames"].shape[0] for item in items})
    if len(lengths) > 1:
        raise ValueError(f"a batch mixes sequences of {lengths} frames; set the number of training frames "
                         f"(--frames N) to resample every sequence to N frames")
    return {"frames": torch.stack([item["frames"] for item in items]),
            "seeds": torch.tensor([item["seed"] for item in items], dtype=torch.int64),
            **{key: torch.stack([item[key] for item in items]) for key in ("times", "labels", "labelled")}}


class EpochBatchSampler(Sampler):
    """Endless batches of (sequence index, item seed) for process `rank` of `world`, from step
    `start_step` on. Each epoch is a fresh permutation (torch's DistributedSampler, seeded by
    `seed` and the epoch, without padding); process r takes positions r, r + world, ... of it.
    Step s of any world size therefore covers positions s·B .. s·B + B - 1 of its epoch, where
    B = world × batch_size is the global batch.

    With `lengths` (frames per sequence; training passes them), every global batch holds
    sequences of one length: each length's sequences, in the epoch's permuted order, are cut into
    global batches (the last one filled up with that length's first sequences of the epoch, so
    every sequence trains each epoch, also where there are fewer than a batch), and the batches
    run in the order of their first sequence's place in the permutation, so lengths interleave at
    random. With one length and a size that the global batch divides, this is the scheme above."""

    def __init__(self, size: int, batch_size: int, *, rank: int = 0, world: int = 1, seed: int = 0,
                 start_step: int = 0, lengths=None):
        if batch_size < 1:
            raise ValueError(f"batch size must be positive; got {batch_size}")
        self.size, self.batch_size, self.rank, self.world = size, batch_size, rank, world
        self.seed, self.start_step = seed, start_step
        self.lengths = list(lengths) if lengths is not None else None
        if self.lengths is not None:
            if len(self.lengths) != size:
                raise ValueError(f"lengths has {len(self.lengths)} entries for {size} sequences")
            counts = np.unique(self.lengths, return_counts=True)[1]
            self.steps_per_epoch = int(sum(-(-c // (world * batch_size)) for c in counts))
            return
        self.steps_per_epoch = (size // world) // batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"{size} training sequences are fewer than the global batch "
                             f"({world} processes × batch size {batch_size})")

    def _global_batches(self, epoch: int) -> list:
        """The epoch's global batches of one length each, as lists of sequence indices."""
        generator = torch.Generator().manual_seed(self.seed + epoch)  # DistributedSampler's permutation
        order = torch.randperm(self.size, generator=generator).tolist()
        size = self.world * self.batch_size
        batches = []  # (place in the permutation of the batch's first sequence, the batch)
        for length in sorted(set(self.lengths)):
            places = [p for p, i in enumerate(order) if self.lengths[i] == length]
            group = [order[p] for p in places]
            for first in range(0, len(group), size):
                chunk = group[first:first + size]
                chunk += (group * size)[:size - len(chunk)]  # filled up from the group's start
                batches.append((places[first], chunk))
        return [chunk for _, chunk in sorted(batches)]

    def __iter__(self):
        epoch, within = divmod(self.start_step, self.steps_per_epoch)
        while True:
            if self.lengths is not None:
                batches = self._global_batches(epoch)
                for step in range(within, self.steps_per_epoch):
                    places = range(self.rank, self.world * self.batch_size, self.world)  # this process's share
                    yield [(batches[step][e], item_seed(self.seed, epoch, step * self.world * self.batch_size + e))
                           for e in places]
                epoch, within = epoch + 1, 0
                continue
            sampler = DistributedSampler(range(self.size), num_replicas=self.world, rank=self.rank, shuffle=True,
                                         seed=self.seed, drop_last=True)
            sampler.set_epoch(epoch)
            local = list(sampler)
            for step in range(within, self.steps_per_epoch):
                first = step * self.batch_size
                yield [(local[j], item_seed(self.seed, epoch, self.rank + self.world * j))
                       for j in range(first, first + self.batch_size)]
            epoch, within = epoch + 1, 0


def model_noise(seeds: torch.Tensor, num_frames: int, latent_dim: int, tds_probability: float, device,
                tds_fill: str = "prior") -> dict:
    """The model's random draws for each sequence of a batch, from its item seed: posterior noise
    and prior samples (B, T, d) and the temporal-dropout mask (B, T), which is empty for
    sequences shorter than TDS_MIN_FRAMES (its rate: code_fill.drop_rate)."""
    posterior, prior, mask = [], [], []
    for seed in seeds.tolist():
        rng = np.random.default_rng([seed, 1])
        posterior.append(rng.standard_normal((num_frames, latent_dim), dtype=np.float32))
        prior.append(rng.standard_normal((num_frames, latent_dim), dtype=np.float32))
        drops = rng.random(num_frames)
        # drawn last, so that "prior" runs keep the draws they had before tds_fill existed
        rate = drop_rate(tds_probability, tds_fill, rng.random()) if num_frames >= TDS_MIN_FRAMES else 0.0
        mask.append(drops < rate)
    as_tensor = lambda arrays: torch.from_numpy(np.stack(arrays)).to(device)  # noqa: E731
    return {"posterior_noise": as_tensor(posterior), "prior_noise": as_tensor(prior), "tds_mask": as_tensor(mask)}
