"""Batches for training, one process or many: a dataset of sequences, a sampler that walks
through reshuffled epochs split across processes, and a collate function.

Every random draw made for one sequence (its augmentation, and the model's noise) is seeded by
where the sequence falls in its epoch, not by which process handles it: a step's global batch is
then the same set of augmented sequences for any number of processes."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler

from .augment import apply_affine, random_affine
from .preprocess import resample_time


def item_seed(seed: int, epoch: int, position: int) -> int:
    """A 63-bit seed for the sequence at `position` of epoch `epoch`."""
    return int(np.random.SeedSequence([seed, epoch, position]).generate_state(1, np.uint64)[0] >> np.uint64(1))


class TrainingSet(Dataset):
    """Items are (sequence index, item seed) pairs; each gives the sequence's frames, resampled
    to `num_frames` when set and augmented when `augment`."""

    def __init__(self, sequences, *, num_frames: int | None = None, augment: bool = True):
        self.sequences = sequences
        self.num_frames = num_frames
        self.augment = augment

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, item) -> dict:
        index, seed = item
        frames = self.sequences[index].frames
        if self.num_frames is not None:
            frames = resample_time(frames, self.num_frames)
        frames = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))
        if self.augment:
            frames, _ = apply_affine(frames, random_affine(np.random.default_rng(seed)))
        return {"frames": frames, "seed": seed}


def collate(items: list) -> dict:
    lengths = sorted({item["frames"].shape[0] for item in items})
    if len(lengths) > 1:
        raise ValueError(f"a batch mixes sequences of {lengths} frames; set the number of training frames "
                         f"(--frames N) to resample every sequence to N frames")
    return {"frames": torch.stack([item["frames"] for item in items]),
            "seeds": torch.tensor([item["seed"] for item in items], dtype=torch.int64)}


class EpochBatchSampler(Sampler):
    """Endless batches of (sequence index, item seed) for process `rank` of `world`, from step
    `start_step` on. Each epoch is a fresh permutation (torch's DistributedSampler, seeded by
    `seed` and the epoch, without padding); process r takes positions r, r + world, ... of it.
    Step s of any world size therefore covers positions s·B .. s·B + B - 1 of its epoch, where
    B = world × batch_size is the global batch."""

    def __init__(self, size: int, batch_size: int, *, rank: int = 0, world: int = 1, seed: int = 0,
                 start_step: int = 0):
        if batch_size < 1:
            raise ValueError(f"batch size must be positive; got {batch_size}")
        self.size, self.batch_size, self.rank, self.world = size, batch_size, rank, world
        self.seed, self.start_step = seed, start_step
        self.steps_per_epoch = (size // world) // batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"{size} training sequences are fewer than the global batch "
                             f"({world} processes × batch size {batch_size})")

    def __iter__(self):
        epoch, within = divmod(self.start_step, self.steps_per_epoch)
        while True:
            sampler = DistributedSampler(range(self.size), num_replicas=self.world, rank=self.rank, shuffle=True,
                                         seed=self.seed, drop_last=True)
            sampler.set_epoch(epoch)
            local = list(sampler)
            for step in range(within, self.steps_per_epoch):
                first = step * self.batch_size
                yield [(local[j], item_seed(self.seed, epoch, self.rank + self.world * j))
                       for j in range(first, first + self.batch_size)]
            epoch, within = epoch + 1, 0


def model_noise(seeds: torch.Tensor, num_frames: int, latent_dim: int, tds_probability: float, device) -> dict:
    """The model's random draws for each sequence of a batch, from its item seed: posterior noise
    and prior samples (B, T, d) and the temporal-dropout mask (B, T)."""
    posterior, prior, mask = [], [], []
    for seed in seeds.tolist():
        rng = np.random.default_rng([seed, 1])
        posterior.append(rng.standard_normal((num_frames, latent_dim), dtype=np.float32))
        prior.append(rng.standard_normal((num_frames, latent_dim), dtype=np.float32))
        mask.append(rng.random(num_frames) < tds_probability)
    as_tensor = lambda arrays: torch.from_numpy(np.stack(arrays)).to(device)  # noqa: E731
    return {"posterior_noise": as_tensor(posterior), "prior_noise": as_tensor(prior), "tds_mask": as_tensor(mask)}
