"""The uses of a trained model, end to end on small phantom data, with their bad inputs; the
NIfTI outputs; and the demo."""

import numpy as np
import pytest
import torch

nib = pytest.importorskip("nibabel")

from motionext import motion  # noqa: E402
from motionext.data import make_phantom  # noqa: E402
from motionext.model import ModelConfig, MotionModel  # noqa: E402
from motionext.motion.baselines import interpolate_velocities  # noqa: E402
from motionext.motion.outputs import save_displacements, save_sequence  # noqa: E402
from motionext.motion.refine import RefineSettings  # noqa: E402
from motionext.model import losses  # noqa: E402
from motionext import load_model  # noqa: E402
from motionext.data.phantom import LABELS  # noqa: E402
from motionext.evaluation import HELD_OUT_SEED  # noqa: E402
from motionext.metrics import dice, folding_fraction  # noqa: E402
from motionext.motion.evaluate import displacement_gradients  # noqa: E402

SMALL = dict(image_size=(32, 32), latent_dim=8, encoder_channels=(4, 8, 8, 2), decoder_channels=(8, 8, 8, 4))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = MotionModel(ModelConfig(**SMALL)).eval()
    with torch.no_grad():  # visible motion, so the checks below are not about zero fields
        m.decoder.velocity.weight.normal_(std=0.05)
    return m


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(8, (32, 32), seed=7)


def test_track_shapes_labels_and_two_frame_registration(model, phantom):
    r = motion.track(model, phantom.frames, spacing=phantom.spacing, labels=phantom.labels[0])
    assert r.displacements.shape == (8, 2, 32, 32) and r.warped.shape == (8, 32, 32) and r.z.shape == (8, 8)
    assert r.labels.dtype == torch.uint8 and set(r.labels.unique().tolist()) <= {0, 1, 2, 3}
    torch.testing.assert_close(r.warped, model.warp_frames(r.frames[:1], r.displacements[None])[0])
    pair = motion.track(model, phantom.frames[[0, phantom.es]], spacing=phantom.spacing)
    assert pair.displacements.shape == (2, 2, 32, 32)


def test_refine_fits_an_unseen_pair_smoothly_and_leaves_the_model_alone():
    model = load_model()  # the pretrained model: refinement should add to what it learned
    before = {k: v.clone() for k, v in model.state_dict().items()}
    p = make_phantom(20, (128, 128), seed=HELD_OUT_SEED + 3)
    pair, ed_labels, es_labels = p.frames[[0, p.es]], p.labels[0], p.labels[p.es]
    plain = motion.track(model, pair, spacing=p.spacing, labels=ed_labels)
    refined = motion.track(model, pair, spacing=p.spacing, labels=ed_labels, refine=20)
    plain_dice, refined_dice = (dice(r.labels[1].numpy(), es_labels, [LABELS["LV"]]) for r in (plain, refined))
    assert plain_dice < 0.9 and refined_dice > 0.95  # measured: 0.85 and 0.98 (the model of 2026-11: 0.68 and 0.95)
    assert folding_fraction(refined.displacements[1].numpy()) == 0.0
    assert refined.z.shape == plain.z.shape and not torch.equal(refined.z, plain.z)
    torch.testing.assert_close(refined.warped, model.warp_frames(refined.frames[:1], refined.displacements[None])[0])
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert all(q.grad is None for q in model.parameters())
    zero = motion.track(model, pair, spacing=p.spacing, refine=0)
    assert torch.equal(zero.displacements, plain.displacements)


@pytest.mark.parametrize("penalty, weight", [("smoothness_weight", 1000.0), ("curvature_weight", 3000.0)])
def test_refinement_smoothness_penalties_make_the_fitted_motion_smoother(penalty, weight):
    model = load_model()
    p = make_phantom(20, (128, 128), seed=HELD_OUT_SEED + 3)
    pair, ed_labels, es_labels = p.frames[[0, p.es]], p.labels[0], p.labels[p.es]
    fits = {w: motion.track(model, pair, spacing=p.spacing, labels=ed_labels, refine=20,
                            refine_settings=RefineSettings(**{penalty: w})) for w in (0.0, weight)}
    rough, smooth = (displacement_gradients(fits[w].displacements[1:].numpy(), p.spacing)[0] for w in (0.0, weight))
    # measured: gradient 0.085 against 0.112; curvature 0.096 against 0.176 (the other at its default)
    assert smooth < 0.8 * rough
    assert dice(fits[weight].labels[1].numpy(), es_labels, [LABELS["LV"]]) > 0.9


