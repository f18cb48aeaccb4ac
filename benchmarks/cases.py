"""The benchmark cases shared by compare.py and the pytest-benchmark suite: each op at the
issue's sizes, as a closure running forward or forward+backward on one backend."""

from __future__ import annotations

import torch

from motionext import ops

SIZES = {
    # name: (image shape, field shape)
    "2d-seq": ((20, 1, 128, 128), (20, 2, 128, 128)),
    "3d-cpu": ((1, 1, 64, 64, 64), (1, 3, 64, 64, 64)),
    "3d-gpu": ((1, 1, 160, 192, 224), (1, 3, 160, 192, 224)),
}
OPS = ("warp", "scaling_squaring", "lncc")
PASSES = ("forward", "forward+backward")


def make_case(op: str, size: str, backward: bool, device: str = "cpu", dtype=torch.float32, seed: int = 0):
    """A zero-argument function that runs `op` once (the backend is chosen by the caller)."""
    image_shape, field_shape = SIZES[size]
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(image_shape, generator=g, dtype=dtype).to(device)
    field = (torch.randn(field_shape, generator=g, dtype=dtype) * 3).to(device)
    if op == "warp":
        field.requires_grad_(backward)
        run = lambda: ops.warp(image, field).sum()  # noqa: E731
    elif op == "scaling_squaring":
        field.requires_grad_(backward)
        run = lambda: ops.scaling_squaring(field, steps=7).sum()  # noqa: E731
    elif op == "lncc":
        moving = image.clone().requires_grad_(backward)
        target = torch.rand(image_shape, generator=g, dtype=dtype).to(device)
        run = lambda: ops.lncc(moving, target, window=9)  # noqa: E731
    else:
        raise ValueError(f"unknown op {op!r}")

    def step():
        out = run()
        if backward:
            out.backward()
        if device == "cuda":
            torch.cuda.synchronize()

    def step_without_grad():
        with torch.no_grad():
            step()

    return step if backward else step_without_grad


def voxels(size: str) -> int:
    shape = SIZES[size][0]
    n = 1
    for s in shape:
        n *= s
    return n
