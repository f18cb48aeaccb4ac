"""The training objective: a symmetric LNCC likelihood weighted by lambda, plus the KL divergence
of the per-frame posteriors from N(0, I)."""

from __future__ import annotations

import torch

from .. import ops
from .config import ModelConfig


def kl_to_standard_normal(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_var)) || N(0, I)) summed over the latent dimension: (B, T)."""
    return 0.5 * (mean.pow(2) + log_var.exp() - log_var - 1).sum(-1)


def _pair_lncc(a: torch.Tensor, b: torch.Tensor, window: int) -> torch.Tensor:
    """Mean LNCC of every (B, T) image pair: (B, T)."""
    bt = a.shape[0] * a.shape[1]
    cc = ops.lncc(a.reshape(bt, 1, *a.shape[2:]), b.reshape(bt, 1, *b.shape[2:]), window=window, reduction="none")
    return cc.flatten(1).mean(1).view(a.shape[:2])


def motion_loss(model, frames: torch.Tensor, out: dict, config: ModelConfig | None = None) -> dict:
    """Loss terms of one batch; every term is summed over frames and averaged over sequences.

    recon = lambda * (1 - LNCC(I_0 ∘ phi_t, I_t)), averaged with the symmetric term
    lambda * (1 - LNCC(I_t ∘ phi_t^-1, I_0)) where phi_t^-1 = exp(-v_t).
    """
    config = config or model.config
    similarity = _pair_lncc(out["warped"], frames, config.lncc_window)
    recon = config.recon_weight * (1 - similarity)
    if config.symmetric:
        inverse = model.exponentiate(-out["velocity"])
        b, t = frames.shape[:2]
        back = ops.warp(
            frames.reshape(b * t, 1, *frames.shape[2:]), inverse.reshape(b * t, *inverse.shape[2:])
        ).view(frames.shape)
        moving = frames[:, :1].expand_as(frames)
        recon = 0.5 * (recon + config.recon_weight * (1 - _pair_lncc(back, moving, config.lncc_window)))
    kl = kl_to_standard_normal(out["mean"], out["log_var"])
    recon, kl = recon.sum(1).mean(), kl.sum(1).mean()
    return {"loss": recon + kl, "recon": recon, "kl": kl, "lncc": similarity.mean()}
