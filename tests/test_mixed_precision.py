"""Mixed precision: the ops, the model, the loss, training and every verb under CPU autocast
(bf16, and fp16 where it matters), against float32."""

import numpy as np
import pytest
import torch

from motionext import ops
from motionext.data.batches import TrainingSet, collate
from motionext.data.phantom import make_phantom
from motionext.model import ModelConfig, MotionModel, motion_loss
from motionext.motion import api
from motionext.train import TrainConfig, step_terms, train

from conftest import needs_cuda

TINY_MODEL = {"latent_dim": 8, "encoder_channels": [4, 8, 8, 2], "decoder_channels": [8, 8, 8, 4],
              "ed_feature_channels": [4, 4, 4, 4]}
HALF = [torch.bfloat16, torch.float16]


def _sequence(frames=6, size=32, seed=0):
    ph = make_phantom(size=(size, size), num_frames=frames, seed=seed)
    return torch.from_numpy(ph.frames)[None], ph


@pytest.mark.parametrize("dtype", HALF)
def test_ops_take_a_half_and_a_float_input_under_autocast_and_answer_in_float32(dtype):
    image = torch.rand(2, 1, 16, 16)
    field = (torch.randn(2, 2, 16, 16) * 2).to(dtype)
    with torch.autocast("cpu", dtype=dtype):
        moved = ops.warp(image, field)
        displacement = ops.scaling_squaring(field)
        cc = ops.lncc(moved, image.to(dtype), window=5)
    assert moved.dtype == displacement.dtype == cc.dtype == torch.float32
    # the same as float32 on the same (rounded) inputs: the ops ran in full precision
    torch.testing.assert_close(moved, ops.warp(image, field.float()))
    torch.testing.assert_close(displacement, ops.scaling_squaring(field.float()))


def test_raw_ops_follow_the_same_rule_under_autocast():
    if not ops.build_info()["compiled"]:
        pytest.skip("the compiled extension is not loaded")
    image, field = torch.rand(1, 1, 8, 8), torch.randn(1, 2, 8, 8).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = torch.ops.motionext.warp(image, field, "bilinear", "border")
    assert out.dtype == torch.float32


def test_outside_autocast_half_inputs_stay_half():
    image, field = torch.rand(1, 1, 8, 8).bfloat16(), torch.randn(1, 2, 8, 8).bfloat16()
    assert ops.warp(image, field).dtype == torch.bfloat16


@pytest.mark.parametrize("dtype", HALF)
def test_the_loss_sees_one_dtype_and_is_close_to_float32(dtype):
    frames, _ = _sequence()
    model = MotionModel(ModelConfig(image_size=(32, 32), **TINY_MODEL))
    full = motion_loss(model, frames, model(frames, (1.5, 1.5), sample=False))
    with torch.autocast("cpu", dtype=dtype):
        out = model(frames, (1.5, 1.5), sample=False)
        half = motion_loss(model, frames, out)
    for key in ("mean", "log_var", "z", "velocity", "displacement", "warped"):
        assert out[key].dtype == torch.float32, key
    assert torch.isfinite(half["loss"])
    torch.testing.assert_close(half["loss"], full["loss"], rtol=1e-2, atol=0)


def _gradients(model, frames, dtype):
    model.zero_grad()
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        terms = motion_loss(model, frames, model(frames, (1.5, 1.5), sample=False))
    terms["loss"].backward()
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def test_bf16_gradients_are_close_to_float32s():
    frames, _ = _sequence()
    model = MotionModel(ModelConfig(image_size=(32, 32), **TINY_MODEL))
    # a few float32 steps first, so that the decoder's output layer is no longer near zero
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(3):
        optimizer.zero_grad()
        motion_loss(model, frames, model(frames, (1.5, 1.5), sample=False))["loss"].backward()
        optimizer.step()
    full, half = _gradients(model, frames, None), _gradients(model, frames, torch.bfloat16)
    assert torch.isfinite(half).all()
    cosine = torch.nn.functional.cosine_similarity(full, half, dim=0)
    assert cosine > 0.95, float(cosine)
    assert 0.8 < float(half.norm() / full.norm()) < 1.25


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_training_under_cpu_autocast_has_a_finite_falling_loss(tmp_path, amp):
    config = TrainConfig(data="phantom", out=str(tmp_path / amp), steps=30, size=(32, 32), phantom_subjects=2,
                         val_every=1000, checkpoint_every=1000, model=TINY_MODEL, seed=2, amp=amp, augment=False,
                         intensity_augment=False, lr=3e-3, kl_warmup=0)
    train(config, progress=False)
    import csv

    with open(tmp_path / amp / "log.csv") as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f)]
    assert len(losses) == 30 and np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