def test_refinement_uses_its_own_similarity_window(model, phantom, monkeypatch):
    windows = []
    original = losses._pair_lncc
    monkeypatch.setattr(losses, "_pair_lncc", lambda a, b, window: windows.append(window) or original(a, b, window))
    frames = torch.from_numpy(phantom.frames)  # 32 x 32: a window of 33 is cut to the image's 31
    fits = [motion.track(model, frames, spacing=phantom.spacing, refine=2,
                         refine_settings=RefineSettings(similarity_window=w)) for w in (5, 33)]
    assert set(windows) == {5, 31} and model.config.lncc_window not in windows
    assert not torch.equal(fits[0].displacements, fits[1].displacements)


def test_refinement_skips_a_term_whose_weight_is_zero(model, phantom, monkeypatch):
    from motionext.motion import refine

    called = []
    for name in ("spatial_gradient_penalty", "spatial_curvature_penalty", "temporal_curvature_penalty", "global_ncc"):
        original = getattr(refine, name)
        monkeypatch.setattr(refine, name, lambda *a, _f=original, _n=name, **k: called.append(_n) or _f(*a, **k))
    frames = torch.from_numpy(phantom.frames)
    motion.track(model, frames, spacing=phantom.spacing, refine=2,
                 refine_settings=RefineSettings(smoothness_weight=0.0, curvature_weight=0.0,
                                                temporal_smoothness_weight=0.0))
    assert called == []
    default = motion.track(model, frames, spacing=phantom.spacing, refine=2)
    assert all(called.count(name) == 2 for name in
               ("spatial_gradient_penalty", "spatial_curvature_penalty", "temporal_curvature_penalty"))
    assert "global_ncc" not in called  # off by default
    with_global = motion.track(model, frames, spacing=phantom.spacing, refine=2,
                               refine_settings=RefineSettings(global_similarity_weight=10_000.0))
    assert called.count("global_ncc") == 2
    assert not torch.allclose(with_global.displacements, default.displacements, atol=1e-3)


def test_global_ncc_measures_alignment_whatever_the_contrast():
    image = torch.rand(1, 1, 24, 20)
    pairs = torch.cat([image, image, image.flip(-1), torch.zeros_like(image)], dim=1)
    ncc = losses.global_ncc(torch.cat([image] * 4, dim=1), 3.0 * pairs + 0.5)  # contrast and offset differ
    assert ncc[0, :2].tolist() == pytest.approx([1.0, 1.0], abs=1e-4)
    assert abs(ncc[0, 2].item()) < 0.2 and ncc[0, 3].item() == 0.0  # unrelated; flat: no NaN


def test_refined_sequences_move_consistently_over_time():
    model = load_model()
    p = make_phantom(12, (128, 128), seed=HELD_OUT_SEED + 5)
    plain = motion.track(model, p.frames, spacing=p.spacing)
    refined = motion.track(model, p.frames, spacing=p.spacing, refine=20)
    unpenalised = motion.track(model, p.frames, spacing=p.spacing, refine=20,
                               refine_settings=RefineSettings(temporal_smoothness_weight=0.0))
    plain_t, refined_t, unpenalised_t = (displacement_gradients(r.displacements.numpy(), p.spacing)[1]
                                         for r in (plain, refined, unpenalised))
    # measured: 0.17 plain, 0.36 refined, 0.41 without the temporal penalty (0.22 for the true motion)
    assert refined_t < 2.5 * plain_t and refined_t < 0.95 * unpenalised_t


