"""Fitting a trained model's motion to one sequence at test time.

The encoder gives each frame's code z~_t in one shot; its motion is what the decoder can express
from that code. On data unlike the training cohort both can fall short. `refine_motion` fits
them to the sequence by running Adam on the model's own training objective (the symmetric LNCC
term, weight lambda, plus the prior's 0.5 * ||z~||^2: the KL term with the posterior variance at
1), with a wider LNCC window than in training (`similarity_window`), and smoothness penalties,
per frame: the mean magnitude of the velocity's spatial gradient, in mm per voxel
(`smoothness_weight`), of its spatial second differences, in mm per voxel^2 (`curvature_weight`;
it leaves affine motion, such as a uniform contraction, uncharged), and of its second difference
over time, in mm per frame^2 (`temporal_smoothness_weight`, in sequences of 3 frames or more).
It fits two things together:

- **the codes z~** (the maximum a posteriori codes, starting from the encoder's means). The
  motion matrix stays meaningful, so transport and the other uses can still read it;
- **a residual velocity** per frame, added to the decoded one. It is Gaussian-smoothed in
  space (`residual_sigma_mm`, wider than the decoder's own smoothing) and in time (as the
  decoder's velocities), and goes through the same scaling and squaring, so the deformation
  stays smooth and diffeomorphic. It carries what the decoder cannot express.

An optional global similarity term (`global_similarity_weight`, off by default) adds 1 - NCC over
the whole image per frame.

The encoder, temporal network and decoder stay fixed. `motionext track --refine N` (and
compensate, evaluate) use it, with `--refine-settings JSON` to change the settings;
docs/results-phantom.md measures it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields, replace

import torch

from ..malloc import keep_freed_memory
from ..model.layers import smooth_spatial
from ..model.losses import (global_ncc, motion_loss, spatial_curvature_penalty, spatial_gradient_penalty,
                            temporal_curvature_penalty)
from ..model.motion_model import normalized_times
from ..ops._autocast import autocast_off
from ..ops._checks import check_odd_window


MAX_RESIDUAL_SIGMA_MM = 1000.0


@dataclass(frozen=True)
class RefineSettings:
    code_rate: float = 0.05            # Adam step size for the codes
    residual_rate: float = 1.5         # Adam step size for the residual velocity (voxels)
    residual_sigma_mm: float = 5.0     # Gaussian smoothing of the residual; at most MAX_RESIDUAL_SIGMA_MM
    smoothness_weight: float = 500.0   # on the velocity's mean spatial gradient (mm/voxel), per frame
    # on its mean spatial second difference (mm/voxel^2), per frame. Most of the smoothing is here,
    # not in the gradient: a gradient penalty shrinks the wall's contraction itself (docs/model.md)
    curvature_weight: float = 3000.0
    temporal_smoothness_weight: float = 50.0  # on its mean second difference over time (mm/frame^2)
    # LNCC window (voxels) of the similarity term. With the training window (9) the fit follows
    # per-frame noise; a wider one is steadier on real images (docs/model.md)
    similarity_window: int = 15
    # weight of 1 - NCC over the whole image, per frame (0: off). It lifts Dice on the phantom and
    # ACDC but makes real-data fits rougher (docs/model.md), so it is off by default
    global_similarity_weight: float = 0.0

    def __post_init__(self):
        check_odd_window("refine", "similarity_window", self.similarity_window)
        positive = ("code_rate", "residual_rate", "residual_sigma_mm")
        term_weights = ("smoothness_weight", "curvature_weight", "temporal_smoothness_weight",
                        "global_similarity_weight")  # 0: off
        for name in positive + term_weights:
            value, zero_allowed = getattr(self, name), name in term_weights
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                    or value < 0 or (value == 0 and not zero_allowed)):
                kind = "non-negative" if zero_allowed else "positive"
                raise ValueError(f"refine: {name} must be a {kind} number; got {value!r}")
        if self.residual_sigma_mm > MAX_RESIDUAL_SIGMA_MM:  # its kernel grows with it, past any image
            raise ValueError(f"refine: residual_sigma_mm must be at most {MAX_RESIDUAL_SIGMA_MM:g} mm (wider than any "
                             f"image: the residual is then nearly constant); got {self.residual_sigma_mm!r}")


def settings_from_json(text: str) -> RefineSettings:
    """RefineSettings from a JSON object of the fields to change, e.g. '{"similarity_window": 21}'
    (what `--refine-settings` takes); each value is checked as RefineSettings checks it."""
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"refine settings: not valid JSON ({exc.msg}): {text!r}") from None
    known = sorted(field.name for field in fields(RefineSettings))
    if not isinstance(values, dict):
        raise ValueError(f"refine settings: expected a JSON object of settings ({', '.join(known)}); got {text!r}")
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"refine settings: unknown {', '.join(unknown)}; the settings are {', '.join(known)}")
    return RefineSettings(**values)


def check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"refine: steps must be a non-negative integer; got {steps!r}")
    return steps


def refine_motion(model, frames: torch.Tensor, spacing, z_tilde: torch.Tensor, steps: int,
                  settings: RefineSettings = RefineSettings(), *, progress: bool = False,
                  times: torch.Tensor | None = None, fill: tuple | None = None):
    """(codes z~ (T, d), residual velocity (T, ndim, *S) or None) after `steps` Adam steps,
    starting from `z_tilde` (T, d), for the frames (T, *S) with ED first, at cycle phases
    `times` (T,) (default t / T).

    `fill` = (weights (N, T), instants (N,)) fits a reconstruction instead: the frames are the ones
    given, and the temporal network reads N instants in time order (the given frames' among
    them), instant n's code being weights[n] @ z~ (code_fill.code_weights). Each instant's
    residual is the same combination of the given frames' residuals, so the residual comes back
    (N, ndim, *S); the objective still compares only the given frames, and its penalties, which
    cover all N instants, are scaled by T / N."""
    if check_steps(steps) == 0:
        return z_tilde, None
    keep_freed_memory()  # each step's feature maps reuse the last one's memory (motionext.malloc)
    from tqdm.auto import tqdm

    sequence = frames[None]
    times = normalized_times(frames.shape[0], device=frames.device) if times is None else times.reshape(1, -1).to(frames)
    weights, instants, given = _fill_plan(fill, times, frames)
    sigmas = [settings.residual_sigma_mm / float(s) for s in spacing]
    codes = z_tilde.detach().clone()[None].requires_grad_(True)
    raw = frames.new_zeros(1, frames.shape[0], model.config.ndim, *frames.shape[1:], requires_grad=True)
    in_time = instants.shape[1] >= 3  # a pair's (ED, ES) two frames are not neighbours in time
    cyclic = model.config.tcn_padding == "cyclic"

    def filled(per_frame):  # (1, T, ...) -> (1, N, ...): each instant's combination of the given frames'
        return per_frame if weights is None else torch.einsum("ng,bg...->bn...", weights, per_frame)

    def residual():
        with autocast_off(raw):  # added to the decoder's velocity, which is full precision
            smooth = filled(smooth_spatial(raw.flatten(0, 1), sigmas).view_as(raw))
            if not in_time:
                return smooth
            # smoothed in time as the decoder's velocities are, so that the frames move consistently
            return model.smooth_in_time(smooth, instants)

    # no wider than the image's shortest axis (a thin 3-D stack), kept odd
    shortest = min(frames.shape[1:])
    window = min(settings.similarity_window, shortest if shortest % 2 else shortest - 1)
    objective = replace(model.config, lncc_window=window)
    # The similarity term covers the given frames, the penalties every instant; scaled so that
    # they weigh per given frame what they weigh in tracking, where both cover every frame.
    # Unscaled, a rebuild from every 5th frame was smoothed 5 times as hard and missed its given
    # frames (docs/model.md, "Fitted rebuilds, balanced").
    penalty_scale = frames.shape[0] / instants.shape[1]
    optimizer = torch.optim.Adam([{"params": [codes], "lr": settings.code_rate},
                                  {"params": [raw], "lr": settings.residual_rate}])
    with torch.enable_grad():
        for _ in tqdm(range(steps), desc="refine", unit="step", disable=not progress, leave=False):
            velocity = model.decode(model.motion_matrix(filled(codes), instants), sequence[:, 0], spacing,
                                    instants) + residual()
            seen = velocity if given is None else velocity[:, given]
            out = {"mean": codes, "log_var": torch.zeros_like(codes), "velocity": seen,
                   "warped": model.warp_frames(sequence[:, 0], model.exponentiate(seen))}
            loss = motion_loss(model, sequence, out, objective)["loss"]
            # summed over frames, as the objective's terms are; a weight of 0 skips its term
            if settings.global_similarity_weight:
                loss = loss + settings.global_similarity_weight * (1 - global_ncc(out["warped"], sequence)).sum()
            if settings.smoothness_weight:
                loss = loss + penalty_scale * settings.smoothness_weight * spatial_gradient_penalty(velocity, spacing).sum()
            if settings.curvature_weight:
                loss = loss + penalty_scale * settings.curvature_weight * spatial_curvature_penalty(velocity, spacing).sum()
            if in_time and settings.temporal_smoothness_weight:
                loss = loss + penalty_scale * settings.temporal_smoothness_weight * temporal_curvature_penalty(
                    velocity, spacing, cyclic=cyclic).sum()
            if loss.device.type != "meta" and not torch.isfinite(loss):  # meta tensors have no values
                raise FloatingPointError(f"refine: the objective became {loss.item()}; try smaller step sizes")
            # only the codes and the residual: the model's parameters get no gradient
            codes.grad, raw.grad = torch.autograd.grad(loss, [codes, raw])
            optimizer.step()
    with torch.no_grad():
        return codes.detach()[0], residual()[0]


def _fill_plan(fill, times: torch.Tensor, frames: torch.Tensor):
    """(weights (N, T) or None, instants (1, N), index of each given frame among the instants or
    None) for refine_motion's `fill`; None: the frames are the whole sequence."""
    if fill is None:
        return None, times, None
    weights, instants = (torch.as_tensor(x, dtype=frames.dtype, device=frames.device) for x in fill)
    instants = instants.reshape(1, -1)
    if weights.shape != (instants.shape[1], times.shape[1]):
        raise ValueError(f"refine: fill weights must be (instants, given frames) = ({instants.shape[1]}, "
                         f"{times.shape[1]}); got {tuple(weights.shape)}")
    distance = (instants[0, :, None] - times[0, None, :]).abs()
    given = distance.argmin(0)
    if not bool((distance.min(0).values < 1e-6).all()):
        raise ValueError("refine: every given frame's phase must be one of the fill's instants")
    return weights, instants, given
