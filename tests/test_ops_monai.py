"""Values match MONAI's Warp, DVF2DDF and LocalNormalizedCrossCorrelationLoss (negated) at
matching options, to float64 rounding. Users moving from MONAI get the same numbers."""

import warnings

import pytest
import torch

from motionext import ops

monai_blocks = pytest.importorskip("monai.networks.blocks")
monai_losses = pytest.importorskip("monai.losses")

SPATIAL = [(17, 19), (7, 9, 11)]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI announces its grid_sample fallback
        yield


@pytest.mark.parametrize("spatial", SPATIAL, ids=["2d", "3d"])
@pytest.mark.parametrize("padding", ["border", "zeros"])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_warp_matches_monai(spatial, padding, mode):
    image = torch.rand(2, 3, *spatial, dtype=torch.float64)
    ddf = torch.randn(2, len(spatial), *spatial, dtype=torch.float64) * 3
    expected = monai_blocks.Warp(mode=mode, padding_mode=padding)(image, ddf)
    torch.testing.assert_close(ops.warp(image, ddf, mode=mode, padding=padding), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("spatial", SPATIAL, ids=["2d", "3d"])
@pytest.mark.parametrize("padding", ["border", "zeros"])
def test_scaling_squaring_matches_monai_dvf2ddf(spatial, padding):
    dvf = torch.randn(2, len(spatial), *spatial, dtype=torch.float64) * 4
    expected = monai_blocks.DVF2DDF(num_steps=7, padding_mode=padding)(dvf)
    torch.testing.assert_close(ops.scaling_squaring(dvf, steps=7, padding=padding), expected, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("spatial", SPATIAL, ids=["2d", "3d"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("window", [3, 5])
def test_lncc_matches_monai(spatial, reduction, window):
    a = torch.rand(2, 1, *spatial, dtype=torch.float64)
    b = 0.3 * a + torch.rand(2, 1, *spatial, dtype=torch.float64)
    loss = monai_losses.LocalNormalizedCrossCorrelationLoss(
        spatial_dims=len(spatial), kernel_size=window, kernel_type="rectangular", reduction=reduction
    )
    torch.testing.assert_close(ops.lncc(a, b, window=window, reduction=reduction), -loss(a, b), rtol=1e-12, atol=1e-12)
