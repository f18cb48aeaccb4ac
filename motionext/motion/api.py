"""What users do with a trained motion model: track, compensate, transport, sample, reconstruct.

Every function takes a model from :func:`motionext.load_model` and frames with ED first, as a
(T, *S) array/tensor on the model's grid, a Cine or a NIfTI path. Displacements are in voxels
and map frame-t coordinates to ED: ``warp(ED, displacements[t]) ≈ frame t``. Results are tensors
on the model's device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import ops
from ..data.cine import even_phases
from ..model.code_fill import FILLS, code_weights
from ..model.latent_prior import PRIORS
from ..model.motion_model import normalized_times
from ..validate import choice, integer
from .inputs import as_sequence, model_device

MAX_SAMPLED = 1000  # frames or samples: a cycle has 20-30 frames; more would only exhaust memory
from .refine import RefineSettings, refine_motion


@dataclass
class Tracking:
    displacements: torch.Tensor   # (T, ndim, *S) voxels
    velocities: torch.Tensor      # (T, ndim, *S)
    warped: torch.Tensor          # (T, *S): ED moved to every frame
    labels: torch.Tensor | None   # (T, *S): ED labels moved to every frame, if given
    z: torch.Tensor               # (T, d): the motion matrix
    spacing: tuple
    frames: torch.Tensor          # (T, *S) the normalised input
    cine: object = None           # the preprocessed Cine when the input was read (its geometry)


def warp_each(image, displacements, mode: str = "bilinear") -> torch.Tensor:
    """One image (*S), or one image per frame (T, *S), warped by every frame's displacement
    (T, ndim, *S): (T, *S), in the displacements' dtype."""
    u = torch.as_tensor(displacements)
    image = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image).to(u.device, u.dtype)
    images = image.expand(u.shape[0], *u.shape[2:]) if image.dim() == u.dim() - 2 else image
    return ops.warp(images.unsqueeze(1), u, mode=mode)[:, 0]


def _posterior(model, frames: torch.Tensor):
    mean, _ = model.encode(frames[None])
    return mean  # (1, T, d)


def _fitted(model, seq, refine: int, settings: RefineSettings | None, progress: bool):
    """The sequence's motion: (z (1, T, d), velocity, displacement (1, T, ndim, *S)), from the
    encoder, or fitted to the frames when `refine` > 0 (see refine.py)."""
    codes, residual = refine_motion(model, seq.frames, seq.spacing, _posterior(model, seq.frames)[0], refine,
                                    settings or RefineSettings(), progress=progress, times=seq.times)
    z = model.motion_matrix(codes[None], seq.times[None])
    return (z, *_decode(model, z, seq.frames[0], seq.spacing, seq.times, residual))


def _decode(model, z: torch.Tensor, ed: torch.Tensor, spacing, times: torch.Tensor,
            residual: torch.Tensor | None = None):
    """(velocity, displacement) of the motion matrix z (1, T, d) at cycle phases `times` (T,), plus
    a refined residual velocity."""
    velocity = model.decode(z, ed[None], spacing, times[None].to(z.device))
    if residual is not None:
        velocity = velocity + residual[None]
    return velocity, model.exponentiate(velocity)


@torch.no_grad()
def track(model, frames, *, spacing=None, labels=None, refine: int = 0, refine_settings: RefineSettings | None = None,
          progress: bool = False) -> Tracking:
    """Register every frame to ED; propagate ED `labels` (*S) to every frame when given.
    Two frames (ED, ES) make a plain pairwise registration. `refine` > 0 fits the motion to
    these frames for that many steps (motionext.motion.refine; 50 is a good start)."""
    seq = as_sequence(model, frames, spacing)
    if labels is None and seq.cine is not None and 0 in seq.cine.labels:
        labels = seq.cine.labels[0]  # a Cine's own ED labels, on the model's grid
    if labels is not None:
        labels = torch.as_tensor(np.asarray(labels)).to(seq.frames.device)
        if tuple(labels.shape) != tuple(seq.frames.shape[1:]):
            raise ValueError(f"track: labels of shape {tuple(labels.shape)} do not match the frames {tuple(seq.frames.shape[1:])}")
    z, velocity, displacement = _fitted(model, seq, refine, refine_settings, progress)
    warped = model.warp_frames(seq.frames[:1], displacement)[0]
    moved = None
    if labels is not None:
        moved = model.warp_frames(labels[None].float(), displacement, mode="nearest")[0].round().to(labels.dtype)
    return Tracking(displacement[0], velocity[0], warped, moved, z[0], seq.spacing, seq.frames, seq.cine)


