"""Training on a real cohort as it is shared: ACDC patient folders with only ED and ES frames
(sparse sequences with their true phases), the validation measures (Dice of propagated labels,
KL per frame), the free-bits KL, the optional anatomical term, and the real data in ../shared
when it is there."""

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from motionext.data import Cine
from motionext.data.batches import TrainingSet, collate, model_noise
from motionext.data.cache import PreprocessCache
from motionext.data.cine import cycle_phases
from motionext.data.nifti import read_acdc_patient
from motionext.data.sources import load_sequences
from motionext.model import MotionModel, ModelConfig, motion_loss
from motionext.model.losses import propagated_label_dice
from motionext.train import TrainConfig, train

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
TINY_MODEL = {"latent_dim": 8, "encoder_channels": [4, 8, 8, 2], "decoder_channels": [8, 8, 8, 4]}


def _save(path, array, zooms):
    image = nib.Nifti1Image(array, np.diag([*zooms[:3], 1.0][:4]))
    image.header.set_zooms(zooms)
    nib.save(image, str(path))


def _disc(shape, centre, radius):
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius ** 2


def _edes_patient(folder: Path, *, ed=1, es=9, frames=25, slices=2, size=40, info=None):
    """An ACDC testing-style patient folder: Info.cfg and the ED and ES volumes with labels, no 4D
    cine. The LV (label 3) is a disc that shrinks from ED to ES, inside a myocardial ring (2)."""
    folder.mkdir(parents=True)
    name = folder.name
    for frame, radius in ((ed, 9), (es, 6)):
        label = np.zeros((size, size, slices), np.uint8)
        for k in range(slices):
            label[..., k][_disc((size, size), (20, 20), radius + 3)] = 2
            label[..., k][_disc((size, size), (20, 20), radius)] = 3
        _save(folder / f"{name}_frame{frame:02d}.nii.gz", (label * 60.0).astype(np.float32), (1.5, 1.5, 8.0))
        _save(folder / f"{name}_frame{frame:02d}_gt.nii.gz", label, (1.5, 1.5, 8.0))
    (folder / "Info.cfg").write_text(info if info is not None else f"ED: {ed}\nES: {es}\nGroup: NOR\nNbFrame: {frames}\n")
    return folder


def test_ed_es_only_patient_is_a_sparse_sequence_at_its_true_phase(tmp_path):
    cine = read_acdc_patient(_edes_patient(tmp_path / "patient101", ed=1, es=9, frames=25))
    assert cine.num_frames == 2 and cine.es == 1 and cine.times == (0.0, 8 / 25)
    assert sorted(cine.labels) == [0, 1] and cine.spacing == (1.5, 1.5, 8.0)
    assert (cine.labels[0] == 3).sum() > (cine.labels[1] == 3).sum()  # ED's LV is the larger
    slices = load_sequences(str(tmp_path), spacing=1.5, size=(32, 32))
    assert len(slices) == 2 and all(s.times == (0.0, 0.32) for s in slices)
    assert slices[0].name == "patient101[slice 0]"


