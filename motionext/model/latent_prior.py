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

The mean follows the cycle phase: mean + sum over h = 1..H of c_h cos(2 pi h p) + s_h sin(2 pi h p)
at phase p, fitted by least squares to the codes at their own phases (ED/ES pairs give ES at its
true phase; cines every frame's). A single mean, dominated by the many diastolic frames of the
cines, drew systole's codes too close to rest: weak and mistimed samples (docs/model.md, "A mean
that follows the phase").
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
# harmonics of the cycle phase in the mean (docs/model.md, "A mean that follows the phase")
HARMONICS = 2


def phase_basis(phases, harmonics: int) -> np.ndarray:
    """(T, 2 * harmonics): cos(2 pi h p) and sin(2 pi h p) for h = 1..harmonics at each phase p."""
    p = 2 * np.pi * np.asarray(phases, dtype=np.float64).reshape(-1, 1)
    h = np.arange(1, harmonics + 1)
    return np.stack([np.cos(p * h), np.sin(p * h)], axis=2).reshape(p.shape[0], 2 * harmonics)


@dataclass
class LatentPrior:
    """mean (d,), sequence_factor and frame_factor (d, d) lower-triangular Cholesky factors of S
    and F; `sequences`: how many sequences it was fitted to; phase_terms (2H, d): the mean's
    harmonics (c_1, s_1, c_2, s_2, ...), none (0 rows) for a mean that does not follow the phase,
    as priors fitted before 2026-12-07 have."""

    mean: torch.Tensor
    sequence_factor: torch.Tensor
    frame_factor: torch.Tensor
    sequences: int
    phase_terms: torch.Tensor | None = None

    @property
    def harmonics(self) -> int:
        return 0 if self.phase_terms is None else self.phase_terms.shape[0] // 2

    def _terms(self) -> torch.Tensor:
        """phase_terms, with 0 rows where the mean does not follow the phase."""
        return self.phase_terms if self.phase_terms is not None else torch.zeros(0, self.mean.numel())

    def mean_at(self, phases) -> torch.Tensor:
        """The mean code at each cycle phase (T,) -> (T, d)."""
        return self.mean + torch.from_numpy(phase_basis(phases, self.harmonics)).float() @ self._terms()

    def draw(self, num_samples: int, num_frames: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Codes z~ (num_samples, num_frames, d), float32 on the CPU, for frames at phases t / num_frames
        (as motion.sample decodes them)."""
        d = self.mean.numel()
        a = torch.randn(num_samples, 1, d, generator=generator) @ self.sequence_factor.T
        e = torch.randn(num_samples, num_frames, d, generator=generator) @ self.frame_factor.T
        return self.mean_at(np.arange(num_frames) / num_frames) + a + e

    def to_dict(self) -> dict:
        return {"mean": self.mean, "sequence_factor": self.sequence_factor, "frame_factor": self.frame_factor,
                "sequences": self.sequences, "phase_terms": self._terms()}

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
        terms = data.get("phase_terms")
        if terms is not None and (not isinstance(terms, torch.Tensor) or terms.dim() != 2 or terms.shape[0] % 2
                                  or terms.shape[1] != latent_dim or not torch.isfinite(terms).all()):
            raise ValueError(f"{where}: phase_terms must be a finite tensor of shape (2 * harmonics, {latent_dim}) "
                             f"for this model's {latent_dim} latent dimensions; refit it with `motionext fit-prior`")
        return cls(data["mean"].float(), data["sequence_factor"].float(), data["frame_factor"].float(),
                   int(data["sequences"]), None if terms is None or terms.shape[0] == 0 else terms.float())


def fit_latent_prior(codes: list, variances: list, phases: list | None = None,
                     harmonics: int = HARMONICS) -> LatentPrior:
    """The prior of the module docstring from each sequence's posterior means and variances
    (T, d) (ED first; its row is left out) and its frames' cycle phases (T,) in [0, 1). Without
    `phases`, or with `harmonics` 0, the mean does not follow the phase. Fewer harmonics are fitted
    where the codes have too few distinct phases for `harmonics` (2H + 1 are needed)."""
    after_ed = [np.asarray(m, dtype=np.float64)[1:] for m in codes]
    if len(after_ed) < MIN_PRIOR_SEQUENCES:
        raise ValueError(f"fit_latent_prior: needs at least {MIN_PRIOR_SEQUENCES} sequences; got {len(after_ed)}")
    if any(m.shape[0] == 0 for m in after_ed):
        raise ValueError("fit_latent_prior: every sequence needs a frame after ED")
    if isinstance(harmonics, bool) or not isinstance(harmonics, (int, np.integer)) or harmonics < 0:
        raise ValueError(f"fit_latent_prior: harmonics must be an integer >= 0; got {harmonics!r}")
    d = after_ed[0].shape[1]
    codes_after_ed = np.concatenate(after_ed)
    mean, terms = codes_after_ed.mean(0), np.zeros((0, d))
    if phases is not None and harmonics > 0:
        phase_after_ed = _phases_after_ed(phases, after_ed)
        harmonics = min(int(harmonics), (np.unique(phase_after_ed.round(6)).size - 1) // 2)
        if harmonics > 0:
            design = np.hstack([np.ones((phase_after_ed.size, 1)), phase_basis(phase_after_ed, harmonics)])
            solution = np.linalg.lstsq(design, codes_after_ed, rcond=None)[0]
            mean, terms = solution[0], solution[1:]
            bounds = np.cumsum([0] + [m.shape[0] for m in after_ed])
            # what the phase explains is taken out; the rest is the sequences' and frames' spread
            after_ed = [m - design[bounds[i]:bounds[i + 1]] @ solution for i, m in enumerate(after_ed)]
    sequence_means = np.stack([m.mean(0) for m in after_ed])
    long = [m - m.mean(0) for m in after_ed if m.shape[0] >= MIN_FRAMES_FOR_SPREAD]
    about_mean = np.cov(np.concatenate(long).T) if long else np.zeros((d, d))
    posterior_variance = np.concatenate([np.asarray(v, dtype=np.float64)[1:] for v in variances]).mean(0)
    ridge = RIDGE * np.eye(d)
    sequence_factor = np.linalg.cholesky(np.cov(sequence_means.T) + ridge)
    frame_factor = np.linalg.cholesky(about_mean + np.diag(posterior_variance) + ridge)
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).float()  # noqa: E731
    return LatentPrior(as_tensor(mean), as_tensor(sequence_factor), as_tensor(frame_factor), len(after_ed),
                       as_tensor(terms) if terms.shape[0] else None)


def _phases_after_ed(phases: list, after_ed: list) -> np.ndarray:
    """Every sequence's phases after ED, checked against its codes, as one array."""
    if len(phases) != len(after_ed):
        raise ValueError(f"fit_latent_prior: {len(phases)} sequences of phases for {len(after_ed)} of codes")
    rows = []
    for i, (p, m) in enumerate(zip(phases, after_ed)):
        p = np.asarray(p, dtype=np.float64).ravel()[1:]
        if p.size != m.shape[0]:
            raise ValueError(f"fit_latent_prior: sequence {i} has {p.size + 1} phases for {m.shape[0] + 1} codes")
        if not np.isfinite(p).all() or (p < 0).any() or (p >= 1).any():
            raise ValueError(f"fit_latent_prior: sequence {i}'s phases must be finite and in [0, 1)")
        rows.append(p)
    return np.concatenate(rows)


@torch.no_grad()
def fit_to_sequences(model, sequences, *, progress: bool = False, harmonics: int = HARMONICS) -> LatentPrior:
    """The prior fitted to the encoder's posteriors of preprocessed `sequences` (as training reads
    them: the model's grid, their own phases, no augmentation), its mean following the phase with
    `harmonics` harmonics."""
    from ..data.batches import TrainingSet

    data = TrainingSet(sequences, augment=False)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    indices = range(len(sequences))
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="fit prior", dynamic_ncols=True)
    codes, variances, phases = [], [], []
    try:
        for index in indices:
            item = data[(index, 0)]
            phases.append(item["times"].numpy())
            frames = item["frames"].to(device)[None]
            model.check_frames(frames)  # a clear message for data of another size or dimension
            mean, log_var = model.encode(frames)
            codes.append(mean[0].float().cpu().numpy())
            variances.append(log_var[0].float().exp().cpu().numpy())
    finally:
        model.train(was_training)
    return fit_latent_prior(codes, variances, phases, harmonics)
