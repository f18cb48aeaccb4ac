"""The preprocessing cache: entries are reused, rebuilt when a setting or a source changes, and
rebuilt (never used) when they are partial or corrupt."""

import os

import nibabel as nib
import numpy as np
import pytest

from motionext.data.cache import PreprocessCache
from motionext.data.sources import load_sequences


def _save_cine(path, seed, slices=2, frames=5):
    data = np.random.default_rng(seed).random((40, 36, slices, frames)).astype(np.float32)
    image = nib.Nifti1Image(data, np.diag([2.0, 2.0, 8.0, 1.0]))
    image.header.set_zooms((2.0, 2.0, 8.0, 40.0))
    nib.save(image, str(path))


@pytest.fixture
def cohort(tmp_path):
    folder = tmp_path / "cohort"
    folder.mkdir()
    _save_cine(folder / "a.nii.gz", 0)
    _save_cine(folder / "b.nii.gz", 1, slices=1)
    return folder


def _open(cache_dir, source, **settings):
    cache = PreprocessCache(cache_dir, **{"spacing": 2.0, "size": (32, 32), **settings})
    return cache, load_sequences(str(source), spacing=cache.settings["spacing"], size=cache.settings["size"], cache=cache)


def _entry(cache, name):
    return cache.folder / f"{cache.key((cache.folder.parent / 'cohort' / name).resolve())}"


def test_entries_are_built_once_and_give_the_preprocessed_frames(cohort, tmp_path):
    cache, cached = _open(tmp_path / "cache", cohort)
    assert (cache.built, cache.reused) == (2, 0) and len(cached) == 3
    direct = load_sequences(str(cohort), spacing=2.0, size=(32, 32))
    for c, d in zip(cached, direct):
        np.testing.assert_array_equal(c.frames, d.frames)
        assert c.num_frames == 5 and c.spacing == pytest.approx(d.spacing) and c.name == d.name
    again, cached_again = _open(tmp_path / "cache", cohort)
    assert (again.built, again.reused) == (0, 2)
    # the array is memory-mapped, not decoded from NIfTI again
    assert isinstance(np.load(_entry(again, "a.nii.gz").with_suffix(".npy"), mmap_mode="r"), np.memmap)
    np.testing.assert_array_equal(cached_again[2].frames, direct[2].frames)


def test_a_changed_setting_or_source_invalidates_only_what_it_affects(cohort, tmp_path):
    _open(tmp_path / "cache", cohort)
    other, sequences = _open(tmp_path / "cache", cohort, spacing=2.5)
    assert (other.built, other.reused) == (2, 0) and sequences[0].frames.shape[1:] == (32, 32)
    _save_cine(cohort / "b.nii.gz", 7, slices=1)  # new content, same name
    stat = (cohort / "b.nii.gz").stat()
    os.utime(cohort / "b.nii.gz", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # even on coarse clocks
    cache, cached = _open(tmp_path / "cache", cohort)
    assert (cache.built, cache.reused) == (1, 1)
    fresh = load_sequences(str(cohort / "b.nii.gz"), spacing=2.0, size=(32, 32))
    np.testing.assert_array_equal(cached[2].frames, fresh[0].frames)


def test_partial_or_corrupt_entries_are_rebuilt_not_used(cohort, tmp_path):
    cache, cached = _open(tmp_path / "cache", cohort)
    expected = [c.frames for c in cached]
    array, manifest = _entry(cache, "a.nii.gz").with_suffix(".npy"), _entry(cache, "b.nii.gz").with_suffix(".json")

    # a truncated array and a garbled manifest are found when the cache is opened
    array.write_bytes(array.read_bytes()[:1000])
    manifest.write_text("{not json")
    again, cached = _open(tmp_path / "cache", cohort)
    assert (again.built, again.reused) == (2, 0)
    for c, e in zip(cached, expected):
        np.testing.assert_array_equal(c.frames, e)

    # a killed build leaves an array without a manifest: rebuilt too
    manifest.unlink()
    assert _open(tmp_path / "cache", cohort)[0].built == 1

    # flipped bytes inside an array of the right size: caught by the checksum when read
    raw = bytearray(array.read_bytes())
    raw[-100:-90] = bytes(10)
    array.write_bytes(bytes(raw))
    again, cached = _open(tmp_path / "cache", cohort)
    assert again.built == 0
    with pytest.warns(UserWarning, match="corrupt"):
        frames = cached[1].frames
    np.testing.assert_array_equal(frames, expected[1])
    np.testing.assert_array_equal(cached[1].frames, expected[1])  # the entry itself was repaired


def test_cache_reports_missing_sources(tmp_path):
    cache = PreprocessCache(tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match="no such file"):
        cache.sequences([tmp_path / "gone.nii.gz"])
