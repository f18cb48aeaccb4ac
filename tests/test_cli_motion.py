"""The file-level verbs end to end on small phantom NIfTI files, and their bad inputs: clear
messages and no partial outputs left behind."""


import numpy as np
import pytest
import torch

nib = pytest.importorskip("nibabel")

from motionext.cli import main as cli  # noqa: E402
from motionext.data import make_phantom  # noqa: E402
from motionext.model import ModelConfig, MotionModel  # noqa: E402
from motionext.model.io import atomic_save, checkpoint_dict  # noqa: E402

SIZE = (32, 32)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    model = MotionModel(ModelConfig(image_size=SIZE, latent_dim=8, encoder_channels=(4, 8, 8, 2), decoder_channels=(8, 8, 8, 4)))
    atomic_save(checkpoint_dict(model), root / "model.pt")
    affine = np.diag([1.5, 1.5, 8.0, 1.0])
    for name, seed in (("a", 1), ("b", 2)):
        p = make_phantom(8, SIZE, seed=seed)
        nib.save(nib.Nifti1Image(np.moveaxis(p.frames, 0, -1), affine), str(root / f"{name}.nii.gz"))  # (x, y, t)
        nib.save(nib.Nifti1Image(p.labels[0], affine), str(root / f"{name}_ed_labels.nii.gz"))
    nib.save(nib.Nifti1Image(np.zeros((32, 32), np.float32), affine), str(root / "flat.nii.gz"))
    nib.save(nib.Nifti1Image(np.zeros((16, 16), np.uint8), affine), str(root / "small_labels.nii.gz"))
    return root


def _run(files, *args):
    return cli([*args, "--model", str(files / "model.pt")])


def test_track_writes_readable_nifti(files, tmp_path):
    out = tmp_path / "track"
    assert _run(files, "track", str(files / "a.nii.gz"), "--out", str(out), "--labels", str(files / "a_ed_labels.nii.gz")) == 0
    u = nib.load(str(out / "displacements.nii.gz"))
    labels = nib.load(str(out / "labels.nii.gz"))
    assert u.shape == (32, 32, 1, 8, 3) and labels.shape == (32, 32, 1, 8)
    assert np.allclose(u.affine, labels.affine) and np.load(out / "z.npy").shape == (8, 8)


