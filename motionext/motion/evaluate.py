"""`motionext evaluate`: the paper's measures for a trained model against the identity (no
motion) and the optional classical baselines (SyN, elastix), on labelled data: a held-out
phantom cohort (with true motion) or labelled NIfTI cines (ACDC-style trees). Per subject and
as means: Dice and HD95 (mm) of ED labels propagated to ES for LV-Myo, LV (blood pool), RV and
LV+RV (the ACDC labels), fraction of folding voxels, RMSE of warped ED against every frame,
spatial and temporal gradient of the displacements, LV volume (area in 2D) curve and ejection
fraction; end-point error where the true motion is known.
Folding and the spatial gradient are given over all frames and at ES alone (``*_es``), the
latter to compare with pairwise ED→ES registration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.phantom import LABELS
from ..metrics import dice, endpoint_error, folding_fraction, hausdorff95
from ..validate import integer
from . import api, registration

STRUCTURES = {"LV-Myo": [LABELS["myocardium"]], "LV-BP": [LABELS["LV"]], "LV": [LABELS["LV"], LABELS["myocardium"]],
              "RV": [LABELS["RV"]], "LV+RV": [LABELS["LV"], LABELS["myocardium"], LABELS["RV"]]}


def displacement_gradients(u: np.ndarray, spacing) -> tuple:
    """Mean magnitude of the spatial gradient (per voxel, of u in mm) and the temporal gradient
    (mm per frame) of displacements (T, ndim, *S) in voxels."""
    mm = u * np.asarray(spacing).reshape(1, -1, *([1] * (u.ndim - 2)))
    spatial = np.mean([np.abs(g).mean() for g in np.gradient(mm, axis=tuple(range(2, u.ndim)))])
    temporal = np.abs(np.diff(mm, axis=0)).mean() if u.shape[0] > 1 else 0.0
    return float(spatial), float(temporal)


def _measures(u: torch.Tensor, frames: torch.Tensor, ed_labels, es_labels, es: int, spacing, truth) -> dict:
    """The measures of one method's displacements u (T, ndim, *S), in voxels, on one sequence."""
    t = u.shape[0]
    moved_all = api.warp_each(ed_labels, u, mode="nearest").round().cpu().numpy().astype(ed_labels.dtype)
    moved = moved_all[es]
    row = {}
    for name, values in STRUCTURES.items():
        if not np.isin(es_labels, values).any() or not np.isin(ed_labels, values).any():
            # not labelled at both ends (e.g. Sunnybrook's ES myocardium): not measurable
            row[f"dice_{name}"] = row[f"hd95_{name}"] = float("nan")
            continue
        row[f"dice_{name}"] = dice(moved, es_labels, values)
        row[f"hd95_{name}"] = hausdorff95(moved, es_labels, values, spacing)
    un = u.cpu().numpy()
    row["folding"] = float(np.mean([folding_fraction(x) for x in un]))
    row["folding_es"] = folding_fraction(un[es])
    row["rmse"] = float(((api.warp_each(frames[0], u) - frames.to(u.dtype)) ** 2).mean().sqrt())
    row["spatial_gradient"], row["temporal_gradient"] = displacement_gradients(un, spacing)
    row["spatial_gradient_es"] = displacement_gradients(un[es:es + 1], spacing)[0]
    voxel = float(np.prod(spacing))
    volume = [float((moved_all[k] == LABELS["LV"]).sum() * voxel) for k in range(t)]
    row["ef_tracked"] = 100 * (max(volume) - min(volume)) / max(volume) if max(volume) > 0 else float("nan")
    if truth is not None:
        row["epe"] = endpoint_error(un[es], truth[es], spacing, es_labels > 0)
    row["lv_volume_curve"] = volume
    return row


def evaluate_sequence(model, cine, *, truth=None, baselines=(), refine: int = 0, refine_settings=None) -> dict:
    """Measures of one labelled cine (Cine with labels at ED = 0 and at `es`) for the model, the
    identity and each of `baselines` ("syn", "elastix"). Keys are the model's measures; the
    others' carry a suffix (``dice_LV_identity``, ``dice_LV_syn``). `truth`: true displacements
    (T, ndim, *S) on the same grid, when known. `refine`, `refine_settings`: as in track()."""
    # a Cine's ED labels follow it onto the model grid
    result = api.track(model, cine, refine=refine, refine_settings=refine_settings)
    pre = result.cine if result.cine is not None else cine
    if result.labels is None or pre.es is None or pre.es not in pre.labels:
        raise ValueError(f"{cine.name}: evaluation needs labels at ED and ES")
    es, spacing = pre.es, result.spacing
    ed_labels, es_labels = pre.labels[0], pre.labels[es]
    methods = {"": result.displacements, "identity": torch.zeros_like(result.displacements)}
    for name in baselines:
        u = registration.register_sequence(name, result.frames.cpu().numpy(), spacing)
        methods[name] = torch.from_numpy(u).to(result.displacements)
    ed_v, es_v = (ed_labels == LABELS["LV"]).sum(), (es_labels == LABELS["LV"]).sum()
    row = {"subject": cine.name, "ef_labels": 100 * (ed_v - es_v) / ed_v if ed_v > 0 else float("nan")}
    for method, u in methods.items():
        suffix = f"_{method}" if method else ""
        measures = _measures(u, result.frames, ed_labels, es_labels, es, spacing, truth)
        row.update({k + suffix: v for k, v in measures.items()})
    return row


def evaluate(model, data: str = "phantom", *, subjects: int = 8, baselines=(), refine: int = 0,
             refine_settings=None, progress: bool = False) -> list:
    """Rows of measures: for "phantom", `subjects` held-out phantom subjects; otherwise every
    labelled 2D slice of the NIfTI data (an ACDC-style tree, a patient folder, ...). `refine`,
    `refine_settings`: as in track()."""
    if data == "phantom":
        from ..evaluation import held_out_phantoms

        integer("evaluate", "subjects", subjects, minimum=1)

        items = list(held_out_phantoms(subjects, size=model.config.image_size))
    else:
        from ..data.sources import check_label_values, read_path

        cines = [c for c in read_path(Path(data)) if 0 in c.labels and c.es in c.labels and (c.labels[0] > 0).any()]
        check_label_values(cines, data)
        if not cines:
            raise ValueError(f"{data}: no cine with labels at ED and ES (and a labelled structure) found")
        items = [(c, None) for c in cines]
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc="evaluate", dynamic_ncols=True)
    return [evaluate_sequence(model, cine, truth=truth, baselines=baselines, refine=refine,
                              refine_settings=refine_settings) for cine, truth in items]


def is_curve(key: str) -> bool:
    return key.startswith("lv_volume_curve")


def summarize(rows: list) -> dict:
    keys = [k for k in rows[0] if k != "subject" and not is_curve(k)]
    return {k: float(np.nanmean([r[k] for r in rows])) for k in keys}
