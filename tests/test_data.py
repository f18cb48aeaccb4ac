"""Cine readers, preprocessing, augmentation, the phantom and the bundled sample."""

import numpy as np
import pytest
import torch

nib = pytest.importorskip("nibabel")

from motionext.data import Cine, crop_or_pad, load_sample, make_phantom, normalize_intensity, preprocess, read_acdc_patient, read_cine, read_frames, resample_inplane  # noqa: E402
from motionext.data.augment import apply_affine, random_affine  # noqa: E402
from motionext.data.phantom import LABELS, cardiac_cycle, phantom_cohort  # noqa: E402
from motionext.ops import reference  # noqa: E402


def _save(path, array, zooms):
    image = nib.Nifti1Image(array, np.diag([*zooms[:3], 1.0][:4]) if len(zooms) >= 3 else np.eye(4))
    image.header.set_zooms(zooms)
    nib.save(image, str(path))
    return path


def test_cine_rejects_bad_sequences():
    with pytest.raises(ValueError, match="at least 2 frames"):
        Cine(np.zeros((1, 8, 8)), (1, 1))
    with pytest.raises(ValueError, match="NaN"):
        Cine(np.full((3, 8, 8), np.nan), (1, 1))
    with pytest.raises(ValueError, match="frames must be"):
        Cine(np.zeros((3, 8)), (1,))
    with pytest.raises(ValueError, match="spacing"):
        Cine(np.zeros((3, 8, 8)), (1, 1, 1))
    with pytest.raises(ValueError, match="label frame 5"):
        Cine(np.zeros((3, 8, 8)), (1, 1), labels={5: np.zeros((8, 8))})
    with pytest.raises(ValueError, match="spacing must be a finite number > 0; got -1"):
        Cine(np.zeros((3, 8, 8)), (-1, 1))
    with pytest.raises(ValueError, match="ES frame 7 is outside 0..2"):
        Cine(np.zeros((3, 8, 8)), (1, 1), es=7)
    with pytest.raises(ValueError, match="preprocess: spacing must be a finite number > 0; got 0"):
        preprocess(Cine(np.zeros((3, 8, 8)), (1, 1)), spacing=0)


def test_ed_rotation_moves_frames_labels_and_es():
    frames = np.arange(5)[:, None, None] * np.ones((5, 4, 4))
    cine = Cine(frames, (1, 1), labels={3: np.ones((4, 4), np.uint8), 1: np.zeros((4, 4), np.uint8)}, es=1)
    rotated = cine.with_ed_first(3)
    assert rotated.frames[:, 0, 0].tolist() == [3, 4, 0, 1, 2]
    assert sorted(rotated.labels) == [0, 3] and rotated.labels[0].all()
    assert rotated.es == 3 and rotated.source_ed == 3


def test_read_4d_and_3d_nifti(tmp_path):
    data = np.random.default_rng(0).random((10, 12, 3, 6)).astype(np.float32)
    path = _save(tmp_path / "cine4d.nii.gz", data, (1.5, 1.25, 8.0, 30.0))
    label = (data[..., 2] > 0.5).astype(np.uint8)
    lpath = _save(tmp_path / "lab.nii.gz", label, (1.5, 1.25, 8.0))
    cine = read_cine(path, ed=2, es=4, labels={2: lpath})
    assert cine.frames.shape == (6, 10, 12, 3) and cine.spacing == (1.5, 1.25, 8.0)
    np.testing.assert_allclose(cine.frames[0], data[..., 2])
    assert cine.es == 2 and np.array_equal(cine.labels[0], label)
    slice2d = cine.slice(1)
    assert slice2d.frames.shape == (6, 10, 12) and slice2d.spacing == (1.5, 1.25)
    np.testing.assert_allclose(slice2d.frames[1], data[:, :, 1, 3])
    path3 = _save(tmp_path / "cine3d.nii", data[:, :, 0, :], (1.5, 1.25, 30.0))
    assert read_cine(path3).frames.shape == (6, 10, 12)


