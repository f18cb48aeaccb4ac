"""The fitted sampling prior: what it is fitted to, what it draws, how it is kept with the weights,
and that sampling uses it (and refuses what it cannot do)."""

import numpy as np
import pytest
import torch

import motionext
from motionext import motion
from motionext.cli import main as cli
from motionext.data import load_sample
from motionext.data.preprocess import preprocess
from motionext.model import ModelConfig, MotionModel
from motionext.model.io import atomic_save, checkpoint_dict, load_model, read_checkpoint
from motionext.model.latent_prior import LatentPrior, fit_latent_prior
from motionext.motion import latent_checks

TINY_MODEL = {"latent_dim": 8, "encoder_channels": [4, 8, 8, 2], "decoder_channels": [8, 8, 8, 4],
              "image_size": [32, 32]}


def _codes(rng, count, frames, offsets, spread, dim=3):
    """Sequences whose codes after ED are offset + spread * noise; ED's row is far off (it must be
    left out of the fit)."""
    codes = []
    for _ in range(count):
        c = offsets * rng.standard_normal(dim) + spread * rng.standard_normal((frames, dim))
        codes.append(np.vstack([np.full((1, dim), 100.0), c]))
    return codes


def test_the_fit_separates_what_sequences_share_from_what_frames_add():
    rng = np.random.default_rng(0)
    codes = _codes(rng, 400, 19, offsets=np.array([2.0, 0.5, 1.0]), spread=0.3)
    variances = [np.full(c.shape, 0.01) for c in codes]
    prior = fit_latent_prior(codes, variances)
    sequence = (prior.sequence_factor @ prior.sequence_factor.T).numpy()
    frame = (prior.frame_factor @ prior.frame_factor.T).numpy()
    assert prior.sequences == 400
    assert np.abs(prior.mean.numpy()).max() < 0.25  # ED's rows (100) are not in it
    assert np.allclose(np.diag(sequence), [4.0, 0.25, 1.0], rtol=0.2)
    assert np.allclose(np.diag(frame), 0.09 + 0.01, rtol=0.1)  # the spread about the mean, and the posterior's


def test_pairs_alone_give_the_frames_only_the_posterior_variance():
    rng = np.random.default_rng(1)
    codes = _codes(rng, 50, 1, offsets=np.ones(3), spread=0.0)
    prior = fit_latent_prior(codes, [np.full(c.shape, 0.04) for c in codes])
    assert np.allclose((prior.frame_factor @ prior.frame_factor.T).numpy(), 0.04 * np.eye(3), atol=1e-5)


def test_draws_follow_the_fitted_covariances_and_repeat_with_a_seed():
    prior = LatentPrior(torch.tensor([1.0, -1.0]), torch.diag(torch.tensor([2.0, 0.0])),
                        torch.diag(torch.tensor([0.5, 0.5])), sequences=10)
    z = prior.draw(4000, 6, torch.Generator().manual_seed(0))
    assert z.shape == (4000, 6, 2) and z.dtype == torch.float32
    assert torch.equal(z[:3], prior.draw(4000, 6, torch.Generator().manual_seed(0))[:3])
    assert torch.allclose(z.mean((0, 1)), torch.tensor([1.0, -1.0]), atol=0.1)
    # within a sample the frames share the sequence-level part: axis 0 varies 0.25 about the
    # sample's mean, but 4.25 across samples
    assert abs(float(z[..., 0].var(1).mean()) - 0.25) < 0.03
    assert abs(float(z[..., 0].mean(1).var()) - (4 + 0.25 / 6)) < 0.4


@pytest.mark.parametrize("codes, message", [
    ([np.zeros((3, 2))], "at least 2 sequences"),
    ([np.zeros((3, 2)), np.zeros((1, 2))], "a frame after ED"),
])
def test_the_fit_refuses_too_little_data(codes, message):
    with pytest.raises(ValueError, match=message):
        fit_latent_prior(codes, [np.ones_like(c) for c in codes])


def _model_with_prior(scale=1.0):
    model = MotionModel(ModelConfig.from_dict(TINY_MODEL, saved=False)).eval()
    d = model.config.latent_dim
    model.latent_prior = LatentPrior(torch.zeros(d), scale * torch.eye(d), 0.1 * torch.eye(d), sequences=5)
    return model


