"""The motion model's modules, temporal dropout sampling, and learning on the phantom."""

import numpy as np
import pytest
import torch

from motionext.data import make_phantom
from motionext.model import ModelConfig, MotionModel, motion_loss
from motionext.model.layers import Decoder, Encoder, TemporalNetwork, smooth_over_phase, smooth_spatial, smooth_temporal

SMALL = dict(image_size=(32, 32), latent_dim=8, encoder_channels=(4, 8, 8, 2), decoder_channels=(8, 8, 8, 4))


def _frames(t=6, size=(32, 32), seed=0):
    return torch.from_numpy(make_phantom(t, size, seed=seed).frames)[None]


def test_modules_shapes_and_gradients():
    config = ModelConfig(**SMALL)
    enc, tcn, dec = Encoder(config), TemporalNetwork(config), Decoder(config)
    x = torch.rand(5, 1, 32, 32, requires_grad=True)
    mean, log_var = enc(x, torch.rand(5, 1, 32, 32))
    assert mean.shape == log_var.shape == (5, 8)
    (mean.sum() + log_var.sum()).backward()
    assert x.grad is not None and all(p.grad is not None for p in enc.parameters())
    z = tcn(torch.randn(2, 8, 7, requires_grad=True), torch.rand(2, 7))
    assert z.shape == (2, 8, 7)
    z.sum().backward()
    assert all(p.grad is not None for p in tcn.parameters())
    v = dec(torch.randn(3, 8), torch.rand(3, 1, 32, 32))
    assert v.shape == (3, 2, 32, 32)
    v.sum().backward()
    assert all(p.grad is not None for p in dec.parameters())


def test_tcn_is_non_causal_and_cyclic_padding_wraps():
    config = ModelConfig(**SMALL)
    tcn = TemporalNetwork(config)
    z, t = torch.randn(1, 8, 9), torch.linspace(0, 1, 9)[None]
    base = tcn(z, t)
    later = z.clone()
    later[..., 8] += 5.0  # a change at the last step reaches earlier steps (non-causal)
    assert not torch.allclose(tcn(later, t)[..., 6], base[..., 6])
    cyclic = TemporalNetwork(ModelConfig(**SMALL, tcn_padding="cyclic"))
    cyclic.load_state_dict(tcn.state_dict())
    # same weights, different padding: the edges differ, the middle of a long sequence does not
    long_z, long_t = torch.randn(1, 8, 64), torch.linspace(0, 1, 64)[None]
    assert not torch.allclose(cyclic(long_z, long_t)[..., 0], tcn(long_z, long_t)[..., 0])
    torch.testing.assert_close(cyclic(long_z, long_t)[..., 32], tcn(long_z, long_t)[..., 32])


