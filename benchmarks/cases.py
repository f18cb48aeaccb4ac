"""The benchmark cases shared by compare.py and the pytest-benchmark suite: each op at the
issue's sizes, as a closure running forward or forward+backward on one backend."""

from __future__ import annotations

import functools

import torch

from motionext import ops

SIZES = {
    # name: (image shape, field shape)
    "2d-seq": ((20, 1, 128, 128), (20, 2, 128, 128)),
    "3d-cpu": ((1, 1, 64, 64, 64), (1, 3, 64, 64, 64)),
    "3d-gpu": ((1, 1, 160, 192, 224), (1, 3, 160, 192, 224)),
}
OPS = ("warp", "scaling_squaring", "lncc")
# forward+backward: the gradient training needs (the displacement's or velocity's for warp and
# scaling-and-squaring, the moving image's for LNCC); "every input": also the warped image's and
# LNCC's second image's, as a feature map or a jointly trained image would need.
PASSES = ("forward", "forward+backward", "forward+backward, every input")
GRADIENTS = {"forward": "none", "forward+backward": "one", "forward+backward, every input": "all"}
# The fields warp and scaling-and-squaring run on:
# - "noise": independent normal values with a std of 3 voxels at every voxel. The worst case
#   for the compiled CPU path, since no two neighbouring points share a cell.
# - "model": what the bundled model produces for a 20-frame phantom at 128 x 128 (2d-seq only).
#   These are its smoothed velocities for scaling-and-squaring and their exponentials for warp,
#   as in training and tracking.
FIELDS = ("noise", "model")


@functools.lru_cache(maxsize=None)
def _model_fields() -> dict:
    from motionext.data import make_phantom
    from motionext.model.io import load_model

    model = load_model()
    phantom = make_phantom(20, (128, 128), seed=0)
    with torch.no_grad():
        out = model(torch.from_numpy(phantom.frames)[None].float(), phantom.spacing)
    return {"velocity": out["velocity"][0].contiguous(), "displacement": out["displacement"][0].contiguous()}


def make_field(op: str, size: str, kind: str, g: torch.Generator, dtype) -> torch.Tensor:
    shape = SIZES[size][1]
    if kind == "noise":
        return torch.randn(shape, generator=g, dtype=dtype) * 3
    if kind != "model":
        raise ValueError(f"unknown field {kind!r}; choose from {FIELDS}")
    if size != "2d-seq":
        raise ValueError(f"the model field exists for 2d-seq only (the bundled model is 2D, 128 x 128); got {size!r}")
    return _model_fields()["velocity" if op == "scaling_squaring" else "displacement"].to(dtype)


def make_case(op: str, size: str, backward, device: str = "cpu", dtype=torch.float32, seed: int = 0,
              field: str = "noise"):
    """A zero-argument function that runs `op` once (the backend is chosen by the caller).
    `backward`: False, True (the one gradient of PASSES) or "all" (every input's)."""
    every = backward == "all"
    backward = bool(backward)
    image_shape, _ = SIZES[size]
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(image_shape, generator=g, dtype=dtype).to(device)
    field = make_field(op, size, field, g, dtype).clone().to(device)
    if op == "warp":
        field.requires_grad_(backward)
        image.requires_grad_(every)
        run = lambda: ops.warp(image, field).sum()  # noqa: E731
    elif op == "scaling_squaring":
        field.requires_grad_(backward)
        run = lambda: ops.scaling_squaring(field, steps=7).sum()  # noqa: E731
    elif op == "lncc":
        moving = image.clone().requires_grad_(backward)
        target = torch.rand(image_shape, generator=g, dtype=dtype).to(device).requires_grad_(every)
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


def case_gradients(pass_: str):
    """make_case's `backward` for a pass of PASSES."""
    return {"none": False, "one": True, "all": "all"}[GRADIENTS[pass_]]


def applies(op: str, pass_: str) -> bool:
    """Scaling-and-squaring has one input: its every-input pass is its forward+backward."""
    return not (op == "scaling_squaring" and GRADIENTS[pass_] == "all")


def voxels(size: str) -> int:
    shape = SIZES[size][0]
    n = 1
    for s in shape:
        n *= s
    return n
