"""Bad input through every verb of the command: each case ends in one line
`motionext VERB: error: ...` naming the problem, exit code 2, no traceback, and no output folder
(nor a partial one) left behind. Small inputs; nothing trains beyond a step."""

import gzip
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from motionext.cli import main as cli
from motionext.model import ModelConfig, MotionModel
from motionext.model.io import checkpoint_dict

nib = pytest.importorskip("nibabel")

TINY_MODEL = '{"latent_dim": 8, "encoder_channels": [4, 8, 8, 2], "decoder_channels": [8, 8, 8, 4]}'


def _nifti(path, data, zooms=None, dtype=None):
    image = nib.Nifti1Image(np.asarray(data, dtype=dtype or np.float32), np.diag([1.5, 1.5, 8.0, 1.0]))
    if zooms is not None:
        image.header.set_zooms(zooms)
    nib.save(image, str(path))
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    cine = rng.random((32, 32, 6)).astype(np.float32)
    f = {"good": _nifti(d / "good.nii.gz", cine), "good4d": _nifti(d / "good4d.nii.gz", cine[:, :, None])}
    whole = (d / "good.nii.gz").read_bytes()
    (d / "truncated.nii.gz").write_bytes(whole[: len(whole) // 2])
    (d / "garbage.nii.gz").write_bytes(b"this is not an image" * 20)
    (d / "empty.nii").write_bytes(b"")
    raw = gzip.decompress(whole)
    (d / "truncated.nii").write_bytes(raw[: len(raw) - 2000])  # the header is whole, the voxels are not
    nan = cine.copy()
    nan[3, 3, 2] = np.nan
    f.update({name: str(d / file) for name, file in [("truncated", "truncated.nii.gz"), ("garbage", "garbage.nii.gz"),
                                                      ("empty", "empty.nii"), ("truncated_raw", "truncated.nii")]})
    f["2d"] = _nifti(d / "flat.nii.gz", cine[:, :, 0])
    f["5d"] = _nifti(d / "five.nii.gz", cine[:, :, None, :, None])
    f["nan"] = _nifti(d / "nan.nii.gz", nan)
    f["one_frame"] = _nifti(d / "one.nii.gz", cine[:, :, :1])
    f["zero_spacing"] = _nifti(d / "zero.nii.gz", cine, zooms=(0.0, 1.5, 1.0))
    f["complex"] = _nifti(d / "complex.nii.gz", cine.astype(np.complex64), dtype=np.complex64)
    flat_axis = nib.Nifti1Image(cine, np.diag([1.5, 1.5, 8.0, 1.0]))
    flat_axis.header["srow_y"] = 0  # an sform whose second axis points nowhere
    nib.save(nib.Nifti1Image(cine, None, flat_axis.header), str(d / "singular.nii.gz"))
    f["singular"] = str(d / "singular.nii.gz")
    f["labels_shape"] = _nifti(d / "labels_small.nii.gz", np.zeros((16, 16)), dtype=np.uint8)
    f["labels_nan"] = _nifti(d / "labels_nan.nii.gz", np.full((32, 32), np.nan))
    f["labels_image"] = _nifti(d / "labels_image.nii.gz", cine[:, :, 0])  # an image in [0, 1) given as labels
    f["huge_spacing"] = _nifti(d / "huge_spacing.nii.gz", cine, zooms=(500.0, 500.0, 1.0))  # metres taken for mm?
    patient = d / "other_labels" / "patient001"  # an ACDC-style patient labelled by another convention
    patient.mkdir(parents=True)
    (patient / "Info.cfg").write_text("ED: 1\nES: 3\nNbFrame: 6\n")
    _nifti(patient / "patient001_4d.nii.gz", cine[:, :, None])
    other = np.zeros((32, 32, 1), np.uint8)
    other[8:20, 8:20] = 7
    for frame in (1, 3):
        _nifti(patient / f"patient001_frame{frame:02d}_gt.nii.gz", other, dtype=np.uint8)
    f["other_labels"] = str(d / "other_labels")
    (d / "mixed").mkdir()
    for name in ("a_good.nii.gz", "c_good.nii.gz"):
        _nifti(d / "mixed" / name, cine)
    (d / "mixed" / "b_broken.nii.gz").write_bytes(whole[: len(whole) // 2])
    f["mixed"] = str(d / "mixed")
    (d / "garbage.pt").write_bytes(b"\x00\x01 not a checkpoint" * 50)
    f["garbage_pt"] = str(d / "garbage.pt")
    torch.save({"format": "motionext", "payload": pickle.loads(pickle.dumps(Exception("x")))}, d / "objects.pt")
    f["objects_pt"] = str(d / "objects.pt")
    diverged = MotionModel(ModelConfig.from_dict(json.loads(TINY_MODEL)))
    with torch.no_grad():
        next(diverged.parameters()).view(-1)[0] = float("nan")
    torch.save(checkpoint_dict(diverged), d / "diverged.pt")
    f["diverged_pt"] = str(d / "diverged.pt")
    (d / "a_file").write_text("x")
    f["a_file"] = str(d / "a_file")
    (d / "full").mkdir()
    (d / "full" / "keep.txt").write_text("mine")
    (d / "notes").mkdir()
    (d / "notes" / "config.json").write_text("{}")  # the user's own, by the name a run writes
    f["notes"] = str(d / "notes")
    f["full"] = str(d / "full")
    f["folder"] = str(d)
    return f


# (verb arguments with {file} names and OUT for the output folder, what the message must say)
CASES = [
    ("track {truncated} --out OUT", "truncated or damaged"),
    ("track {truncated_raw} --out OUT", "truncated or damaged"),
    ("track {garbage} --out OUT", "cannot read"),
    ("track {empty} --out OUT", "cannot read"),
    ("track {2d} --out OUT", "4D (x, y, z, t) or 3D (x, y, t)"),
    ("track {5d} --out OUT", "4D (x, y, z, t) or 3D (x, y, t)"),
    ("track {nan} --out OUT", "NaN"),
    ("track {one_frame} --out OUT", "at least 2 frames"),
    ("track {zero_spacing} --out OUT", "voxel spacing"),
    ("track {complex} --out OUT", "not real numbers"),
    ("track {singular} --out OUT", "voxel-to-world matrix (sform/qform) is not invertible"),
    ("track {huge_spacing} --out OUT", "are both spacings in mm?"),
    ("transport {good} {singular} --out OUT", "voxel-to-world matrix (sform/qform) is not invertible"),
    ("track {folder} --out OUT", "is a folder"),
    ("track {folder}/missing.nii.gz --out OUT", "no such"),
    ("track {good} --out {a_file}", "is a file"),
    ("track {good} --out {a_file}/sub", "is a file"),
    ("track {good} --out {full}", "not empty"),
    ("track {good} --refine -1 --out OUT", "steps must be"),
    ("track {good} --refine-settings {{bad --refine 2 --out OUT", "not valid JSON"),
    ("track {good} --refine-settings '{{\"code_rate\": -1}}' --refine 2 --out OUT", "code_rate"),
    ("track {good} --ed 99 --out OUT", "outside"),
    ("track {good} --slice 5 --out OUT", "single slice"),
    ("track {good4d} --slice 5 --out OUT", "outside"),
    ("track {good} --labels {labels_shape} --out OUT", "do not match"),
    ("track {good} --labels {labels_nan} --out OUT", "label map"),
    ("track {good} --labels {labels_image} --out OUT", "is it an image, or labels resampled linearly?"),
    ("track {good} --labels {truncated} --out OUT", "truncated or damaged"),
    ("track {good} --model {garbage_pt} --out OUT", "not a motionext checkpoint"),
    ("track {good} --model {objects_pt} --out OUT", "never loads"),
    ("track {good} --model {diverged_pt} --out OUT", "the weights hold NaN or Inf (encoder."),
    ("train --init {diverged_pt} --out OUT", "the weights hold NaN or Inf"),
    ("track {good} --model {folder}/none.pt --out OUT", "no such checkpoint"),
    ("track {good} --model {folder} --out OUT", "is a folder"),
    ("compensate {truncated} --out OUT", "truncated or damaged"),
    ("compensate {good} --refine -2 --out OUT", "steps must be"),
    ("transport {garbage} {good} --out OUT", "cannot read"),
    ("transport {good} {2d} --out OUT", "4D (x, y, z, t) or 3D"),
    ("sample {good} --num-samples 0 --out OUT", "num_samples"),
    ("sample {good} --num-frames 1 --out OUT", "num_frames"),
    ("sample {truncated} --out OUT", "truncated or damaged"),
    ("sample {good} --num-frames 100000 --out OUT", "num_frames must be an integer in [2, 1000]"),
    ("reconstruct {good} --every 0 --out OUT", "every must be"),
    ("reconstruct {good} --first 0 --out OUT", "first must be"),
    ("reconstruct {good} --frames 99 --out OUT", "outside"),
    ("reconstruct {good} --frames a,b --out OUT", "--frames: expected comma-separated frame indices"),
    ("reconstruct {good} --times 1.5 --out OUT", "times must be in [0, 1)"),
    ("reconstruct {good} --times nan --out OUT", "times must be in [0, 1)"),
    ("reconstruct {good} --times '' --out OUT", "--times: no values given"),
    ("reconstruct {good} --frames '' --out OUT", "--frames: no values given"),
    ("track {good} --refine-settings '{{\"residual_sigma_mm\": 1e308}}' --refine 2 --out OUT", "at most 1000 mm"),
    ("reconstruct {good} --times x --out OUT", "--times: expected comma-separated numbers"),
    ("reconstruct {good} --every 2 --first 2 --out OUT", "choose one of"),
    ("reconstruct {good} --every 2 --refine -1 --out OUT", "steps must be"),
    ("evaluate --data {mixed} --out OUT", "b_broken.nii.gz"),
    ("evaluate --data {folder}/none --out OUT", "no such"),
    ("evaluate --subjects 0 --out OUT", "subjects"),
    ("evaluate --refine -1 --out OUT", "steps must be"),
    ("evaluate --model {garbage_pt} --out OUT", "not a motionext checkpoint"),
    ("train --model '{{\"latent_dim\": -1}}' --out OUT", "latent_dim must be an integer >= 1"),
    ("train --model '[1]' --out OUT", "--model: expected a JSON object"),
    ("train --model {{bad --out OUT", "--model: not valid JSON"),
    ("train --model '{{\"nonsense\": 1}}' --out OUT", "unknown settings"),
    ("train --model '{{\"lncc_window\": 8}}' --out OUT", "lncc_window must be a positive odd"),
    ("train --model '{{\"recon_weight\": \"a\"}}' --out OUT", "recon_weight"),
    ("train --steps 0 --out OUT", "steps must be"),
    ("train --size 0 0 --out OUT", "size"),
    ("train --size 100 128 --out OUT", "multiple of 8"),
    ("train --spacing 0 --out OUT", "spacing must be"),
    ("train --spacing nan --out OUT", "spacing must be"),
    ("train --spacing 1e-3 --out OUT", "spacing must be a finite number in [0.01, 100.0]"),
    ("train --data {other_labels} --out OUT", "hold the value(s) [7]; motionext reads ACDC's labels"),
    ("evaluate --data {other_labels} --out OUT", "hold the value(s) [7]; motionext reads ACDC's labels"),
    ("train --lr -1 --out OUT", "lr must be"),
    ("train --lr inf --out OUT", "lr must be"),
    ("train --frames 1 --out OUT", "num_frames"),
    ("train --batch-size 0 --out OUT", "batch_size"),
    ("train --phantom-subjects 0 --out OUT", "phantom_subjects"),
    ("train --val-every 0 --out OUT", "val_every"),
    ("train --workers -1 --out OUT", "workers"),
    ("train --kl-free-bits nan --out OUT", "kl_free_bits"),
    ("train --dice-weight -1 --out OUT", "dice_weight"),
    ("train --device gpu --out OUT", "device must be"),
    ("train --data {mixed} --out OUT", "b_broken.nii.gz"),
    ("train --data {folder}/none --out OUT", "no such"),
    ("train --data phantom+ --out OUT", "data 'phantom+' has an empty part"),
    ("fit-prior --model {diverged_pt} --data phantom --out OUT", "the weights hold NaN or Inf"),
    ("fit-prior --data phantom --out {full} --overwrite", "is a folder; fit-prior writes one checkpoint file"),
    ("train --init {garbage_pt} --out OUT", "not a motionext checkpoint"),
    ("train --out {a_file}", "is a file"),
    ("train --out {notes}", "holds config.json, which a new run would replace"),
    ("train --resume --out OUT", "no checkpoint"),
    ("demo --out {a_file}", "is a file"),
    ("demo --model {garbage_pt} --out OUT", "not a motionext checkpoint"),
    ("prune-cache {folder}/none", "no such"),
    ("prune-cache {a_file}", "not a folder"),
]


def _argv(template: str, files: dict, out: str) -> list:
    import shlex

    return [a.replace("OUT", out) for a in shlex.split(template.format(**files))]


@pytest.mark.parametrize("template,message", CASES, ids=[c[0].split(" --out")[0] for c in CASES])
def test_bad_input_ends_in_one_line_and_leaves_nothing(template, message, files, tmp_path, capsys):
    out = tmp_path / "out"
    argv = _argv(template, files, str(out))
    argv = argv if argv[0] != "train" else argv + ["--model", TINY_MODEL] * ("--model" not in argv) + ["--quiet"]
    before = sorted(os.listdir(files["folder"]))
    code = cli(argv)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith(f"motionext {argv[0]}: error: ")]
    assert code == 2, err
    assert len(errors) == 1 and "Traceback" not in err, err
    assert message in errors[0], errors[0]
    assert "weights_only" not in err
    assert not out.exists() and not any(p.name.startswith(".out") for p in tmp_path.iterdir())
    assert sorted(os.listdir(files["folder"])) == before  # nothing written beside the inputs either
    assert os.listdir(files["full"]) == ["keep.txt"]


def test_the_command_line_itself_prints_no_traceback(files, tmp_path):
    # the two cases of the issue, through the real entry point
    for argv in (["track", files["truncated"], "--out", str(tmp_path / "a")],
                 ["train", "--model", json.dumps({"latent_dim": -1}), "--out", str(tmp_path / "b")]):
        result = subprocess.run([sys.executable, "-m", "motionext", *argv], capture_output=True, text=True,
                                cwd=tmp_path, timeout=120)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith(f"motionext {argv[0]}: error: ")


def test_running_out_of_memory_is_one_line(monkeypatch, capsys):
    import motionext.cli as command

    def hungry(args):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: 26 GB")

    parser = command.build_parser()
    parser._subparsers._group_actions[0].choices["info"].set_defaults(run=hungry)
    monkeypatch.setattr(command, "build_parser", lambda: parser)
    assert command.main(["info"]) == 2
    assert capsys.readouterr().err.startswith("motionext info: error: not enough memory")


def test_an_unexpected_failure_is_one_line_too(monkeypatch, capsys):
    import motionext.cli as command

    def broken(args):
        raise RuntimeError("something inside broke")

    parser = command.build_parser()
    monkeypatch.setattr(command, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["info"].set_defaults(run=broken)
    assert command.main(["info"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("motionext info: error: internal error (RuntimeError: something inside broke)")
    monkeypatch.setenv("MOTIONEXT_TRACEBACK", "1")
    with pytest.raises(RuntimeError):
        command.main(["info"])


def test_an_unwritable_out_is_refused_before_any_work(files, tmp_path, monkeypatch, capsys):
    # as root every folder is writable, so the permission answer is simulated
    import motionext.files

    monkeypatch.setattr(motionext.files.os, "access", lambda path, mode: False)
    for argv in (["track", files["good"], "--out", str(tmp_path / "out")], ["train", "--out", str(tmp_path / "run")]):
        assert cli(argv) == 2
        assert "no permission to write in" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "run").exists()
