"""Hyperparameters of the motion model (Krebs et al. 2019 defaults), saved with every run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from .. import validate as v
from .code_fill import FILLS


# The model grid's spacing (mm) may be chosen within these: beyond them lies no MRI, and a
# spacing in metres or microns (a unit error) would ask for images of astronomical size.
SPACING_MM = (0.01, 100.0)


@dataclass
class ModelConfig:
    ndim: int = 2                      # 2: slices (H, W); 3: stacks (H, W, D)
    image_size: tuple = (128, 128)     # spatial size every input must have (preprocess to it)
    latent_dim: int = 32               # d, the size of z_t
    encoder_channels: tuple = (16, 32, 32, 4)   # 4 conv layers, strides (2, 2, 2, 1)
    decoder_channels: tuple = (32, 32, 32, 16)  # dense seed, then 3 deconvolutions
    tcn_kernel: int = 3
    tcn_dilations: tuple = (1, 2, 4, 8)
    tcn_padding: str = "zeros"         # or "cyclic" for periodic sequences
    tcn_direct: bool = False           # True: z_t also gets a linear map of z~_t itself (docs/model.md, "Whole cines")
    smoothing_mm: float = 3.0          # sigma_G of the velocity smoothing
    temporal_sigma: float = 1.5        # sigma_T, in frames, of the velocity smoothing over time by frame index
    # sigma_T in cycle phase, smoothing over the frames' own times: a sparse (ED, ES) pair is then
    # not mixed (docs/model.md, "Smoothing over phases"); None smooths by index (models before 2026-12-04)
    temporal_sigma_phase: float | None = 0.075
    squaring_steps: int = 7
    lncc_window: int = 9
    recon_weight: float = 2000.0       # lambda on (1 - mean LNCC), untuned; see docs/model.md
    tds_probability: float = 0.5       # delta of temporal dropout sampling
    tds_fill: str = "prior"            # what a dropped code becomes: a prior sample (paper) or "interpolate" (code_fill.py)
    symmetric: bool = True             # also compare I_t warped by exp(-v) with I_0
    velocity_scale: float = 10.0       # the decoder's output, in voxels, is multiplied by this (docs/model.md)
    ed_feature_channels: tuple = (8, 16, 16, 16)  # ED features the decoder sees at scales 1..1/8; () = ED itself
    spacing: float = 1.5               # mm, in-plane: the grid it was trained on, which inference resamples to

    def __post_init__(self):
        c = "ModelConfig"
        self.ndim = v.choice(c, "ndim", self.ndim, (2, 3))
        self.image_size = v.integers(c, "image_size", self.image_size, lengths=(self.ndim,), minimum=8)
        if any(s % 8 for s in self.image_size):
            raise ValueError(f"{c}: every image_size axis must be a multiple of 8; got {self.image_size}")
        self.latent_dim = v.integer(c, "latent_dim", self.latent_dim, minimum=1)
        self.encoder_channels = v.integers(c, "encoder_channels", self.encoder_channels, lengths=(4,))
        self.decoder_channels = v.integers(c, "decoder_channels", self.decoder_channels, lengths=(4,))
        # (scales 1, 1/2, 1/4, 1/8), or none: the ED frame itself
        self.ed_feature_channels = v.integers(c, "ed_feature_channels", self.ed_feature_channels, lengths=(0, 4))
        self.tcn_kernel = v.odd(c, "tcn_kernel", self.tcn_kernel)  # odd: the padding is symmetric
        self.tcn_dilations = v.integers(c, "tcn_dilations", self.tcn_dilations)
        if not self.tcn_dilations:
            raise ValueError(f"{c}: tcn_dilations needs at least one layer's dilation; got ()")
        v.choice(c, "tcn_padding", self.tcn_padding, ("zeros", "cyclic"))
        v.flag(c, "tcn_direct", self.tcn_direct)
        self.smoothing_mm = v.number(c, "smoothing_mm", self.smoothing_mm, minimum=0)
        self.temporal_sigma = v.number(c, "temporal_sigma", self.temporal_sigma, minimum=0)
        if self.temporal_sigma_phase is not None:
            self.temporal_sigma_phase = v.number(c, "temporal_sigma_phase", self.temporal_sigma_phase, minimum=0,
                                                 maximum=1)
        self.squaring_steps = v.integer(c, "squaring_steps", self.squaring_steps, minimum=1, maximum=30)
        self.lncc_window = v.odd(c, "lncc_window", self.lncc_window, maximum=min(self.image_size))
        self.recon_weight = v.number(c, "recon_weight", self.recon_weight, positive=True)
        self.tds_probability = v.number(c, "tds_probability", self.tds_probability, minimum=0, maximum=1)
        v.choice(c, "tds_fill", self.tds_fill, FILLS)
        v.flag(c, "symmetric", self.symmetric)
        self.velocity_scale = v.number(c, "velocity_scale", self.velocity_scale, positive=True)
        self.spacing = v.number(c, "spacing", self.spacing, minimum=SPACING_MM[0], maximum=SPACING_MM[1])

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict, *, saved: bool = True) -> "ModelConfig":
        """Settings from a dict: `saved` (read from a checkpoint) gives the settings it lacks their
        values from before they were saved (LEGACY_SETTINGS); new settings take the defaults."""
        if not isinstance(data, dict):
            raise ValueError(f"ModelConfig: settings must be a JSON object / dict of name: value; got {data!r}")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"ModelConfig: unknown settings {sorted(unknown)}")
        return cls(**{**(LEGACY_SETTINGS if saved else {}), **data})


# What a setting was before it was saved with the weights: checkpoints written without it read so.
LEGACY_SETTINGS = {"velocity_scale": 1.0, "ed_feature_channels": (), "spacing": 1.5, "temporal_sigma_phase": None}
