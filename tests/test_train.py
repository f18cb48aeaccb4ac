"""Training runs: checkpoints, resuming (also after a kill), logs, the CLI and its errors, and
loading models safely."""

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from motionext import load_model
from motionext.cli import main as cli
from motionext.model.io import FORMAT_VERSION, read_checkpoint
from motionext.train import TrainConfig, train

TINY_MODEL = {"latent_dim": 8, "encoder_channels": [4, 8, 8, 2], "decoder_channels": [8, 8, 8, 4]}


def _config(out, **kw):
    base = dict(data="phantom", out=str(out), steps=6, size=(32, 32), phantom_subjects=3, val_every=3,
                checkpoint_every=2, model=TINY_MODEL, seed=3)
    return TrainConfig(**{**base, **kw})


def _params(path):
    return read_checkpoint(path)["model"]


def test_interrupted_run_resumes_to_the_same_state(tmp_path):
    full = _config(tmp_path / "full")
    train(full, progress=False)
    part = _config(tmp_path / "part")
    train(part, progress=False, stop_after=4)  # as if killed after the checkpoint at step 4
    assert read_checkpoint(tmp_path / "part" / "checkpoint.pt")["step"] == 4
    train(part, resume=True, progress=False)
    a, b = _params(tmp_path / "full" / "model.pt"), _params(tmp_path / "part" / "model.pt")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    with open(tmp_path / "part" / "log.csv") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert steps == [1, 2, 3, 4, 5, 6]
    config = json.loads((tmp_path / "part" / "config.json").read_text())
    assert config["model"]["latent_dim"] == 8 and config["train"]["steps"] == 6


def test_kill_during_training_leaves_a_usable_checkpoint(tmp_path):
    out = tmp_path / "run"
    code = (
        "from motionext.train import TrainConfig, train;"
        f"train(TrainConfig(data='phantom', out={str(out)!r}, steps=500, size=(32, 32), phantom_subjects=2,"
        f" val_every=1000, checkpoint_every=1, model={TINY_MODEL!r}), progress=False)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "checkpoint.pt").exists():
        time.sleep(0.2)
    time.sleep(1.0)  # let it write a few more checkpoints; the kill lands at any moment
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = read_checkpoint(out / "checkpoint.pt")["step"]
    assert step >= 1
    row = train(_config(out, steps=step + 2, phantom_subjects=2, val_every=1000, checkpoint_every=1,
                        seed=0), resume=True, progress=False)
    assert row["step"] == step + 2


def test_a_diverging_run_stops_and_says_so(tmp_path):
    with pytest.raises(FloatingPointError, match=r"step \d+: the model's motion is not finite .*the run diverged"):
        train(_config(tmp_path, steps=6, lr=1e6), progress=False)


def test_resuming_a_finished_run_does_nothing_and_a_run_past_its_steps_is_refused(tmp_path, capsys):
    last = train(_config(tmp_path, steps=2), progress=False)
    model = tmp_path / "model.pt"
    written = model.stat().st_mtime_ns
    again = train(_config(tmp_path, steps=2), resume=True, progress=False)
    assert "has reached --steps 2; nothing to resume" in capsys.readouterr().err
    assert again["step"] == 2 and again["loss"] == pytest.approx(last["loss"])
    assert model.stat().st_mtime_ns == written  # not refitted, not rewritten
    with pytest.raises(ValueError, match=r"is at step 2, past --steps 1; give --steps above 2"):
        train(_config(tmp_path, steps=1), resume=True, progress=False)
    # killed after its last checkpoint but before model.pt: resuming writes it
    model.unlink()
    assert train(_config(tmp_path, steps=2), resume=True, progress=False)["step"] == 2
    assert read_checkpoint(model)["step"] == 2


def test_resume_refuses_other_settings(tmp_path):
    train(_config(tmp_path, steps=2), progress=False)
    with pytest.raises(ValueError, match=r"other settings \(lr 0\.001 then, 0\.0005 now\)"):
        train(_config(tmp_path, steps=4, lr=5e-4), resume=True, progress=False)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(_config(tmp_path / "empty"), resume=True, progress=False)


def _tiny_model_and_batch(num_frames: int, count: int):
    """A tiny model in training mode and one batch of `count` phantom cines of `num_frames`."""
    from motionext.data.batches import TrainingSet, collate
    from motionext.data.phantom import make_phantom
    from motionext.model import ModelConfig, MotionModel

    torch.manual_seed(0)
    model = MotionModel(ModelConfig(image_size=(32, 32), **TINY_MODEL)).train()
    cines = [make_phantom(size=(32, 32), num_frames=num_frames, seed=s).to_cine(name=f"p{s}") for s in range(count)]
    return model, collate([TrainingSet(cines, augment=False)[(i, 0)] for i in range(count)])


def _step_gradient_norm(num_frames: int, **config) -> float:
    from motionext.train import step_terms

    model, batch = _tiny_model_and_batch(num_frames, 4)
    step_terms(model, model, batch, TrainConfig(size=(32, 32), **config), 0, torch.device("cpu"))["step_loss"].backward()
    return float(torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters() if p.grad is not None)))


