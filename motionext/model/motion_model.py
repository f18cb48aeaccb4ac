"""The probabilistic motion model of Krebs et al. 2019: per-frame encoder, temporal network over
the latent motion matrix, diffeomorphic decoder, and temporal dropout sampling (TDS)."""

from __future__ import annotations

import torch
import torch.nn as nn

from .. import ops
from ..ops._autocast import autocast_off
from .code_fill import drop_rate, fill_dropped_codes
from .config import ModelConfig
from .layers import Decoder, Encoder, TemporalNetwork, smooth_over_phase, smooth_spatial, smooth_temporal

# A frame's code is dropped (TDS) only when the sequence has neighbours in time to infer it
# from: in an (ED, ES) pair the ED code says nothing about ES, so dropping the ES code would
# only teach the decoder to ignore its input.
TDS_MIN_FRAMES = 3


def normalized_times(num_frames: int, batch: int = 1, device=None) -> torch.Tensor:
    """Cycle phase t / T of frames 0..T-1 (ED = 0), as (batch, T)."""
    return (torch.arange(num_frames, device=device, dtype=torch.float32) / num_frames).expand(batch, num_frames)


class MotionModel(nn.Module):
    """frames (B, T, *S) with ED first, in [0, 1] -> velocities, displacements and warped ED frames.

    Displacements are in voxels: ``warp(frames[:, 0], displacements[:, t]) ≈ frames[:, t]``.
    """

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config or ModelConfig()
        self.encoder = Encoder(self.config)
        self.temporal = TemporalNetwork(self.config)
        self.decoder = Decoder(self.config)
        # a Gaussian fitted to the training sequences' codes (latent_prior.py), which sampling
        # draws from when set; kept beside the weights, not in them
        self.latent_prior = None

    # -- the pieces -------------------------------------------------------------------------
    def check_frames(self, frames: torch.Tensor) -> None:
        c = self.config
        if not isinstance(frames, torch.Tensor) or frames.dim() != c.ndim + 2:
            shape = getattr(frames, "shape", None)
            raise ValueError(f"MotionModel: frames must be (B, T, *{c.image_size}); got {shape}")
        if tuple(frames.shape[2:]) != c.image_size:
            raise ValueError(
                f"MotionModel: frames have spatial size {tuple(frames.shape[2:])} but the model was built for "
                f"{c.image_size}; preprocess the sequence to that size"
            )
        if frames.shape[1] < 2:
            raise ValueError(f"MotionModel: a sequence needs at least 2 frames; got {frames.shape[1]}")

    def encode(self, frames: torch.Tensor):
        """Posterior q(z~_t | I_0, I_t) of every frame: means and log-variances (B, T, d)."""
        b, t = frames.shape[:2]
        moving = frames[:, :1].expand(b, t, *frames.shape[2:]).reshape(b * t, 1, *frames.shape[2:])
        mean, log_var = self.encoder(moving, frames.reshape(b * t, 1, *frames.shape[2:]))
        return mean.view(b, t, -1), log_var.view(b, t, -1)

    def motion_matrix(self, z_tilde: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """z~ (B, T, d) and times (B, T) -> the motion matrix z (B, T, d)."""
        # in z~'s dtype: under autocast the network runs in half precision, the codes stay full
        return self.temporal(z_tilde.transpose(1, 2), times).transpose(1, 2).to(z_tilde.dtype)

    def decode(self, z: torch.Tensor, moving: torch.Tensor, spacing, times: torch.Tensor) -> torch.Tensor:
        """z (B, T, d), ED frame (B, *S), spacing (mm per axis), cycle phases (B, T) -> smoothed
        velocities (B, T, ndim, *S)."""
        b, t = z.shape[:2]
        spatial = moving.shape[1:]
        velocity = self.decoder(z.reshape(b * t, -1), moving.unsqueeze(1), repeats=t)
        sigmas = [self.config.smoothing_mm / float(s) for s in spacing]
        with autocast_off(velocity):  # the decoder's velocity is full precision (layers.Decoder): keep it so
            velocity = smooth_spatial(velocity, sigmas).view(b, t, self.config.ndim, *spatial)
            return self.smooth_in_time(velocity, times)

    def smooth_in_time(self, sequence: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """(B, T, ...) smoothed over time: over the phases `times` (B, T), or by frame index for
        models trained so (config.temporal_sigma_phase None)."""
        c = self.config
        if c.temporal_sigma_phase is None:
            return smooth_temporal(sequence, c.temporal_sigma, cyclic=c.tcn_padding == "cyclic")
        return smooth_over_phase(sequence, times, c.temporal_sigma_phase, cyclic=c.tcn_padding == "cyclic")

    def exponentiate(self, velocity: torch.Tensor) -> torch.Tensor:
        """Velocities (B, T, ndim, *S) -> displacements of exp(v), same shape."""
        b, t = velocity.shape[:2]
        flat = velocity.reshape(b * t, *velocity.shape[2:])
        return ops.scaling_squaring(flat, steps=self.config.squaring_steps).view(velocity.shape)

    def warp_frames(self, image: torch.Tensor, displacement: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
        """Warp one image per sequence (B, *S) by every frame's displacement (B, T, ndim, *S) -> (B, T, *S)."""
        b, t = displacement.shape[:2]
        spatial = displacement.shape[3:]
        images = image.unsqueeze(1).expand(b, t, *spatial).reshape(b * t, 1, *spatial)
        flat = displacement.reshape(b * t, *displacement.shape[2:])
        return ops.warp(images.to(flat.dtype), flat, mode=mode).view(b, t, *spatial)

    # -- the whole model --------------------------------------------------------------------
    def forward(self, frames: torch.Tensor, spacing, times: torch.Tensor | None = None, *, sample: bool | None = None,
                tds_mask: torch.Tensor | None = None, posterior_noise: torch.Tensor | None = None,
                prior_noise: torch.Tensor | None = None) -> dict:
        """Run the model on sequences. `sample` draws z~ from the posterior (default: in training);
        in training each z~_t is dropped with probability tds_probability (temporal dropout
        sampling; not in sequences shorter than TDS_MIN_FRAMES) and replaced as config.tds_fill
        says (code_fill.py). `tds_mask` (B, T, bool) fixes which ones, and
        `posterior_noise` / `prior_noise` (B, T, d) the standard normal draws (training draws them
        per sequence, so that results do not depend on how a batch is split across processes)."""
        self.check_frames(frames)
        b, t = frames.shape[:2]
        times = normalized_times(t, b, frames.device) if times is None else times
        mean, log_var = self.encode(frames)
        sample = self.training if sample is None else sample
        if sample:
            noise = torch.randn_like(mean) if posterior_noise is None else posterior_noise.to(mean.dtype)
            z_tilde = mean + noise * torch.exp(0.5 * log_var)
        else:
            z_tilde = mean
        c = self.config
        if tds_mask is None:
            dropping = self.training and t >= TDS_MIN_FRAMES  # outside training nothing is drawn for the rate
            rate = drop_rate(c.tds_probability, c.tds_fill, torch.rand(b, 1, device=frames.device)) if dropping else 0.0
            tds_mask = torch.rand(b, t, device=frames.device) < rate
        prior = torch.randn_like(z_tilde) if prior_noise is None else prior_noise.to(z_tilde.dtype)
        z_tilde = fill_dropped_codes(z_tilde, prior, tds_mask, times, c.tds_fill)
        z = self.motion_matrix(z_tilde, times)
        velocity = self.decode(z, frames[:, 0], spacing, times)
        displacement = self.exponentiate(velocity)
        return {
            "mean": mean, "log_var": log_var, "z_tilde": z_tilde, "tds_mask": tds_mask, "z": z,
            "velocity": velocity, "displacement": displacement,
            "warped": self.warp_frames(frames[:, 0], displacement),
        }
