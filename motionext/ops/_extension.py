"""Loading the compiled extension ``motionext._C`` and choosing a backend.

If the extension cannot load (not built, or built against another torch), motionext still
works on the reference ops and says so once.
"""

from __future__ import annotations

import contextlib
import os
import warnings

import torch
from torch.autograd import forward_ad

BACKENDS = ("auto", "compiled", "reference")
ENV_VAR = "MOTIONEXT_BACKEND"

_load_error: str | None = None
try:
    from .. import _C  # noqa: F401  (loading it registers torch.ops.motionext.*)

    _build = dict(_C.build_info())
except Exception as exc:  # ImportError, or an undefined symbol from a mismatched torch
    _C = None
    _build = {"compiled": False, "cuda": False}
    _load_error = f"{type(exc).__name__}: {exc}"

_override: str | None = None
_warned = False


def compiled_available() -> bool:
    return _C is not None


def load_error() -> str | None:
    """Why the compiled extension did not load, or None."""
    return _load_error


def build_info() -> dict:
    """How motionext was built and what it will run on."""
    info = dict(_build)
    info.update(
        torch_version=torch.__version__,
        cuda_version=torch.version.cuda,
        cuda_available=torch.cuda.is_available(),
        backend=get_backend(),
        load_error=_load_error,
    )
    return info


def get_backend() -> str:
    """The backend in force: ``set_backend``/``use_backend``, else ``$MOTIONEXT_BACKEND``, else "auto"."""
    name = _override if _override is not None else os.environ.get(ENV_VAR, "auto").strip().lower()
    if name not in BACKENDS:
        raise ValueError(f"{ENV_VAR}={name!r} is not a backend; choose one of {BACKENDS}")
    return name


def set_backend(name: str | None) -> None:
    """Force "compiled" or "reference" for every op call; "auto" or None restores the default."""
    global _override
    if name is not None and name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS}")
    _override = name


@contextlib.contextmanager
def use_backend(name: str):
    """``with use_backend("reference"): ...`` runs the block on that backend."""
    global _override
    previous = _override
    set_backend(name)
    try:
        yield
    finally:
        _override = previous


def _device_supported(device: torch.device) -> bool:
    if device.type in ("cpu", "meta"):  # meta: the ops' fake registrations give the shapes
        return True
    return device.type == "cuda" and bool(_build.get("cuda"))


def transformed(*tensors: torch.Tensor) -> bool:
    """Whether a torch.func transform (grad, vmap, jvp, ...) wraps any of `tensors`, or any carries
    a forward-mode tangent (torch.autograd.forward_ad). The compiled kernels have no batching rules
    and no forward derivatives, and torch would run them as if they did not depend on the tangent
    (a zero or missing result, no error). Never under torch.compile, which traces no transform here."""
    if torch.compiler.is_compiling():
        return False
    return any(torch._C._functorch.is_functorch_wrapped_tensor(t) or forward_ad.unpack_dual(t).tangent is not None
               for t in tensors)


def use_compiled(op: str, tensor: torch.Tensor, *others: torch.Tensor) -> bool:
    """Whether ``op`` on ``tensor`` (and ``others``, its other tensor inputs) runs the compiled
    kernel under the current backend. Under a torch.func transform or forward-mode AD the
    reference runs ("auto"), or a forced "compiled" backend says why it cannot."""
    global _warned
    backend = get_backend()
    if backend == "reference":
        return False
    if transformed(tensor, *others):
        if backend == "compiled":
            raise RuntimeError(f"{op}: the compiled kernels support no torch.func transform (grad, vmap, jvp, ...) "
                               "and no forward-mode AD; use the reference backend (ops.use_backend('reference'))")
        return False
    if backend == "compiled":
        if _C is None:
            raise RuntimeError(
                f"{op}: backend 'compiled' was requested but motionext._C could not be loaded "
                f"({_load_error}); rebuild with `pip install --no-build-isolation .`"
            )
        if not _device_supported(tensor.device):
            raise RuntimeError(f"{op}: the compiled extension was built without support for {tensor.device}")
        return True
    if _C is None and not _warned:
        _warned = True
        warnings.warn(
            f"motionext: compiled kernels unavailable ({_load_error}); using the reference ops",
            RuntimeWarning,
            stacklevel=3,
        )
    return _C is not None and _device_supported(tensor.device)