def test_a_step_of_cines_and_a_step_of_pairs_weigh_alike_per_frame():
    # Summed over frames, a 20-frame step's gradient is ~20 times a pair's, and Adam's running
    # scale, set by those steps, then shrinks every pair step (docs/model.md, "Cines and pairs").
    per_frame = _step_gradient_norm(20) / _step_gradient_norm(2)
    summed = _step_gradient_norm(20, loss_per_frame=False) / _step_gradient_norm(2, loss_per_frame=False)
    assert 0.5 < per_frame < 2 and summed > 10


def test_per_frame_loss_divides_the_objective_not_the_anatomical_term():
    # the label term is a mean over the labelled frames: divided by T - 1 it would weigh a cine's
    # labels 19 times less than a pair's
    from motionext.train import step_terms

    model, batch = _tiny_model_and_batch(10, 2)
    terms = {}
    for weight in (0.0, 500.0):
        torch.manual_seed(1)
        terms[weight] = step_terms(model, model, batch, TrainConfig(size=(32, 32), dice_weight=weight), 0,
                                   torch.device("cpu"))
    objective, labelled = terms[0.0], terms[500.0]
    assert torch.isfinite(labelled["dice"]) and labelled["dice"] < 1
    torch.testing.assert_close(labelled["step_loss"], objective["loss"] / 9 + 500 * (1 - labelled["dice"]))
    torch.testing.assert_close(labelled["loss"], objective["loss"] + 500 * (1 - labelled["dice"]))


def test_per_frame_loss_leaves_a_run_of_one_length_as_it_was(tmp_path):
    # Adam is blind to a constant scale of the loss: on sequences of one length the two settings
    # take the same steps, up to Adam's epsilon
    for flag in (True, False):
        train(_config(tmp_path / str(flag), steps=3, loss_per_frame=flag, val_every=100), progress=False)
    train(_config(tmp_path / "start", steps=1, lr=0.0, val_every=100), progress=False)  # the initial weights
    start = _params(tmp_path / "start" / "model.pt")
    moved = {flag: torch.cat([(_params(tmp_path / flag / "model.pt")[k] - start[k]).flatten() for k in start
                              if start[k].is_floating_point()]) for flag in ("True", "False")}
    assert moved["False"].norm() > 0
    assert torch.nn.functional.cosine_similarity(moved["True"], moved["False"], 0) > 0.99
    assert abs(moved["True"].norm() / moved["False"].norm() - 1) < 0.05