def test_compensate_inverts_the_tracked_motion(model, phantom):
    frames = torch.from_numpy(phantom.frames)
    compensated = motion.compensate(model, frames, spacing=phantom.spacing)
    assert compensated.shape == frames.shape and torch.isfinite(compensated).all()
    r = motion.track(model, frames, spacing=phantom.spacing)
    inverse = model.exponentiate(-r.velocities[None])[0]
    torch.testing.assert_close(compensated, motion.api.ops.warp(r.frames[:, None], inverse)[:, 0])
    # exp(-v) inverts exp(v): u(x) + u_inv(x + u(x)) is small next to u
    u = r.displacements
    composed = u + motion.api.ops.warp(inverse, u)
    assert u[1:].abs().mean() > 1e-3
    assert composed[1:].abs().mean() < 0.1 * u[1:].abs().mean()


def test_transport_and_sample(model, phantom):
    other = make_phantom(6, (32, 32), seed=8)
    moved = motion.transport(model, phantom.frames, other.frames[0], spacing=phantom.spacing)
    assert moved.warped.shape == (8, 32, 32)
    torch.testing.assert_close(moved.z, motion.track(model, phantom.frames, spacing=phantom.spacing).z)
    s = motion.sample(model, other.frames[0], num_frames=5, num_samples=3, seed=1)
    assert s.frames.shape == (3, 5, 32, 32) and s.uncertainty.shape == (5, 32, 32) and (s.uncertainty >= 0).all()
    again = motion.sample(model, other.frames[0], num_frames=5, num_samples=3, seed=1)
    torch.testing.assert_close(s.frames, again.frames)
    # given codes are decoded as they are: the seed's own draws give the seed's samples back, and
    # a sample of all-zero codes (the prior mean) moves less than prior draws do
    drawn = torch.randn(3, 5, model.config.latent_dim, generator=torch.Generator().manual_seed(1))
    given = motion.sample(model, other.frames[0], codes=drawn)
    torch.testing.assert_close(given.frames, s.frames)
    torch.testing.assert_close(given.z, s.z)
    mean = motion.sample(model, other.frames[0], codes=np.zeros((1, 5, model.config.latent_dim)))
    assert mean.frames.shape == (1, 5, 32, 32)
    assert not torch.allclose(mean.displacements[0], s.displacements[0])


def test_reconstruct_subsets_and_arbitrary_times(model, phantom):
    assert motion.frame_subset(8, every=3) == [0, 3, 6]
    assert motion.frame_subset(8, first=3) == [0, 1, 2]
    assert motion.frame_subset(8, frames=[5]) == [0, 5]
    assert motion.frame_subset(8) == [0]
    full = motion.reconstruct(model, phantom.frames, list(range(8)), spacing=phantom.spacing)
    tracked = motion.track(model, phantom.frames, spacing=phantom.spacing)
    torch.testing.assert_close(full.displacements, tracked.displacements, atol=1e-5, rtol=1e-4)  # all given = tracking
    some = motion.reconstruct(model, phantom.frames, [0, 4], spacing=phantom.spacing)
    assert some.displacements.shape == (8, 2, 32, 32)
    superres = motion.reconstruct(model, phantom.frames, [0, 2, 4, 6], times=[0.05, 0.3, 0.9])
    assert superres.displacements.shape == (3, 2, 32, 32) and superres.z.shape == (3, 8)
    prior = motion.reconstruct(model, phantom.frames, [0, 4], spacing=phantom.spacing, fill="prior")
    assert not torch.allclose(prior.displacements, some.displacements)  # the fills differ where frames are missing
    alone = motion.reconstruct(model, phantom.frames, [0], spacing=phantom.spacing)
    torch.testing.assert_close(alone.displacements, motion.reconstruct(model, phantom.frames, [0], fill="prior",
                                                                       spacing=phantom.spacing).displacements)
    with pytest.raises(ValueError, match="fill must be one of"):
        motion.reconstruct(model, phantom.frames, [0, 4], fill="nearest")


