"""The training objective: a symmetric LNCC likelihood weighted by lambda, plus the KL divergence
of the per-frame posteriors from N(0, I). Also the smoothness penalties that test-time refinement
adds to it."""

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


def global_ncc(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Normalised cross-correlation of every (B, T) image pair over the whole image: (B, T).
    Unlike LNCC it weighs regions by their contrast, so weakly contrasted noise pulls little."""
    def standardised(x):
        x = x.flatten(2)
        x = x - x.mean(2, keepdim=True)
        return x / (x.norm(dim=2, keepdim=True) + 1e-6)  # a flat image correlates with nothing

    return (standardised(a) * standardised(b)).sum(2)


def motion_loss(model, frames: torch.Tensor, out: dict, config: ModelConfig | None = None, *,
                kl_free_bits: float = 0.0, kl_scale: float = 1.0) -> dict:
    """Loss terms of one batch; every term is summed over frames and averaged over sequences.

    recon = lambda * (1 - LNCC(I_0 ∘ phi_t, I_t)), averaged with the symmetric term
    lambda * (1 - LNCC(I_t ∘ phi_t^-1, I_0)) where phi_t^-1 = exp(-v_t).

    The loss adds kl_scale * max(KL_t, kl_free_bits) per frame: below `kl_free_bits` nats a
    frame's code is free, so the encoder is not pushed to the prior before the decoder has learnt
    to read the code (free bits); `kl_scale` < 1 warms the KL term up. "kl" reports the true KL
    summed over frames, "kl_frame" its mean per frame.
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
    charged = kl.clamp(min=kl_free_bits) if kl_free_bits > 0 else kl
    loss = recon.sum(1).mean() + kl_scale * charged.sum(1).mean()
    return {"loss": loss, "recon": recon.sum(1).mean(), "kl": kl.sum(1).mean(), "kl_frame": kl.mean(),
            "lncc": similarity.mean()}


def propagated_label_dice(labels: torch.Tensor, labelled: torch.Tensor, displacement: torch.Tensor,
                          classes=(1, 2, 3), mode: str = "bilinear") -> torch.Tensor | None:
    """Soft Dice of the ED labels (labels[:, 0]) warped to every other labelled frame, against that
    frame's labels: the mean over frames and over the classes present in both, or None when no
    frame after ED is labelled. labels (B, T, *S) integer, labelled (B, T) bool (on any device),
    displacement
    (B, T, ndim, *S) in voxels. With mode "bilinear" it is differentiable in the displacement
    (the label maps are warped one-hot); "nearest" gives the hard Dice of nearest-neighbour
    propagation, as evaluation measures it."""
    pick = labelled.clone()
    pick[:, 0] = False
    pick &= labelled[:, :1]
    # `labelled` may stay on the host (training keeps it there): then finding the frames needs no
    # device sync, and the indices move to the labels' device
    items, frames = (i.to(labels.device) for i in pick.nonzero(as_tuple=True))
    if items.numel() == 0:
        return None
    values = torch.as_tensor(classes, device=labels.device).view(1, -1, *([1] * (labels.dim() - 2)))
    ed = (labels[items, 0].unsqueeze(1) == values).to(displacement.dtype)            # (N, C, *S)
    target = (labels[items, frames].unsqueeze(1) == values).to(displacement.dtype)
    moved = ops.warp(ed, displacement[items, frames], mode=mode)
    dims = tuple(range(2, ed.dim()))
    overlap = 2 * (moved * target).sum(dims)
    total = moved.sum(dims) + target.sum(dims)
    present = (ed.sum(dims) > 0) & (target.sum(dims) > 0)
    dice = overlap / total.clamp(min=1e-6)
    return (dice * present).sum() / present.sum().clamp(min=1)


def _in_mm(velocity: torch.Tensor, spacing) -> torch.Tensor:
    ndim = velocity.shape[2]
    if len(spacing) != ndim:
        raise ValueError(f"gradient penalty: {ndim}-D velocities but {len(spacing)} spacings")
    scale = torch.tensor([float(s) for s in spacing], dtype=velocity.dtype, device=velocity.device)
    return velocity * scale.view(1, 1, ndim, *([1] * ndim))


def _check_spatial_size(mm: torch.Tensor, differences: int, penalty: str) -> None:
    """A finite difference of order n needs n + 1 voxels per axis; with fewer, the mean would be
    taken over nothing and be NaN."""
    if min(mm.shape[3:]) <= differences:
        raise ValueError(f"{penalty} penalty: every spatial axis needs at least {differences + 1} voxels; "
                         f"got {tuple(mm.shape[3:])}")


def _magnitude(d: torch.Tensor) -> torch.Tensor:
    """Mean |d| over all but (B, T); |x| smoothed as sqrt(x^2 + eps^2) so that its gradient is
    defined at 0."""
    return torch.sqrt(d * d + 1e-6).flatten(2).mean(2)


def spatial_gradient_penalty(velocity: torch.Tensor, spacing) -> torch.Tensor:
    """Mean magnitude of the spatial finite differences of velocities (B, T, ndim, *S) given in
    voxels, in mm per voxel step (the paper's spatial-gradient measure, applied to v): (B, T).
    L1 (total variation), so that the large gradient where the wall thickens costs no more than
    its size, as a squared penalty's would."""
    mm = _in_mm(velocity, spacing)
    _check_spatial_size(mm, 1, "gradient")
    return sum(_magnitude(mm.diff(dim=a)) for a in range(3, mm.dim())) / mm.shape[2]


def spatial_curvature_penalty(velocity: torch.Tensor, spacing) -> torch.Tensor:
    """Mean magnitude of the spatial second differences of velocities (B, T, ndim, *S) given in
    voxels, in mm per voxel step squared: (B, T). Every entry of the Hessian counts (the mixed
    ones twice, as the Hessian holds them twice), averaged over the components. It is zero for
    any affine velocity, so a uniform contraction or shear, the bulk of the heart's motion, costs
    nothing and is not shrunk; only the bending of the field is charged. L1, as the gradient
    penalty."""
    mm = _in_mm(velocity, spacing)
    _check_spatial_size(mm, 2, "curvature")
    axes = range(3, mm.dim())
    pure = [_magnitude(mm.diff(dim=a, n=2)) for a in axes]
    mixed = [2 * _magnitude(mm.diff(dim=a).diff(dim=b)) for a in axes for b in axes if a < b]
    return sum(pure + mixed) / mm.shape[2]


def temporal_curvature_penalty(velocity: torch.Tensor, spacing, *, cyclic: bool) -> torch.Tensor:
    """Mean magnitude of the second difference over time, v[t+1] - 2 v[t] + v[t-1], of
    velocities (B, T, ndim, *S) given in voxels, in mm per frame^2: (B, T) when `cyclic` (one
    heart cycle: the last frame's neighbour is the first), else (B, T - 2). It charges jitter
    from frame to frame, not the size of the motion: a first difference would, since its sum
    over a cycle is twice the motion's range."""
    mm = _in_mm(velocity, spacing)
    if cyclic:
        mm = torch.cat([mm[:, -1:], mm, mm[:, :1]], dim=1)
    return _magnitude(mm[:, 2:] - 2 * mm[:, 1:-1] + mm[:, :-2])
