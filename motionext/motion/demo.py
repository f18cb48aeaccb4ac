"""`motionext demo`: the pretrained model on the embedded data (the bundled Sunnybrook slice and
a held-out phantom subject). It tracks, samples, transports and reconstructs, writes NIfTI,
.npy, CSV and figures to a folder, and prints a summary table."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from .. import load_model
from ..data import load_sample, make_phantom
from ..data.phantom import LABELS
from ..evaluation import HELD_OUT_SEED
from ..metrics import dice, endpoint_error, folding_fraction, heart_endpoint_error, jacobian_determinant
from . import figures
from .api import frame_subset, reconstruct, sample, track, transport
from .baselines import reconstruct_by_interpolation
from .latent_checks import lv_area_ratios
from .outputs import save_csv, save_displacements, save_npy, save_sequence


COLUMNS = ["experiment", "motionext", "identity", "linear interpolation", "cubic interpolation"]


def _rmse(a, b) -> float:
    return float(torch.sqrt(((torch.as_tensor(a) - torch.as_tensor(b)) ** 2).mean()))


def _row(experiment, motionext, identity=None, linear=None, cubic=None) -> dict:
    return dict(zip(COLUMNS, [experiment, motionext, identity, linear, cubic]))


def run_demo(out="motionext-demo", model="pretrained", *, log=print) -> list:
    """Run the demo; returns the summary rows (also written to OUT/summary.csv and summary.md).
    The outputs appear in OUT when the demo has finished; an earlier demo's OUT is replaced (one
    that holds commands.OUTPUT_MARK, as every output folder since 2026-12-07 does), any other
    non-empty folder refused."""
    from .commands import output_folder

    out = Path(out)
    model = load_model(model)
    with output_folder(out, overwrite=(out / "summary.csv").exists()) as folder:
        rows, table = _run_demo(folder, model, log)
    log(f"outputs in {out}/")
    log(table)
    return rows


def _run_demo(out: Path, model, log) -> tuple:
    """(summary rows, their Markdown table), with every output written into `out`."""
    for sub in ("sample", "phantom", "figures"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    start = time.time()
    step = lambda text: log(f"[{time.time() - start:5.1f}s] {text}")  # noqa: E731
    rows = []

    # 1. Track the real sample; propagate its ED labels; compare with the manual ES labels.
    step("tracking the Sunnybrook sample (3 labelled LV slices; the middle one)")
    cine = load_sample()
    result = track(model, cine)
    pre = result.cine
    affine, spacing = pre.affine, result.spacing
    save_displacements(out / "sample" / "displacements.nii.gz", result.displacements.numpy(), affine, spacing)
    save_sequence(out / "sample" / "frames.nii.gz", result.frames.numpy(), affine, spacing)
    save_sequence(out / "sample" / "warped_ed.nii.gz", result.warped.numpy(), affine, spacing)
    save_sequence(out / "sample" / "labels.nii.gz", result.labels.numpy().astype(np.uint8), affine, spacing)
    save_npy(out / "sample" / "z.npy", result.z.numpy())
    voxel_mm2 = float(np.prod(spacing))
    area = [(result.labels[t] == LABELS["LV"]).sum().item() * voxel_mm2 for t in range(len(result.labels))]
    manual = {t: (lab == LABELS["LV"]).sum() * voxel_mm2 for t, lab in pre.labels.items()}
    save_csv(out / "sample" / "lv_area.csv", [{"frame": t, "lv_area_mm2": a} for t, a in enumerate(area)],
             ["frame", "lv_area_mm2"])
    es = pre.es
    rows.append(_row("sample: LV Dice at ES vs the manual label", dice(result.labels[es].numpy(), pre.labels[es], 3),
                     dice(pre.labels[0], pre.labels[es], 3)))
    rows.append(_row("sample: LV area change ED→ES, % (manual labels: "
                     f"{100 * (1 - manual[es] / manual[0]):.1f} %)", 100 * (1 - area[es] / area[0]), 0.0))
    figures.motion_matrix(out / "figures" / "motion_matrix.png", result.z.numpy(), "motion matrix z, Sunnybrook sample")
    figures.volume_curves(out / "figures" / "lv_area.png", {"tracked": area}, marks={"ES (manual)": es})
    figures.tracking_gif(out / "figures" / "tracking.gif", result.frames.numpy(), result.labels.numpy())
    figures.jacobian_map(out / "figures" / "jacobian_es.png", jacobian_determinant(result.displacements[es].numpy()))

    # 2. Track a phantom subject the model never saw: ground truth for everything.
    step("tracking a held-out phantom subject")
    ph = make_phantom(20, model.config.image_size, seed=HELD_OUT_SEED + 99)
    tracked = track(model, ph.frames, spacing=ph.spacing, labels=ph.labels[0])
    heart = ph.labels[ph.es] > 0
    save_displacements(out / "phantom" / "displacements.nii.gz", tracked.displacements.numpy(), None, ph.spacing)
    save_displacements(out / "phantom" / "true_displacements.nii.gz", ph.displacements, None, ph.spacing)
    save_sequence(out / "phantom" / "labels.nii.gz", tracked.labels.numpy().astype(np.uint8), None, ph.spacing)
    for name in ("LV", "myocardium", "RV"):
        rows.append(_row(f"phantom: {name} Dice ED→ES", dice(tracked.labels[ph.es].numpy(), ph.labels[ph.es], LABELS[name]),
                         dice(ph.labels[0], ph.labels[ph.es], LABELS[name])))
    rows.append(_row("phantom: end-point error ED→ES in the heart (mm)",
                     endpoint_error(tracked.displacements[ph.es].numpy(), ph.displacements[ph.es], ph.spacing, heart),
                     endpoint_error(np.zeros_like(ph.displacements[ph.es]), ph.displacements[ph.es], ph.spacing, heart)))
    rows.append(_row("phantom: folding fraction (det J <= 0), all frames",
                     float(np.mean([folding_fraction(u.numpy()) for u in tracked.displacements])), 0.0))

    # 3. Sample motion from the sample's ED frame alone.
    step("sampling 5 sequences from the sample's ED frame")
    sampled = sample(model, result.frames[0], num_frames=20, num_samples=5, spacing=spacing, seed=0)
    save_sequence(out / "sample" / "sampled_0.nii.gz", sampled.frames[0].numpy(), affine, spacing)
    save_sequence(out / "sample" / "sampling_uncertainty.nii.gz", sampled.uncertainty.numpy(), affine, spacing)
    rows.append(_row("sampling: mean displacement std across 5 samples (voxels)", float(sampled.uncertainty.mean())))
    # the samples' LV area curves, from the paper's prior and (when the model has one) the fitted one
    priors = {"N(0, I) (the paper's prior)": "standard"}
    if model.latent_prior is not None:
        priors["fitted prior (the default)"] = "fitted"
    figures.sampled_curves(out / "figures" / "sampled_lv_area.png", {
        title: [lv_area_ratios(u, pre.labels[0]) for u in
                sample(model, result.frames[0], num_frames=20, num_samples=8, spacing=spacing, seed=1,
                       prior=prior).displacements]
        for title, prior in priors.items()})

    # 4. Transport the phantom's motion onto the real ED frame.
    step("transporting the phantom's motion to the sample's ED frame")
    moved = transport(model, ph.frames, result.frames[0], spacing=ph.spacing)
    save_sequence(out / "sample" / "transported.nii.gz", moved.warped.numpy(), affine, spacing)
    show = [0, 4, ph.es, 12, 16]
    figures.side_by_side(out / "figures" / "transport.png", {"phantom (source)": tracked.frames.numpy(),
                         "sample, transported": moved.warped.numpy(), "sample, sampled": sampled.frames[0].numpy()}, show)

    # 5. Reconstruct the phantom from subsets; compare with interpolating velocities.
    step("reconstructing the phantom from subsets of frames")
    frames_true = tracked.frames
    curves = {"ground truth": [(ph.labels[t] == LABELS["LV"]).sum() for t in range(20)]}
    identity = frames_true[:1].expand_as(frames_true)
    zero = np.zeros_like(ph.displacements)
    for label, given in (("every 5th frame", frame_subset(20, every=5)), ("ED only", [0])):
        rec = reconstruct(model, ph.frames, given, spacing=ph.spacing)
        base = {kind: reconstruct_by_interpolation(frames_true[0], rec.velocities[given], given, 20, kind)
                for kind in ("linear", "cubic")}
        rows.append(_row(f"reconstruction from {label}: RMSE of the frames", _rmse(rec.warped, frames_true),
                         _rmse(identity, frames_true), _rmse(base["linear"][0], frames_true), _rmse(base["cubic"][0], frames_true)))
        rows.append(_row(f"reconstruction from {label}: end-point error in the heart (mm)",
                         heart_endpoint_error(rec.displacements.numpy(), ph.displacements, ph.labels, ph.spacing),
                         heart_endpoint_error(zero, ph.displacements, ph.labels, ph.spacing),
                         heart_endpoint_error(base["linear"][1].numpy(), ph.displacements, ph.labels, ph.spacing),
                         heart_endpoint_error(base["cubic"][1].numpy(), ph.displacements, ph.labels, ph.spacing)))
        if label.startswith("every"):
            labels_rec = model.warp_frames(torch.from_numpy(ph.labels[:1]).float(), rec.displacements[None], mode="nearest")[0]
            curves["reconstructed (every 5th)"] = [(labels_rec[t] == LABELS["LV"]).sum().item() for t in range(20)]
    figures.volume_curves(out / "figures" / "phantom_lv_curves.png", curves, ylabel="LV area (voxels)", marks={"ES": ph.es})

    save_csv(out / "summary.csv", rows, COLUMNS)
    cell = lambda v: "" if v is None else f"{v:.3f}"  # noqa: E731
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join([r["experiment"]] + [cell(r[c]) for c in COLUMNS[1:]]) + " |" for r in rows]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    step("done")
    return rows, "\n".join(lines)