def test_refined_reconstruction_fits_the_given_frames_and_is_refined_tracking_when_all_are_given():
    model = load_model()
    p = make_phantom(20, (128, 128), seed=HELD_OUT_SEED + 3)
    given = motion.frame_subset(20, every=5)
    missing = [t for t in range(20) if t not in given]
    plain = motion.reconstruct(model, p.frames, given, spacing=p.spacing)
    refined = motion.reconstruct(model, p.frames, given, spacing=p.spacing, refine=10)

    def rmse(result, frames):
        return float(((result.warped[frames] - result.frames[frames]) ** 2).mean().sqrt())

    # measured: the given frames 0.0373 -> 0.0311 (refined tracking of every frame: 0.0304), the
    # missing ones 0.0389 -> 0.0370. With the penalties unscaled (they cover 20 instants, the
    # similarity 4 frames) the missing ones reached only 0.0384
    assert rmse(refined, given) < 0.9 * rmse(plain, given)
    assert rmse(refined, missing) < 0.97 * rmse(plain, missing)
    assert refined.displacements.shape == plain.displacements.shape and refined.z.shape == plain.z.shape
    assert max(folding_fraction(u) for u in refined.displacements.numpy()) == 0.0
    assert torch.equal(motion.reconstruct(model, p.frames, given, spacing=p.spacing, refine=0).displacements,
                       plain.displacements)
    # every frame given: the same fit as refined tracking, up to float rounding that Adam's
    # normalised steps can magnify where a gradient is near zero (measured: 0.3 % of the values
    # differ by more than 1e-4 voxels, at most by 0.007)
    every = motion.reconstruct(model, p.frames, list(range(20)), spacing=p.spacing, refine=3).displacements
    tracked = motion.track(model, p.frames, spacing=p.spacing, refine=3).displacements
    assert float((every - tracked).abs().max()) < 0.02 and float((every - tracked).abs().mean()) < 1e-4
    superres = motion.reconstruct(model, p.frames, given, times=[0.1, 0.33], spacing=p.spacing, refine=2)
    assert superres.displacements.shape == (2, 2, 128, 128)
    with pytest.raises(ValueError, match="steps must be a non-negative integer"):
        motion.reconstruct(model, p.frames, given, spacing=p.spacing, refine=-1)



def test_refine_motion_refuses_a_fill_plan_that_does_not_match_its_frames(model, phantom):
    from motionext.motion.refine import refine_motion

    frames, codes, times = torch.as_tensor(phantom.frames[[0, 4]]), torch.zeros(2, 8), torch.tensor([0.0, 0.5])
    with pytest.raises(ValueError, match=r"fill weights must be \(instants, given frames\) = \(3, 2\)"):
        refine_motion(model, frames, phantom.spacing, codes, 1, times=times,
                      fill=(torch.ones(3, 3), torch.tensor([0.0, 0.25, 0.5])))
    with pytest.raises(ValueError, match="every given frame's phase must be one of the fill's instants"):
        refine_motion(model, frames, phantom.spacing, codes, 1, times=times,
                      fill=(torch.ones(3, 2), torch.tensor([0.0, 0.2, 0.6])))

