"""The models shipped in the package: they load by name without running code, each was trained
on the data its card names, and on phantom subjects they never saw they propagate ED labels to
ES clearly better than no motion, without folding; the cine models track the held-out Sunnybrook
cines (with ../shared)."""

import sys
from pathlib import Path

import numpy as np
import pytest

import motionext
from motionext.evaluation import evaluate_on_phantom
from motionext.model import ModelConfig
from motionext.model.io import PRETRAINED_MODELS, read_checkpoint
from motionext.motion.evaluate import evaluate_sequence


@pytest.mark.parametrize("name", sorted(PRETRAINED_MODELS))
def test_shipped_models_load_by_name(name):
    path = PRETRAINED_MODELS[name]
    assert path.exists() and path.stat().st_size < 5_000_000
    model = motionext.load_model(name)
    assert isinstance(model.config, ModelConfig) and model.config.image_size == (128, 128)
    assert not model.training and model.source == str(path)
    if name == "pretrained-real":  # trained on the defaults of 2026-12-05: smoothing over phases
        assert model.config.temporal_sigma_phase == 0.075 and model.latent_prior is not None
    else:
        assert model.config.temporal_sigma_phase is None  # trained smoothing by frame index, and still does


@pytest.mark.parametrize("name", [None, 3])
def test_a_model_that_is_no_name_or_path_is_refused_with_the_names(name):
    with pytest.raises(TypeError, match="a checkpoint path or a shipped model's name \\(pretrained, "):
        motionext.load_model(name)


def test_the_open_model_saw_only_redistributable_data():
    sources = read_checkpoint(PRETRAINED_MODELS["pretrained-open"])["train_config"]["data"].split("+")
    assert set(sources) <= {"phantom", "sample"}


def test_the_split_model_saw_the_real_training_split_and_the_phantom():
    # two stages: pretrained-pairs on the real split and the phantom, then the fine-tune on the
    # real split with its whole cines that became `pretrained-split` (the recorded init,
    # "pretrained", was pretrained-pairs' name then)
    pairs = read_checkpoint(PRETRAINED_MODELS["pretrained-pairs"])["train_config"]["data"].split("+")
    assert "phantom" in pairs and any(source.endswith("real-split/train") for source in pairs)
    config = read_checkpoint(PRETRAINED_MODELS["pretrained-split"])["train_config"]
    assert config["init"] == "pretrained" and any(source.endswith("split-sb/train") for source in config["data"].split("+"))
    # its names until 2026-12-06 and 2026-12-07
    assert PRETRAINED_MODELS["pretrained-cines"] == PRETRAINED_MODELS["pretrained-split"] != PRETRAINED_MODELS["pretrained"]


def test_pretrained_is_the_split_model_s_last_stage_on_every_patient():
    # the split model's last stage (same init and settings) on `real_split.py --no-hold-out`'s folders
    mine = read_checkpoint(PRETRAINED_MODELS["pretrained"])["train_config"]
    split = read_checkpoint(PRETRAINED_MODELS["pretrained-split"])["train_config"]
    assert mine["init"] == "pretrained-pairs" and split["init"] == "pretrained"  # the same weights, renamed since
    assert any(source.endswith("all/train") for source in mine["data"].split("+"))
    assert any(source.endswith("cines-all") for source in mine["data"].split("+"))  # SCD0000301 too
    for setting in ("dice_weight", "kl_free_bits", "kl_warmup", "lr", "batch_size", "seed"):
        assert mine[setting] == split[setting], setting
    # the split model predates the setting: its loss was summed over frames, which --no-loss-per-frame keeps
    assert mine["loss_per_frame"] is False and "loss_per_frame" not in split
    assert PRETRAINED_MODELS["pretrained-all"] == PRETRAINED_MODELS["pretrained"]  # its name on 2026-12-07


@pytest.mark.parametrize("name", ["pretrained", "pretrained-split"])
def test_pretrained_model_beats_identity_on_held_out_phantoms(name):
    result = evaluate_on_phantom(motionext.load_model(name), subjects=3, frames=16)
    assert result["dice_LV_model"] > result["dice_LV_identity"] + 0.05
    assert result["dice_myocardium_model"] > result["dice_myocardium_identity"] + 0.05
    assert result["epe_model"] < 0.7 * result["epe_identity"]
    assert result["folding"] == 0.0


def test_the_real_model_saw_real_data_only():
    # its last stage started from a run on the real split alone (docs/model.md, "A first run on
    # the defaults"); neither saw the phantom
    config = read_checkpoint(PRETRAINED_MODELS["pretrained-real"])["train_config"]
    assert "phantom" not in config["data"].split("+") and config["init"].endswith("first-ft/model.pt")
    assert config["dice_weight"] == 500 and not config["loss_per_frame"]


SUNNYBROOK = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "sunnybrook_scd5" / "nifti"


@pytest.mark.skipif(not (SUNNYBROOK / "SCD0000301_cine4d.nii.gz").exists(), reason="the shared Sunnybrook cines are not here")
@pytest.mark.parametrize("name", ["pretrained-split", "pretrained-real"])
def test_the_cine_models_track_the_held_out_sunnybrook_cines(name):
    # Whole 20-frame cines of the patient the split's models did not see, one pass: ES LV
    # blood-pool Dice (pretrained-split 0.903, pretrained-real 0.904, pretrained-pairs 0.852, no
    # motion 0.879; motionext/pretrained/README.md). `pretrained` saw them (0.939 there, a fit).
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from experiments import sunnybrook_cines

    cines = [c for c in sunnybrook_cines(SUNNYBROOK.parents[1]) if c.name.startswith("SCD0000301")]
    rows = [evaluate_sequence(motionext.load_model(name), c) for c in cines]
    assert len(rows) == 10
    assert np.mean([r["dice_LV-BP"] for r in rows]) >= 0.90 > np.mean([r["dice_LV-BP_identity"] for r in rows])