def test_the_optimizer_steps_on_the_step_loss(tmp_path, monkeypatch):
    import motionext.train as training

    def nothing_to_learn(*args, **kwargs):
        terms = step_terms(*args, **kwargs)
        return {**terms, "step_loss": 0 * terms["step_loss"]}

    step_terms = training.step_terms
    monkeypatch.setattr(training, "step_terms", nothing_to_learn)
    train(_config(tmp_path / "still", steps=2, val_every=100), progress=False)
    monkeypatch.undo()
    train(_config(tmp_path / "start", steps=1, lr=0.0, val_every=100), progress=False)
    still, start = _params(tmp_path / "still" / "model.pt"), _params(tmp_path / "start" / "model.pt")
    assert all(torch.equal(still[k], start[k]) for k in start)


def test_loss_per_frame_is_the_default_the_paper_preset_sums_and_old_runs_resume_summed(tmp_path):
    from motionext.train import preset_settings

    assert TrainConfig().loss_per_frame and preset_settings("paper")["loss_per_frame"] is False
    with pytest.raises(ValueError, match="loss_per_frame must be"):
        TrainConfig(loss_per_frame="yes")
    # a checkpoint written before the setting existed summed over frames: resuming it asks for that
    train(_config(tmp_path, steps=2, loss_per_frame=False), progress=False)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    del state["train_config"]["loss_per_frame"]
    torch.save(state, tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match=r"other settings \(loss_per_frame False then, True now\)"):
        train(_config(tmp_path, steps=3), resume=True, progress=False)
    assert train(_config(tmp_path, steps=3, loss_per_frame=False), resume=True, progress=False)["step"] == 3
    for flags, expected in (([], True), (["--no-loss-per-frame"], False), (["--preset", "paper"], False)):
        out = tmp_path / f"cli{len(flags)}{expected}"
        assert cli(["train", "--out", str(out), "--steps", "1", "--size", "32", "32", "--phantom-subjects", "2",
                    "--model", json.dumps(TINY_MODEL), "--quiet", *flags]) == 0
        assert json.loads((out / "config.json").read_text())["train"]["loss_per_frame"] is expected