@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m, p: motion.track(m, p.frames[:, :16]), "do not match the model"),
        (lambda m, p: motion.track(m, p.frames[0]), "expected (T, 32, 32)"),
        (lambda m, p: motion.track(m, p.frames[:1]), "at least 2 frame"),
        (lambda m, p: motion.track(m, np.full_like(p.frames, np.nan)), "NaN"),
        (lambda m, p: motion.track(m, p.frames, labels=p.labels[0][:10]), "labels of shape"),
        (lambda m, p: motion.track(m, "/nonexistent/cine.nii.gz"), "no such NIfTI"),
        (lambda m, p: motion.transport(m, p.frames, p.frames[0][:, :20]), "transport target"),
        (lambda m, p: motion.transport(m, p.frames, p.frames), "transport target ED frame: expected one frame of shape"),
        (lambda m, p: motion.sample(m, p.frames), "sample ED frame: expected one frame of shape (32, 32); got shape (8, 32, 32)"),
        (lambda m, p: motion.sample(m, p.frames[0], seed=1.5), "sample: seed must be an integer; got 1.5"),
        (lambda m, p: motion.sample(m, p.frames[0], num_frames=1), "num_frames"),
        (lambda m, p: motion.sample(m, p.frames[0], codes=np.zeros((2, 5, 3))), "codes must be"),
        (lambda m, p: motion.sample(m, p.frames[0], codes=np.zeros((2, 1, m.config.latent_dim))), "num_frames"),
        (lambda m, p: motion.sample(m, p.frames[0], codes=np.full((1, 4, m.config.latent_dim), np.nan)), "NaN"),
        (lambda m, p: motion.reconstruct(m, p.frames, [0, 9]), "outside 0..7"),
        (lambda m, p: motion.reconstruct(m, p.frames, [0], times=[1.5]), "times must be in [0, 1)"),
        (lambda m, p: motion.reconstruct(m, p.frames, [0], times=[0.2, float("nan")]), "times must be in [0, 1)"),
        (lambda m, p: motion.frame_subset(8, every=0), "every"),
        (lambda m, p: motion.track(m, p.frames, refine=-1), "steps must be a non-negative integer"),
        (lambda m, p: motion.track(m, p.frames, refine=2.5), "steps must be a non-negative integer"),
        (lambda m, p: RefineSettings(residual_rate=0), "residual_rate must be a positive number"),
        (lambda m, p: RefineSettings(residual_sigma_mm=float("nan")), "residual_sigma_mm must be a positive number"),
        (lambda m, p: RefineSettings(residual_sigma_mm=1e308), "residual_sigma_mm must be at most 1000 mm"),
        (lambda m, p: RefineSettings(smoothness_weight=-1.0), "smoothness_weight must be a non-negative number"),
        (lambda m, p: RefineSettings(temporal_smoothness_weight=float("nan")), "temporal_smoothness_weight must be a non-negative"),
        (lambda m, p: RefineSettings(curvature_weight=float("inf")), "curvature_weight must be a non-negative number"),
        (lambda m, p: RefineSettings(similarity_window=8), "'similarity_window' must be a positive odd integer"),
        (lambda m, p: RefineSettings(similarity_window=9.0), "'similarity_window' must be a positive odd integer"),
        (lambda m, p: motion.frame_subset(8, every=2, first=3), "one of"),
        (lambda m, p: motion.frame_subset(8, frames=[0, 2.5]), "a frame index must be an integer; got 2.5"),
        (lambda m, p: motion.frame_subset(8, frames="0,2"), "frames must be a list of frame indices"),
        (lambda m, p: motion.track(m, np.asarray(p.frames) + 0j), "values of type complex64 are not real numbers"),
        (lambda m, p: motion.track(m, np.asarray(p.frames).astype(str)), "are not real numbers"),
        (lambda m, p: motion.track(m, p.frames, spacing=(1.5, 1.5, 1.5)), "spacing must be 2 sizes in mm"),
        (lambda m, p: motion.track(m, p.frames, spacing=1.5), "spacing must be 2 sizes in mm"),
        (lambda m, p: motion.track(m, p.frames, spacing=(-1.5, 1.5)), "spacing must be a finite number > 0; got -1.5"),
    ],
)
def test_bad_inputs(model, phantom, call, message):
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        call(model, phantom)
    assert message in str(info.value)


def test_velocity_interpolation_baselines():
    v = torch.zeros(3, 2, 4, 4)
    v[1] = 1.0
    v[2] = 2.0
    linear = interpolate_velocities(v, [0, 2, 4], 6, "linear")
    assert linear.shape == (6, 2, 4, 4)
    assert [round(float(x), 3) for x in linear[:, 0, 0, 0]] == [0.0, 0.5, 1.0, 1.5, 2.0, 1.0]  # wraps to ED
    cubic = interpolate_velocities(v, [0, 2, 4], 6, "cubic")
    torch.testing.assert_close(cubic[[0, 2, 4]], v)
    assert interpolate_velocities(v[:1], [0], 6).shape == (6, 2, 4, 4)


