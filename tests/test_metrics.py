"""The evaluation measures on small maps whose answers are known, and maps that do not match."""

import numpy as np
import pytest

from motionext.metrics import dice, endpoint_error, hausdorff95


def _square(shape, lo, hi, value=3):
    m = np.zeros(shape, int)
    m[lo:hi, lo:hi] = value
    return m


def test_dice_and_hd95_of_known_maps():
    a = _square((12, 12), 2, 6)
    assert dice(a, a, 3) == 1.0 and hausdorff95(a, a, 3, (1.5, 1.5)) == 0.0
    assert dice(a, _square((12, 12), 7, 10), 3) == 0.0
    assert np.isnan(dice(a, a, 2))  # absent from both
    assert dice(a, _square((12, 12), 2, 5), 3) == pytest.approx(2 * 9 / (16 + 9))


@pytest.mark.parametrize("measure", [
    lambda a, b: dice(a, b, 3),
    lambda a, b: hausdorff95(a, b, 3, (1.0, 1.0)),
    lambda a, b: endpoint_error(np.stack([a, a]).astype(float), np.stack([b, b]).astype(float)),
], ids=["dice", "hausdorff95", "endpoint_error"])
def test_maps_of_different_shapes_are_refused(measure):
    # NumPy would broadcast the (1, 12) row against the (12, 12) map: Dice came out as 1.5
    with pytest.raises(ValueError, match="the two maps differ in shape"):
        measure(_square((12, 12), 2, 6), _square((12, 12), 2, 6)[3:4])
