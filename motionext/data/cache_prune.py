"""Removing the preprocessing-cache entries that can never be used again, so that a long-lived
cache folder does not grow without bound.

An entry is removed when its source file or folder is gone or has changed since it was built,
when it was written by another cache format or preprocessing version, when its manifest or
array is missing, unreadable or incomplete, or when its file name no longer matches its
manifest. Left-over partial files of killed builds (their process no longer runs on this
machine; on Windows they are kept) are removed too. Valid entries for other
preprocessing settings (another --spacing or --size) are kept: a later run may use them. Only
files with the cache's own names are ever touched.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .cache import entry_key, entry_problem

_ENTRY = re.compile(r"^([0-9a-f]{32})\.(npy|json)$")
_PARTIAL = re.compile(r"^\.partial-(\d+)-[0-9a-f]{32}\.(npy|json)$")  # files.replaced_atomically's names


@dataclass
class PruneReport:
    removed: list = field(default_factory=list)  # (path, reason), in the order found
    kept: int = 0                                 # usable entries left in place
    freed_bytes: int = 0


def _process_alive(pid: int) -> bool:
    if os.name == "nt":  # signal 0 is CTRL_C_EVENT there: never send it; keep the partial file
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _why_unusable(folder: Path, key: str) -> str | None:
    """Why the entry `key` can never be used, or None if it can."""
    from .preprocess import PREPROCESSING_VERSION

    try:
        manifest = json.loads((folder / f"{key}.json").read_text())
        problem = entry_problem(folder, key, manifest)
        if problem is not None:
            return problem
        # what the cache selects entries by: an entry of another preprocessing, or filed under
        # another name, is never selected again
        settings = manifest["settings"]
        if settings.get("preprocessing") != PREPROCESSING_VERSION:
            return f"made by preprocessing version {settings.get('preprocessing')}, not {PREPROCESSING_VERSION}"
        if entry_key(Path(manifest["source"]), settings) != key:
            return "its name does not match its manifest"
    except FileNotFoundError as exc:
        return f"{Path(exc.filename).name if exc.filename else 'a file'} is missing"
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"unreadable or incomplete ({exc})"
    return None


def prune_cache(folder, *, dry_run: bool = False) -> PruneReport:
    """Remove (or, with `dry_run`, only list) the entries of the cache `folder` that can never be
    used again. Do not run it while a process on another machine is building the same cache:
    its partial files cannot be told from a killed build's."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"prune-cache: {folder} is a file, not a folder")
    if not folder.is_dir():
        raise FileNotFoundError(f"prune-cache: no such cache folder: {folder}")
    report = PruneReport()
    names = sorted(p.name for p in folder.iterdir() if p.is_file())
    keys = sorted({m.group(1) for m in map(_ENTRY.match, names) if m})
    for key in keys:
        reason = _why_unusable(folder, key)
        if reason is None:
            report.kept += 1
            continue
        for suffix in (".json", ".npy"):  # the manifest first: an entry without one is never used
            path = folder / f"{key}{suffix}"
            if path.exists():
                report.removed.append((path, reason))
    for name in names:
        partial = _PARTIAL.match(name)
        if partial and not _process_alive(int(partial.group(1))):
            report.removed.append((folder / name, "left over from a killed build"))
    for path, _ in report.removed:
        report.freed_bytes += path.stat().st_size
        if not dry_run:
            path.unlink()
    return report
