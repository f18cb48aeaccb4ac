"""The vectorised CPU paths of warp and of scaling-and-squaring (2D, float32, bilinear; and the 3D
squaring step, trilinear; AVX2) against the scalar shared math they replace: the same op run in a
process with MOTIONEXT_CPU_SIMD=0.
Rows of several widths (blocks of 8 and left-over columns), both paddings, points far outside the
image, NaN and Inf, smooth fields whose blocks of 8 points share one cell pattern (the contiguous
loads and adds), small fields whose points straddle two rows and two columns of cells (the
patterned blocks' blended loads and three-tap adds), fields under a voxel everywhere, whose
squaring blocks away from the border skip the general stencil (near_block), and noise that
keeps most blocks' cells inside the image (the general stencil without its edge handling)."""

import os
import subprocess
import sys

import pytest
import torch

from motionext import ops

from conftest import needs_compiled

CASES = [
    (2, 1, 9, 13, "noise"),
    (1, 3, 16, 8, "noise"),
    (3, 2, 5, 37, "noise"),
    (2, 1, 24, 41, "smooth"),
    (3, 2, 17, 64, "smooth"),
    (2, 2, 12, 32, "small"),
    (3, 1, 9, 27, "small"),
    (2, 2, 10, 42, "near"),
    (2, 1, 32, 64, "spread"),
]


def _inputs(shape, kind):
    b, c, h, w = shape
    g = torch.Generator().manual_seed(h * 100 + w)
    image = torch.rand(b, c, h, w, generator=g)
    if kind == "small":
        # under half a voxel with either sign: a block's points fall on two rows and two column
        # offsets of cells; exact zeros put points on the last row and column (the in-image cell)
        field = (torch.rand(b, 2, h, w, generator=g) - 0.5) * 0.8
        field[..., -2:, :] = 0
        field[..., :, -3:] = 0
        field[..., :3, :16] = 0.25  # whole blocks on one cell pattern
    elif kind == "near":
        # up to just under a voxel either way: the squaring's blocks away from the border are near
        field = (torch.rand(b, 2, h, w, generator=g) * 2 - 1) * 0.999
        field[..., 2:4, 8:16] = 0.5   # every point's cell at its own row and column
        field[..., 4:6, 8:16] = -0.5  # every point's cell one row and one column back
        field[..., 6, 16:24] = 1.0    # a voxel away: not near, the general stencil
        field[..., 7, 17] = -1.0
    elif kind == "smooth":
        # whole-voxel shifts shared by neighbours: the contiguous blocks (vector loads and adds),
        # mixed with blocks where the shift's floor changes and the clamped border
        y, x = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
        field = torch.stack([1.3 + 0.8 * torch.sin(y / 4 + x / 6), -0.4 + 0.9 * torch.cos(x / 5 - y / 9)])
        field = field.expand(b, 2, h, w) + 0.3 * torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1)
        field = field.contiguous()
        field[..., :8, :16] = 0  # points exactly on voxels: corners with weight 0
    elif kind == "spread":
        # white noise of 2 voxels: general blocks whose cells all lie inside the image (the general
        # stencil skips its edge handling), beside blocks at the edge where it does not
        field = torch.randn(b, 2, h, w, generator=g) * 2
    else:
        field = torch.randn(b, 2, h, w, generator=g) * 6  # many points leave the image
    field[0, 0, 0, 0], field[0, 1, 1, 2], field[-1, 0, -1, -1] = float("nan"), float("inf"), -float("inf")
    return image, field


