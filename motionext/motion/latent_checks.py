"""Measures of whether the motion matrix carries motion: the spread of sampled motion, what
transport carries from one subject to another, and what reconstruction gains from each frame it
is given. The LV is measured by its blood-pool area (label 3, ACDC convention) propagated from
the ED labels, relative to its area at ED."""

from __future__ import annotations

import numpy as np
import torch

from ..metrics import dice
from . import api
from .baselines import reconstruct_by_interpolation

LV_BLOOD_POOL = 3


def lv_area_ratios(displacements: torch.Tensor, ed_labels) -> np.ndarray:
    """The LV blood-pool area of the ED labels moved by every frame's displacement (T, ndim, *S),
    relative to ED's: (T,)."""
    labels = torch.as_tensor(np.asarray(ed_labels))
    ed_area = float((labels == LV_BLOOD_POOL).sum())
    if ed_area == 0:
        raise ValueError("the ED labels have no LV blood pool (label 3) to measure")
    moved = api.warp_each(labels.float(), displacements, mode="nearest").round()
    return ((moved == LV_BLOOD_POOL).flatten(1).sum(1).double() / ed_area).cpu().numpy()


def looks_like_a_cycle(ratios: np.ndarray, *, least_contraction: float = 0.03) -> bool:
    """An LV area curve over one cycle from ED: it contracts by at least `least_contraction`, its
    smallest area falls in systole (the first 15-60 % of the cycle) and by the last frame it has
    recovered at least half of the contraction."""
    count = len(ratios)
    smallest = int(np.argmin(ratios))
    contraction = 1 - ratios[smallest]
    return bool(contraction >= least_contraction and 0.15 * count <= smallest <= 0.6 * count
                and ratios[-1] - ratios[smallest] >= 0.5 * contraction)


def sampling_spread(model, ed_frame, ed_labels, *, num_frames: int = 20, num_samples: int = 10, seed: int = 0,
                    spacing=None, codes=None, prior: str = "auto") -> dict:
    """Motion sampled from the `prior` for one ED frame (on the model's grid), or decoded from
    given `codes` (see api.sample): each sample's LV contraction (1 - smallest area ratio), their
    spread (std), and the fraction of samples whose area curve looks like a cardiac cycle."""
    sampled = api.sample(model, ed_frame, num_frames=num_frames, num_samples=num_samples, seed=seed, spacing=spacing,
                         codes=codes, prior=prior)
    curves = np.stack([lv_area_ratios(u, ed_labels) for u in sampled.displacements])
    contraction = 1 - curves.min(1)
    return {"contraction": contraction, "spread": float(contraction.std()), "curves": curves,
            "cycle_like": float(np.mean([looks_like_a_cycle(c) for c in curves]))}


def transported_contraction(model, source, target_ed, target_labels, *, spacing=None) -> float:
    """How far the target's LV contracts under the source's motion (1 - smallest area ratio)."""
    moved = api.transport(model, source, target_ed, spacing=spacing)
    return float(1 - lv_area_ratios(moved.displacements, target_labels).min())


def reconstruction_errors(model, frames, given, *, spacing=None, refine: int = 0) -> dict:
    """Root-mean-square intensity error, over the frames not given, of the sequence rebuilt from
    the `given` frames (ED always among them): motionext ("motionext", codes interpolated;
    "motionext-prior", the paper's prior-mean codes), and linear and cubic interpolation of the
    velocities the model gives the given frames from those frames alone. "tracked" is the error
    of tracking with every frame seen: the floor for all of them.

    When `frames` is a Cine labelled at ED and at some frames not given, each of those methods
    also gets "dice <method>": the mean LV blood-pool Dice, over those frames, of the ED labels
    moved by its displacements ("dice no motion": the ED labels unmoved), and "area <method>": the
    LV blood-pool area there relative to ED's ("area labels": the labels' own). On real cines the
    intensity error has a floor that no motion removes (what warping ED cannot explain); the
    labels measure the motion itself.

    Interpolating the velocities of a tracking of the whole sequence would not be a rebuild from
    the given frames: the temporal network has then seen the missing ones.

    `refine` > 0 fits every method's motion first (api.reconstruct's and api.track's `refine`):
    the interpolations then interpolate the fitted velocities of the given frames."""
    tracked = api.track(model, frames, spacing=spacing, refine=refine)
    rebuilt = api.reconstruct(model, frames, given, spacing=spacing, refine=refine)
    count = tracked.frames.shape[0]
    given = api.frame_subset(count, frames=given)
    missing = [t for t in range(count) if t not in given]
    if not missing:
        raise ValueError("reconstruction_errors: every frame is given; nothing to rebuild")
    truth = tracked.frames[missing]
    prior_mean = api.reconstruct(model, frames, given, spacing=spacing, fill="prior", refine=refine)
    methods = {"motionext": (rebuilt.warped, rebuilt.displacements),
               "motionext-prior": (prior_mean.warped, prior_mean.displacements)}
    for kind in ("linear", "cubic"):
        methods[kind] = reconstruct_by_interpolation(tracked.frames[0], rebuilt.velocities[given], given, count, kind)
    methods["tracked"] = (tracked.warped, tracked.displacements)
    errors = {name: float(((warped[missing] - truth) ** 2).mean().sqrt()) for name, (warped, _) in methods.items()}
    labels = tracked.cine.labels if tracked.cine is not None else {}
    labelled = [t for t in missing if t in labels]
    if 0 in labels and labelled:
        def lv_dice(displacements):
            moved = api.warp_each(torch.as_tensor(np.asarray(labels[0])).float(), displacements[labelled],
                                  mode="nearest").round().cpu().numpy()
            return float(np.mean([dice(m, labels[t], LV_BLOOD_POOL) for m, t in zip(moved, labelled)]))

        errors.update({f"dice {name}": lv_dice(u) for name, (_, u) in methods.items()})
        errors["dice no motion"] = lv_dice(torch.zeros_like(tracked.displacements))
        # how far each contracts the LV there, beside how far the labels say it does
        errors.update({f"area {name}": float(lv_area_ratios(u[labelled], labels[0]).mean())
                       for name, (_, u) in methods.items()})
        ed_area = float((np.asarray(labels[0]) == LV_BLOOD_POOL).sum())
        errors["area labels"] = float(np.mean([(np.asarray(labels[t]) == LV_BLOOD_POOL).sum() / ed_area
                                               for t in labelled]))
    return errors
