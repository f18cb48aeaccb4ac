"""motionext: probabilistic motion models for medical image sequences (Krebs et al. 2019).

- :mod:`motionext.ops` — the fused kernels (warp, scaling-and-squaring, LNCC) and their references
- :mod:`motionext.data` — cine readers, preprocessing, the phantom and the bundled sample
- :mod:`motionext.model` — the motion model and its loss; :func:`load_model`
"""

from . import ops

__version__ = "0.1.0"


def load_model(path="pretrained", device="cpu"):
    """A trained motion model in eval mode: a checkpoint path, or a shipped model's name.
    "pretrained" was trained on ACDC (non-commercial research use only; cite Bernard et al., IEEE
    TMI 2018) with Sunnybrook and the phantom, then fine-tuned on the real data's whole cines,
    every patient in ../shared included ("pretrained-all" is its former name).
    "pretrained-split" (the same terms) is the same recipe with held-out patients kept out, on
    which every held-out real-data figure is measured ("pretrained-cines" is one of its former
    names); "pretrained-pairs" (the same terms) is the model both were fine-tuned from;
    "pretrained-real" (the same terms) was trained on the real data alone with the defaults of
    2026-12-05; "pretrained-open" on redistributable data only.
    See motionext.model.io.load_model and motionext/pretrained/README.md."""
    from .model.io import load_model as _load

    return _load(path, device)


__all__ = ["ops", "load_model", "__version__"]
