"""`motionext evaluate`: the paper's measures for a trained model against the identity (no
motion) on labelled data: a held-out phantom cohort (with true motion) or labelled NIfTI cines
(ACDC-style trees). Per subject and as means: Dice and HD95 (mm) of ED labels propagated to ES
for LV-Myo, LV (blood pool), RV and LV+RV (the ACDC labels), fraction of folding voxels, RMSE of
warped ED against every frame, spatial and temporal gradient of the displacements, LV volume
(area in 2D) curve and ejection fraction; end-point error where the true motion is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.phantom import LABELS
from ..metrics import dice, endpoint_error, folding_fraction, hausdorff95
from . import api

STRUCTURES = {"LV-Myo": [LABELS["myocardium"]], "LV-BP": [LABELS["LV"]], "LV": [LABELS["LV"], LABELS["myocardium"]],
              "RV": [LABELS["RV"]], "LV+RV": [LABELS["LV"], LABELS["myocardium"], LABELS["RV"]]}


def displacement_gradients(u: np.ndarray, spacing) -> tuple:
    """Mean magnitude of the spatial gradient (per voxel, of u in mm) and the temporal gradient
    (mm per frame) of displacements (T, ndim, *S) in voxels."""
    mm = u * np.asarray(spacing).reshape(1, -1, *([1] * (u.ndim - 2)))
    spatial = np.mean([np.abs(g).mean() for g in np.gradient(mm, axis=tuple(range(2, u.ndim)))])
    temporal = np.abs(np.diff(mm, axis=0)).mean() if u.shape[0] > 1 else 0.0
    return float(spatial), float(temporal)


def evaluate_sequence(model, cine, *, truth=None) -> dict:
    """Measures of one labelled cine (Cine with labels at ED = 0 and at `es`) for the model and
    the identity. `truth`: true displacements (T, ndim, *S) on the same grid, when known."""
    result = api.track(model, cine)  # a Cine's ED labels follow it onto the model grid
    pre = result.cine if result.cine is not None else cine
    if result.labels is None or pre.es is None or pre.es not in pre.labels:
        raise ValueError(f"{cine.name}: evaluation needs labels at ED and ES")
    es, spacing = pre.es, result.spacing
    ed_labels, es_labels, moved = pre.labels[0], pre.labels[es], result.labels[es].numpy()
    row = {"subject": cine.name}
    for name, values in STRUCTURES.items():
        if not np.isin(es_labels, values).any() or not np.isin(ed_labels, values).any():
            # not labelled at both ends (e.g. Sunnybrook's ES myocardium): not measurable
            for key in (f"dice_{name}", f"dice_{name}_identity", f"hd95_{name}", f"hd95_{name}_identity"):
                row[key] = float("nan")
            continue
        row[f"dice_{name}"] = dice(moved, es_labels, values)
        row[f"dice_{name}_identity"] = dice(ed_labels, es_labels, values)
        row[f"hd95_{name}"] = hausdorff95(moved, es_labels, values, spacing)
        row[f"hd95_{name}_identity"] = hausdorff95(ed_labels, es_labels, values, spacing)
    u = result.displacements.numpy()
    row["folding"] = float(np.mean([folding_fraction(x) for x in u]))
    frames = result.frames.numpy()
    row["rmse"] = float(np.sqrt(((result.warped.numpy() - frames) ** 2).mean()))
    row["rmse_identity"] = float(np.sqrt(((frames[:1] - frames) ** 2).mean()))
    row["spatial_gradient"], row["temporal_gradient"] = displacement_gradients(u, spacing)
    voxel = float(np.prod(spacing))
    volume = [(result.labels[t].numpy() == LABELS["LV"]).sum() * voxel for t in range(len(u))]
    row["ef_tracked"] = 100 * (max(volume) - min(volume)) / max(volume) if max(volume) > 0 else float("nan")
    ed_v, es_v = (ed_labels == LABELS["LV"]).sum(), (es_labels == LABELS["LV"]).sum()
    row["ef_labels"] = 100 * (ed_v - es_v) / ed_v if ed_v > 0 else float("nan")
    row["lv_volume_curve"] = volume
    if truth is not None:
        heart = es_labels > 0
        row["epe"] = endpoint_error(u[es], truth[es], spacing, heart)
        row["epe_identity"] = endpoint_error(np.zeros_like(truth[es]), truth[es], spacing, heart)
    return row


def evaluate(model, data: str = "phantom", *, subjects: int = 8) -> list:
    """Rows of measures: for "phantom", `subjects` held-out phantom subjects; otherwise every
    labelled 2D slice of the NIfTI data (an ACDC-style tree, a patient folder, ...)."""
    if data == "phantom":
        from ..evaluation import held_out_phantoms

        return [evaluate_sequence(model, cine, truth=truth)
                for cine, truth in held_out_phantoms(subjects, size=model.config.image_size)]
    from ..data.sources import read_path

    cines = [c for c in read_path(Path(data)) if 0 in c.labels and c.es in c.labels and (c.labels[0] > 0).any()]
    if not cines:
        raise ValueError(f"{data}: no cine with labels at ED and ES (and a labelled structure) found")
    return [evaluate_sequence(model, c) for c in cines]


def summarize(rows: list) -> dict:
    keys = [k for k in rows[0] if k not in ("subject", "lv_volume_curve")]
    return {k: float(np.nanmean([r[k] for r in rows])) for k in keys}