@torch.no_grad()
def compensate(model, frames, *, spacing=None, refine: int = 0, refine_settings: RefineSettings | None = None,
               progress: bool = False) -> torch.Tensor:
    """Every frame warped back onto ED with the inverse deformation exp(-v): (T, *S)."""
    result = track(model, frames, spacing=spacing, refine=refine, refine_settings=refine_settings, progress=progress)
    inverse = model.exponentiate(-result.velocities[None])[0]
    return ops.warp(result.frames[:, None], inverse)[:, 0]


@torch.no_grad()
def transport(model, source, target_ed, *, spacing=None) -> Tracking:
    """Subject A's motion (its motion matrix) applied to subject B's ED frame: a simulated
    sequence of B with A's motion. `source` is A's sequence, `target_ed` B's ED frame (*S)."""
    a = as_sequence(model, source, spacing, what="transport source")
    b = _one_frame(model, target_ed, spacing, "transport target ED frame")
    z = model.motion_matrix(_posterior(model, a.frames), a.times[None])
    velocity, displacement = _decode(model, z, b.frames[0], b.spacing, a.times)
    warped = model.warp_frames(b.frames[:1], displacement)[0]
    return Tracking(displacement[0], velocity[0], warped, None, z[0], b.spacing, b.frames[:1])


def _one_frame(model, frame, spacing, what: str):
    """One frame (*S) as a two-frame Sequence (the frame twice), refused by name if it is not one."""
    frame = np.asarray(frame.detach().cpu() if isinstance(frame, torch.Tensor) else frame)
    if frame.ndim != model.config.ndim:
        raise ValueError(f"{what}: expected one frame of shape {model.config.image_size}; got shape {frame.shape} "
                         "(for a sequence, pass its ED frame: frames[0])")
    return as_sequence(model, np.stack([frame, frame]), spacing, what=what)


@dataclass
class Sampling:
    frames: torch.Tensor        # (N, T, *S) simulated sequences
    displacements: torch.Tensor # (N, T, ndim, *S)
    uncertainty: torch.Tensor   # (T, *S): per-voxel std of the displacement (magnitude, voxels) across samples
    z: torch.Tensor             # (N, T, d)


@torch.no_grad()
def sample(model, ed_frame, *, num_frames: int = 20, num_samples: int = 5, spacing=None, seed: int | None = None,
           codes=None, prior: str = "auto") -> Sampling:
    """Simulate sequences from an ED frame alone. The codes z~_t are drawn from `prior`:
    "standard", N(0, I) for every frame as in the paper; "fitted", the Gaussian fitted to the
    model's training codes (model.latent_prior, motionext.model.latent_prior), whose samples
    differ more from one another; "auto" (the default), "fitted" when the model has one.
    `codes` (num_samples, num_frames, latent_dim) gives the z~ to decode instead (drawn from
    another distribution, or moved through the latent space); it sets both counts."""
    choice("sample", "prior", prior, PRIORS)
    if codes is not None:
        z_tilde = _sample_codes(model, codes)
        num_samples, num_frames = z_tilde.shape[:2]
    integer("sample", "num_frames", num_frames, minimum=2, maximum=MAX_SAMPLED)
    integer("sample", "num_samples", num_samples, minimum=1, maximum=MAX_SAMPLED)
    fitted = getattr(model, "latent_prior", None)
    if prior == "fitted" and fitted is None:
        raise ValueError("sample: prior='fitted', but this model has no fitted prior; add one with "
                         "`motionext fit-prior`, or use prior='standard'")
    if seed is not None:
        integer("sample", "seed", seed)
    seq = _one_frame(model, ed_frame, spacing, "sample ED frame")
    if codes is None:
        # drawn on the CPU, so that a seed gives the same samples on every device
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        if fitted is not None and prior != "standard":
            z_tilde = fitted.draw(num_samples, num_frames, generator)
        else:
            z_tilde = torch.randn(num_samples, num_frames, model.config.latent_dim, generator=generator)
    device = model_device(model)
    times = normalized_times(num_frames, num_samples, device)
    z = model.motion_matrix(z_tilde.to(device), times)
    ed_batch = seq.frames[:1].expand(num_samples, *seq.frames.shape[1:])
    velocity = model.decode(z, ed_batch, seq.spacing, times)
    displacement = model.exponentiate(velocity)
    frames = model.warp_frames(ed_batch, displacement)
    magnitude = displacement.pow(2).sum(2).sqrt()
    return Sampling(frames, displacement, magnitude.std(0, unbiased=False), z)


