"""Writing files so that a kill at any moment leaves either the old file or the new one, never a
partial one: write under a temporary name in the same folder, then rename over the target."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replaced_atomically(path):
    """Yields a temporary path to write; on success it replaces `path`, on error it is removed.
    The temporary name keeps the file's suffix (nibabel picks the format from it)."""
    path = Path(path)
    tmp = path.with_name(f".partial-{os.getpid()}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write(path, write, *, text: bool = False) -> Path:
    """Call `write(file)` on a new file that replaces `path` once it is complete and synced."""
    with replaced_atomically(path) as tmp:
        with open(tmp, "w" if text else "wb", **({"newline": ""} if text else {})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def check_output_folder(path, what: str = "--out") -> Path:
    """Refuse, before any work, an output folder that is a file or cannot be created or written:
    the nearest existing folder on its path must be writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {path} is a file, not a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{what} {path}: {existing} is a file, so the folder cannot be created")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path}: no permission to write in {existing}")
    return path
