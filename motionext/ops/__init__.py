"""The three kernels motionext is built on, with one API whichever backend runs them.

- :func:`warp` — ``image(x + u(x))``, linear or nearest, border or zero padding
- :func:`scaling_squaring` — displacement of ``exp(v)``
- :func:`lncc` — local squared normalized cross-correlation (MONAI-compatible)

``motionext.ops.reference`` holds the same functions in plain PyTorch. The compiled kernels run
by default when the extension is built; ``MOTIONEXT_BACKEND=reference`` (or
:func:`set_backend` / :func:`use_backend`) forces the reference.
"""

from . import reference
from ._extension import build_info, get_backend, set_backend, use_backend
from ._lncc import lncc
from ._scaling_squaring import scaling_squaring
from ._warp import warp

__all__ = [
    "warp",
    "scaling_squaring",
    "lncc",
    "reference",
    "build_info",
    "get_backend",
    "set_backend",
    "use_backend",
]
