"""The compiled kernels compute the same values and gradients as the reference ops."""

import pytest
import torch

from motionext import ops
from motionext.ops import reference

from conftest import devices, needs_compiled

pytestmark = needs_compiled

SHAPES = [(2, 3, 17, 19), (2, 2, 7, 9, 11)]


def _field(shape, scale, dtype, device):
    b, _, *spatial = shape
    return torch.randn(b, len(spatial), *spatial, dtype=dtype, device=device) * scale


def _grads(fn, *inputs):
    inputs = [x.detach().clone().requires_grad_() for x in inputs]
    out = fn(*inputs)
    # The same weights on every call, so two implementations see the same upstream gradient.
    weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(0), dtype=out.dtype).to(out.device)
    (out * weight).sum().backward()
    return out.detach(), [x.grad for x in inputs]


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "3d"])
@pytest.mark.parametrize("padding", ["border", "zeros"])
@pytest.mark.parametrize("scale", [0.7, 25.0], ids=["small", "leaves-image"])
def test_warp_matches_reference(device, shape, padding, scale):
    image = torch.randn(*shape, dtype=torch.float64, device=device)
    field = _field(shape, scale, torch.float64, device)
    out, (gi, gu) = _grads(lambda i, u: ops.warp(i, u, padding=padding), image, field)
    ref, (ri, ru) = _grads(lambda i, u: reference.warp(i, u, padding=padding), image, field)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gi, ri, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gu, ru, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "3d"])
@pytest.mark.parametrize("padding", ["border", "zeros"])
def test_warp_nearest_matches_reference(device, shape, padding):
    labels = torch.randint(0, 5, shape, device=device).double()
    field = _field(shape, 3.0, torch.float64, device)
    out = ops.warp(labels, field, mode="nearest", padding=padding)
    ref = reference.warp(labels, field, mode="nearest", padding=padding)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    assert set(out.unique().tolist()) <= set(range(5))


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "3d"])
@pytest.mark.parametrize("padding", ["border", "zeros"])
@pytest.mark.parametrize("steps", [1, 2, 7])
def test_scaling_squaring_matches_reference(device, shape, padding, steps):
    velocity = _field(shape, 4.0, torch.float64, device)
    out, (gv,) = _grads(lambda v: ops.scaling_squaring(v, steps=steps, padding=padding), velocity)
    ref, (rv,) = _grads(lambda v: reference.scaling_squaring(v, steps=steps, padding=padding), velocity)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gv, rv, rtol=1e-9, atol=1e-9)
    with torch.no_grad():  # the path that keeps no trajectory
        torch.testing.assert_close(ops.scaling_squaring(velocity, steps=steps, padding=padding), ref)


@pytest.mark.parametrize("spatial", [(40, 33), (9, 10, 11)], ids=["2d", "3d"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("steps", [1, 2, 7])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_scaling_squaring_batch_items_are_independent(spatial, dtype, steps, threads):
    # With at least as many items as threads, the CPU runs every step of one item before the next
    # (chains); the forward runs the items beyond a multiple of the threads last, as one batch
    # whose steps split their voxels (5 items: a remainder of 1 at 2 threads, 2 at 3). Either way
    # an item's motion and gradient are what it gets alone: an item read at another's offset, a
    # step's buffer mixed up or the adjoint's result taken from the wrong buffer would show here.
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(len(spatial) * 10 + steps)
        velocity = torch.randn(5, len(spatial), *spatial, generator=g, dtype=dtype) * 3
        upstream = torch.randn(velocity.shape, generator=g, dtype=dtype)
        tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-11, "atol": 1e-11}
        for padding in ("border", "zeros"):
            v = velocity.clone().requires_grad_(True)
            out = ops.scaling_squaring(v, steps=steps, padding=padding)
            out.backward(upstream)
            with torch.no_grad():  # the path that keeps no trajectory
                torch.testing.assert_close(ops.scaling_squaring(velocity, steps=steps, padding=padding), out.detach(),
                                           rtol=0, atol=0)
            for i in range(velocity.shape[0]):
                item = velocity[i:i + 1].clone().requires_grad_(True)
                alone = ops.scaling_squaring(item, steps=steps, padding=padding)
                alone.backward(upstream[i:i + 1])
                torch.testing.assert_close(out.detach()[i:i + 1], alone.detach(), **tol)
                torch.testing.assert_close(v.grad[i:i + 1], item.grad, **tol)
    finally:
        torch.set_num_threads(before)


def _assert_lncc_matches_reference(a, b, **kwargs):
    """Values and both gradients of ops.lncc equal the reference's."""
    out, (ga, gb) = _grads(lambda x, y: ops.lncc(x, y, **kwargs), a, b)
    ref, (ra, rb) = _grads(lambda x, y: reference.lncc(x, y, **kwargs), a, b)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ga, ra, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(gb, rb, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "3d"])
