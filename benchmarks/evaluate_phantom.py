"""ED→ES label propagation on a held-out phantom cohort: a trained model against the identity
(no motion), measured against the phantom's ground truth.

    python benchmarks/evaluate_phantom.py [--model pretrained] [--subjects 8]

Reports Dice of LV, myocardium and RV, the end-point error of the ED→ES displacement inside the
heart (mm), and the fraction of voxels where the deformation folds (Jacobian determinant <= 0).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from motionext import load_model
from motionext.data import make_phantom, normalize_intensity
from motionext.data.phantom import LABELS
from motionext.metrics import dice, endpoint_error, folding_fraction
from motionext.ops import warp

HELD_OUT_SEED = 900_000  # the training cohort uses seeds below 100 000 * (seed + 1)


def evaluate(model, subjects: int = 8, frames: int = 20) -> dict:
    size = model.config.image_size
    rows = []
    for i in range(subjects):
        p = make_phantom(frames, size, seed=HELD_OUT_SEED + i)
        sequence = torch.from_numpy(normalize_intensity(p.frames))[None]
        with torch.no_grad():
            out = model(sequence, p.spacing, sample=False)
        u = out["displacement"][0, p.es]
        ed_labels = torch.from_numpy(p.labels[0]).float()[None, None]
        propagated = warp(ed_labels, u[None], mode="nearest", padding="zeros")[0, 0].numpy().astype(np.uint8)
        truth, identity = p.labels[p.es], p.labels[0]
        heart = truth > 0
        row = {"folding": folding_fraction(u.numpy()),
               "epe_model": endpoint_error(u.numpy(), p.displacements[p.es], p.spacing, heart),
               "epe_identity": endpoint_error(np.zeros_like(p.displacements[p.es]), p.displacements[p.es], p.spacing, heart)}
        for name in ("LV", "myocardium", "RV"):
            row[f"dice_{name}_model"] = dice(propagated, truth, LABELS[name])
            row[f"dice_{name}_identity"] = dice(identity, truth, LABELS[name])
        rows.append(row)
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="pretrained")
    parser.add_argument("--subjects", type=int, default=8)
    args = parser.parse_args(argv)
    result = evaluate(load_model(args.model), args.subjects)
    print(f"held-out phantom cohort ({args.subjects} subjects), ED→ES, mean over subjects")
    print("| measure | identity | model |\n|---|---|---|")
    for name in ("LV", "myocardium", "RV"):
        print(f"| Dice {name} | {result[f'dice_{name}_identity']:.3f} | {result[f'dice_{name}_model']:.3f} |")
    print(f"| end-point error in the heart (mm) | {result['epe_identity']:.2f} | {result['epe_model']:.2f} |")
    print(f"| folding (det J <= 0) | 0 | {result['folding']:.5f} |")
    return result


if __name__ == "__main__":
    main()