def _sample_codes(model, codes) -> torch.Tensor:
    """`codes` for sample(): a finite (num_samples, num_frames, latent_dim) float tensor on the CPU."""
    z = torch.as_tensor(np.asarray(codes.detach().cpu() if isinstance(codes, torch.Tensor) else codes),
                        dtype=torch.float32)
    d = model.config.latent_dim
    if z.dim() != 3 or z.shape[2] != d:
        raise ValueError(f"sample: codes must be (num_samples, num_frames, {d}); got shape {tuple(z.shape)}")
    if not torch.isfinite(z).all():
        raise ValueError("sample: codes contain NaN or Inf")
    return z


def frame_subset(num_frames: int, *, every: int | None = None, first: int | None = None, frames=None) -> list:
    """The frame indices a reconstruction is given: every k-th, the first n, or an explicit list.
    ED (0) is always included."""
    if sum(x is not None for x in (every, first, frames)) > 1:
        raise ValueError("choose one of every, first or frames")
    if every is not None:
        if every < 1:
            raise ValueError(f"every must be >= 1; got {every}")
        chosen = list(range(0, num_frames, every))
    elif first is not None:
        if first < 1:
            raise ValueError(f"first must be >= 1 (ED is frame 0); got {first}")
        chosen = list(range(min(first, num_frames)))
    elif frames is not None:
        if isinstance(frames, (str, bytes)) or not hasattr(frames, "__iter__"):
            raise ValueError(f"frames must be a list of frame indices; got {frames!r}")
        chosen = sorted({0, *[integer("frame_subset", "a frame index", f) for f in frames]})
        bad = [f for f in chosen if not 0 <= f < num_frames]
        if bad:
            raise ValueError(f"frames {bad} are outside 0..{num_frames - 1}")
    else:
        chosen = [0]
    return sorted(set(chosen) | {0})


@torch.no_grad()
def reconstruct(model, frames, given, *, times=None, spacing=None, fill: str = "interpolate", refine: int = 0,
                refine_settings: RefineSettings | None = None, progress: bool = False) -> Tracking:
    """The full sequence from a subset of its frames (`given`: indices, ED always included).
    Each missing frame's code z~_t is interpolated in time between the given frames' posterior
    codes (`fill="interpolate"`), or is the prior mean as in the paper (`fill="prior"`, also what
    ED alone gives); the temporal network then reads the whole sequence of codes (see
    code_weights). `times` (normalised, in [0, 1)) asks for arbitrary instants instead of the
    frames (temporal super-resolution); the given frames keep their times t/T. Only the given
    frames are read.

    `refine` > 0 first fits the given frames' codes, and a smooth residual velocity per given
    frame, to those frames for that many steps (as track's refinement, with the temporal network
    reading every instant and the smoothness penalties weighed per given frame as in tracking);
    each missing instant takes the same combination of the given frames' residuals as of their
    codes. 30 is a good start (docs/model.md, "Fitted rebuilds, balanced")."""
    choice("reconstruct", "fill", fill, FILLS)
    seq = as_sequence(model, frames, spacing)
    t = seq.frames.shape[0]
    given = frame_subset(t, frames=given)
    posterior = _posterior(model, seq.frames[given])[0]  # ED first: the given frames alone
    frame_times = even_phases(t)
    query = frame_times if times is None else np.asarray(torch.as_tensor(times, dtype=torch.float32).cpu()).ravel()
    if query.size == 0 or not ((query >= 0) & (query < 1)).all():  # NaN fails both comparisons
        raise ValueError(f"reconstruct: times must be in [0, 1); got {query.tolist()}")
    # One sequence over the distinct instants (given frames and queries) in time order. The
    # bookkeeping is on the host; only the codes live on the model's device.
    instants = np.unique(np.concatenate([frame_times[given], query]))
    weights = torch.from_numpy(code_weights(instants, frame_times[given], fill)).to(posterior)
    instant_times = torch.from_numpy(instants).to(posterior)
    codes, residual = refine_motion(model, seq.frames[given], seq.spacing, posterior, refine,
                                    refine_settings or RefineSettings(), progress=progress,
                                    times=torch.from_numpy(frame_times[given]).to(posterior),
                                    fill=(weights, instant_times))
    z_all = model.motion_matrix((weights @ codes)[None], instant_times[None])[0]
    rows = [int(np.flatnonzero(np.isclose(instants, q))[0]) for q in query]
    z = z_all[rows]
    velocity, displacement = _decode(model, z[None], seq.frames[0], seq.spacing,
                                     torch.from_numpy(query.astype(np.float32)),
                                     None if residual is None else residual[rows])
    warped = model.warp_frames(seq.frames[:1], displacement)[0]
    return Tracking(displacement[0], velocity[0], warped, None, z, seq.spacing, seq.frames)
