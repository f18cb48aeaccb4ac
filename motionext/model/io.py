"""Saving and loading models and training state. Checkpoints are plain tensors and containers,
read with torch.load(weights_only=True): loading one runs no code."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from ..files import atomic_write
from .config import ModelConfig
from .latent_prior import LatentPrior
from .motion_model import MotionModel

FORMAT = "motionext-checkpoint"
FORMAT_VERSION = 1
PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"
# The shipped models by name (motionext/pretrained/README.md is their card).
# "pretrained": "pretrained-split"'s last stage run on every patient in ../shared (the real data
#     a user gets by default; its recipe is measured on held-out patients as "pretrained-split").
#     "pretrained-all" was its name on 2026-12-07 until then, and still loads it. ACDC's terms
#     apply to it: non-commercial research use, citing Bernard et al., IEEE TMI 37(11), 2018.
# "pretrained-split": "pretrained-pairs" fine-tuned on the real training split alone, whole cines
#     weighted up; every held-out real-data figure is of it. Its name was "pretrained-cines" until
#     2026-12-06 (that name still loads it), then "pretrained" until 2026-12-07. ACDC's terms apply.
# "pretrained-pairs": real cine-MRI (ACDC and Sunnybrook) and the phantom; "pretrained" until
#     2026-12-06. ACDC's terms apply.
# "pretrained-open": only redistributable data (the phantom and Sunnybrook, CC0).
# "pretrained-real": trained from scratch on the real data alone with the defaults of 2026-12-05,
#     then with labels and whole cines; the best held-out tracking figures. ACDC's terms apply.
PRETRAINED_MODELS = {"pretrained": PRETRAINED_DIR / "motionext_2d_all.pt",
                     "pretrained-all": PRETRAINED_DIR / "motionext_2d_all.pt",
                     "pretrained-split": PRETRAINED_DIR / "motionext_2d.pt",
                     "pretrained-cines": PRETRAINED_DIR / "motionext_2d.pt",
                     "pretrained-pairs": PRETRAINED_DIR / "motionext_2d_pairs.pt",
                     "pretrained-real": PRETRAINED_DIR / "motionext_2d_real.pt",
                     "pretrained-open": PRETRAINED_DIR / "motionext_2d_open.pt"}
PRETRAINED = PRETRAINED_MODELS["pretrained"]


def model_path(name) -> Path:
    """The checkpoint a name stands for: a shipped model's name, or a path."""
    if not isinstance(name, (str, Path)):
        raise TypeError(f"a model is a checkpoint path or a shipped model's name ({', '.join(PRETRAINED_MODELS)}); "
                        f"got {name!r}")
    return PRETRAINED_MODELS.get(str(name), Path(name))


def atomic_save(obj, path) -> Path:
    """torch.save to a temporary file in the same folder, then rename: a kill at any moment leaves
    either the old file or the new one, never a truncated one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda f: torch.save(obj, f))


def checkpoint_dict(model: MotionModel, **state) -> dict:
    from .. import __version__

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "motionext_version": __version__,
        "config": model.config.to_dict(),
        "model": model.state_dict(),
        **({"latent_prior": model.latent_prior.to_dict()} if model.latent_prior is not None else {}),
        **state,
    }


def read_checkpoint(path) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a checkpoint file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's own message suggests weights_only=False, which would run code from the file
        raise ValueError(f"{path} is not a motionext checkpoint: it holds Python objects other than tensors and "
                         "plain values, and motionext never loads those (loading them can run code)") from None
    except Exception:
        raise ValueError(f"{path} is not a motionext checkpoint: not a file written by torch.save, or a truncated "
                         "or damaged one") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a motionext checkpoint: it was written by torch.save, but not by motionext")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path} has checkpoint format {version} (written by motionext {data.get('motionext_version')}); "
            f"this motionext reads format {FORMAT_VERSION}"
        )
    if not isinstance(data.get("config"), dict) or not isinstance(data.get("model"), dict):
        raise ValueError(f"{path} is a damaged motionext checkpoint: its model settings or weights are missing")
    # a run that diverged: otherwise every use of the model ends in a NaN deep inside an op
    broken = [name for name, w in data["model"].items()
              if isinstance(w, torch.Tensor) and w.is_floating_point() and not bool(torch.isfinite(w).all())]
    if broken:
        raise ValueError(f"{path}: the weights hold NaN or Inf ({', '.join(broken[:3])}"
                         f"{f' and {len(broken) - 3} more' if len(broken) > 3 else ''}); the run that wrote them diverged")
    return data


def load_model(path="pretrained", device="cpu") -> MotionModel:
    """A trained model in eval mode, from a checkpoint path or a shipped model's name:

    - "pretrained": trained on real cine-MRI (ACDC, Sunnybrook) and the phantom, then fine-tuned
      on the real data alone with whole cines given more weight, every patient in ../shared
      included ("pretrained-all" earlier on 2026-12-07, a name that still loads it); so no real
      data is left to measure it on. It was trained on ACDC, whose terms allow non-commercial
      research use only, citing Bernard et al., "Deep learning techniques for automatic MRI
      cardiac multi-structures segmentation and diagnosis", IEEE TMI 37(11), 2018.
    - "pretrained-split": the same recipe with held-out patients kept out; every held-out
      real-data figure is of it ("pretrained" from 2026-12-06 until 2026-12-07,
      "pretrained-cines" before, a name that still loads it). ACDC's terms apply.
    - "pretrained-pairs": "pretrained" until 2026-12-06, the model both were fine-tuned from: it
      tracks the phantom better, held-out whole cines and ACDC pairs worse. ACDC's terms apply.
    - "pretrained-open": trained only on redistributable data (the phantom, Sunnybrook, CC0).
    - "pretrained-real": trained from scratch on the real data alone (ACDC, Sunnybrook) with the
      defaults of 2026-12-05, then with the label term and whole cines: the best one-pass
      figures on the held-out patients. ACDC's terms apply to it too.

    Their data, commands and measured figures: motionext/pretrained/README.md."""
    path = model_path(path)
    data = read_checkpoint(path)
    model = MotionModel(ModelConfig.from_dict(data["config"]))
    try:
        model.load_state_dict(data["model"])
    except RuntimeError as exc:
        raise ValueError(f"{path}: the weights do not fit the saved configuration: {exc}") from exc
    if data.get("latent_prior") is not None:
        model.latent_prior = LatentPrior.from_dict(data["latent_prior"], model.config.latent_dim, f"{path}: latent_prior")
    model.source = str(path)
    return model.to(device).eval()
