"""Evaluating a motion model against known motion: held-out phantom subjects, ED→ES, compared
with the identity (no motion). The measures themselves are motionext.motion.evaluate's."""

from __future__ import annotations

import numpy as np

from .data import make_phantom

HELD_OUT_SEED = 900_000  # phantom_cohort(seed=s) uses seeds s * 100_003 + i; training runs use small s


def held_out_phantoms(count: int, frames: int = 20, size=(128, 128), seed: int = HELD_OUT_SEED):
    """(Cine labelled at ED and ES, true displacements) of `count` phantom subjects no training run saw."""
    for i in range(count):
        p = make_phantom(frames, size, seed=seed + i)
        cine = p.to_cine(name=f"phantom{i:02d}")
        cine.labels = {0: p.labels[0], p.es: p.labels[p.es]}
        yield cine, p.displacements


def evaluate_on_phantom(model, subjects: int = 8, frames: int = 20, seed: int = HELD_OUT_SEED) -> dict:
    """Mean over held-out phantom subjects of the ED→ES Dice (LV blood pool, myocardium, RV),
    end-point error inside the heart (mm) and folding fraction, for the model and the identity."""
    from .motion.evaluate import evaluate_sequence

    rows = [evaluate_sequence(model, cine, truth=truth)
            for cine, truth in held_out_phantoms(subjects, frames, model.config.image_size, seed)]
    names = {"LV": "LV-BP", "myocardium": "LV-Myo", "RV": "RV"}
    result = {"folding": float(np.mean([r["folding"] for r in rows])),
              "epe_model": float(np.mean([r["epe"] for r in rows])),
              "epe_identity": float(np.mean([r["epe_identity"] for r in rows]))}
    for name, structure in names.items():
        result[f"dice_{name}_model"] = float(np.nanmean([r[f"dice_{structure}"] for r in rows]))
        result[f"dice_{name}_identity"] = float(np.nanmean([r[f"dice_{structure}_identity"] for r in rows]))
    return result