def test_outputs_keep_geometry(tmp_path):
    affine = np.array([[0, -1.5, 0, 10], [1.5, 0, 0, -5], [0, 0, 8, 3], [0, 0, 0, 1]], float)
    u = np.zeros((4, 2, 6, 5), np.float32)
    u[:, 0] = 2.0  # two voxels along the first axis = world (0, 3, 0) mm
    save_displacements(tmp_path / "u.nii.gz", u, affine, (1.5, 1.5))
    image = nib.load(str(tmp_path / "u.nii.gz"))
    assert image.shape == (6, 5, 1, 4, 3) and np.allclose(image.affine, affine)
    assert image.header.get_intent()[0] == "vector"
    np.testing.assert_allclose(np.asarray(image.dataobj)[0, 0, 0, 0], [0, 3, 0])
    save_sequence(tmp_path / "f.nii.gz", np.random.rand(4, 6, 5), affine)
    assert nib.load(str(tmp_path / "f.nii.gz")).shape == (6, 5, 1, 4)
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_demo_writes_its_outputs(tmp_path):
    from motionext.motion.demo import run_demo

    rows = run_demo(tmp_path / "demo", log=lambda *_: None)
    out = tmp_path / "demo"
    for name in ["sample/displacements.nii.gz", "sample/labels.nii.gz", "sample/z.npy", "sample/lv_area.csv",
                 "sample/transported.nii.gz", "phantom/displacements.nii.gz", "figures/motion_matrix.png",
                 "figures/tracking.gif", "figures/transport.png", "figures/sampled_lv_area.png", "summary.md",
                 "summary.csv"]:
        assert (out / name).stat().st_size > 0, name
    table = {r["experiment"]: r for r in rows}
    lv = table["phantom: LV Dice ED→ES"]
    assert lv["motionext"] > lv["identity"] + 0.1
    assert table["phantom: folding fraction (det J <= 0), all frames"]["motionext"] == 0.0
    labels = nib.load(str(out / "sample" / "labels.nii.gz"))
    frames = nib.load(str(out / "sample" / "frames.nii.gz"))
    assert labels.shape == frames.shape and np.allclose(labels.affine, frames.affine)


def test_evaluation_skips_structures_not_labelled_at_both_ends(model, phantom):
    from motionext.data import Cine
    from motionext.motion.evaluate import evaluate_sequence

    es_labels = phantom.labels[phantom.es].copy()
    es_labels[es_labels == 2] = 0  # no myocardium at ES, as in Sunnybrook
    cine = Cine(phantom.frames, phantom.spacing, labels={0: phantom.labels[0], phantom.es: es_labels}, es=phantom.es)
    row = evaluate_sequence(model, cine, truth=phantom.displacements)
    assert np.isnan(row["dice_LV-Myo"]) and np.isnan(row["hd95_LV-Myo"])
    assert 0 < row["dice_LV-BP"] <= 1 and row["hd95_LV-BP"] >= 0 and row["epe"] > 0
    assert len(row["lv_volume_curve"]) == 8 and row["folding"] == 0.0


def test_input_grid_brings_displacements_back_in_input_voxels():
    from motionext.data import Cine
    from motionext.data.preprocess import preprocess
    from motionext.motion.grid import InputGrid

    angle = 0.3  # an oblique slice: the map must work in index space, whatever the world axes
    affine = np.eye(4)
    affine[:2, :2] = [[np.cos(angle) * 1.25, -np.sin(angle) * 1.25], [np.sin(angle) * 1.25, np.cos(angle) * 1.25]]
    affine[:3, 3] = [10.0, -5.0, 3.0]
    source = Cine(np.random.default_rng(0).random((3, 40, 36)).astype(np.float32), (1.25, 1.25), affine, name="s")
    prepared = preprocess(source, spacing=1.5, size=(32, 32))
    grid = InputGrid(source, prepared)
    u = np.zeros((3, 2, 32, 32), np.float32)
    u[:, 0] = 2.0  # 2 model voxels = 3 mm along the first axis
    back = grid.displacements(u)
    assert back.shape == (3, 2, 40, 36)
    np.testing.assert_allclose(back[:, 0], 2.0 * prepared.spacing[0] / 1.25, rtol=1e-5)
    np.testing.assert_allclose(back[:, 1], 0.0, atol=1e-6)
    # the world position of every input voxel matches its model-grid position
    corner = prepared.affine @ [*grid.positions[:, 5, 7], 0, 1]
    np.testing.assert_allclose(corner, affine @ [5, 7, 0, 1], atol=1e-6)
    ramp = np.broadcast_to(np.arange(32, dtype=np.float64)[:, None], (32, 32))  # linear: interpolation is exact
    inner = (grid.positions[0] >= 0) & (grid.positions[0] <= 31)
    np.testing.assert_allclose(grid.resample(ramp)[inner], grid.positions[0][inner], atol=1e-9)
    with pytest.raises(ValueError, match="affine"):
        InputGrid(Cine(source.frames, (1.25, 1.25)), prepared)
