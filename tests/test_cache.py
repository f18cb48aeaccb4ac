"""The preprocessing cache: entries are reused, rebuilt when a setting or a source changes, and
rebuilt (never used) when they are partial or corrupt."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from motionext.cli import main
from motionext.data.cache import PreprocessCache, entry_key
from motionext.data.cache_prune import prune_cache
from motionext.data.sources import load_sequences, read_path


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


def test_an_acdc_cine_starts_at_its_info_cfg_ed_and_its_entry_follows_that_file(tmp_path):
    patient = tmp_path / "patient200"
    patient.mkdir()
    _save_cine(patient / "patient200_4d.nii.gz", 3, slices=1)
    (patient / "Info.cfg").write_text("ED: 3\nES: 5\nNbFrame: 5\n")
    source = patient / "patient200_4d.nii.gz"
    frames = np.moveaxis(np.asanyarray(nib.load(str(source)).dataobj)[:, :, 0], -1, 0)
    first, _ = _open(tmp_path / "cache", source)
    # ED (frame 3, index 2) first, as the verbs read it
    np.testing.assert_array_equal(read_path(source)[0].frames, np.roll(frames, -2, axis=0))
    cache, cached = _open(tmp_path / "cache", source)
    assert (first.built, cache.reused) == (1, 1)
    (patient / "Info.cfg").write_text("ED: 1\nES: 5\nNbFrame: 5\n")  # a corrected Info.cfg: the entry is stale
    cache, cached = _open(tmp_path / "cache", source)
    assert (cache.built, cache.reused) == (1, 0)
    np.testing.assert_array_equal(cached[0].frames, load_sequences(str(source), spacing=2.0, size=(32, 32))[0].frames)


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


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_prune_removes_only_entries_that_can_never_be_used(cohort, tmp_path):
    folder = tmp_path / "cache"
    cache, _ = _open(folder, cohort)
    other, _ = _open(folder, cohort, spacing=2.5)  # valid entries of other settings: kept
    valid = [_entry(c, "a.nii.gz") for c in (cache, other)]
    gone = [_entry(c, "b.nii.gz") for c in (cache, other)]
    (cohort / "b.nii.gz").unlink()
    old_format = folder / f"{'c' * 32}.json"  # a manifest of another cache format version
    manifest = json.loads(valid[0].with_suffix(".json").read_text())
    old_format.write_text(json.dumps({**manifest, "format_version": 0}))
    # an otherwise valid entry made by an older preprocessing: never selected again
    older = {**manifest, "settings": {**manifest["settings"], "preprocessing": 0}}
    old_preprocessing = folder / entry_key(Path(manifest["source"]), older["settings"])
    old_preprocessing.with_suffix(".json").write_text(json.dumps(older))
    shutil.copy(valid[0].with_suffix(".npy"), old_preprocessing.with_suffix(".npy"))
    orphan = folder / f"{'d' * 32}.npy"  # an array whose manifest was never written
    orphan.write_bytes(b"x" * 10)
    dead_partial = folder / f".partial-{_dead_pid()}-{'e' * 32}.npy"  # a killed build's
    live_partial = folder / f".partial-{os.getpid()}-{'f' * 32}.npy"  # a build still running
    for path in (dead_partial, live_partial):
        path.write_bytes(b"y" * 10)
    foreign = folder / "notes.txt"
    foreign.write_text("not the cache's")
    before = _names(folder)

    dry = prune_cache(folder, dry_run=True)
    assert _names(folder) == before  # a dry run removes nothing
    report = prune_cache(folder)
    assert sorted(p for p, _ in report.removed) == sorted(p for p, _ in dry.removed)
    removed = {p.name: reason for p, reason in report.removed}
    expected = {g.name + s for g in gone for s in (".json", ".npy")} | {old_format.name, orphan.name, dead_partial.name}
    expected |= {old_preprocessing.name + s for s in (".json", ".npy")}
    assert set(removed) == expected
    assert all("no longer exists" in removed[g.name + ".json"] for g in gone)
    assert "another cache format" in removed[old_format.name] and "missing" in removed[orphan.name]
    assert "killed build" in removed[dead_partial.name]
    assert "preprocessing version 0" in removed[old_preprocessing.name + ".npy"]
    assert report.kept == 2 and report.freed_bytes > 0
    assert _names(folder) == sorted(set(before) - expected)
    # what is kept is still used: nothing is rebuilt
    assert _open(folder, cohort)[0].reused == 1 and _open(folder, cohort, spacing=2.5)[0].reused == 1


def test_prune_removes_entries_of_a_changed_source_and_refuses_a_missing_folder(cohort, tmp_path, capsys):
    cache, _ = _open(tmp_path / "cache", cohort)
    _save_cine(cohort / "a.nii.gz", 9)
    stat = (cohort / "a.nii.gz").stat()
    os.utime(cohort / "a.nii.gz", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert main(["prune-cache", str(cache.folder)]) == 0
    out = capsys.readouterr().out
    assert "changed since it was built" in out and "removed 2 files" in out and "kept 1 entries" in out
    assert not _entry(cache, "a.nii.gz").with_suffix(".npy").exists()
    assert main(["prune-cache", str(tmp_path / "nowhere")]) == 2
    assert "no such cache folder" in capsys.readouterr().err
