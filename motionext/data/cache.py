"""The preprocessing cache: each source unit (a NIfTI cine or a patient folder) is decoded and
preprocessed once into a `.npy` array that later runs memory-map, with a JSON manifest beside it.

- The entry's name hashes the source path and the preprocessing settings, so a changed setting
  selects other entries; the manifest records the source files' sizes and modification times,
  so a changed source file invalidates its entry (and only that one).
- Files are written under temporary names and renamed, array first and manifest last: a killed
  build leaves no entry that looks complete.
- An entry whose manifest or array does not match (missing, truncated, another shape) is rebuilt
  when the cache is opened; every read checks the sequence's CRC-32, and a mismatch rebuilds
  the entry. Corrupt data is never returned.
"""

from __future__ import annotations

import hashlib
import json
import warnings
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files import atomic_write

FORMAT = "motionext-preprocess-cache"
FORMAT_VERSION = 1


def source_stamp(unit: Path) -> list:
    """What identifies the current content of a unit: name, size and mtime of its files; for an
    ACDC ``*_4d`` cine, of the ``Info.cfg`` beside it too, which names its ED frame."""
    from .nifti import acdc_info_beside

    if unit.is_file():
        files = [unit] + [info for info in [acdc_info_beside(unit)] if info is not None]
    else:
        files = sorted(p for p in unit.iterdir() if p.is_file())
    return [[p.name, s.st_size, s.st_mtime_ns] for p, s in ((p, p.stat()) for p in files)]


def entry_key(unit: Path, settings: dict) -> str:
    """The file name (without suffix) of `unit`'s entry under these preprocessing settings."""
    ident = json.dumps({"source": str(unit), "settings": settings}, sort_keys=True)
    return hashlib.sha256(ident.encode()).hexdigest()[:32]


def _checksum(array: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(array).data)


def build_entry(folder: Path, key: str, unit: Path, settings: dict) -> int:
    """Decode and preprocess one unit and write its entry; returns its number of sequences."""
    from .preprocess import preprocess
    from .sources import read_unit

    stamp = source_stamp(unit)  # before reading: a file changed meanwhile makes the entry stale, not wrong
    cines = [preprocess(c, spacing=settings["spacing"], size=settings["size"]) for c in read_unit(unit)]
    lengths = {c.num_frames for c in cines}
    if len(lengths) != 1:
        raise ValueError(f"{unit}: slices with different numbers of frames {sorted(lengths)}")
    array = np.stack([c.frames for c in cines]).astype(np.float32)
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "source": str(unit), "stamp": stamp,
        "settings": settings, "shape": list(array.shape), "dtype": "float32",
        "sequences": [{"name": c.name, "spacing": list(c.spacing), "checksum": _checksum(a),
                       "times": None if c.times is None else list(c.times)}
                      for c, a in zip(cines, array)],
    }
    atomic_write(folder / f"{key}.npy", lambda f: np.save(f, array))
    atomic_write(folder / f"{key}.json", lambda f: f.write(json.dumps(manifest)), text=True)
    return len(cines)


def open_array(path: Path, shape) -> np.ndarray:
    """The entry's array, memory-mapped; ValueError unless it is complete and of the expected shape."""
    array = np.load(path, mmap_mode="r")  # raises on a truncated header or a too-short file
    if array.dtype != np.float32 or list(array.shape) != list(shape):
        raise ValueError(f"holds {array.dtype} {array.shape}, expected float32 {tuple(shape)}")
    if array.offset + array.nbytes != path.stat().st_size:
        raise ValueError("has trailing bytes")
    return array


def entry_problem(folder: Path, key: str, manifest: dict) -> str | None:
    """Why the entry `key` with this manifest cannot be used as it stands (another cache format,
    a source gone or changed since), or None. Raises OSError/ValueError/KeyError when the
    manifest is malformed or the array is missing or incomplete."""
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        return f"written by another cache format ({manifest.get('format')} {manifest.get('format_version')})"
    source = Path(manifest["source"])
    if not source.exists():
        return f"its source {source} no longer exists"
    if manifest["stamp"] != source_stamp(source):
        return f"its source {source} changed since it was built"
    open_array(folder / f"{key}.npy", manifest["shape"])
    return None