@pytest.mark.parametrize("window", [1, 3, 7])
def test_lncc_matches_reference(device, shape, window):
    a = torch.rand(*shape, dtype=torch.float64, device=device)
    b = 0.5 * a + 0.5 * torch.rand(*shape, dtype=torch.float64, device=device)
    for reduction in ("none", "mean", "sum"):
        _assert_lncc_matches_reference(a, b, window=window, reduction=reduction)


@pytest.fixture
def four_threads():
    """More threads than batch items: the CPU kernel then cuts each item's rows into chunks."""
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    "shape, window",
    [((1, 1, 60, 12), 3), ((1, 1, 61, 9), 7), ((1, 1, 26, 10, 12), 5), ((1, 2, 24, 40), 19), ((1, 1, 22, 21, 40), 19)],
    ids=["2d-chunks", "2d-chunks-odd", "3d-chunks", "2d-wide-window", "3d-wide-window"],
)
def test_lncc_row_chunks_and_wide_windows(four_threads, shape, window):
    # Chunks recompute the rows around their edges; windows wider than 17 take a running sum
    # along the last axis instead of the direct one.
    a = torch.rand(*shape, dtype=torch.float64)
    b = 0.5 * a + 0.5 * torch.rand(*shape, dtype=torch.float64)
    _assert_lncc_matches_reference(a, b, window=window, reduction="none")


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "3d"])
@pytest.mark.parametrize("needs", ["a", "b"])
def test_lncc_one_input_gradient(device, shape, needs):
    # The backward packs only the sum gradients the requested input needs.
    a = torch.rand(*shape, dtype=torch.float64, device=device)
    b = (0.5 * a + 0.5 * torch.rand(*shape, dtype=torch.float64, device=device)).requires_grad_(needs == "b")
    a.requires_grad_(needs == "a")
    weight = torch.randn(shape, dtype=torch.float64, device=device)
    (ops.lncc(a, b, window=5, reduction="none") * weight).sum().backward()
    x = (a if needs == "a" else b).detach().clone().requires_grad_()
    pair = (x, b.detach()) if needs == "a" else (a.detach(), x)
    (reference.lncc(*pair, window=5, reduction="none") * weight).sum().backward()
    torch.testing.assert_close((a if needs == "a" else b).grad, x.grad, rtol=1e-8, atol=1e-10)
    assert (b if needs == "a" else a).grad is None


def test_lncc_float32_on_long_rows_matches_float64():
    # The sums along the streamed axis run in double: float32 stays at float32 rounding over
    # 512 rows of large values.
    a = torch.rand(2, 1, 512, 24, dtype=torch.float64) * 100 + 50
    b = a.flip(2) + torch.rand(2, 1, 512, 24, dtype=torch.float64)
    want = reference.lncc(a, b, window=9, reduction="none")
    got = ops.lncc(a.float(), b.float(), window=9, reduction="none")
    torch.testing.assert_close(got.double(), want, rtol=2e-3, atol=2e-4)


@pytest.mark.parametrize("device", devices())
def test_lncc_smoothing_terms_and_flat_regions(device):
    # Constant patches make the variance fall below smooth_dr: the clamp and its zero gradient.
    a = torch.rand(1, 1, 12, 12, dtype=torch.float64, device=device)
    a[..., :6, :6] = 0.25
    b = torch.rand(1, 1, 12, 12, dtype=torch.float64, device=device)
    _assert_lncc_matches_reference(a, b, window=5, smooth_nr=1e-3, smooth_dr=1e-2, reduction="none")


@pytest.mark.parametrize("device", devices())
def test_non_contiguous_inputs(device):
    image = torch.randn(2, 12, 14, 3, dtype=torch.float64, device=device).permute(0, 3, 1, 2)
    field = torch.randn(2, 12, 14, 2, dtype=torch.float64, device=device).permute(0, 3, 1, 2) * 2
    assert not image.is_contiguous() and not field.is_contiguous()
    torch.testing.assert_close(ops.warp(image, field), reference.warp(image, field))
    torch.testing.assert_close(ops.scaling_squaring(field), reference.scaling_squaring(field))
    a, b = image[:, :, ::1, 1:], image.flip(1)[:, :, :, :-1]
    torch.testing.assert_close(ops.lncc(a, b, window=5, reduction="none"), reference.lncc(a, b, window=5, reduction="none"))