def test_outputs_lie_on_the_input_grid_or_the_model_grid(files, tmp_path):
    # an input on another grid than the model's: 40 x 36 voxels of 1.25 mm, with an offset
    p = make_phantom(6, (40, 36), seed=5, spacing=1.25)
    affine = np.diag([1.25, 1.25, 8.0, 1.0])
    affine[:3, 3] = [-20.0, 12.0, 4.0]
    nib.save(nib.Nifti1Image(np.moveaxis(p.frames, 0, -1) * 800, affine), str(tmp_path / "fine.nii.gz"))
    nib.save(nib.Nifti1Image(p.labels[0], affine), str(tmp_path / "fine_labels.nii.gz"))
    torch.manual_seed(0)
    moving = MotionModel(ModelConfig(image_size=SIZE, latent_dim=8, encoder_channels=(4, 8, 8, 2),
                                     decoder_channels=(8, 8, 8, 4), velocity_scale=1.0))
    with torch.no_grad():  # visible motion, so the comparison below is not about zero fields
        moving.decoder.velocity.weight.normal_(std=0.05)
    atomic_save(checkpoint_dict(moving), tmp_path / "moving.pt")
    args = ["track", str(tmp_path / "fine.nii.gz"), "--labels", str(tmp_path / "fine_labels.nii.gz"),
            "--model", str(tmp_path / "moving.pt")]
    assert cli([*args, "--out", str(tmp_path / "in")]) == 0
    assert cli([*args, "--out", str(tmp_path / "model"), "--grid", "model"]) == 0
    on_input = {n: nib.load(str(tmp_path / "in" / f"{n}.nii.gz")) for n in ("displacements", "warped_ed", "labels", "frames")}
    assert on_input["displacements"].shape == (40, 36, 1, 6, 3) and on_input["labels"].shape == (40, 36, 1, 6)
    for image in on_input.values():
        np.testing.assert_allclose(image.affine, affine)
    np.testing.assert_allclose(on_input["frames"].get_fdata()[:, :, 0, 0], p.frames[0] * 800, rtol=1e-5)  # input intensities
    np.testing.assert_array_equal(np.asanyarray(on_input["labels"].dataobj)[:, :, 0, 0], p.labels[0])  # ED: unmoved
    on_model = nib.load(str(tmp_path / "model" / "displacements.nii.gz"))
    assert on_model.shape == (32, 32, 1, 6, 3)
    # the same motion in mm at the same world point: input voxel (20, 18), interpolated on the model grid
    from scipy.ndimage import map_coordinates

    m = np.linalg.solve(on_model.affine, affine @ [20, 18, 0, 1])[:2]
    for k in range(3):
        model_value = map_coordinates(on_model.get_fdata()[:, :, 0, 3, k], m[:, None], order=1)[0]
        assert abs(on_input["displacements"].get_fdata()[20, 18, 0, 3, k] - model_value) < 1e-4
    assert np.abs(on_model.get_fdata()[:, :, 0, 3]).max() > 0.05  # there is motion to compare
    for verb, extra in (("compensate", []), ("sample", ["--num-samples", "2", "--num-frames", "4"]),
                        ("reconstruct", ["--every", "2"])):
        assert _run(files, verb, str(tmp_path / "fine.nii.gz"), *extra, "--out", str(tmp_path / verb)) == 0
        for output in (tmp_path / verb).glob("*.nii.gz"):
            assert nib.load(str(output)).shape[:2] == (40, 36), output.name
    assert _run(files, "transport", str(files / "a.nii.gz"), str(tmp_path / "fine.nii.gz"), "--out", str(tmp_path / "t")) == 0
    assert nib.load(str(tmp_path / "t" / "transported.nii.gz")).shape == (40, 36, 1, 8)


def test_an_input_in_metres_gives_the_same_motion_in_mm(files, tmp_path):
    # the same cine stored with its geometry in metres (xyzt_units "meter"): read as mm, not as a
    # 1000 times smaller image
    image = nib.load(str(files / "a.nii.gz"))
    affine = image.affine.copy()
    affine[:3] *= 1e-3
    metres = nib.Nifti1Image(np.asanyarray(image.dataobj), affine)
    metres.header.set_xyzt_units(xyz="meter")
    nib.save(metres, str(tmp_path / "metres.nii.gz"))
    assert _run(files, "track", str(files / "a.nii.gz"), "--out", str(tmp_path / "mm")) == 0
    assert _run(files, "track", str(tmp_path / "metres.nii.gz"), "--out", str(tmp_path / "m")) == 0
    expected, got = (nib.load(str(tmp_path / name / "displacements.nii.gz")) for name in ("mm", "m"))
    np.testing.assert_allclose(got.affine, image.affine, rtol=1e-6, atol=1e-9)
    assert got.header.get_xyzt_units()[0] == "mm"
    np.testing.assert_allclose(got.get_fdata(), expected.get_fdata(), atol=1e-5)
    assert np.abs(expected.get_fdata()).max() > 0  # displacements in mm, not all zero


