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


def _cycling_codes(rng, count):
    """Cines (every 3rd sequence, 20 frames) and ED/ES pairs (ES at 25-45 % of the cycle) whose codes
    follow the phase p: (cos 2 pi p, 0.5 sin 4 pi p), plus a sequence-level part (std 0.3) and a
    frame-level one (std 0.1); ED's row is far off."""
    codes, phases = [], []
    for i in range(count):
        p = np.arange(20) / 20 if i % 3 == 0 else np.array([0.0, rng.uniform(0.25, 0.45)])
        c = np.stack([np.cos(2 * np.pi * p), 0.5 * np.sin(4 * np.pi * p)], 1)
        c += 0.3 * rng.standard_normal(2) + 0.1 * rng.standard_normal((p.size, 2))
        c[0] = 100.0
        codes.append(c)
        phases.append(p)
    return codes, phases


def test_the_mean_follows_the_cycle_phase_and_the_phase_is_not_counted_as_spread():
    codes, phases = _cycling_codes(np.random.default_rng(2), 600)
    variances = [np.full(c.shape, 0.01) for c in codes]
    prior = fit_latent_prior(codes, variances, phases)
    assert prior.harmonics == 2
    # rows c_1, s_1, c_2, s_2: c_1 = 1 on the first axis, s_2 = 0.5 on the second, the rest 0
    expected = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.5]])
    assert torch.allclose(prior.phase_terms, expected, atol=0.05)
    assert torch.allclose(prior.mean_at(np.array([0.0, 0.5])), torch.tensor([[1.0, 0.0], [-1.0, 0.0]]), atol=0.06)
    sequence = (prior.sequence_factor @ prior.sequence_factor.T).numpy()
    assert np.allclose(np.diag(sequence), 0.09, rtol=0.3)  # the pairs' frame-level part adds to it
    frame = (prior.frame_factor @ prior.frame_factor.T).numpy()
    assert np.allclose(np.diag(frame), 0.01 + 0.01, rtol=0.15)
    # a single mean for every phase takes the cycle for spread
    flat = fit_latent_prior(codes, variances)
    assert flat.harmonics == 0 and flat.phase_terms is None
    assert (flat.frame_factor @ flat.frame_factor.T)[0, 0] > 10 * frame[0, 0]
    # draws: frame t of 20 about the mean at phase t / 20
    z = prior.draw(4000, 20, torch.Generator().manual_seed(0))
    assert torch.allclose(z.mean(0), prior.mean_at(np.arange(20) / 20), atol=0.05)


def test_too_few_distinct_phases_fit_fewer_harmonics():
    rng = np.random.default_rng(3)
    codes = [np.vstack([np.zeros((1, 2)), rng.standard_normal((1, 2))]) for _ in range(20)]
    variances = [np.full(c.shape, 0.01) for c in codes]
    same_es = [np.array([0.0, 0.35])] * 20           # one phase after ED: nothing to follow
    assert fit_latent_prior(codes, variances, same_es).phase_terms is None
    three = [np.array([0.0, (0.2, 0.4, 0.6)[i % 3]]) for i in range(20)]  # three phases: one harmonic
    assert fit_latent_prior(codes, variances, three).harmonics == 1
    assert fit_latent_prior(codes, variances, three, harmonics=0).phase_terms is None


@pytest.mark.parametrize("phases, harmonics, message", [
    ([np.array([0.0, 0.3])], 2, "1 sequences of phases for 2 of codes"),
    ([np.array([0.0, 0.3, 0.5])] * 2, 2, "sequence 0 has 3 phases for 2 codes"),
    ([np.array([0.0, 1.0])] * 2, 2, "phases must be finite and in \\[0, 1\\)"),
    ([np.array([0.0, np.nan])] * 2, 2, "phases must be finite"),
    ([np.array([0.0, 0.3])] * 2, -1, "harmonics must be an integer >= 0"),
])
def test_the_fit_refuses_phases_that_do_not_fit_the_codes(phases, harmonics, message):
    codes = [np.zeros((2, 3)), np.ones((2, 3))]
    with pytest.raises(ValueError, match=message):
        fit_latent_prior(codes, [np.ones_like(c) for c in codes], phases, harmonics)


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
    model.latent_prior.phase_terms = torch.randn(4, 8)
    atomic_save(checkpoint_dict(model, step=1), tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    assert torch.equal(loaded.latent_prior.sequence_factor, model.latent_prior.sequence_factor)
    assert torch.equal(loaded.latent_prior.phase_terms, model.latent_prior.phase_terms)
    assert loaded.latent_prior.sequences == 5
    data = read_checkpoint(tmp_path / "m.pt")
    for damage in ({"mean": torch.zeros(3)}, {"frame_factor": torch.full((8, 8), float("nan"))}):
        broken = {**data, "latent_prior": {**data["latent_prior"], **damage}}
        torch.save(broken, tmp_path / "broken.pt")
        with pytest.raises(ValueError, match="latent_prior: (mean|frame_factor) must be a finite tensor of shape"):
            load_model(tmp_path / "broken.pt")
    # a prior fitted before the mean followed the phase has no phase_terms: one mean for every phase
    old = {k: v for k, v in data["latent_prior"].items() if k != "phase_terms"}
    torch.save({**data, "latent_prior": old}, tmp_path / "old.pt")
    assert load_model(tmp_path / "old.pt").latent_prior.harmonics == 0
    torch.save({**data, "latent_prior": {**data["latent_prior"], "phase_terms": torch.zeros(3, 8)}}, tmp_path / "odd.pt")
    with pytest.raises(ValueError, match="phase_terms must be a finite tensor of shape \\(2 \\* harmonics, 8\\)"):
        load_model(tmp_path / "odd.pt")
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
    assert cli(args) == 0 and "fitted to 3 sequences of phantom, its mean following the cycle phase with 2 harmonic(s)" \
        in capsys.readouterr().out
    data = read_checkpoint(out)
    assert data["step"] == 3 and data["train_config"] == {"data": "phantom"}
    assert read_checkpoint(tmp_path / "m.pt").get("latent_prior") is None  # the source is left as it was
    loaded = load_model(out)
    assert loaded.latent_prior.sequences == 3
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    assert cli(args) == 2 and "exists" in capsys.readouterr().err
    assert cli(args + ["--overwrite", "--harmonics", "0"]) == 0 and "with 0 harmonic(s)" in capsys.readouterr().out
    assert load_model(out).latent_prior.phase_terms is None
    assert cli(args + ["--overwrite", "--harmonics", "-1"]) == 2 and "--harmonics must be 0 or more" in capsys.readouterr().err
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