def test_amp_settings():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert TrainConfig(amp="auto").amp_dtype(cpu) is None
    assert TrainConfig(amp="auto").amp_dtype(cuda) == torch.bfloat16
    assert TrainConfig(amp="bf16").amp_dtype(cpu) == torch.bfloat16
    assert TrainConfig(amp="fp16").amp_dtype(cuda) == torch.float16
    assert TrainConfig(amp="off").amp_dtype(cuda) is None
    assert TrainConfig(amp=True).amp == "auto" and TrainConfig(amp=False).amp == "off"  # older runs' settings
    with pytest.raises(ValueError, match="amp must be one of"):
        TrainConfig(amp="fp8")


def test_one_training_step_under_bf16_backpropagates(tmp_path):
    frames, ph = _sequence()
    model = MotionModel(ModelConfig(image_size=(32, 32), **TINY_MODEL)).train()
    batch = collate([TrainingSet([ph.to_cine(name="phantom")], augment=False)[(0, 0)]])
    config = TrainConfig(amp="bf16", size=(32, 32))
    terms = step_terms(model, model, batch, config, 0, torch.device("cpu"))
    terms["loss"].backward()
    assert torch.isfinite(terms["loss"]) and all(torch.isfinite(p.grad).all() for p in model.parameters()
                                                 if p.grad is not None)


@pytest.mark.parametrize("verb", ["track", "refine", "compensate", "transport", "sample", "reconstruct"])
def test_every_verb_runs_under_bf16_and_gives_float32_close_to_full_precision(verb):
    frames, _ = _sequence()
    torch.manual_seed(0)
    model = MotionModel(ModelConfig(image_size=(32, 32), **TINY_MODEL)).eval()
    x = frames[0].numpy()
    run = {
        "track": lambda: api.track(model, x).displacements,
        "refine": lambda: api.track(model, x, refine=2).displacements,
        "compensate": lambda: api.compensate(model, x),
        "transport": lambda: api.transport(model, x, x[0]).displacements,
        "sample": lambda: api.sample(model, x[0], num_frames=4, num_samples=2, seed=0).displacements,
        "reconstruct": lambda: api.reconstruct(model, x, [0, 3]).displacements,
    }[verb]
    full = run()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = run()
    assert half.dtype == torch.float32 and half.shape == full.shape and torch.isfinite(half).all()
    # refinement's Adam steps are sign-like at first, so a small gradient change moves a voxel a little
    assert float((half - full).abs().mean()) < 0.03 * float(full.abs().mean()) + 1e-4


@needs_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("amp", ["auto", "fp16"])
def test_a_training_step_on_cuda_under_autocast_matches_float32(amp):
    _, ph = _sequence()
    device = torch.device("cuda")
    model = MotionModel(ModelConfig(image_size=(32, 32), **TINY_MODEL)).to(device).train()
    batch = collate([TrainingSet([ph.to_cine(name="phantom")], augment=False)[(0, 0)]])
    full = step_terms(model, model, batch, TrainConfig(amp="off", size=(32, 32)), 0, device)
    half = step_terms(model, model, batch, TrainConfig(amp=amp, size=(32, 32)), 0, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")
    scaler.scale(half["loss"]).backward()
    assert torch.isfinite(half["loss"])
    torch.testing.assert_close(half["loss"], full["loss"], rtol=2e-2, atol=0)