def test_an_acdc_cine_starts_at_the_ed_frame_its_info_cfg_names(files, tmp_path, capsys):
    # ACDC's ED is not always the first frame (patient090's is frame 4): a patient's *_4d cine with
    # its Info.cfg beside it starts there, and labels named for another frame are refused
    p = make_phantom(8, SIZE, seed=3)
    patient = tmp_path / "patient200"
    patient.mkdir()
    affine = np.diag([1.5, 1.5, 8.0, 1.0])
    nib.save(nib.Nifti1Image(np.moveaxis(p.frames, 0, -1)[:, :, None], affine), str(patient / "patient200_4d.nii.gz"))
    nib.save(nib.Nifti1Image(p.labels[2][:, :, None], affine), str(patient / "patient200_frame03_gt.nii.gz"))
    nib.save(nib.Nifti1Image(p.labels[0][:, :, None], affine), str(patient / "patient200_frame01_gt.nii.gz"))
    (patient / "Info.cfg").write_text("ED: 3\nES: 6\nGroup: NOR\nNbFrame: 8\n")
    cine, ed_labels = str(patient / "patient200_4d.nii.gz"), str(patient / "patient200_frame03_gt.nii.gz")

    assert _run(files, "track", cine, "--labels", ed_labels, "--out", str(tmp_path / "info")) == 0
    assert "ED is frame 03 of patient200_4d.nii.gz" in capsys.readouterr().err
    frames = nib.load(str(tmp_path / "info" / "frames.nii.gz")).get_fdata()
    labels = np.asanyarray(nib.load(str(tmp_path / "info" / "labels.nii.gz")).dataobj)
    np.testing.assert_allclose(frames[:, :, 0, 0], p.frames[2], atol=1e-5)  # ED first, then frame index 3
    np.testing.assert_allclose(frames[:, :, 0, 1], p.frames[3], atol=1e-5)
    np.testing.assert_array_equal(labels[:, :, 0, 0], p.labels[2])
    assert _run(files, "track", cine, "--ed", "0", "--out", str(tmp_path / "first")) == 0  # --ed overrides
    np.testing.assert_allclose(nib.load(str(tmp_path / "first" / "frames.nii.gz")).get_fdata()[:, :, 0, 0], p.frames[0],
                               atol=1e-5)

    for args, message in ((["--labels", ed_labels, "--ed", "0"], "labels of frame 03 (index 2), but ED is index 0"),
                          (["--labels", str(patient / "patient200_frame01_gt.nii.gz")],
                           "labels of frame 01 (index 0), but ED is index 2")):
        capsys.readouterr()
        assert _run(files, "track", cine, *args, "--out", str(tmp_path / "refused")) == 2
        assert message in capsys.readouterr().err and not (tmp_path / "refused").exists()
    (patient / "Info.cfg").write_text("ES: 6\n")
    assert _run(files, "track", cine, "--out", str(tmp_path / "refused")) == 2
    assert "needs an integer 'ED:' line" in capsys.readouterr().err
    # a cine of another name beside an Info.cfg is read from its first frame, as before
    (patient / "Info.cfg").write_text("ED: 3\nES: 6\nNbFrame: 8\n")
    (patient / "patient200_4d.nii.gz").rename(patient / "mine.nii.gz")
    assert _run(files, "track", str(patient / "mine.nii.gz"), "--out", str(tmp_path / "mine")) == 0
    np.testing.assert_allclose(nib.load(str(tmp_path / "mine" / "frames.nii.gz")).get_fdata()[:, :, 0, 0], p.frames[0],
                               atol=1e-5)