@dataclass(frozen=True)
class CachedSequence:
    """One preprocessed 2D sequence in the cache; `.frames` reads and checks it."""

    cache: "PreprocessCache"
    unit: Path
    index: int
    name: str
    spacing: tuple
    entry_shape: tuple  # (slices, T, H, W) of the unit's array
    checksum: int
    times: tuple | None = None  # cycle phases of a sparse sequence (Cine.times), None when evenly spaced

    @property
    def num_frames(self) -> int:
        return self.entry_shape[1]

    @property
    def frames(self) -> np.ndarray:
        key = self.cache.key(self.unit)
        for attempt in range(2):
            try:
                array = np.array(open_array(self.cache.folder / f"{key}.npy", self.entry_shape)[self.index])
                if _checksum(array) == self.checksum:
                    return array
                problem = "checksum mismatch"
            except (OSError, ValueError) as exc:
                problem = str(exc)
            if attempt == 0:
                warnings.warn(f"preprocessing cache: entry of {self.unit} is corrupt ({problem}); rebuilding it",
                              stacklevel=2)
                build_entry(self.cache.folder, key, self.unit, self.cache.settings)
        raise ValueError(f"preprocessing cache: {self.unit} no longer gives the sequence that was cached "
                         f"({problem}); did the source change during the run?")


class PreprocessCache:
    """A folder of preprocessed sequences for one set of preprocessing settings."""

    def __init__(self, folder, *, spacing: float = 1.5, size=(128, 128)):
        from .preprocess import PREPROCESSING_VERSION

        self.folder = Path(folder)
        self.settings = {"spacing": float(spacing), "size": [int(s) for s in size], "preprocessing": PREPROCESSING_VERSION}
        self.built, self.reused = 0, 0

    def key(self, unit: Path) -> str:
        return entry_key(unit, self.settings)

    def _manifest(self, unit: Path) -> dict:
        return json.loads((self.folder / f"{self.key(unit)}.json").read_text())

    def _usable_manifest(self, unit: Path) -> dict | None:
        """The manifest of `unit`'s entry if the entry can be used: it parses, matches the source,
        settings and format, the source is unchanged and the array is complete."""
        try:
            manifest = self._manifest(unit)
            if manifest.get("source") != str(unit) or manifest.get("settings") != self.settings:
                return None
            if entry_problem(self.folder, self.key(unit), manifest) is not None:
                return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):  # missing, unreadable or malformed
            return None
        return manifest

    def sequences(self, units, *, workers: int = 0, progress: bool = False) -> list:
        """The cached sequences of `units`, building the entries that are missing, stale or corrupt
        (in `workers` processes when > 0)."""
        from tqdm import tqdm

        for unit in units:
            if not Path(unit).exists():
                raise FileNotFoundError(f"no such file or folder: {unit}")
        units = [Path(u).resolve() for u in units]
        self.folder.mkdir(parents=True, exist_ok=True)
        manifests = {u: self._usable_manifest(u) for u in units}
        stale = [u for u, m in manifests.items() if m is None]
        if stale:
            jobs = list(zip(*[(self.folder, self.key(u), u, self.settings) for u in stale]))
            with tqdm(total=len(stale), desc="preprocessing", dynamic_ncols=True, disable=not progress) as bar:
                if workers > 0:
                    with ProcessPoolExecutor(workers) as pool:
                        for _ in pool.map(build_entry, *jobs):
                            bar.update()
                else:
                    for _ in map(build_entry, *jobs):
                        bar.update()
            manifests.update({u: self._manifest(u) for u in stale})
        self.built, self.reused = len(stale), len(units) - len(stale)
        return [CachedSequence(self, unit, index, seq["name"], tuple(seq["spacing"]), tuple(m["shape"]), seq["checksum"],
                               None if seq.get("times") is None else tuple(seq["times"]))
                for unit, m in manifests.items() for index, seq in enumerate(m["sequences"])]