@pytest.mark.parametrize("device", devices())
def test_float32_agrees_with_float64(device):
    image = torch.rand(3, 2, 32, 30, device=device)
    field = torch.randn(3, 2, 32, 30, device=device) * 3
    torch.testing.assert_close(ops.warp(image, field), reference.warp(image, field), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        ops.scaling_squaring(field), reference.scaling_squaring(field.double()).float(), rtol=1e-4, atol=1e-4
    )
    torch.testing.assert_close(
        ops.lncc(image, image.flip(2), reduction="none"),
        reference.lncc(image.double(), image.flip(2).double(), reduction="none").float(),
        rtol=1e-4,
        atol=1e-4,
    )


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])  # float32 2D: the vectorised CPU path
@pytest.mark.parametrize("padding", ["border", "zeros"])
@pytest.mark.parametrize("size", [(2, 16), (9, 24)], ids=["two-rows", "9x24"])
def test_points_on_and_just_beyond_the_edges(device, dtype, padding, size):
    # Points exactly on the first and last voxels, between the last and the one after, and
    # between -1 and 0: the cells whose outside neighbour's weight moves to the inner corner
    # (interpolation.h). The displacement gradient is compared off whole voxels only, where the
    # derivative is one-sided and either side is a convention.
    h, w = size
    g = torch.Generator().manual_seed(h * 100 + w)
    offsets = torch.tensor([-1.5, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 1.5], dtype=torch.float64)

    def near_edges(n):  # sample coordinates near both ends of an axis of n voxels
        choices = torch.cat([offsets, n - 1 + offsets])
        return choices[torch.randint(0, len(choices), (2, h, w), generator=g)]

    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    points = torch.stack([near_edges(h), near_edges(w)], 1)
    field = (points - torch.stack([y, x])).to(dtype=dtype, device=device)
    image = torch.rand(2, 3, h, w, generator=g, dtype=torch.float64).to(dtype=dtype, device=device)
    tol = dict(rtol=1e-9, atol=1e-9) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    out, (gi, gu) = _grads(lambda i, u: ops.warp(i, u, padding=padding), image, field)
    ref, (ri, ru) = _grads(lambda i, u: reference.warp(i, u, padding=padding), image, field)
    torch.testing.assert_close(out, ref, **tol)
    torch.testing.assert_close(gi, ri, **tol)
    off_voxels = (points != points.round()).all(1, keepdim=True).expand_as(gu).to(device)
    assert off_voxels.any()
    torch.testing.assert_close(gu[off_voxels], ru[off_voxels], **tol)
    # the displacement gradient alone (its own vectorised path)
    _, (gu,) = _grads(lambda u: ops.warp(image, u, padding=padding), field)
    torch.testing.assert_close(gu[off_voxels], ru[off_voxels], **tol)
    # scaling and squaring with one step reads the same points
    out, (gv,) = _grads(lambda v: ops.scaling_squaring(v, steps=1, padding=padding), field * 2)
    ref, (rv,) = _grads(lambda v: reference.scaling_squaring(v, steps=1, padding=padding), field * 2)
    if dtype == torch.float32:
        tol = dict(rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out, ref, **tol)
    torch.testing.assert_close(gv[off_voxels], rv[off_voxels], **tol)


