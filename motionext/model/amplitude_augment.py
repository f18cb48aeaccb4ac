"""Motion-amplitude augmentation, a training option (off by default; docs/model.md, "Amplitude
augmentation").

Each real ED frame comes with one motion, so a decoder conditioned on ED can learn most of the
motion from the anatomy and leave little for the codes: sampling and transport then give every
ED frame its own typical motion. Here half the sequences of a batch are replaced by their ED
frame moved by the model's own current motion of that sequence with its velocities scaled by a
random factor: the same anatomy with a stronger or weaker cycle, which only the codes can tell
apart. Their labels are the ED labels moved the same way, so the anatomical term sees them too.
"""

from __future__ import annotations

import math

import torch

from .motion_model import MotionModel


@torch.no_grad()
def amplified(model: MotionModel, frames: torch.Tensor, times: torch.Tensor, labels: torch.Tensor,
              labelled: torch.Tensor, spacing, strength: float, generator: torch.Generator):
    """(frames, labels, labelled) with each sequence replaced, with probability 1/2, by its ED
    frame warped by exp(a · v): v the model's velocities of that sequence (posterior mean, no
    dropout), a log-uniform in [1 / (1 + strength), 1 + strength]. frames (B, T, *S) and times
    (B, T) on the model's device; labels (B, T, *S) integer on that device; labelled (B, T) bool,
    anywhere. A replaced sequence is labelled in every frame when its ED frame is."""
    b = frames.shape[0]
    draws = torch.rand(2, b, generator=generator)
    chosen = draws[0] < 0.5
    if not chosen.any():
        return frames, labels, labelled
    log_range = math.log1p(strength)
    factor = torch.exp((2 * draws[1] - 1) * log_range)[chosen].to(frames.device)
    index = chosen.nonzero(as_tuple=True)[0].to(frames.device)
    was_training = model.training
    model.eval()
    try:
        velocity = model(frames[index], spacing, times[index], sample=False)["velocity"]
    finally:
        model.train(was_training)
    velocity = velocity * factor.view(-1, *([1] * (velocity.dim() - 1))).to(velocity.dtype)
    displacement = model.exponentiate(velocity)
    frames, labels, labelled = frames.clone(), labels.clone(), labelled.clone()
    ed, ed_labels = frames[index, 0], labels[index, 0]
    frames[index] = model.warp_frames(ed, displacement).to(frames.dtype)
    labels[index] = model.warp_frames(ed_labels.to(displacement.dtype), displacement, mode="nearest").round().to(labels.dtype)
    frames[index, 0], labels[index, 0] = ed, ed_labels  # ED stays exactly itself
    rows = chosen.to(labelled.device)
    labelled[rows] = labelled[rows, :1].expand(-1, labelled.shape[1])
    return frames, labels, labelled
