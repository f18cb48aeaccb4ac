"""`motionext train` under torchrun with 2 CPU processes (gloo): one step equals a single process
on the combined batch, and a run killed mid-way resumes on 2 processes from its checkpoint."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from motionext.model import ModelConfig, MotionModel
from motionext.model.io import read_checkpoint
from motionext.train import TrainConfig, train

TINY_MODEL = {"latent_dim": 8, "encoder_channels": [4, 8, 8, 2], "decoder_channels": [8, 8, 8, 4]}
SETTINGS = dict(data="phantom", phantom_subjects=5, size=(32, 32), num_frames=8, val_every=1000, seed=2,
                model=TINY_MODEL)


def _torchrun(out, steps, *extra, wait=True, **kw):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "motionext", "train", "--data", "phantom", "--phantom-subjects", "5", "--size", "32", "32",
               "--frames", "8", "--batch-size", "1", "--val-every", "1000", "--seed", "2", "--model", json.dumps(TINY_MODEL),
               "--steps", str(steps), "--out", str(out), "--quiet", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if not wait:
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, **kw)
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, **kw)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _process_tree(pid):
    """pid and all its descendants (torchrun starts its workers in sessions of their own)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(parent, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo += children.get(tree[-1], [])
    return tree


def _kill_tree(pid):
    for process in _process_tree(pid):
        try:
            os.kill(process, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _weights(path):
    return read_checkpoint(path)["model"]


def _losses(folder):
    with open(folder / "log.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def test_two_processes_equal_one_process_on_the_combined_batch(tmp_path):
    result = _torchrun(tmp_path / "two", 1)
    assert len(result.stdout.strip().splitlines()) == 1  # only process 0 reports
    train(TrainConfig(**SETTINGS, out=str(tmp_path / "one"), steps=1, batch_size=2), progress=False)
    config = json.loads((tmp_path / "two" / "config.json").read_text())
    assert config["run"] == {"world_size": 2, "global_batch": 2, "lr": 1e-3}  # the default, unscaled
    two, one = _weights(tmp_path / "two" / "model.pt"), _weights(tmp_path / "one" / "model.pt")
    torch.manual_seed(2)
    initial = MotionModel(ModelConfig(image_size=(32, 32), **TINY_MODEL)).state_dict()
    moved = 0
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=0, atol=1e-6, msg=key)  # lr is 1e-3
        moved += int((one[key] - initial[key]).abs().max() > 1e-5)
    assert moved > len(one) // 2  # the step did change the weights
    assert _losses(tmp_path / "two") == pytest.approx(_losses(tmp_path / "one"), rel=1e-5)


def test_killed_two_process_run_resumes_on_two_processes(tmp_path):
    run = tmp_path / "killed"
    proc = _torchrun(run, 100000, "--checkpoint-every", "1", wait=False)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and not (run / "checkpoint.pt").exists() and proc.poll() is None:
            time.sleep(0.1)
        time.sleep(1.0)  # a few more steps; the kill lands at any moment
    finally:
        _kill_tree(proc.pid)  # torchrun and both workers at once, as a crash or a scheduler would
        proc.wait()
    assert (run / "checkpoint.pt").exists(), proc.stderr.read().decode()[-3000:]
    step = read_checkpoint(run / "checkpoint.pt")["step"]
    assert 1 <= step < 100000
    resumed_run = _torchrun(run, step + 2, "--checkpoint-every", "1", "--resume")
    assert f"at step {step}" in resumed_run.stderr
    assert read_checkpoint(run / "model.pt")["step"] == step + 2
    _torchrun(tmp_path / "whole", step + 2, "--checkpoint-every", "1000")
    resumed, whole = _weights(run / "model.pt"), _weights(tmp_path / "whole" / "model.pt")
    for key in whole:
        torch.testing.assert_close(resumed[key], whole[key], rtol=0, atol=0, msg=key)
    assert _losses(run) == _losses(tmp_path / "whole")