def test_the_prior_is_saved_with_the_weights_and_checked_when_read(tmp_path):
    model = _model_with_prior()
    atomic_save(checkpoint_dict(model, step=1), tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    assert torch.equal(loaded.latent_prior.sequence_factor, model.latent_prior.sequence_factor)
    assert loaded.latent_prior.sequences == 5
    data = read_checkpoint(tmp_path / "m.pt")
    for damage in ({"mean": torch.zeros(3)}, {"frame_factor": torch.full((8, 8), float("nan"))}):
        broken = {**data, "latent_prior": {**data["latent_prior"], **damage}}
        torch.save(broken, tmp_path / "broken.pt")
        with pytest.raises(ValueError, match="latent_prior: (mean|frame_factor) must be a finite tensor of shape"):
            load_model(tmp_path / "broken.pt")
    torch.save({**data, "latent_prior": {"mean": torch.zeros(8)}}, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match="a damaged fitted prior"):
        load_model(tmp_path / "partial.pt")
    del data["latent_prior"]
    torch.save(data, tmp_path / "without.pt")
    assert load_model(tmp_path / "without.pt").latent_prior is None


def test_sampling_draws_from_the_fitted_prior_when_there_is_one():
    model = _model_with_prior()
    ed = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    run = lambda prior: motion.sample(model, ed, num_frames=4, num_samples=3, seed=7, prior=prior).z  # noqa: E731
    assert torch.equal(run("auto"), run("fitted"))
    assert not torch.allclose(run("standard"), run("fitted"))
    expected = model.motion_matrix(model.latent_prior.draw(3, 4, torch.Generator().manual_seed(7)),
                                   torch.arange(4.0).div(4).expand(3, 4))
    assert torch.allclose(run("fitted"), expected, atol=1e-6)
    model.latent_prior = None
    assert torch.equal(run("auto"), run("standard"))
    with pytest.raises(ValueError, match="no fitted prior"):
        run("fitted")
    with pytest.raises(ValueError, match="prior"):
        run("gaussian")


def test_the_shipped_models_samples_differ_more_with_their_fitted_prior():
    model = motionext.load_model("pretrained")
    assert model.latent_prior is not None and model.latent_prior.sequences > 400
    sample = preprocess(load_sample(), spacing=1.5, size=(128, 128))
    spread = {prior: latent_checks.sampling_spread(model, sample.frames[0], sample.labels[0], num_samples=8, seed=3,
                                                   prior=prior) for prior in ("standard", "fitted")}
    assert spread["fitted"]["spread"] > 2 * spread["standard"]["spread"]
    assert spread["fitted"]["cycle_like"] >= 0.75


def test_cli_fit_prior_writes_a_copy_with_the_prior(tmp_path, capsys):
    model = MotionModel(ModelConfig.from_dict(TINY_MODEL, saved=False))
    atomic_save(checkpoint_dict(model, step=3, train_config={"data": "phantom"}), tmp_path / "m.pt")
    out = tmp_path / "with_prior.pt"
    args = ["fit-prior", "--model", str(tmp_path / "m.pt"), "--data", "phantom", "--phantom-subjects", "3",
            "--out", str(out), "--quiet"]
    assert cli(args) == 0 and "fitted to 3 sequences" in capsys.readouterr().out
    data = read_checkpoint(out)
    assert data["step"] == 3 and data["train_config"] == {"data": "phantom"}
    assert read_checkpoint(tmp_path / "m.pt").get("latent_prior") is None  # the source is left as it was
    loaded = load_model(out)
    assert loaded.latent_prior.sequences == 3
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    assert cli(args) == 2 and "exists" in capsys.readouterr().err
    assert cli(args + ["--overwrite"]) == 0
    assert cli(["fit-prior", "--model", str(tmp_path / "m.pt"), "--data", str(tmp_path / "none"),
                "--out", str(tmp_path / "x.pt"), "--quiet"]) == 2
    assert not (tmp_path / "x.pt").exists()


def test_fitting_names_data_that_does_not_fit_the_model():
    from motionext.data.cine import Cine
    from motionext.model.latent_prior import fit_to_sequences

    model = MotionModel(ModelConfig.from_dict(TINY_MODEL, saved=False))
    wrong = [Cine(np.zeros((3, 40, 40), np.float32), (1.5, 1.5), name=f"s{i}") for i in range(2)]
    with pytest.raises(ValueError, match="spatial size"):
        fit_to_sequences(model, wrong)