def test_ed_es_only_patient_errors_name_the_problem(tmp_path):
    no_count = _edes_patient(tmp_path / "patient102", info="ED: 1\nES: 9\nGroup: NOR\n")
    with pytest.raises(ValueError, match="NbFrame"):
        read_acdc_patient(no_count)
    missing = _edes_patient(tmp_path / "patient103")
    (missing / "patient103_frame09.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match="frame 09"):
        read_acdc_patient(missing)
    same = _edes_patient(tmp_path / "patient104", info="ED: 1\nES: 1\nNbFrame: 20\n")
    with pytest.raises(ValueError, match="two different frames"):
        read_acdc_patient(same)


def test_sparse_times_are_checked_and_follow_an_ed_rotation():
    frames = np.zeros((3, 8, 8), np.float32)
    with pytest.raises(ValueError, match="times"):
        Cine(frames, (1.0, 1.0), times=(0.0, 0.5))  # one phase per frame
    with pytest.raises(ValueError, match="times"):
        Cine(frames, (1.0, 1.0), times=(0.0, 0.6, 0.4))  # increasing
    rotated = Cine(frames, (1.0, 1.0), times=(0.0, 0.3, 0.7)).with_ed_first(1)
    np.testing.assert_allclose(rotated.times, (0.0, 0.4, 0.7))
    np.testing.assert_allclose(cycle_phases(Cine(frames, (1.0, 1.0))), [0, 1 / 3, 2 / 3])


def test_sparse_sequences_keep_their_times_through_the_cache_and_batches(tmp_path):
    _edes_patient(tmp_path / "tree" / "patient105", es=11, frames=20)
    cache = PreprocessCache(tmp_path / "cache", spacing=1.5, size=(32, 32))
    cached = load_sequences(str(tmp_path / "tree"), spacing=1.5, size=(32, 32), cache=cache)
    assert all(s.times == (0.0, 0.5) for s in cached)
    sequences = load_sequences(str(tmp_path / "tree"), spacing=1.5, size=(32, 32))
    batch = collate([TrainingSet(sequences, augment=True)[(i, 7)] for i in range(2)])
    torch.testing.assert_close(batch["times"], torch.tensor([[0.0, 0.5], [0.0, 0.5]]))
    assert batch["labelled"].all() and batch["labels"].shape == (2, 2, 32, 32)
    assert set(batch["labels"].unique().tolist()) <= {0, 2, 3}  # nearest-neighbour augmentation
    with pytest.raises(ValueError, match="sparse"):
        TrainingSet(sequences, num_frames=10)
    # no temporal dropout in a pair: the ED code cannot stand in for the ES one
    assert not model_noise(batch["seeds"], 2, 4, 1.0, "cpu")["tds_mask"].any()
    assert model_noise(batch["seeds"], 3, 4, 1.0, "cpu")["tds_mask"].all()


def test_the_model_reads_the_phase_it_is_given():
    model = MotionModel(ModelConfig(image_size=(32, 32), velocity_scale=1e4, **TINY_MODEL)).eval()
    frames = torch.rand(1, 2, 32, 32)
    early = model(frames, (1.5, 1.5), torch.tensor([[0.0, 0.1]]), sample=False)["velocity"]
    late = model(frames, (1.5, 1.5), torch.tensor([[0.0, 0.6]]), sample=False)["velocity"]
    assert not torch.allclose(early, late)


def test_propagated_label_dice():
    labels = torch.zeros(1, 3, 24, 24, dtype=torch.uint8)
    labels[:, :, 6:14, 6:14] = 3
    labelled = torch.tensor([[True, True, False]])
    still = torch.zeros(1, 3, 2, 24, 24, requires_grad=True)
    assert float(propagated_label_dice(labels, labelled, still).detach()) == pytest.approx(1.0)
    shifted = labels.clone()
    shifted[:, 1] = 0
    shifted[:, 1, 10:18, 6:14] = 3
    moved = propagated_label_dice(shifted, labelled, still)
    assert float(moved.detach()) == pytest.approx(0.5)
    moved.backward()
    assert still.grad[0, 1].abs().sum() > 0 and still.grad[0, 2].abs().sum() == 0  # only labelled frames
    # the displacement that undoes the shift (4 voxels along the first axis) restores it
    back = torch.zeros(1, 3, 2, 24, 24)
    back[:, :, 0] = -4.0
    assert float(propagated_label_dice(shifted, labelled, back, mode="nearest")) == pytest.approx(1.0)
    assert propagated_label_dice(shifted, torch.tensor([[True, False, False]]), still) is None


def test_free_bits_leave_a_small_kl_uncharged():
    model = MotionModel(ModelConfig(image_size=(32, 32), **TINY_MODEL))
    frames = torch.rand(1, 3, 32, 32)
    out = model(frames, (1.5, 1.5), sample=False)
    out["mean"] = torch.full_like(out["mean"], 0.5).requires_grad_(True)
    out["log_var"] = torch.zeros_like(out["log_var"])
    kl = 0.5 * 0.25 * out["mean"].shape[-1]  # per frame
    charged = motion_loss(model, frames, out, kl_free_bits=kl + 1)
    assert float(charged["kl_frame"].detach()) == pytest.approx(kl)
    (grad,) = torch.autograd.grad(charged["loss"], out["mean"], retain_graph=True)
    assert grad.abs().sum() == 0
    plain = motion_loss(model, frames, out)
    (grad,) = torch.autograd.grad(plain["loss"], out["mean"])
    torch.testing.assert_close(grad, torch.full_like(grad, 0.5))
    halved = motion_loss(model, frames, out, kl_scale=0.5)
    assert float((plain["loss"] - halved["loss"]).detach()) == pytest.approx(0.5 * float(plain["kl"].detach()), rel=1e-5)
    assert TrainConfig(kl_warmup=4).kl_scale(1) == 0.5 and TrainConfig(kl_warmup=0).kl_scale(0) == 1.0


def test_bad_training_settings_are_refused():
    for name, value in (("kl_free_bits", -1.0), ("kl_warmup", -5), ("dice_weight", float("nan"))):
        with pytest.raises(ValueError, match=name):
            TrainConfig(**{name: value})
    with pytest.raises(ValueError, match="cache"):
        TrainConfig(dice_weight=1.0, cache="somewhere")
    with pytest.raises(ValueError, match="velocity_scale"):
        ModelConfig(velocity_scale=0)


def test_training_on_ed_es_pairs_validates_dice_and_kl_on_held_out_patients(tmp_path):
    for name in ("patient110", "patient111"):
        _edes_patient(tmp_path / "train" / name)
    _edes_patient(tmp_path / "val" / "patient120")
    config = TrainConfig(data=str(tmp_path / "train"), val_data=str(tmp_path / "val"), out=str(tmp_path / "run"),
                         steps=4, val_every=2, checkpoint_every=4, size=(32, 32), model=TINY_MODEL,
                         dice_weight=10.0)
    row = train(config, progress=False)
    assert 0 <= row["val_dice"] <= 1 and row["val_kl_frame"] > 0 and np.isfinite(row["val_loss"])
    with open(tmp_path / "run" / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows[1]["val_dice"] != "" and rows[0]["val_dice"] == "" and all(r["dice"] != "" for r in rows)


def test_the_anatomical_term_pulls_the_labels_together(tmp_path):
    """With the Dice term the propagated ED labels overlap ES better after a few steps than
    without it (same data, seed and steps)."""
    _edes_patient(tmp_path / "train" / "patient130", slices=1)
    dice = {}
    for weight in (0.0, 2000.0):
        config = TrainConfig(data=str(tmp_path / "train"), val_data=str(tmp_path / "train"), out=str(tmp_path / f"w{weight}"),
                             steps=60, val_every=60, checkpoint_every=60, size=(32, 32), model=TINY_MODEL,
                             dice_weight=weight, augment=False, lr=3e-3)
        dice[weight] = train(config, progress=False)["val_dice"]
    assert dice[2000.0] > dice[0.0] + 0.1  # measured: 0.78 against 0.31


@pytest.mark.skipif(not (SHARED / "acdc_testing_edes").exists(), reason="the shared real cohort is not here")
def test_the_shared_acdc_testing_patients_read_as_sparse_pairs():
    cine = read_acdc_patient(SHARED / "acdc_testing_edes" / "patient101")
    assert cine.num_frames == 2 and cine.times == (0.0, 13 / 30) and cine.shape == (232, 256, 10)
    assert set(np.unique(cine.labels[1])) == {0, 1, 2, 3}
    full = read_acdc_patient(SHARED / "acdc_cine" / "patient090")
    assert full.num_frames == 12 and full.times is None and full.es == 7
