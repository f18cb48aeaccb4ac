"""Figures people would rather see than read (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def motion_matrix(path, z, title="motion matrix z"):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    image = ax.imshow(np.asarray(z).T, aspect="auto", cmap="coolwarm")
    ax.set_xlabel("frame")
    ax.set_ylabel("latent dimension")
    ax.set_title(title)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def volume_curves(path, curves: dict, ylabel="LV blood pool area (mm²)", marks=None):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, values in curves.items():
        ax.plot(np.arange(len(values)), values, marker="o", ms=3, label=name)
    for name, t in (marks or {}).items():
        ax.axvline(t, color="grey", ls=":", lw=1)
        ax.text(t, ax.get_ylim()[1], name, ha="center", va="bottom", fontsize=8)
    ax.set_xlabel("frame")
    ax.set_ylabel(ylabel)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def sampled_curves(path, panels: dict, ylabel="LV area / ED area"):
    """One panel per entry of `panels` (title -> curves (N, T), one per sample), on a shared axis,
    so that how far samples differ can be compared at a glance."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.2), sharey=True, squeeze=False)
    for ax, (title, curves) in zip(axes[0], panels.items()):
        for curve in np.asarray(curves):
            ax.plot(np.arange(len(curve)), curve, lw=1.2, alpha=0.8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("frame")
    axes[0][0].set_ylabel(ylabel)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def tracking_gif(path, frames, labels, fps: int = 8):
    """Frames with the propagated label contours, as an animated GIF."""
    plt = _pyplot()
    from matplotlib.animation import FuncAnimation, PillowWriter

    frames, labels = np.asarray(frames), np.asarray(labels)
    fig, ax = plt.subplots(figsize=(3.2, 3.2))
    ax.set_axis_off()

    def draw(t):
        ax.clear()
        ax.set_axis_off()
        ax.imshow(frames[t].T, cmap="gray", origin="lower")
        for value, colour in ((1, "tab:blue"), (2, "tab:green"), (3, "tab:red")):
            if (labels[t] == value).any():
                ax.contour((labels[t] == value).T, levels=[0.5], colors=colour, linewidths=1, origin="lower")
        ax.set_title(f"frame {t}", fontsize=9)

    animation = FuncAnimation(fig, draw, frames=len(frames))
    animation.save(str(path), writer=PillowWriter(fps=fps))
    plt.close(fig)
    return Path(path)


def side_by_side(path, rows: dict, frames_to_show):
    """A grid: one row per named sequence (T, *S), columns at the given frames."""
    plt = _pyplot()
    cols = len(frames_to_show)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.8 * cols, 1.9 * len(rows)), squeeze=False)
    for r, (name, seq) in enumerate(rows.items()):
        seq = np.asarray(seq)
        for c, t in enumerate(frames_to_show):
            ax = axes[r, c]
            ax.imshow(seq[t].T, cmap="gray", origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"frame {t}", fontsize=8)
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


def jacobian_map(path, determinant, title="Jacobian determinant (ED→ES)"):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4, 3.4))
    image = ax.imshow(np.asarray(determinant).T, cmap="RdBu_r", vmin=0, vmax=2, origin="lower")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