def test_headers_in_metres_or_microns_are_read_in_mm(tmp_path):
    # NIfTI's xyzt_units says what pixdim and the sform are in; motionext works in mm
    data = np.random.default_rng(1).random((10, 12, 3, 4)).astype(np.float32)
    mm = np.diag([1.5, 1.25, 8.0, 1.0])
    mm[:3, 3] = [-20.0, 12.0, 4.0]
    for unit, per_mm in (("meter", 1e-3), ("micron", 1e3), ("mm", 1.0), ("unknown", 1.0)):
        affine = mm.copy()
        affine[:3] *= per_mm
        image = nib.Nifti1Image(data, affine)
        image.header.set_xyzt_units(xyz=unit)
        nib.save(image, str(tmp_path / f"{unit}.nii.gz"))
        cine = read_cine(tmp_path / f"{unit}.nii.gz")
        np.testing.assert_allclose(cine.spacing, (1.5, 1.25, 8.0), rtol=1e-6, err_msg=unit)
        np.testing.assert_allclose(cine.affine, mm, rtol=1e-6, atol=1e-9, err_msg=unit)
    # and what motionext writes says mm, so that no reader takes it for another unit
    from motionext.data.nifti import save_nifti

    written = nib.load(str(save_nifti(tmp_path / "out.nii.gz", data, mm)))
    assert written.header.get_xyzt_units()[0] == "mm"