def test_every_verb_runs(files, tmp_path):
    a, b = str(files / "a.nii.gz"), str(files / "b.nii.gz")
    assert _run(files, "compensate", a, "--out", str(tmp_path / "c")) == 0
    assert nib.load(str(tmp_path / "c" / "compensated.nii.gz")).shape == (32, 32, 1, 8)
    assert _run(files, "compensate", a, "--out", str(tmp_path / "c3"), "--refine", "3") == 0
    refined = np.asarray(nib.load(str(tmp_path / "c3" / "compensated.nii.gz")).dataobj)
    assert refined.shape == (32, 32, 1, 8) and not np.allclose(refined, nib.load(str(tmp_path / "c" / "compensated.nii.gz")).dataobj)
    assert _run(files, "track", a, "--out", str(tmp_path / "k3"), "--refine", "3") == 0
    assert (tmp_path / "k3" / "displacements.nii.gz").exists()
    assert _run(files, "transport", a, b, "--out", str(tmp_path / "t")) == 0
    assert nib.load(str(tmp_path / "t" / "transported.nii.gz")).shape == (32, 32, 1, 8)
    assert _run(files, "sample", a, "--out", str(tmp_path / "s"), "--num-samples", "2", "--num-frames", "5", "--seed", "0") == 0
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        ".motionext-output", "sample_00.nii.gz", "sample_01.nii.gz", "uncertainty.nii.gz", "z.npy"]
    assert _run(files, "reconstruct", a, "--out", str(tmp_path / "r"), "--every", "3") == 0
    assert nib.load(str(tmp_path / "r" / "reconstructed.nii.gz")).shape == (32, 32, 1, 8)
    assert _run(files, "reconstruct", a, "--out", str(tmp_path / "r3"), "--every", "3", "--refine", "2") == 0
    fitted = np.asarray(nib.load(str(tmp_path / "r3" / "reconstructed.nii.gz")).dataobj)
    assert fitted.shape == (32, 32, 1, 8) and not np.allclose(fitted, nib.load(str(tmp_path / "r" / "reconstructed.nii.gz")).dataobj)
    assert _run(files, "reconstruct", a, "--out", str(tmp_path / "r2"), "--frames", "0,4", "--times", "0.1,0.55") == 0
    assert nib.load(str(tmp_path / "r2" / "reconstructed.nii.gz")).shape == (32, 32, 1, 2)


