"""ED→ES label propagation on a held-out phantom cohort: a trained model against the identity
(no motion), measured against the phantom's ground truth.

    python benchmarks/evaluate_phantom.py [--model pretrained] [--subjects 8]

Reports Dice of LV, myocardium and RV, the end-point error of the ED→ES displacement inside the
heart (mm), and the fraction of voxels where the deformation folds (Jacobian determinant <= 0).
"""

from __future__ import annotations

import argparse

from motionext import load_model
from motionext.evaluation import evaluate_on_phantom


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="pretrained")
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--frames", type=int, default=20)
    args = parser.parse_args(argv)
    result = evaluate_on_phantom(load_model(args.model), args.subjects, args.frames)
    print(f"held-out phantom cohort ({args.subjects} subjects, {args.frames} frames), ED→ES, mean over subjects")
    print("| measure | identity | model |\n|---|---|---|")
    for name in ("LV", "myocardium", "RV"):
        print(f"| Dice {name} | {result[f'dice_{name}_identity']:.3f} | {result[f'dice_{name}_model']:.3f} |")
    print(f"| end-point error in the heart (mm) | {result['epe_identity']:.2f} | {result['epe_model']:.2f} |")
    print(f"| folding (det J <= 0), fraction of voxels | 0 | {result['folding']:.5f} |")
    return result


if __name__ == "__main__":
    main()
