"""motionext: probabilistic motion models for medical image sequences.

The compiled kernels and their pure-PyTorch references live in :mod:`motionext.ops`.
"""

from . import ops

__version__ = "0.1.0"
__all__ = ["ops", "__version__"]
