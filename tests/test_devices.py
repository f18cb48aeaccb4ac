"""Device-clean code: with the model on the meta device (shapes, no values) every verb's tensor
path and a training step run, so a tensor created on the CPU by mistake fails here on any
machine. Also: the ops on meta tensors, the finite-value check's device rule, and the model's
own spacing."""

import pytest
import torch

from motionext import ops
from motionext.data.batches import TrainingSet, collate
from motionext.data.phantom import make_phantom
from motionext.model import ModelConfig, MotionModel
from motionext.model.io import checkpoint_dict, load_model
from motionext.motion import api
from motionext.motion.inputs import as_sequence
from motionext.ops import _checks
from motionext.train import TrainConfig, step_terms

from conftest import needs_cuda

TINY_MODEL = {"latent_dim": 8, "encoder_channels": [4, 8, 8, 2], "decoder_channels": [8, 8, 8, 4],
              "ed_feature_channels": [4, 4, 4, 4]}
META = torch.device("meta")


def _meta_model():
    return MotionModel(ModelConfig(image_size=(32, 32), **TINY_MODEL)).to(META)


@pytest.fixture
def cine():
    return make_phantom(size=(32, 32), num_frames=5, seed=1).to_cine(name="phantom")


VERBS = {
    "track": lambda m, x, lab: api.track(m, x, labels=lab).labels,
    "refine": lambda m, x, lab: api.track(m, x, refine=2).displacements,
    "compensate": lambda m, x, lab: api.compensate(m, x),
    "transport": lambda m, x, lab: api.transport(m, x, x[0]).warped,
    "sample": lambda m, x, lab: api.sample(m, x[0], num_frames=6, num_samples=2, seed=1).frames,
    "reconstruct": lambda m, x, lab: api.reconstruct(m, x, [0, 2], times=[0.1, 0.5]).displacements,
    "reconstruct-frames": lambda m, x, lab: api.reconstruct(m, x, [0, 3]).warped,
}
SHAPES = {"track": (5, 32, 32), "refine": (5, 2, 32, 32), "compensate": (5, 32, 32), "transport": (5, 32, 32),
          "sample": (2, 6, 32, 32), "reconstruct": (2, 2, 32, 32), "reconstruct-frames": (5, 32, 32)}


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_runs_with_the_model_on_the_meta_device(verb, cine):
    out = VERBS[verb](_meta_model(), cine.frames, cine.labels[0])
    assert out.device == META and tuple(out.shape) == SHAPES[verb]


def test_a_cine_input_goes_to_the_models_device(cine):
    seq = as_sequence(_meta_model(), cine)
    assert seq.frames.device == META and seq.times.device == META


def test_a_training_step_runs_on_the_meta_device(cine):
    model = _meta_model().train()
    batch = collate([TrainingSet([cine], augment=False)[(0, 0)]])
    config = TrainConfig(size=(32, 32), dice_weight=0.5, model=TINY_MODEL)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    terms = step_terms(model, model, batch, config, 0, META)
    assert all(t.device == META for t in terms.values())
    terms["loss"].backward()
    optimizer.step()
    assert all(p.device == META for p in model.parameters())


def test_the_ops_and_their_gradients_take_meta_tensors():
    image = torch.empty(2, 1, 16, 16, device=META, requires_grad=True)
    field = torch.empty(2, 2, 16, 16, device=META, requires_grad=True)
    moved = ops.warp(image, ops.scaling_squaring(field))
    cc = ops.lncc(moved, image.detach(), window=5, reduction="none")
    assert moved.shape == cc.shape == image.shape and cc.device == META
    cc.sum().backward()
    assert field.grad.shape == field.shape and image.grad.shape == image.shape


def test_the_value_check_runs_on_cpu_by_default_and_never_syncs_elsewhere(monkeypatch):
    nan = torch.full((1, 2, 8, 8), float("nan"))
    monkeypatch.delenv(_checks.CHECK_FINITE_VAR, raising=False)
    with pytest.raises(ValueError, match="NaN or Inf"):
        ops.scaling_squaring(nan)
    assert not _checks.finite_check_applies(torch.empty(2, device=META))
    cuda_like = type("T", (), {"device": torch.device("cuda")})()
    assert not _checks.finite_check_applies(cuda_like)  # no host sync per op on CUDA by default
    monkeypatch.setenv(_checks.CHECK_FINITE_VAR, "1")
    assert _checks.finite_check_applies(cuda_like)
    monkeypatch.setenv(_checks.CHECK_FINITE_VAR, "0")
    assert not _checks.finite_check_applies(nan)
    monkeypatch.setenv(_checks.CHECK_FINITE_VAR, "yes")
    with pytest.raises(ValueError, match="MOTIONEXT_CHECK_FINITE"):
        ops.scaling_squaring(torch.zeros(1, 2, 8, 8))


def test_the_model_keeps_its_training_spacing_and_inference_uses_it(tmp_path, cine):
    config = TrainConfig(size=(32, 32), spacing=1.25, model=TINY_MODEL)
    model_config = config.model_config()
    assert model_config.spacing == 1.25
    path = tmp_path / "model.pt"
    torch.save(checkpoint_dict(MotionModel(model_config)), path)
    model = load_model(path)
    assert model.config.spacing == 1.25
    seq = as_sequence(model, cine)
    # resampled to 1.25 mm (to the nearest whole number of voxels), not to the 1.5 mm default
    assert seq.spacing == pytest.approx((1.25, 1.25), rel=0.02)
    assert as_sequence(model, cine.frames).spacing == (1.25, 1.25)  # arrays on the model's grid too
    with pytest.raises(ValueError, match="training spacing"):
        TrainConfig(spacing=1.25, model={"spacing": 1.5}).model_config()
    for bad in (0, 1e-3, 1000):  # 1e-3 and 1000: metres or microns taken for mm
        with pytest.raises(ValueError, match=r"spacing must be a finite number in \[0.01, 100.0\]"):
            ModelConfig(spacing=bad)


def test_checkpoints_without_a_spacing_read_as_1_5_mm(tmp_path):
    state = checkpoint_dict(MotionModel(ModelConfig(image_size=(32, 32), **TINY_MODEL)))
    del state["config"]["spacing"]
    torch.save(state, tmp_path / "old.pt")
    assert load_model(tmp_path / "old.pt").config.spacing == 1.5


@needs_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_keeps_its_tensors_on_cuda(verb, cine):
    model = MotionModel(ModelConfig(image_size=(32, 32), **TINY_MODEL)).to("cuda").eval()
    out = VERBS[verb](model, cine.frames, cine.labels[0])
    assert out.is_cuda and tuple(out.shape) == SHAPES[verb]
