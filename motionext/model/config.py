"""Hyperparameters of the motion model (Krebs et al. 2019 defaults), saved with every run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


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
    smoothing_mm: float = 3.0          # sigma_G of the velocity smoothing
    temporal_sigma: float = 1.5        # sigma_T, in frames, of the velocity smoothing over time
    squaring_steps: int = 7
    lncc_window: int = 9
    recon_weight: float = 2000.0       # lambda on (1 - mean LNCC), untuned; see docs/model.md
    tds_probability: float = 0.5       # delta of temporal dropout sampling
    symmetric: bool = True             # also compare I_t warped by exp(-v) with I_0
    velocity_scale: float = 10.0       # the decoder's output, in voxels, is multiplied by this (docs/model.md)
    ed_feature_channels: tuple = (8, 16, 16, 16)  # ED features the decoder sees at scales 1..1/8; () = ED itself

    def __post_init__(self):
        self.image_size = tuple(int(s) for s in self.image_size)
        for name in ("encoder_channels", "decoder_channels", "tcn_dilations", "ed_feature_channels"):
            setattr(self, name, tuple(int(v) for v in getattr(self, name)))
        if self.ndim not in (2, 3) or len(self.image_size) != self.ndim:
            raise ValueError(f"ModelConfig: ndim {self.ndim} needs an image_size of {self.ndim} axes; got {self.image_size}")
        if any(s % 8 for s in self.image_size):
            raise ValueError(f"ModelConfig: every image_size axis must be a multiple of 8; got {self.image_size}")
        if len(self.encoder_channels) != 4 or len(self.decoder_channels) != 4:
            raise ValueError("ModelConfig: encoder_channels and decoder_channels need 4 entries each")
        if len(self.ed_feature_channels) not in (0, 4):
            raise ValueError(f"ModelConfig: ed_feature_channels needs 4 entries (scales 1, 1/2, 1/4, 1/8) or none; "
                             f"got {self.ed_feature_channels}")
        if self.tcn_padding not in ("zeros", "cyclic"):
            raise ValueError(f"ModelConfig: tcn_padding must be 'zeros' or 'cyclic'; got {self.tcn_padding!r}")
        if not (isinstance(self.velocity_scale, (int, float)) and self.velocity_scale > 0):
            raise ValueError(f"ModelConfig: velocity_scale must be positive; got {self.velocity_scale!r}")
        if not 0.0 <= self.tds_probability <= 1.0:
            raise ValueError(f"ModelConfig: tds_probability must be in [0, 1]; got {self.tds_probability}")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict, *, saved: bool = True) -> "ModelConfig":
        """Settings from a dict: `saved` (read from a checkpoint) gives the settings it lacks their
        values from before they were saved (LEGACY_SETTINGS); new settings take the defaults."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"ModelConfig: unknown settings {sorted(unknown)}")
        return cls(**{**(LEGACY_SETTINGS if saved else {}), **data})


# What a setting was before it was saved with the weights: checkpoints written without it read so.
LEGACY_SETTINGS = {"velocity_scale": 1.0, "ed_feature_channels": ()}
