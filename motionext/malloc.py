"""Keep the memory that large tensors free, so that the next ones reuse it (glibc's malloc).

glibc maps every allocation above its mmap threshold (32 MiB at most, as it adapts it) as pages of
its own and unmaps them when it is freed. The next allocation of that size then takes a page fault
for every 4 KiB, each page zero-filled by the kernel. The model's feature maps are above that size
(32 channels of 20 frames of 128 x 128 are 42 MiB), so every training and refinement step paid for
it again: a batch of 8 real cines faulted in about 2.6 GB per step, and that took nearly half of
the step on 2 cores (benchmarks/RESULTS.md). Raising the mmap and trim thresholds serves those
tensors from malloc's heap and keeps what is freed there. The price is a higher peak resident
memory (3.2 -> about 5 GB for that batch), as the heap keeps what it once held.

Set MOTIONEXT_KEEP_FREED_MEMORY=0 to leave malloc as it is. Settings of the user's own
(MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, GLIBC_TUNABLES) are left alone too, and so is any
C library other than glibc.
"""

from __future__ import annotations

import ctypes
import os

# mallopt's parameter numbers (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Allocations up to this size come from the heap, and up to this much freed memory stays there.
KEPT_BYTES = 1 << 30

OPT_OUT = "MOTIONEXT_KEEP_FREED_MEMORY"
_USERS_OWN = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Set glibc's thresholds once per process (see the module's docstring); True if they are set.
    Training and refinement call it, and so does the `motionext` command."""
    global _applied
    if _applied is None:
        _applied = _set_thresholds()
    return _applied


def _set_thresholds() -> bool:
    if os.environ.get(OPT_OUT, "1") == "0" or any(name in os.environ for name in _USERS_OWN):
        return False
    if not _on_glibc():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mallopt returns 1 on success
    return mallopt(_M_TRIM_THRESHOLD, KEPT_BYTES) == 1 and mallopt(_M_MMAP_THRESHOLD, KEPT_BYTES) == 1


def _on_glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # not a POSIX system, or a C library without it
        return False