def test_load_model_checks_what_it_reads(tmp_path):
    train(_config(tmp_path, steps=2), progress=False)
    model = load_model(tmp_path / "model.pt")
    assert not model.training and model.config.latent_dim == 8
    # the sampling prior, fitted to the training sequences: 2 of the 3 phantom subjects, one held out
    assert model.latent_prior is not None and model.latent_prior.mean.shape == (8,)
    assert model.latent_prior.sequences == 2
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    state["format_version"] = FORMAT_VERSION + 1
    torch.save(state, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="checkpoint format"):
        load_model(tmp_path / "future.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a motionext checkpoint"):
        load_model(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.pt")


def test_cli_train_and_errors(tmp_path, capsys):
    out = tmp_path / "cli"
    rc = cli(["train", "--data", "sample", "--out", str(out), "--steps", "2", "--size", "32", "32",
              "--model", json.dumps(TINY_MODEL), "--quiet", "--val-every", "1"])
    assert rc == 0 and (out / "model.pt").exists() and (out / "log.csv").exists()
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 2
    assert cli(["train", "--out", str(out), "--steps", "1", "--quiet"]) == 2  # not over a finished run
    assert "holds a training run already" in capsys.readouterr().err
    other = str(tmp_path / "other")
    assert cli(["train", "--data", str(tmp_path / "nowhere"), "--out", other, "--steps", "1", "--quiet"]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli(["train", "--data", str(tmp_path / "empty"), "--out", other, "--steps", "1", "--quiet"]) == 2
    assert "no NIfTI cines" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()  # bad input leaves no run folder
    with pytest.raises(SystemExit):
        cli(["train", "--steps", "many"])


def test_cli_trains_from_a_cache_in_batches(tmp_path, capsys):
    import nibabel as nib
    import numpy as np

    cohort = tmp_path / "cohort"
    cohort.mkdir()
    for i, frames in enumerate((6, 9)):
        data = np.random.default_rng(i).random((40, 40, 1, frames)).astype(np.float32)
        nib.save(nib.Nifti1Image(data, np.diag([1.5, 1.5, 8.0, 1.0])), str(cohort / f"s{i}.nii.gz"))
    args = ["train", "--data", f"{cohort}+phantom", "--phantom-subjects", "2", "--cache", str(tmp_path / "cache"),
            "--steps", "2", "--size", "32", "32", "--model", json.dumps(TINY_MODEL), "--quiet", "--val-every", "1"]
    assert cli([*args, "--out", str(tmp_path / "b"), "--batch-size", "2", "--frames", "8"]) == 0
    assert "2 entries built, 0 reused" in capsys.readouterr().err
    assert cli([*args, "--out", str(tmp_path / "c"), "--batch-size", "2", "--frames", "8", "--workers", "1"]) == 0
    assert "0 entries built, 2 reused" in capsys.readouterr().err
    # without --frames, sequences of 6, 9 and 20 frames train in batches of one length each
    assert cli([*args, "--out", str(tmp_path / "a"), "--batch-size", "2"]) == 0
    capsys.readouterr()
    a, b = _params(tmp_path / "b" / "model.pt"), _params(tmp_path / "c" / "model.pt")
    for key in a:  # loader workers do not change what is computed
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    config = json.loads((tmp_path / "c" / "config.json").read_text())
    assert config["train"]["num_frames"] == 8 and config["run"]["global_batch"] == 2


def test_fine_tuning_starts_from_the_given_weights(tmp_path):
    train(_config(tmp_path / "base", steps=2), progress=False)
    base = tmp_path / "base" / "model.pt"
    # lr 0: the run must end exactly where it started, i.e. at the --init weights
    train(_config(tmp_path / "tuned", steps=2, lr=0.0, init=str(base), model={}), progress=False)
    a, b = _params(base), _params(tmp_path / "tuned" / "model.pt")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert json.loads((tmp_path / "tuned" / "config.json").read_text())["model"]["latent_dim"] == 8  # its architecture
    # loss settings may change when fine-tuning; the architecture may not
    train(_config(tmp_path / "tds", steps=1, init=str(base), model={"tds_probability": 0.0}), progress=False)
    assert json.loads((tmp_path / "tds" / "config.json").read_text())["model"]["tds_probability"] == 0.0
    with pytest.raises(ValueError, match="do not fit"):
        train(_config(tmp_path / "other", steps=1, init=str(base), model={"latent_dim": 4}), progress=False)
    # weights without the temporal direct path fine-tune into a model with it (it starts at 0)
    paper = tmp_path / "paper"
    train(_config(paper, steps=1, model={**TINY_MODEL, "tcn_direct": False}), progress=False)
    train(_config(tmp_path / "direct", steps=2, lr=0.0, init=str(paper / "model.pt"), model={"tcn_direct": True}),
          progress=False)
    a, b = _params(paper / "model.pt"), _params(tmp_path / "direct" / "model.pt")
    assert set(b) - set(a) == {"temporal.direct.weight", "temporal.direct.bias"}
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_validation_holds_out_whole_subjects():
    from motionext.train import split_by_subject, subject_of

    names = [f"patient{p:03d}_4d[slice {k}]" for p in range(10) for k in range(4)] + ["phantom000", "phantom001"]
    train_ids, val_ids = split_by_subject(names, 0.25, seed=0)
    assert sorted(train_ids + val_ids) == list(range(len(names)))
    held_out = {subject_of(names[i]) for i in val_ids}
    assert len(held_out) == 3 and not held_out & {subject_of(names[i]) for i in train_ids}
    assert split_by_subject(["only[slice 0]", "only[slice 1]"], 0.5, seed=0) == ([0, 1], [])


def test_command_line_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "motionext.cli", "info"], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).parent)
    assert result.returncode == 0, result.stderr
    assert "compiled" in json.loads(result.stdout)
