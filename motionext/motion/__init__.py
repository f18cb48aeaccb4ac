"""Uses of a trained motion model: tracking, motion compensation, transport, sampling and
reconstruction (temporal super-resolution)."""

from .api import Sampling, Tracking, compensate, frame_subset, reconstruct, sample, track, transport
from .outputs import save_itk_transforms
from .refine import RefineSettings

__all__ = ["track", "compensate", "transport", "sample", "reconstruct", "frame_subset", "Tracking", "Sampling",
           "RefineSettings", "save_itk_transforms"]
