"""How far sampled motion spreads when the codes come from other distributions than the paper's
prior: a diagnostic of the issue's sampling check (docs/model.md, "Sampling, against real
hearts"). Run it with the installed package (see real_data.py).

    python benchmarks/sampling_priors.py [--model pretrained-split] [--split runs/real-split]

The posterior means and variances of every training sequence of the split (`train/`) are read
once. Then, for 12 held-out ED frames (those of docs/results.md), 10 samples of 20 frames each,
with the codes z~ drawn from:
- `standard`: N(0, I) for every frame, the paper's prior (`motion.sample(prior="standard")`);
- `shared`: one N(0, I) code for all frames of a sample;
- `fitted`: the Gaussian `motion.sample` draws from (motionext.model.latent_prior), fitted to the
  training posteriors of the split, a + e_t: a sequence-level part (the
  covariance of the sequences' mean codes) and a frame-level part (the covariance of the codes
  about their sequence's mean, plus the mean posterior variance), about the mean code;
- `fitted, sequence part x2`: the same with the sequence-level part doubled;
- `training cines`: a training cine's own posterior (one draw), moved to 20 even phases.
Each row: the samples' mean LV contraction (1 - smallest area ratio), its spread across the
samples of one ED frame, and the fraction of area curves that look like a cycle; beside them the
held-out hearts' own contraction by their labels.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from motionext import load_model
from motionext.data.sources import read_path
from motionext.model.latent_prior import fit_latent_prior
from motionext.motion import latent_checks
from motionext.motion.inputs import as_sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_data import held_out_acdc, labelled_slices  # noqa: E402

FRAMES, SAMPLES, ED_FRAMES = 20, 10, 12


@torch.no_grad()
def training_posteriors(model, split: Path) -> list:
    """(phases (T,), mean (T, d), variance (T, d)) of every training sequence."""
    out = []
    for cine in read_path(split / "train"):
        seq = as_sequence(model, cine)
        mean, log_var = model.encode(seq.frames[None])
        out.append((seq.times.cpu().numpy(), mean[0].cpu().numpy(), log_var[0].exp().cpu().numpy()))
    return out


class CodeDistributions:
    """Draws of z~ (SAMPLES, FRAMES, d) from the distributions of the module docstring."""

    def __init__(self, posteriors: list, latent_dim: int):
        self.dim = latent_dim
        self.cines = [p for p in posteriors if len(p[0]) > 3]
        # the fit motion.sample draws from (motionext.model.latent_prior), here on the split's training side
        self.prior = fit_latent_prior([m for _, m, _ in posteriors], [v for _, _, v in posteriors])

    def fitted(self, g, sequence_scale=1.0):
        a = g.standard_normal((SAMPLES, 1, self.dim)) @ self.prior.sequence_factor.numpy().T
        e = g.standard_normal((SAMPLES, FRAMES, self.dim)) @ self.prior.frame_factor.numpy().T
        return self.prior.mean.numpy() + sequence_scale * a + e

    def training_cine(self, g):
        phases = np.arange(FRAMES) / FRAMES
        draws = []
        for _ in range(SAMPLES):
            times, mean, variance = self.cines[g.integers(len(self.cines))]
            z = mean + np.sqrt(variance) * g.standard_normal(mean.shape)
            # cyclic: the phase after the last frame is ED again
            t, z = np.append(times, 1.0), np.vstack([z, z[:1]])
            draws.append(np.stack([np.interp(phases, t, z[:, k]) for k in range(self.dim)], 1))
        return np.stack(draws)

    def draw(self, kind: str, g):
        if kind == "standard":
            return g.standard_normal((SAMPLES, FRAMES, self.dim))
        if kind == "shared":
            return np.repeat(g.standard_normal((SAMPLES, 1, self.dim)), FRAMES, 1)
        if kind == "fitted":
            return self.fitted(g)
        if kind == "fitted, sequence part x2":
            return self.fitted(g, 2.0)
        if kind == "training cines":
            return self.training_cine(g)
        raise ValueError(kind)


KINDS = ("standard", "shared", "fitted", "fitted, sequence part x2", "training cines")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="pretrained-split")
    parser.add_argument("--split", default="runs/real-split", help="the folders benchmarks/real_split.py wrote")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = load_model(args.model).eval()
    split = Path(args.split)
    codes = CodeDistributions(training_posteriors(model, split), model.config.latent_dim)
    labelled = labelled_slices(model, held_out_acdc(split))
    hearts = np.array([1 - (c.labels[1] == 3).sum() / (c.labels[0] == 3).sum() for c in labelled])
    print(f"{args.model}: {len(codes.cines)} training cines; held-out hearts' own contraction "
          f"{hearts.mean():.3f}, spread {hearts.std():.3f} ({len(hearts)} slices)\n")
    print("| codes | contraction | spread across samples | cycle-like |\n|---|---|---|---|")
    for kind in KINDS:
        rows = []
        for i, c in enumerate(labelled[:ED_FRAMES]):
            z = codes.draw(kind, np.random.default_rng(i))
            rows.append(latent_checks.sampling_spread(model, c.frames[0], c.labels[0], codes=z))
        print(f"| {kind} | {np.mean([r['contraction'].mean() for r in rows]):.3f} | "
              f"{np.mean([r['spread'] for r in rows]):.3f} | {np.mean([r['cycle_like'] for r in rows]):.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
