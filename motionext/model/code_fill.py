"""How a frame whose code is not known gets one: from the prior (the paper's temporal dropout
sampling) or by interpolating in time the codes of the frames that are known. Reconstruction
uses it at inference; training with `tds_fill="interpolate"` drops codes the same way, so the
temporal network learns to turn an interpolation of codes into the motion between them."""

from __future__ import annotations

import numpy as np
import torch

from ..validate import choice

FILLS = ("interpolate", "prior")


def code_weights(instants: np.ndarray, given_times: np.ndarray, fill: str = "interpolate") -> np.ndarray:
    """(instants, given) weights that make each instant's code z~ from the given frames' codes.
    A given frame's instant takes its own code. With "interpolate" every other instant takes the
    linear interpolation in time of the two given frames around it, the cycle closing at ED (phase
    1 is ED again); with ED alone there is nothing to interpolate, and it falls back to "prior":
    a zero row, the prior's part, left to the temporal network to fill in."""
    choice("code_weights", "fill", fill, FILLS)
    weights = np.zeros((instants.size, given_times.size))
    known = np.append(given_times, 1.0)  # given_times is sorted and starts at ED (0)
    for i, p in enumerate(instants):
        exact = np.flatnonzero(np.isclose(given_times, p))
        if exact.size:
            weights[i, exact[0]] = 1.0
        elif fill == "interpolate" and given_times.size > 1:
            after = int(np.searchsorted(known, p, side="right"))
            w = (p - known[after - 1]) / (known[after] - known[after - 1])
            weights[i, after - 1] += 1 - w
            weights[i, after % given_times.size] += w  # after the last given frame: towards ED
    return weights


def drop_rate(tds_probability: float, fill: str, uniform):
    """A sequence's TDS drop rate from a uniform draw in [0, 1) (a float or a tensor). With
    "prior" it is tds_probability, the paper's delta. With "interpolate" it is uniform in
    [0, 2 delta] (at most 1): a sequence then sees few codes kept as well as many, as a
    reconstruction from ED alone, every 5th or every 2nd frame does."""
    return tds_probability if fill == "prior" else uniform * min(1.0, 2 * tds_probability)


def fill_dropped_codes(z_tilde: torch.Tensor, prior: torch.Tensor, dropped: torch.Tensor, times: torch.Tensor,
                       fill: str) -> torch.Tensor:
    """z~ (B, T, d) with the `dropped` (B, T) codes replaced: by the prior samples `prior` (B, T, d)
    ("prior"), or ("interpolate") by the interpolation in time (`times`, (B, T), ED first at 0)
    of the codes kept, as reconstruction does; ED's code is always kept, as reconstruction always
    has ED, and a code with nothing to interpolate from (ED alone kept) takes its prior sample."""
    choice("fill_dropped_codes", "fill", fill, FILLS)
    if fill == "prior":
        return torch.where(dropped.unsqueeze(-1), prior, z_tilde)
    if not dropped.any():
        return z_tilde
    rows = []
    for z, noise, gone, t in zip(z_tilde, prior, dropped.cpu().numpy(), times.detach().cpu().numpy()):
        kept = np.flatnonzero(~gone | (np.arange(gone.size) == 0))
        weights = code_weights(t, t[kept])
        filled = torch.from_numpy(weights).to(z) @ z[torch.from_numpy(kept).to(z.device)]
        unfilled = torch.from_numpy(weights.sum(1) == 0).to(z.device).unsqueeze(-1)
        rows.append(torch.where(unfilled, noise, filled))
    return torch.stack(rows)
