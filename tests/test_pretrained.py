"""The models shipped in the package: they load by name without running code, each was trained
on the data its card names, and on phantom subjects they never saw they propagate ED labels to
ES clearly better than no motion, without folding."""

import pytest

import motionext
from motionext.evaluation import evaluate_on_phantom
from motionext.model import ModelConfig
from motionext.model.io import PRETRAINED_MODELS, read_checkpoint


@pytest.mark.parametrize("name", sorted(PRETRAINED_MODELS))
def test_shipped_models_load_by_name(name):
    path = PRETRAINED_MODELS[name]
    assert path.exists() and path.stat().st_size < 5_000_000
    model = motionext.load_model(name)
    assert isinstance(model.config, ModelConfig) and model.config.image_size == (128, 128)
    assert not model.training and model.source == str(path)


def test_the_open_model_saw_only_redistributable_data():
    sources = read_checkpoint(PRETRAINED_MODELS["pretrained-open"])["train_config"]["data"].split("+")
    assert set(sources) <= {"phantom", "sample"}
    assert "real-split/train" in read_checkpoint(PRETRAINED_MODELS["pretrained"])["train_config"]["data"]


def test_pretrained_model_beats_identity_on_held_out_phantoms():
    result = evaluate_on_phantom(motionext.load_model("pretrained"), subjects=3, frames=16)
    assert result["dice_LV_model"] > result["dice_LV_identity"] + 0.05
    assert result["dice_myocardium_model"] > result["dice_myocardium_identity"] + 0.05
    assert result["epe_model"] < 0.7 * result["epe_identity"]
    assert result["folding"] == 0.0