@pytest.mark.parametrize(
    "args, message",
    [
        (["track", "{files}/missing.nii.gz"], "no such NIfTI"),
        (["track", "{files}/flat.nii.gz"], "4D"),
        (["reconstruct", "{files}/a.nii.gz", "--frames", "0,12"], "outside 0..7"),
        (["reconstruct", "{files}/a.nii.gz", "--every", "2", "--first", "3"], "choose one"),
        (["reconstruct", "{files}/a.nii.gz", "--times", "1.2"], "times must be in [0, 1)"),
        (["track", "{files}/a.nii.gz", "--labels", "{files}/small_labels.nii.gz"], "do not match"),
        (["transport", "{files}/a.nii.gz", "{files}/missing.nii.gz"], "no such NIfTI"),
        (["track", "{files}/a.nii.gz", "--slice", "1"], "single slice"),
        (["track", "{files}/a.nii.gz", "--refine", "-3"], "steps must be a non-negative integer"),
        (["track", "{files}/a.nii.gz", "--refine-settings", '{"similarity_window": 21}'], "needs --refine STEPS"),
        (["track", "{files}/a.nii.gz", "--refine", "3", "--refine-settings", '{"similarity_window": 8}'],
         "'similarity_window' must be a positive odd integer"),
        (["compensate", "{files}/a.nii.gz", "--refine", "3", "--refine-settings", '{"smoothing": 1}'],
         "unknown smoothing; the settings are code_rate"),
        (["track", "{files}/a.nii.gz", "--refine", "3", "--refine-settings", "{window: 21}"], "not valid JSON"),
        (["evaluate", "--refine", "2", "--refine-settings", "[21]"], "expected a JSON object"),
    ],
)
def test_bad_inputs_leave_nothing_behind(files, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    args = [a.replace("{files}", str(files)) for a in args]
    assert _run(files, *args, "--out", str(out)) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_refine_settings_reach_the_fit(files, tmp_path):
    a = str(files / "a.nii.gz")
    runs = {"plain": [], "refined": ["--refine", "3"],
            "still": ["--refine", "3", "--refine-settings", '{"code_rate": 1e-9, "residual_rate": 1e-9}']}
    moved = {}
    for name, extra in runs.items():
        assert _run(files, "track", a, "--out", str(tmp_path / name), *extra) == 0
        moved[name] = np.asarray(nib.load(str(tmp_path / name / "displacements.nii.gz")).dataobj)
    assert not np.allclose(moved["refined"], moved["plain"], atol=1e-3)
    np.testing.assert_allclose(moved["still"], moved["plain"], atol=1e-3)  # steps too small to move the fit


def test_refine_settings_help_states_the_defaults(capsys):
    from dataclasses import fields

    from motionext.motion.refine import RefineSettings

    with pytest.raises(SystemExit):
        cli(["track", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps the help
    for field in fields(RefineSettings):
        assert f"{field.name} {field.default:g}" in text, field.name


def test_overwrite_replaces_only_a_folder_motionext_wrote(files, tmp_path, capsys, monkeypatch):
    cine = str(files / "a.nii.gz")
    out = tmp_path / "kept"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    assert _run(files, "track", cine, "--out", str(out)) == 2
    assert "not empty" in capsys.readouterr().err
    assert _run(files, "track", cine, "--out", str(out), "--overwrite") == 2
    assert "replaces only a folder that motionext wrote" in capsys.readouterr().err
    written = tmp_path / "written"
    assert _run(files, "track", cine, "--out", str(written)) == 0 and (written / ".motionext-output").is_file()
    (written / "z.npy").unlink()
    assert _run(files, "track", cine, "--out", str(written), "--overwrite") == 0 and (written / "z.npy").exists()
    # never the working folder (it emptied it, then failed), a folder above it (/tmp), or the inputs' folder
    monkeypatch.chdir(out)
    for target in (".", str(tmp_path)):
        assert _run(files, "track", cine, "--out", target, "--overwrite") == 2
        assert "is the working folder or holds it" in capsys.readouterr().err
    assert _run(files, "track", cine, "--out", str(files), "--overwrite") == 2
    assert f"holds the input {cine}" in capsys.readouterr().err
    assert (out / "precious.txt").read_text() == "keep me" and (files / "a.nii.gz").exists()


def test_verbs_document_themselves(capsys):
    for verb in ("track", "compensate", "transport", "sample", "reconstruct", "demo", "train"):
        with pytest.raises(SystemExit):
            cli([verb, "--help"])
        assert "usage: motionext " + verb in capsys.readouterr().out


def test_evaluate_on_phantom_and_on_an_acdc_tree(files, tmp_path, capsys):
    assert _run(files, "evaluate", "--out", str(tmp_path / "ev"), "--subjects", "2") == 0
    printed = capsys.readouterr().out
    assert "dice_LV-Myo" in printed and "hd95_RV" in printed and "epe" in printed
    with open(tmp_path / "ev" / "subjects.csv") as f:
        assert len(f.readlines()) == 3
    assert _run(files, "evaluate", "--out", str(tmp_path / "ev_refined"), "--subjects", "2", "--refine", "2") == 0
    plain, refined = (np.genfromtxt(tmp_path / d / "summary.csv", delimiter=",", names=True) for d in ("ev", "ev_refined"))
    assert refined["rmse"] != plain["rmse"] and refined["rmse_identity"] == plain["rmse_identity"]  # --refine reached the model
    # an ACDC-style patient built from a phantom: 4D cine with one slice, Info.cfg, ED/ES labels
    p = make_phantom(8, SIZE, seed=4)
    patient = tmp_path / "acdc" / "patient001"
    patient.mkdir(parents=True)
    affine = np.diag([1.5, 1.5, 8.0, 1.0])
    nib.save(nib.Nifti1Image(np.moveaxis(p.frames, 0, -1)[:, :, None, :], affine), str(patient / "patient001_4d.nii.gz"))
    for frame in (0, p.es):
        nib.save(nib.Nifti1Image(p.labels[frame][:, :, None], affine), str(patient / f"patient001_frame{frame + 1:02d}_gt.nii.gz"))
    (patient / "Info.cfg").write_text(f"ED: 1\nES: {p.es + 1}\n")
    assert _run(files, "evaluate", "--data", str(tmp_path / "acdc"), "--out", str(tmp_path / "ev2")) == 0
    assert "1 subjects" in capsys.readouterr().out
    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    (unlabelled / "a.nii.gz").write_bytes((files / "a.nii.gz").read_bytes())
    assert _run(files, "evaluate", "--data", str(unlabelled), "--out", str(tmp_path / "ev3")) == 2
    assert "labels at ED and ES" in capsys.readouterr().err and not (tmp_path / "ev3").exists()