def test_tcn_direct_path_carries_each_code_and_starts_neutral():
    z, t = torch.randn(2, 8, 9), torch.linspace(0, 1, 9)[None].expand(2, 9)
    paper = TemporalNetwork(ModelConfig(**SMALL))
    direct = TemporalNetwork(ModelConfig(**SMALL, tcn_direct=True))
    assert direct.direct is not None and paper.direct is None
    # the paper's weights in a network with the direct path: the same output, since it starts at 0
    missing = direct.load_state_dict(paper.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["direct.bias", "direct.weight"]
    torch.testing.assert_close(direct(z, t), paper(z, t))
    # with the mixture silenced and the direct map the identity, z is z~ frame by frame
    with torch.no_grad():
        direct.output.weight.zero_()
        direct.output.bias.zero_()
        direct.direct.weight.copy_(torch.eye(8)[..., None])
    torch.testing.assert_close(direct(z, t), z)
    # the default, and what a checkpoint saved before the setting existed reads as: the paper's
    assert ModelConfig().tcn_direct is False and ModelConfig.from_dict({"latent_dim": 8}).tcn_direct is False


def test_model_forward_shapes_and_identity_start():
    model = MotionModel(ModelConfig(**SMALL)).eval()
    frames = _frames()
    out = model(frames, (1.5, 1.5))
    assert out["velocity"].shape == out["displacement"].shape == (1, 6, 2, 32, 32)
    assert out["warped"].shape == frames.shape and out["z"].shape == (1, 6, 8)
    assert out["displacement"].abs().max() < 1e-2  # the decoder starts near the identity
    with pytest.raises(ValueError, match="spatial size"):
        model(torch.rand(1, 6, 40, 40), (1.5, 1.5))
    with pytest.raises(ValueError, match="at least 2 frames"):
        model(torch.rand(1, 1, 32, 32), (1.5, 1.5))


def test_temporal_dropout_replaces_chosen_steps_by_prior_samples():
    model = MotionModel(ModelConfig(**SMALL)).train()
    a, b = _frames(seed=0), _frames(seed=5)
    mask = torch.tensor([[False, True, False, True, True, False]])
    torch.manual_seed(0)
    out_a = model(a, (1.5, 1.5), sample=False, tds_mask=mask)
    torch.manual_seed(0)
    out_b = model(b, (1.5, 1.5), sample=False, tds_mask=mask)
    kept = ~mask[0]
    torch.testing.assert_close(out_a["z_tilde"][0, kept], out_a["mean"][0, kept])  # posterior where kept
    assert not torch.allclose(out_a["z_tilde"][0, mask[0]], out_a["mean"][0, mask[0]])
    # where dropped, z~ is a prior draw: it does not depend on the images
    torch.testing.assert_close(out_a["z_tilde"][0, mask[0]], out_b["z_tilde"][0, mask[0]])
    # the default mask drops about tds_probability of the steps in training, none in eval
    torch.manual_seed(1)
    drops = torch.stack([model(a, (1.5, 1.5))["tds_mask"] for _ in range(30)]).float().mean()
    assert 0.35 < drops < 0.65
    assert not model.eval()(a, (1.5, 1.5))["tds_mask"].any()


def test_smoothing_preserves_constants():
    field = torch.full((2, 2, 16, 16), 3.0)
    torch.testing.assert_close(smooth_spatial(field, (2.0, 1.0)), field)
    seq = torch.full((1, 5, 2, 4, 4), -1.0)
    torch.testing.assert_close(smooth_temporal(seq, 1.5), seq)


@pytest.mark.parametrize("shape,sigmas", [((3, 2, 40, 36), (1.5, 0.5)), ((1, 3, 12, 10, 14), (1.0, 2.0, 0.5)),
                                           ((2, 2, 8, 8), (5.0, 2.0)), ((1, 1, 30), (2.0,)), ((2, 2, 16, 16), (0.0, 1.0))])
def test_spatial_smoothing_is_scipys_gaussian_with_replicated_borders(shape, sigmas):
    # scipy's radius int(3 sigma + 0.5) is motionext's ceil(3 sigma) for these sigmas; (2, 2, 8, 8)
    # has a kernel longer than the image, (16, 16) leaves its first axis alone
    from scipy.ndimage import gaussian_filter1d

    field = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = field.numpy()
    for axis, sigma in enumerate(sigmas):
        if sigma > 0:
            expected = gaussian_filter1d(expected, sigma, axis=2 + axis, mode="nearest", truncate=3.0)
    smoothed = smooth_spatial(field, sigmas)
    assert smoothed.is_contiguous()
    np.testing.assert_allclose(smoothed.numpy(), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("ndim,ed_features", [(2, ()), (2, (4, 4, 8, 8)), (3, ())])
def test_the_decoder_convolves_the_ed_frame_once_as_the_concatenation_would(ndim, ed_features):
    # the paper's decoder concatenates I_0's features to every frame's; motionext convolves them
    # once per ED frame and adds them: the same velocities and the same weight gradients
    import torch.nn.functional as F

    from motionext.model.layers import _resize

    size = (16, 16) if ndim == 2 else (16, 16, 16)
    config = ModelConfig(ndim=ndim, image_size=size, latent_dim=8, decoder_channels=(8, 8, 8, 4),
                         ed_feature_channels=ed_features)
    torch.manual_seed(0)
    decoder = Decoder(config).double()
    with torch.no_grad():
        decoder.velocity.weight.normal_(std=0.1)
    z, moving = torch.randn(6, 8, dtype=torch.float64), torch.rand(2, 1, *size, dtype=torch.float64)

    def concatenated():
        h = F.leaky_relu(decoder.seed(z), 0.2).view(6, *decoder.seed_shape)
        scales = (list(reversed(decoder.ed_features(moving))) if ed_features
                  else [_resize(moving, tuple(n * 2 ** k for n in h.shape[2:])) for k in range(4)])
        scales = [x.repeat_interleave(3, dim=0) for x in scales]
        for layer, ed in zip(decoder.up, scales):
            h = F.leaky_relu(layer(torch.cat([h, ed], dim=1)), 0.2)
        return decoder.scale * decoder.velocity(torch.cat([h, scales[3]], dim=1))

    outputs, gradients = [], []
    for run in (concatenated, lambda: decoder(z, moving, repeats=3)):
        decoder.zero_grad()
        velocity = run()
        (velocity * torch.linspace(-1, 1, velocity.numel(), dtype=torch.float64).view_as(velocity)).sum().backward()
        outputs.append(velocity.detach())
        gradients.append([p.grad.clone() for p in decoder.parameters()])
    assert outputs[1].shape == (6, ndim, *size) and outputs[1].is_contiguous()
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-10, atol=1e-12)
    for mine, theirs in zip(*gradients):
        torch.testing.assert_close(mine, theirs, rtol=1e-9, atol=1e-9)


def test_smoothing_over_phases_mixes_neighbours_in_the_cycle_not_a_sparse_pair():
    torch.manual_seed(0)
    cine = torch.randn(1, 20, 2, 3)
    even = torch.arange(20.0)[None] / 20
    by_phase, by_index = smooth_over_phase(cine, even, 1.5 / 20), smooth_temporal(cine, 1.5)
    # an even cine: as by index, away from the ends (whose padding differs)
    torch.testing.assert_close(by_phase[:, 5:15], by_index[:, 5:15], atol=1e-3, rtol=0)
    assert (by_phase - cine).abs().mean() > 0.3
    # an (ED, ES) pair at its phases stays apart; by index, ES took about 31 % of ED's velocity
    pair = torch.stack([torch.zeros(2, 3), torch.ones(2, 3)])[None]
    torch.testing.assert_close(smooth_over_phase(pair, torch.tensor([[0.0, 0.35]]), 0.075), pair, atol=1e-4, rtol=0)
    torch.testing.assert_close(smooth_temporal(pair, 1.5)[0, 1], torch.full((2, 3), 0.692), atol=1e-3, rtol=0)
    # cyclic: the last phase is ED's neighbour
    ends = torch.tensor([[0.0, 0.5, 0.95]])
    seq = torch.tensor([[1.0, 0.0, -1.0]])
    assert smooth_over_phase(seq, ends, 0.05, cyclic=True)[0, 0] < 0.5
    assert smooth_over_phase(seq, ends, 0.05)[0, 0] > 0.99


def test_the_decoder_smooths_by_phase_and_shipped_models_keep_their_index_smoothing():
    torch.manual_seed(0)
    model = MotionModel(ModelConfig(**SMALL)).eval()
    unsmoothed = MotionModel(ModelConfig(**SMALL, temporal_sigma_phase=0.0)).eval()
    unsmoothed.load_state_dict(model.state_dict())
    z, ed = torch.randn(1, 2, 8), _frames(2)[:, 0]
    pair = torch.tensor([[0.0, 0.35]])
    torch.testing.assert_close(model.decode(z, ed, (1.5, 1.5), pair), unsmoothed.decode(z, ed, (1.5, 1.5), pair))
    close = torch.tensor([[0.0, 0.05]])
    assert not torch.allclose(model.decode(z, ed, (1.5, 1.5), close), unsmoothed.decode(z, ed, (1.5, 1.5), close))
    # checkpoints saved before the setting existed smoothed by frame index, and still do
    assert ModelConfig.from_dict({}).temporal_sigma_phase is None
    assert ModelConfig.from_dict({}, saved=False).temporal_sigma_phase == 0.075
    for bad in (-0.1, 1.5, "wide"):
        with pytest.raises(ValueError, match="temporal_sigma_phase"):
            ModelConfig(temporal_sigma_phase=bad)


def test_loss_decreases_on_the_phantom():
    torch.manual_seed(0)
    model = MotionModel(ModelConfig(**SMALL, tds_probability=0.0)).train()
    frames = _frames(t=8)
    losses = _recon_losses(model, frames, (1.5, 1.5), steps=50)
    assert np.mean(losses[-5:]) < 0.85 * np.mean(losses[:5])
    assert all(np.isfinite(losses))


def _recon_losses(model, frames, spacing, steps: int, lr: float = 5e-3) -> list:
    """Train `model` on one batch for `steps` Adam steps; the reconstruction term at each."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        terms = motion_loss(model, frames, model(frames, spacing))
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
        losses.append(float(terms["recon"].detach()))
    return losses


def test_config_round_trip_and_validation():
    config = ModelConfig(**SMALL)
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="multiple of 8"):
        ModelConfig(image_size=(30, 32))
    with pytest.raises(ValueError, match="unknown settings"):
        ModelConfig.from_dict({"lattent_dim": 3})
    with pytest.raises(ValueError, match="tcn_padding"):
        ModelConfig(tcn_padding="reflect")


def test_a_3d_phantom_trains_with_the_same_code():
    torch.manual_seed(0)
    config = ModelConfig(ndim=3, image_size=(16, 16, 8), latent_dim=8, encoder_channels=(4, 8, 8, 2),
                         decoder_channels=(8, 8, 8, 4), tds_probability=0.0, lncc_window=5)
    model = MotionModel(config).train()
    p = make_phantom(5, (16, 16, 8), seed=2, slice_spacing=3.0)
    frames = torch.from_numpy(p.frames)[None]
    assert model(frames, p.spacing)["displacement"].shape == (1, 5, 3, 16, 16, 8)
    losses = _recon_losses(model, frames, p.spacing, steps=25)
    assert np.mean(losses[-3:]) < 0.95 * np.mean(losses[:3])


def test_spatial_gradient_penalty_measures_the_velocity_gradient_in_mm():
    from motionext.model.losses import spatial_gradient_penalty

    y, x = torch.meshgrid(torch.arange(6.0), torch.arange(8.0), indexing="ij")
    velocity = torch.stack([torch.zeros_like(x), 0.5 * x])  # channel k moves along axis k: u_x = x / 2
    velocity = torch.stack([velocity, torch.zeros_like(velocity)])[None]  # (B=1, T=2, 2, 6, 8)
    penalty = spatial_gradient_penalty(velocity, (2.0, 3.0))
    # along x: u_x changes by 0.5 voxel = 1.5 mm per step, u_y by 0; along y: nothing; means of both
    torch.testing.assert_close(penalty[0, 0], torch.tensor((1.5 / 2 + 0.0) / 2), atol=2e-3, rtol=0)
    assert penalty[0, 1] < 2e-3  # a field at rest costs nothing (up to the smoothing of |x|)
    with pytest.raises(ValueError, match="2-D velocities but 3 spacings"):
        spatial_gradient_penalty(velocity, (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="gradient penalty: every spatial axis needs at least 2 voxels"):
        spatial_gradient_penalty(velocity[..., :1], (2.0, 3.0))


def test_spatial_curvature_penalty_charges_bending_not_affine_motion():
    from motionext.model.losses import spatial_curvature_penalty

    y, x = torch.meshgrid(torch.arange(6.0), torch.arange(8.0), indexing="ij")
    affine = torch.stack([-0.2 * x + 0.1, 0.5 * x + 0.3 * y])  # contraction, shear and shift
    bent = torch.stack([torch.zeros_like(x), 0.25 * x * x])  # u_x bends by 0.5 voxel = 1.5 mm per step^2
    twisted = torch.stack([0.1 * x * y, torch.zeros_like(x)])  # mixed second difference 0.1 voxel = 0.2 mm
    penalty = spatial_curvature_penalty(torch.stack([affine, bent, twisted])[None], (2.0, 3.0))
    assert penalty.shape == (1, 3) and penalty[0, 0] < 2.5e-3  # up to the smoothing of |x| (2e-3 here)
    # means over the two components, then summed over the Hessian's entries (the mixed one twice), / ndim
    torch.testing.assert_close(penalty[0, 1:], torch.tensor([1.5 / 2 / 2, 2 * 0.2 / 2 / 2]), atol=2e-3, rtol=0)
    with pytest.raises(ValueError, match="2-D velocities but 3 spacings"):
        spatial_curvature_penalty(affine[None, None], (1.0, 1.0, 1.0))
    thin = torch.zeros(1, 1, 3, 8, 8, 2)  # no second difference along the last axis: an error, not NaN
    with pytest.raises(ValueError, match=r"curvature penalty: every spatial axis needs at least 3 voxels; got \(8, 8, 2\)"):
        spatial_curvature_penalty(thin, (1.0, 1.0, 1.0))


def test_temporal_curvature_penalty_charges_jitter_not_steady_motion():
    from motionext.model.losses import temporal_curvature_penalty

    velocity = torch.zeros(1, 4, 2, 4, 5)
    velocity[0, :, 0] = torch.tensor([0.0, 1.0, 2.0, 3.0]).view(4, 1, 1)  # steady: 1 voxel more per frame
    steady = temporal_curvature_penalty(velocity, (2.0, 1.0), cyclic=False)
    assert steady.shape == (1, 2) and steady.max() < 2e-3
    # cyclic: frame 3 -> 0 jumps back; channel 0 (2 mm) bends by 4, 0, 0, -4 voxels; channel 1 is still
    cyclic = temporal_curvature_penalty(velocity, (2.0, 1.0), cyclic=True)
    torch.testing.assert_close(cyclic[0], torch.tensor([8.0, 0.0, 0.0, 8.0]) / 2, atol=2e-3, rtol=0)
    jitter = velocity.clone()
    jitter[0, 2, 0] += 0.5  # one frame off by half a voxel: |0.5 * 2 mm| * (1, 2, 1) around it
    penalty = temporal_curvature_penalty(jitter, (2.0, 1.0), cyclic=False)
    torch.testing.assert_close(penalty[0], torch.tensor([1.0, 2.0]) / 2, atol=2e-3, rtol=0)
