"""motionext.malloc: freed tensors' memory is kept for the next ones, where glibc runs the process.

malloc's settings are per process, so each case runs in a fresh interpreter."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from motionext import malloc

on_glibc = pytest.mark.skipif(not malloc._on_glibc(), reason="glibc's malloc only")

# One "training step" on a 32 MiB feature map, repeated; prints the minor page faults per step after
# two warm-up steps, once the entry point named by argv[1] has run.
FAULTS_PER_STEP = textwrap.dedent("""
    import json, resource, sys, torch
    from motionext import cli, malloc

    if sys.argv[1] == "command":
        cli.main(["info"])
    elif sys.argv[1] == "function":
        malloc.keep_freed_memory()
    torch.set_num_threads(1)
    conv = torch.nn.Conv2d(8, 8, 3, padding=1)
    x = torch.randn(1, 8, 1024, 1024, requires_grad=True)

    def step():
        y = torch.nn.functional.leaky_relu(conv(x))
        (y * y).mean().backward()

    step(), step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        step()
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5
    print(json.dumps({"kept": bool(malloc._applied), "faults": faults}))
""")


def _run(entry: str, **env) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in (malloc.OPT_OUT, *malloc._USERS_OWN)}
    result = subprocess.run([sys.executable, "-c", FAULTS_PER_STEP, entry], capture_output=True, text=True,
                            timeout=300, env={**clean, **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@on_glibc
def test_the_next_steps_feature_maps_reuse_freed_memory_instead_of_faulting_it_in():
    untouched = _run("none")
    # each step maps its 32 MiB maps afresh: 8,192 pages each, several per step
    assert not untouched["kept"] and untouched["faults"] > 20_000
    for entry in ("function", "command"):  # the `motionext` command sets it for every verb
        kept = _run(entry)
        # a step may still grow the heap now and then, as freed blocks do not always fit the next
        assert kept["kept"] and kept["faults"] < untouched["faults"] / 10, (entry, kept, untouched)


@on_glibc
@pytest.mark.parametrize("setting", [{malloc.OPT_OUT: "0"}, {"MALLOC_TRIM_THRESHOLD_": "131072"},
                                     {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=131072"}])
def test_the_opt_out_and_the_users_own_settings_leave_malloc_as_it_is(setting):
    left = _run("function", **setting)
    assert not left["kept"] and left["faults"] > 20_000


def test_training_and_refinement_set_it_before_their_first_step(monkeypatch, tmp_path):
    import torch

    from motionext.model import ModelConfig, MotionModel
    from motionext.motion import refine
    from motionext import train

    calls = []
    monkeypatch.setattr(train, "keep_freed_memory", lambda: calls.append("train"))
    monkeypatch.setattr(refine, "keep_freed_memory", lambda: calls.append("refine"))
    tiny = {"latent_dim": 8, "encoder_channels": [4, 8, 8, 2], "decoder_channels": [8, 8, 8, 4]}
    train.train(train.TrainConfig(data="phantom", phantom_subjects=2, size=(32, 32), num_frames=4, steps=1,
                                  val_every=1000, model=tiny, out=str(tmp_path / "run")), progress=False)
    model = MotionModel(ModelConfig(image_size=(32, 32), **tiny)).eval()
    frames = torch.rand(4, 32, 32)
    refine.refine_motion(model, frames, (1.5, 1.5), torch.zeros(4, 8), 1)
    assert calls == ["train", "refine"]
    refine.refine_motion(model, frames, (1.5, 1.5), torch.zeros(4, 8), 0)  # no step, nothing to keep
    assert calls == ["train", "refine"]
