"""Evaluating a motion model against known motion: ED→ES label propagation on held-out phantom
subjects, compared with the identity (no motion)."""

from __future__ import annotations

import numpy as np
import torch

from .data import make_phantom, normalize_intensity
from .data.phantom import LABELS
from .metrics import dice, endpoint_error, folding_fraction
from .ops import warp

HELD_OUT_SEED = 900_000  # phantom_cohort(seed=s) uses seeds s * 100_003 + i; training runs use small s


def propagate_labels(labels: np.ndarray, displacement: torch.Tensor) -> np.ndarray:
    """ED labels (*S) moved to a frame by its displacement (ndim, *S) with nearest-neighbour sampling."""
    moved = warp(torch.from_numpy(labels).float()[None, None], displacement[None].float(), mode="nearest", padding="zeros")
    return moved[0, 0].numpy().astype(labels.dtype)


def evaluate_on_phantom(model, subjects: int = 8, frames: int = 20, seed: int = HELD_OUT_SEED) -> dict:
    """Mean over held-out phantom subjects of the ED→ES Dice (LV, myocardium, RV), end-point error
    inside the heart (mm) and folding fraction, for the model and for the identity."""
    rows = []
    for i in range(subjects):
        p = make_phantom(frames, model.config.image_size, seed=seed + i)
        sequence = torch.from_numpy(normalize_intensity(p.frames))[None]
        with torch.no_grad():
            u = model(sequence, p.spacing, sample=False)["displacement"][0, p.es]
        propagated = propagate_labels(p.labels[0], u)
        truth, heart = p.labels[p.es], p.labels[p.es] > 0
        row = {
            "folding": folding_fraction(u.numpy()),
            "epe_model": endpoint_error(u.numpy(), p.displacements[p.es], p.spacing, heart),
            "epe_identity": endpoint_error(np.zeros_like(p.displacements[p.es]), p.displacements[p.es], p.spacing, heart),
        }
        for name in ("LV", "myocardium", "RV"):
            row[f"dice_{name}_model"] = dice(propagated, truth, LABELS[name])
            row[f"dice_{name}_identity"] = dice(p.labels[0], truth, LABELS[name])
        rows.append(row)
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