def test_reader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such NIfTI"):
        read_cine(tmp_path / "missing.nii.gz")
    _save(tmp_path / "frame.nii.gz", np.zeros((8, 8), np.float32), (1.0, 1.0))
    with pytest.raises(ValueError, match="4D"):
        read_cine(tmp_path / "frame.nii.gz")
    _save(tmp_path / "one.nii.gz", np.zeros((8, 8, 1), np.float32), (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="at least 2 frames"):
        read_cine(tmp_path / "one.nii.gz")
    bad = np.zeros((8, 8, 3), np.float32)
    bad[0, 0, 1] = np.nan
    _save(tmp_path / "nan.nii.gz", bad, (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="NaN"):
        read_cine(tmp_path / "nan.nii.gz")
    (tmp_path / "junk.nii.gz").write_bytes(b"not nifti")
    with pytest.raises(ValueError, match="cannot read"):
        read_cine(tmp_path / "junk.nii.gz")


def test_read_acdc_patient_folder(tmp_path):
    folder = tmp_path / "patient001"
    folder.mkdir()
    data = np.random.default_rng(1).random((16, 16, 2, 10)).astype(np.float32)
    _save(folder / "patient001_4d.nii.gz", data, (1.4, 1.4, 10.0, 40.0))
    for frame in (1, 7):
        _save(folder / f"patient001_frame{frame:02d}_gt.nii.gz", np.full((16, 16, 2), frame, np.uint8), (1.4, 1.4, 10.0))
    (folder / "Info.cfg").write_text("ED: 1\nES: 7\nGroup: NOR\n")
    cine = read_acdc_patient(folder)
    assert cine.es == 6 and sorted(cine.labels) == [0, 6]
    assert cine.labels[6].max() == 7
    (folder / "Info.cfg").write_text("Group: NOR\n")
    with pytest.raises(ValueError, match="ED"):
        read_acdc_patient(folder)


def test_read_frames_folder(tmp_path):
    for t in range(4):
        _save(tmp_path / f"f{t:02d}.nii.gz", np.full((6, 7), t, np.float32), (2.0, 2.0))
    cine = read_frames(tmp_path, ed=1)
    assert cine.frames.shape == (4, 6, 7) and cine.frames[0, 0, 0] == 1 and cine.spacing == (2.0, 2.0)


def test_preprocess_geometry_and_labels():
    frames = np.zeros((3, 100, 80), np.float32)
    frames[:, 40:60, 30:50] = 1.0
    labels = {0: (frames[0] > 0).astype(np.uint8) * 3}
    cine = Cine(frames, (1.0, 1.0), np.eye(4), labels)
    resampled = resample_inplane(cine, 2.0)
    assert resampled.shape == (50, 40) and resampled.spacing == (2.0, 2.0)
    assert set(np.unique(resampled.labels[0])) <= {0, 3}
    assert abs((resampled.labels[0] > 0).sum() - 100) <= 10  # 20x20 mm square = 100 voxels of 2 mm
    cropped = crop_or_pad(resampled, (32, 64), centre=(25, 20))
    assert cropped.shape == (32, 64) and cropped.labels[0].shape == (32, 64)
    # world position is kept: voxel (0, 0) of the crop is voxel (9, -12) of the input grid
    np.testing.assert_allclose(cropped.affine @ [0, 0, 0, 1], resampled.affine @ [9, -12, 0, 1])
    out = preprocess(cine, spacing=2.0, size=(48, 48))
    assert out.frames.shape == (3, 48, 48) and 0 <= out.frames.min() and out.frames.max() <= 1


def test_normalize_intensity_is_robust():
    x = np.random.default_rng(0).random((4, 32, 32)).astype(np.float32)
    x[0, 0, 0] = 1e6  # an outlier does not squash the rest
    y = normalize_intensity(x)
    assert y.max() == 1.0 and y.min() == 0.0 and np.median(y) > 0.3


def test_bundled_sample():
    cine = load_sample()
    assert cine.frames.shape == (20, 96, 96) and cine.ndim == 2
    assert cine.es == 9 and sorted(cine.labels) == [0, 9] and cine.source_ed == 18
    ed_lv, es_lv = (cine.labels[0] == 3).sum(), (cine.labels[9] == 3).sum()
    assert ed_lv > es_lv > 0  # the LV blood pool shrinks in systole
    assert load_sample(slice=None).frames.shape == (20, 96, 96, 3)


def test_phantom_motion_is_consistent():
    p = make_phantom(12, (64, 64), seed=3, noise=0.0, bias=0.0)
    assert p.frames.shape == (12, 64, 64) and p.displacements.shape == (12, 2, 64, 64)
    assert np.abs(p.displacements[0]).max() < 1e-5  # ED is the reference
    area = lambda t, k: (p.labels[t] == LABELS[k]).sum()  # noqa: E731
    assert area(p.es, "LV") < 0.7 * area(0, "LV")  # ejection
    assert abs(area(p.es, "myocardium") - area(0, "myocardium")) < 0.15 * area(0, "myocardium")  # incompressible wall
    # frames and labels are the ED ones moved by the ground truth
    warped = reference.warp(torch.from_numpy(p.frames[:1, None]).expand(12, 1, 64, 64), torch.from_numpy(p.displacements))
    np.testing.assert_allclose(warped[:, 0].numpy(), p.frames, atol=1e-5)


def test_phantom_settings_are_checked():
    with pytest.raises(ValueError, match="make_phantom: spacing must be a finite number > 0; got 0"):
        make_phantom(spacing=0)
    with pytest.raises(ValueError, match="make_phantom: slice_spacing must be a finite number > 0"):
        make_phantom(size=(16, 16, 8), slice_spacing=float("nan"))
    with pytest.raises(ValueError, match="phantom_cohort: count must be an integer >= 0; got -1"):
        phantom_cohort(-1)


def test_phantom_cycle_and_3d():
    c = cardiac_cycle(30)
    assert c[0] == 0 and c.argmax() == 10 and c.max() > 0.99
    assert c[18] > c[22] * 0.95 and c[-1] < c[20]  # diastasis plateau, then the atrial kick
    p = make_phantom(8, (32, 32, 8), seed=1)
    assert p.frames.shape == (8, 32, 32, 8) and p.displacements.shape == (8, 3, 32, 32, 8)
    with pytest.raises(ValueError, match="num_frames"):
        make_phantom(1)


def test_phantom_cycle_timing_varies_by_subject_when_asked():
    default = make_phantom(20, (48, 48), seed=5)
    same = make_phantom(20, (48, 48), seed=5, cycle_variation=0.0)
    np.testing.assert_array_equal(default.frames, same.frames)  # 0: the phantom as before
    varied = [make_phantom(20, (48, 48), seed=s, cycle_variation=1.0) for s in range(12)]
    np.testing.assert_array_equal(varied[5].frames[0], default.frames[0])  # same anatomy at ED
    assert not np.allclose(varied[5].contraction, default.contraction)
    es_phases = {p.es / 20 for p in varied}
    assert len(es_phases) >= 3 and min(es_phases) >= 0.2 and max(es_phases) <= 0.5  # end-systole 25-45 %
    for p in varied:  # each still a cycle: full contraction at ES, back near ED at the end
        assert p.contraction[p.es] > 0.95 and p.contraction[-1] < 0.1 and p.contraction[0] == 0
    half = make_phantom(20, (48, 48), seed=5, cycle_variation=0.5).contraction
    # half the variation: each phase's contraction between the default's and the full draw's
    assert np.all(np.minimum(default.contraction, varied[5].contraction) - 0.05 <= half)
    assert np.all(half <= np.maximum(default.contraction, varied[5].contraction) + 0.05)
    for bad in (-0.1, 1.5, float("nan"), True):
        with pytest.raises(ValueError, match="cycle_variation"):
            make_phantom(8, (16, 16), cycle_variation=bad)


def test_augmentation_moves_every_frame_alike():
    rng = np.random.default_rng(0)
    frames = torch.from_numpy(make_phantom(4, (48, 48), seed=0).frames)
    labels = torch.zeros(4, 48, 48, dtype=torch.uint8)
    labels[:, 10:20, 10:30] = 2
    matrix = random_affine(rng)
    out, lab = apply_affine(frames, matrix, labels)
    ref, _ = apply_affine(frames[2:3], matrix)
    torch.testing.assert_close(out[2:3], ref)
    assert set(lab.unique().tolist()) <= {0, 2}
    identity = np.array([[1, 0, 0], [0, 1, 0]], np.float32)
    torch.testing.assert_close(apply_affine(frames, identity)[0], frames, atol=1e-5, rtol=0)
    # a shift of 0.25 (normalised) on the first row samples 6 voxels further along the first
    # axis: rows 10..20 move to rows 4..14, columns stay
    shifted, _ = apply_affine(labels.float(), np.array([[1, 0, 0.25], [0, 1, 0]], np.float32))
    assert shifted[0, 4:14, 10:30].mean() > 0.9 and shifted[0, 16:20].sum() == 0


def test_training_sources_from_files_folders_and_acdc_trees(tmp_path):
    from motionext.data.sources import load_sequences

    rng = np.random.default_rng(0)
    cines = tmp_path / "cines"
    cines.mkdir()
    _save(cines / "a.nii.gz", rng.random((40, 36, 2, 5)).astype(np.float32), (2.0, 2.0, 8.0, 40.0))  # 2 slices
    _save(cines / "b.nii.gz", rng.random((40, 36, 6)).astype(np.float32), (2.0, 2.0, 40.0))  # 1 slice
    sequences = load_sequences(str(cines), spacing=2.0, size=(32, 32))
    assert len(sequences) == 3 and all(s.frames.shape[1:] == (32, 32) for s in sequences)
    assert len(load_sequences(str(cines / "a.nii.gz"), spacing=2.0, size=(32, 32))) == 2
    tree = tmp_path / "acdc"
    for name in ("patient001", "patient002"):
        folder = tree / name
        folder.mkdir(parents=True)
        _save(folder / f"{name}_4d.nii.gz", rng.random((20, 20, 3, 6)).astype(np.float32), (1.5, 1.5, 10.0, 40.0))
        (folder / "Info.cfg").write_text("ED: 2\nES: 5\n")
    sequences = load_sequences(str(tree), spacing=1.5, size=(16, 16))
    assert len(sequences) == 6 and all(s.es == 3 for s in sequences)
    mixed = load_sequences("sample+" + str(cines / "a.nii.gz"), spacing=2.0, size=(32, 32))
    assert len(mixed) == 3 + 2
