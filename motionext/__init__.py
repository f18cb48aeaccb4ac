"""motionext: probabilistic motion models for medical image sequences (Krebs et al. 2019).

- :mod:`motionext.ops` — the fused kernels (warp, scaling-and-squaring, LNCC) and their references
- :mod:`motionext.data` — cine readers, preprocessing, the phantom and the bundled sample
- :mod:`motionext.model` — the motion model and its loss; :func:`load_model`
"""

from . import ops

__version__ = "0.1.0"


def load_model(path="pretrained", device="cpu"):
    """A trained motion model in eval mode: a checkpoint path, or "pretrained" for the bundled one."""
    from .model.io import load_model as _load

    return _load(path, device)


__all__ = ["ops", "load_model", "__version__"]