@needs_compiled
def test_gradients_only_where_needed():
    image = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    field = torch.randn(1, 2, 8, 8, dtype=torch.float64, requires_grad=True)
    ops.warp(image, field).sum().backward()
    assert image.grad is None and field.grad is not None
    a = torch.rand(1, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    b = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    ops.lncc(a, b, window=3).backward()
    assert b.grad is None and a.grad is not None
    grad_image, grad_field = torch.ops.motionext.warp_backward(
        torch.ones_like(image), image, field.detach(), "bilinear", "border", [False, True]
    )
    assert grad_image.numel() == 0 and grad_field.shape == field.shape


@pytest.mark.parametrize("shape", [(1, 1, 40, 40), (3, 1, 9, 10, 11)], ids=["2d-one-item", "3d-three-items"])
def test_batch_spreading_paths_agree(four_threads, shape):
    # Fewer items than threads: the voxels are cut into one range per thread, each spreading into
    # its own copy of the gradient (ranges cross item boundaries when B > 1), summed at the end.
    b, _, *spatial = shape
    field = torch.randn(b, len(spatial), *spatial, dtype=torch.float64) * 3
    image = torch.rand(*shape, dtype=torch.float64)
    out, (gi, gu) = _grads(lambda i, u: ops.warp(i, u), image, field)
    ref, (ri, ru) = _grads(lambda i, u: reference.warp(i, u), image, field)
    torch.testing.assert_close(gi, ri, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gu, ru, rtol=1e-9, atol=1e-9)
    _, (gv,) = _grads(lambda v: ops.scaling_squaring(v, steps=4), field)
    _, (rv,) = _grads(lambda v: reference.scaling_squaring(v, steps=4), field)
    torch.testing.assert_close(gv, rv, rtol=1e-9, atol=1e-9)

def _general_path(image, field, padding):
    """The warp through torch.ops.motionext.warp and its own backward (no kept gradient)."""
    return torch.ops.motionext.warp(image, field, "bilinear", padding)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("shape", [(2, 1, 17, 21), (2, 3, 9, 19), (1, 1, 5, 6, 7), (2, 2, 4, 5, 9)],
                         ids=["2d-one-channel", "2d-three-channels", "3d-one-channel", "3d-two-channels"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("padding", ["border", "zeros"])
@pytest.mark.parametrize("image_grad", [False, True], ids=["displacement-only", "every-input"])
def test_warp_with_kept_gradient_matches_general_backward(device, shape, dtype, padding, image_grad, monkeypatch):
    # When the displacement needs a gradient, ops.warp's forward also returns the image's gradient
    # at the sample points and the backward multiplies it in: the same values and gradients as
    # the general backward, NaN where a point is not finite (the public check let through here).
    monkeypatch.setenv("MOTIONEXT_CHECK_FINITE", "0")
    image = torch.rand(*shape, dtype=dtype, device=device)
    field = _field(shape, 4.0, dtype, device)
    field[0, 0].view(-1)[3] = float("nan")
    field[-1, -1].view(-1)[-2] = float("inf")
    grads = {}
    for name, fn in (("kept", lambda i, u: ops.warp(i, u, padding=padding)), ("general", lambda i, u: _general_path(i, u, padding))):
        i = image.clone().requires_grad_(image_grad)
        u = field.clone().requires_grad_()
        out = fn(i, u)
        weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=dtype).to(device)
        (out.nan_to_num() * weight).sum().backward()
        grads[name] = (out.detach(), u.grad, i.grad, type(out.grad_fn).__name__)
    # the image's gradient is a scatter that the general backward does in its one pass
    assert ("warp_with_gradient" in grads["kept"][3]) != image_grad
    assert "warp_with_gradient" not in grads["general"][3]
    tolerance = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}
    for kept, general in zip(grads["kept"][:2], grads["general"][:2]):
        torch.testing.assert_close(kept, general, equal_nan=True, **tolerance)
    assert grads["kept"][1].isnan().any()
    if image_grad:
        torch.testing.assert_close(grads["kept"][2], grads["general"][2], **tolerance)


def test_warp_kept_gradient_only_when_asked():
    # No gradient wanted, half precision or nearest: the plain warp op; the second output of
    # warp_with_gradient takes no gradient.
    image = torch.rand(1, 1, 8, 8)
    field = torch.randn(1, 2, 8, 8, requires_grad=True)
    from motionext.ops import _warp

    assert _warp._keep_gradient(image, field, "bilinear")
    with torch.no_grad():
        assert not _warp._keep_gradient(image, field, "bilinear")
    half = ops.warp(image.bfloat16(), field.detach().bfloat16().requires_grad_())
    assert "warp_with_gradient" not in type(half.grad_fn).__name__
    nearest = ops.warp(image, field, mode="nearest")
    assert "warp_with_gradient" not in type(nearest.grad_fn).__name__
    out, gradient = torch.ops.motionext.warp_with_gradient(image, field, "border")
    assert out.requires_grad and not gradient.requires_grad
    assert gradient.shape == (1, 1, 2, 8, 8)
    # called directly with both inputs needing gradients, it takes the general backward for both
    image.requires_grad_()
    out, _ = torch.ops.motionext.warp_with_gradient(image, field, "zeros")
    (out * out).sum().backward()
    general = _general_path(image, field, "zeros")
    want_image, want_field = torch.autograd.grad((general * general).sum(), (image, field))
    torch.testing.assert_close(image.grad, want_image)
    torch.testing.assert_close(field.grad, want_field)


def test_warp_kept_gradient_under_create_graph():
    # create_graph takes the general backward, as before: the first derivative is the same.
    image = torch.rand(1, 1, 9, 9, dtype=torch.float64)
    field = (torch.randn(1, 2, 9, 9, dtype=torch.float64) * 2).requires_grad_()
    loss = ops.warp(image, field).pow(2).sum()
    first, = torch.autograd.grad(loss, field, create_graph=True)
    plain, = torch.autograd.grad(_general_path(image, field, "border").pow(2).sum(), field)
    torch.testing.assert_close(first, plain)
