"""Codes of frames the model does not see: interpolated in time from the known ones, or drawn
from the prior, at inference (reconstruct) and in training (temporal dropout sampling)."""

import numpy as np
import pytest
import torch

from motionext.data.batches import model_noise
from motionext.model import ModelConfig, MotionModel
from motionext.model.code_fill import code_weights, fill_dropped_codes


def test_missing_codes_are_interpolated_in_time_closing_at_ed():
    weights = code_weights(np.array([0.0, 0.1, 0.25, 0.3, 0.9]), np.array([0.0, 0.25, 0.5]))
    np.testing.assert_allclose(weights, [[1, 0, 0], [0.6, 0.4, 0], [0, 1, 0], [0, 0.8, 0.2], [0.8, 0, 0.2]])
    assert not code_weights(np.array([0.0, 0.5]), np.array([0.0]))[1].any()  # ED alone: the prior mean
    assert not code_weights(np.array([0.0, 0.1]), np.array([0.0, 0.25]), "prior")[1].any()


def _codes():
    times = torch.tensor([[0.0, 0.2, 0.4, 0.6, 0.8], [0.0, 0.1, 0.3, 0.6, 0.7]])  # even, and sparse phases
    z = torch.stack([times * 10, times ** 2], dim=-1)  # (2, 5, 2)
    return z, torch.full_like(z, -7.0), times


def test_dropped_codes_are_interpolated_from_the_kept_ones_as_reconstruct_does():
    z, prior, times = _codes()
    dropped = torch.tensor([[True, False, True, True, False], [False, True, False, True, False]])
    filled = fill_dropped_codes(z, prior, dropped, times, "interpolate")
    for b in range(2):
        kept = [0] + [t for t in range(5) if not dropped[b, t] and t > 0]  # ED is always kept
        weights = torch.from_numpy(code_weights(times[b].numpy(), times[b, kept].numpy())).float()
        torch.testing.assert_close(filled[b], weights @ z[b, kept])
    torch.testing.assert_close(filled[0, 0], z[0, 0])                      # ED dropped: kept all the same
    torch.testing.assert_close(filled[0, 2], z[0, 1] + (z[0, 4] - z[0, 1]) / 3)  # between phases 0.2 and 0.8
    torch.testing.assert_close(filled[:, ~dropped[0]][0], z[0, ~dropped[0]])


def test_with_ed_alone_kept_the_dropped_codes_are_prior_samples_as_in_the_paper():
    z, prior, times = _codes()
    dropped = torch.tensor([[False, True, True, True, True]] * 2)
    for fill in ("interpolate", "prior"):
        filled = fill_dropped_codes(z, prior, dropped, times, fill)
        torch.testing.assert_close(filled[:, 1:], prior[:, 1:])
        torch.testing.assert_close(filled[:, 0], z[:, 0])
    with pytest.raises(ValueError, match="fill must be one of"):
        fill_dropped_codes(z, prior, dropped, times, "nearest")


def test_interpolating_training_sees_few_frames_kept_as_well_as_many():
    seeds = torch.arange(400)
    prior = model_noise(seeds, 20, 4, 0.5, "cpu")["tds_mask"].float().mean(1)
    spread = model_noise(seeds, 20, 4, 0.5, "cpu", "interpolate")["tds_mask"].float().mean(1)
    assert abs(prior.mean() - 0.5) < 0.02 and prior.std() < 0.15      # the paper's: every sequence at delta
    assert abs(spread.mean() - 0.5) < 0.05 and spread.std() > 0.25    # uniform on [0, 1]
    assert (spread >= 0.9).sum() > 20 and (spread <= 0.1).sum() > 20
    # the paper's masks are the draws they were before tds_fill existed
    old = [np.random.default_rng([s, 1]) for s in seeds[:3].tolist()]
    for rng, mask in zip(old, model_noise(seeds[:3], 20, 4, 0.5, "cpu")["tds_mask"]):
        rng.standard_normal((20, 4), dtype=np.float32), rng.standard_normal((20, 4), dtype=np.float32)
        assert torch.equal(mask, torch.from_numpy(rng.random(20) < 0.5))


def test_the_model_in_training_fills_dropped_codes_from_its_posterior_samples():
    torch.manual_seed(0)
    config = ModelConfig(image_size=(32, 32), latent_dim=4, encoder_channels=(4, 4, 4, 2),
                         decoder_channels=(4, 4, 4, 4), ed_feature_channels=(), tds_fill="interpolate")
    model = MotionModel(config).train()
    frames = torch.rand(2, 6, 32, 32)
    noise = model_noise(torch.arange(2), 6, 4, 0.5, "cpu", "interpolate")
    noise["tds_mask"] = torch.tensor([[False, True, False, True, True, False]] * 2)
    out = model(frames, (1.5, 1.5), **noise)
    sampled = out["mean"] + noise["posterior_noise"] * torch.exp(0.5 * out["log_var"])
    expected = fill_dropped_codes(sampled, noise["prior_noise"], noise["tds_mask"],
                                  torch.arange(6.0).expand(2, 6) / 6, "interpolate")
    torch.testing.assert_close(out["z_tilde"], expected)
    torch.testing.assert_close(out["z_tilde"][:, 1], (sampled[:, 0] + sampled[:, 2]) / 2)
    out["warped"].sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    with pytest.raises(ValueError, match="tds_fill"):
        ModelConfig(tds_fill="nearest")
