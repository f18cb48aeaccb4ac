"""The probabilistic motion model (Krebs et al. 2019) and its loss."""

from .config import ModelConfig
from .losses import kl_to_standard_normal, motion_loss
from .motion_model import MotionModel, normalized_times

__all__ = ["ModelConfig", "MotionModel", "motion_loss", "kl_to_standard_normal", "normalized_times"]
