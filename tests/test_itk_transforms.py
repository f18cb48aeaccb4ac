"""track's per-frame transforms (transforms/frame_TT.nii.gz): ITK's displacement-field convention
(LPS vectors in mm) on an oblique short-axis geometry, checked by applying them with ANTs."""

import numpy as np
import pytest

from motionext.cli import main as cli
from motionext.data import make_phantom

nib = pytest.importorskip("nibabel")

FRAMES = 6


def _rotation(degrees):
    """A rotation by the given angles (degrees) about x, then y, then z."""
    ax, ay, az = np.radians(degrees)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """`motionext track` on a phantom slice written with an oblique affine (tilted out of every
    axis, as short-axis planes are), into OUT/track."""
    folder = tmp_path_factory.mktemp("oblique")
    phantom = make_phantom(FRAMES, (96, 80), seed=3, spacing=1.4, ejection_fraction=0.7)
    affine = np.eye(4)
    affine[:3, :3] = _rotation([25, -15, 35]) @ np.diag([1.4, 1.4, 8.0])
    affine[:3, 3] = [-40.0, 30.0, 12.0]
    data = (np.moveaxis(phantom.frames, 0, -1)[:, :, None, :] * 1000).astype(np.float32)  # (x, y, 1, t)
    image = nib.Nifti1Image(data, affine)
    image.header.set_zooms((1.4, 1.4, 8.0, 30.0))
    nib.save(image, str(folder / "cine.nii.gz"))
    assert cli(["track", str(folder / "cine.nii.gz"), "--out", str(folder / "track")]) == 0
    return folder / "track"


def test_one_transform_per_frame_after_ed_in_itks_convention(tracked):
    paths = sorted((tracked / "transforms").iterdir())
    assert [p.name for p in paths] == [f"frame_{t:02d}.nii.gz" for t in range(1, FRAMES)]
    world = np.asarray(nib.load(str(tracked / "displacements.nii.gz")).dataobj)  # (x, y, 1, t, 3), RAS mm
    frames = nib.load(str(tracked / "frames.nii.gz"))
    for t, path in enumerate(paths, start=1):
        field = nib.load(str(path))
        assert field.shape == (96, 80, 2, 1, 3) and field.header.get_intent()[0] == "vector"
        vectors = np.asarray(field.dataobj)
        for plane in (0, 1):  # both planes hold the slice's vectors, in LPS: x and y flipped
            np.testing.assert_allclose(vectors[:, :, plane, 0], world[:, :, 0, t] * [-1, -1, 1], atol=1e-5)
        # the planes sit half a slice either side of the frames' plane, on its in-plane grid
        np.testing.assert_allclose(field.affine[:3, :3], frames.affine[:3, :3], atol=1e-5)
        middle = field.affine @ [0, 0, 0.5, 1]
        np.testing.assert_allclose(middle[:3], frames.affine[:3, 3], atol=1e-4)


def test_ants_applies_every_transform_to_ed_as_motionext_warps_it(tracked, tmp_path):
    ants = pytest.importorskip("ants")
    frames = nib.load(str(tracked / "frames.nii.gz"))
    nib.save(frames.slicer[..., 0], str(tmp_path / "ed.nii.gz"))  # the ED frame as written, (x, y, 1)
    ed = ants.image_read(str(tmp_path / "ed.nii.gz"))
    warped = np.asarray(nib.load(str(tracked / "warped_ed.nii.gz")).dataobj)
    scale = warped.max() - warped.min()
    moved_at_all = 0.0
    for t in range(1, FRAMES):
        path = tracked / "transforms" / f"frame_{t:02d}.nii.gz"
        applied = ants.apply_transforms(fixed=ed, moving=ed, transformlist=[str(path)], interpolator="linear").numpy()
        difference = np.abs(applied - warped[..., t]).mean() / scale
        identity = np.abs(ed.numpy() - warped[..., t]).mean() / scale
        assert difference < 0.02, (t, difference)
        # a sign or axis slip would leave it no closer than no motion at all
        assert difference < 0.1 * identity, (t, difference, identity)
        moved_at_all = max(moved_at_all, identity)
    assert moved_at_all > 0.01  # the motion is large enough for the comparison to mean something