def _run_all():
    torch.manual_seed(0)
    results = {}
    for *shape, kind in CASES:
        image, field = _inputs(shape, kind)
        for padding in ("border", "zeros"):
            out = torch.ops.motionext.warp(image, field, "bilinear", padding)
            grad = torch.rand_like(out)
            grad[0, 0, 1, 2] = float("inf")  # at the Inf point: its corners (weight 0) must not receive it
            _, grad_field = torch.ops.motionext.warp_backward(grad, image, field, "bilinear", padding, [False, True])
            # the image's gradient, the spread, alone and with the displacement's
            grad_image, grad_both = torch.ops.motionext.warp_backward(grad, image, field, "bilinear", padding,
                                                                      [True, True])
            grad_image_alone, _ = torch.ops.motionext.warp_backward(grad, image, field, "bilinear", padding,
                                                                    [True, False])
            results[f"{shape}-{kind}-{padding}"] = (out, grad_field, grad_image, grad_both, grad_image_alone)
            kept_out, kept_gradient = torch.ops.motionext.warp_with_gradient(image, field, padding)
            results[f"{shape}-{kind}-{padding}-with-gradient"] = (kept_out, kept_gradient)
            velocity = field / 3
            u, trajectory = torch.ops.motionext.scaling_squaring(velocity, 5, padding, True)
            grad_u = torch.rand_like(u)
            grad_u[0, 1, 3, 2] = float("inf")  # a zero weight must not spread it
            if kind == "near":
                grad_u[-1, 0, 5, 20] = float("inf")  # the same, inside a near block
            grad_velocity = torch.ops.motionext.scaling_squaring_backward(grad_u, velocity, trajectory, 5,
                                                                           padding)
            results[f"{shape}-{kind}-{padding}-squaring"] = (u, grad_velocity, grad_velocity, grad_velocity,
                                                             grad_velocity)
    for shape, std, threads in CASES_3D:
        torch.set_num_threads(threads)
        for padding in ("border", "zeros"):
            u, grad_velocity = _squaring_3d(shape, std, padding)
            results[f"{shape}-{std}-{threads}-{padding}-squaring3d"] = (u, grad_velocity)
    return results


# 3D squaring: (B, 3, D0, D1, D2), the velocity's std in voxels, threads. With fewer items than
# threads the adjoint gives each thread a slab of planes along D0 (the small fields), or private
# copies of the gradient (fields that move points too far for slabs: std 4); rows of 16 are whole
# blocks of 8, rows of 19 and 13 leave scalar voxels; 3 items on 2 threads take whole items each.
CASES_3D = [
    ((1, 3, 40, 6, 16), 0.3, 2),
    ((1, 3, 48, 5, 19), 0.5, 4),
    ((1, 3, 9, 6, 16), 4.0, 2),
    ((3, 3, 4, 5, 13), 6.0, 2),
]


def _squaring_3d(shape, std, padding):
    g = torch.Generator().manual_seed(sum(shape))
    velocity = torch.randn(*shape, generator=g) * std
    velocity[0, 0, 0, 0, 0], velocity[-1, 2, -1, -1, -1] = float("nan"), float("inf")
    u, trajectory = torch.ops.motionext.scaling_squaring(velocity, 5, padding, True)
    grad_u = torch.rand(u.shape, generator=g)
    grad_u[0, 1, 1, 2, 3] = float("inf")  # a zero weight must not spread it
    return u, torch.ops.motionext.scaling_squaring_backward(grad_u, velocity, trajectory, 5, padding)


SCRIPT = f"""
import sys, torch
sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
from test_ops_simd import _run_all
torch.save(_run_all(), sys.argv[1])
"""


@needs_compiled
def test_vectorised_paths_match_the_scalar_math(tmp_path):
    if ops.build_info().get("cpu_simd") != "avx2":
        pytest.skip("no AVX2 on this CPU, or MOTIONEXT_CPU_SIMD=0: only the scalar path runs")
    vector = _run_all()
    env = {**os.environ, "MOTIONEXT_CPU_SIMD": "0"}
    subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "scalar.pt")], env=env, check=True, timeout=300)
    scalar = torch.load(tmp_path / "scalar.pt")
    for key, (out, *grads) in vector.items():
        # five compositions of white noise amplify the rounding of fused multiply-adds
        atol = 1e-5 if key.endswith("squaring3d") else 1e-6
        torch.testing.assert_close(out, scalar[key][0], rtol=1e-5, atol=atol, equal_nan=True, msg=key)
        for k, grad in enumerate(grads, start=1):
            torch.testing.assert_close(grad, scalar[key][k], rtol=1e-4, atol=1e-5, equal_nan=True, msg=f"{key} {k}")
        assert out.isnan().any() and (~out.isnan()).any()  # NaN where a point is not finite, values elsewhere


@needs_compiled
@pytest.mark.parametrize("shape, std", [((1, 3, 40, 6, 16), 0.3), ((1, 3, 48, 5, 19), 1.5), ((2, 3, 24, 4, 8), 0.5)])
def test_3d_squaring_slabs_add_in_one_threads_order(shape, std):
    # Each thread owns a slab of planes and takes every add into it, in the order one thread would:
    # the gradient is bitwise that of one thread. A point whose reach the slabs missed, or a plane
    # two threads both wrote, would change it.
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 4):
            torch.set_num_threads(threads)
            results.append(_squaring_3d(shape, std, "zeros")[1])
    finally:
        torch.set_num_threads(before)
    for grad in results[1:]:
        assert torch.equal(grad.nan_to_num(), results[0].nan_to_num())
    assert results[0].isfinite().any()
