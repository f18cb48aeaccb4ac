"""The pretrained model shipped in the package: it loads without running code, and on phantom
subjects it never saw it propagates ED labels to ES clearly better than no motion, without
folding."""

import motionext
from motionext.evaluation import evaluate_on_phantom
from motionext.model import ModelConfig
from motionext.model.io import PRETRAINED, read_checkpoint


def test_pretrained_model_is_shipped_and_loads():
    assert PRETRAINED.exists() and PRETRAINED.stat().st_size < 5_000_000
    model = motionext.load_model("pretrained")
    assert isinstance(model.config, ModelConfig) and model.config.image_size == (128, 128)
    assert not model.training
    assert read_checkpoint(PRETRAINED)["train_config"]["data"] == "phantom+sample"


def test_pretrained_model_beats_identity_on_held_out_phantoms():
    result = evaluate_on_phantom(motionext.load_model("pretrained"), subjects=3, frames=16)
    assert result["dice_LV_model"] > result["dice_LV_identity"] + 0.05
    assert result["dice_myocardium_model"] > result["dice_myocardium_identity"] + 0.05
    assert result["epe_model"] < 0.7 * result["epe_identity"]
    assert result["folding"] == 0.0
