"""A Gaussian fitted to the codes the encoder gives the training sequences, to sample from in
place of the paper's N(0, I) (docs/model.md, "Sampling from the fitted prior").

The paper draws every frame's code z~_t independently from N(0, I). The encoder's codes of real
sequences are not like that: the frames of one sequence share much of their code (a
sequence-level part), and the temporal network averages independent draws over its receptive
field, so i.i.d. samples all decode to nearly the model's mean motion. The fitted prior is
z~_t = mean + a + e_t, with a ~ N(0, S) drawn once per sample (S: the covariance of the
sequences' mean codes) and e_t ~ N(0, F) per frame (F: the covariance of the codes about their
sequence's mean, plus the encoder's mean posterior variance). ED's own code is left out, as it
describes no motion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# what motion.sample draws codes from: the fitted prior when the model has one, or the paper's
PRIORS = ("auto", "fitted", "standard")
# a covariance across sequences needs two of them
MIN_PRIOR_SEQUENCES = 2
# sequences with at least this many frames after ED inform the frame-level part (in a pair the
# one code after ED is its own sequence mean)
MIN_FRAMES_FOR_SPREAD = 3
# added to the covariances' diagonals so that their Cholesky factors exist
RIDGE = 1e-6


@dataclass
class LatentPrior:
    """mean (d,), sequence_factor and frame_factor (d, d) lower-triangular Cholesky factors of S
    and F; `sequences`: how many sequences it was fitted to."""

    mean: torch.Tensor
    sequence_factor: torch.Tensor
    frame_factor: torch.Tensor
    sequences: int

    def draw(self, num_samples: int, num_frames: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Codes z~ (num_samples, num_frames, d), float32 on the CPU."""
        d = self.mean.numel()
        a = torch.randn(num_samples, 1, d, generator=generator) @ self.sequence_factor.T
        e = torch.randn(num_samples, num_frames, d, generator=generator) @ self.frame_factor.T
        return self.mean + a + e

    def to_dict(self) -> dict:
        return {"mean": self.mean, "sequence_factor": self.sequence_factor, "frame_factor": self.frame_factor,
                "sequences": self.sequences}

    @classmethod
    def from_dict(cls, data, latent_dim: int, where: str = "latent_prior") -> "LatentPrior":
        """A prior read from a checkpoint, checked against the model's latent size."""
        if not isinstance(data, dict) or not {"mean", "sequence_factor", "frame_factor", "sequences"} <= set(data):
            raise ValueError(f"{where}: a damaged fitted prior (expected mean, sequence_factor, frame_factor, "
                             f"sequences); refit it with `motionext fit-prior`")
        shapes = {"mean": (latent_dim,), "sequence_factor": (latent_dim, latent_dim),
                  "frame_factor": (latent_dim, latent_dim)}
        for name, shape in shapes.items():
            value = data[name]
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape or not torch.isfinite(value).all():
                raise ValueError(f"{where}: {name} must be a finite tensor of shape {shape} for this model's "
                                 f"{latent_dim} latent dimensions; refit it with `motionext fit-prior`")
        return cls(data["mean"].float(), data["sequence_factor"].float(), data["frame_factor"].float(),
                   int(data["sequences"]))


def fit_latent_prior(codes: list, variances: list) -> LatentPrior:
    """The prior of the module docstring from each sequence's posterior means and variances
    (T, d) (ED first; its row is left out)."""
    after_ed = [np.asarray(m, dtype=np.float64)[1:] for m in codes]
    if len(after_ed) < MIN_PRIOR_SEQUENCES:
        raise ValueError(f"fit_latent_prior: needs at least {MIN_PRIOR_SEQUENCES} sequences; got {len(after_ed)}")
    if any(m.shape[0] == 0 for m in after_ed):
        raise ValueError("fit_latent_prior: every sequence needs a frame after ED")
    d = after_ed[0].shape[1]
    sequence_means = np.stack([m.mean(0) for m in after_ed])
    long = [m - m.mean(0) for m in after_ed if m.shape[0] >= MIN_FRAMES_FOR_SPREAD]
    about_mean = np.cov(np.concatenate(long).T) if long else np.zeros((d, d))
    posterior_variance = np.concatenate([np.asarray(v, dtype=np.float64)[1:] for v in variances]).mean(0)
    ridge = RIDGE * np.eye(d)
    sequence_factor = np.linalg.cholesky(np.cov(sequence_means.T) + ridge)
    frame_factor = np.linalg.cholesky(about_mean + np.diag(posterior_variance) + ridge)
    as_tensor = lambda a: torch.from_numpy(a).float()  # noqa: E731
    return LatentPrior(as_tensor(np.concatenate(after_ed).mean(0)), as_tensor(sequence_factor),
                       as_tensor(frame_factor), len(after_ed))


@torch.no_grad()
def fit_to_sequences(model, sequences, *, progress: bool = False) -> LatentPrior:
    """The prior fitted to the encoder's posteriors of preprocessed `sequences` (as training reads
    them: the model's grid, their own phases, no augmentation)."""
    from ..data.batches import TrainingSet

    data = TrainingSet(sequences, augment=False)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    indices = range(len(sequences))
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="fit prior", dynamic_ncols=True)
    codes, variances = [], []
    try:
        for index in indices:
            frames = data[(index, 0)]["frames"].to(device)[None]
            model.check_frames(frames)  # a clear message for data of another size or dimension
            mean, log_var = model.encode(frames)
            codes.append(mean[0].float().cpu().numpy())
            variances.append(log_var[0].float().exp().cpu().numpy())
    finally:
        model.train(was_training)
    return fit_latent_prior(codes, variances)
