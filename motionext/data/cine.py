"""The in-memory cine sequence every part of motionext passes around."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..validate import sizes


def even_phases(count: int) -> np.ndarray:
    """The cycle phases t / T of `count` evenly sampled frames (ED = 0)."""
    return np.arange(count, dtype=np.float32) / count


def cycle_phases(sequence) -> np.ndarray:
    """The cycle phase of every frame of a Cine or cached sequence: its `times` when it is sparse,
    else t / T."""
    times = getattr(sequence, "times", None)
    return np.asarray(times, dtype=np.float32) if times is not None else even_phases(sequence.num_frames)


@dataclass
class Cine:
    """A cine sequence with its ED frame first.

    frames:  (T, *spatial) float32; spatial axes in the order of the source array (NIfTI x, y[, z]).
    spacing: voxel size in mm per spatial axis.
    affine:  4×4 voxel-to-world matrix of the spatial grid (NIfTI convention), or None.
    labels:  frame index (ED = 0) -> integer label map (*spatial).
    es:      index of the end-systolic frame (after the ED rotation), if known.
    source_ed: index of the ED frame in the source file, before rotation.
    times:   cycle phase in [0, 1) of every frame (ED = 0), for sparse sequences such as an ED/ES
             pair; None means evenly spaced frames over one cycle, t / T.
    """

    frames: np.ndarray
    spacing: tuple
    affine: np.ndarray | None = None
    labels: dict = field(default_factory=dict)
    es: int | None = None
    source_ed: int = 0
    name: str = ""
    times: tuple | None = None

    def __post_init__(self):
        self.frames = np.asarray(self.frames, dtype=np.float32)
        if self.frames.ndim not in (3, 4):
            raise ValueError(f"Cine {self.name!r}: frames must be (T, H, W) or (T, D, H, W); got {self.frames.shape}")
        if self.frames.shape[0] < 2:
            raise ValueError(f"Cine {self.name!r}: a sequence needs at least 2 frames; got {self.frames.shape[0]}")
        if not np.isfinite(self.frames).all():
            raise ValueError(f"Cine {self.name!r}: frames contain NaN or Inf")
        self.spacing = sizes(f"Cine {self.name!r}", "spacing", self.spacing, self.ndim)
        if self.es is not None and not 0 <= self.es < self.num_frames:
            raise ValueError(f"Cine {self.name!r}: ES frame {self.es} is outside 0..{self.num_frames - 1}")
        if self.times is not None:
            self.times = tuple(float(t) for t in self.times)
            ok = len(self.times) == self.num_frames and self.times[0] == 0.0 and self.times[-1] < 1.0
            if not ok or any(b <= a for a, b in zip(self.times, self.times[1:])):
                raise ValueError(f"Cine {self.name!r}: times must be {self.num_frames} increasing phases in [0, 1) "
                                 f"starting at 0 (ED); got {self.times}")
        for t, lab in self.labels.items():
            if not 0 <= t < self.num_frames:
                raise ValueError(f"Cine {self.name!r}: label frame {t} is outside 0..{self.num_frames - 1}")
            if lab.shape != self.shape:
                raise ValueError(f"Cine {self.name!r}: labels of frame {t} have shape {lab.shape}, frames {self.shape}")

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]

    @property
    def shape(self) -> tuple:
        return self.frames.shape[1:]

    @property
    def ndim(self) -> int:
        return self.frames.ndim - 1

    def with_ed_first(self, ed: int) -> "Cine":
        """Rotate the sequence so frame `ed` becomes frame 0; labels and ES follow."""
        if not 0 <= ed < self.num_frames:
            raise ValueError(f"Cine {self.name!r}: ED frame {ed} is outside 0..{self.num_frames - 1}")
        t = self.num_frames
        times = None
        if self.times is not None:  # phases measured from the new ED frame, still increasing
            times = tuple(sorted((p - self.times[ed]) % 1.0 for p in self.times))
        return replace(
            self,
            frames=np.roll(self.frames, -ed, axis=0),
            labels={(k - ed) % t: v for k, v in self.labels.items()},
            es=None if self.es is None else (self.es - ed) % t,
            source_ed=(self.source_ed + ed) % t,
            times=times,
        )

    def slice(self, index: int, axis: int = 2) -> "Cine":
        """The 2D sequence of one slice of a 3D cine (default: the third spatial axis, NIfTI z)."""
        if self.ndim != 3:
            raise ValueError(f"Cine {self.name!r}: slice() needs a 3D cine; this one is {self.ndim}D")
        if not 0 <= index < self.shape[axis]:
            raise ValueError(f"Cine {self.name!r}: slice {index} is outside 0..{self.shape[axis] - 1}")
        take = lambda a, offset: np.take(a, index, axis=axis + offset)  # noqa: E731
        affine = None
        if self.affine is not None:
            keep = [k for k in range(3) if k != axis]
            shift = np.eye(4)
            shift[axis, 3] = index
            full = self.affine @ shift
            affine = np.eye(4)
            affine[:3, :2] = full[:3, keep]
            affine[:3, 2] = full[:3, axis]
            affine[:3, 3] = full[:3, 3]
        return replace(
            self,
            frames=take(self.frames, 1),
            spacing=tuple(s for k, s in enumerate(self.spacing) if k != axis),
            affine=affine,
            labels={t: take(v, 0) for t, v in self.labels.items()},
            name=f"{self.name}[slice {index}]",
        )
