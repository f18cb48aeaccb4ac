import os

import pytest
import torch

from motionext.ops import _extension

COMPILED = _extension.compiled_available()
CUDA = COMPILED and bool(_extension.build_info().get("cuda")) and torch.cuda.is_available()

needs_compiled = pytest.mark.skipif(not COMPILED, reason=f"compiled extension not loaded: {_extension.load_error()}")
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device or extension built without CUDA")


def pytest_sessionstart(session):
    # The project's test command builds the extension; a silent fallback to the reference would
    # let every compiled-vs-reference test skip, so there it is an error.
    if os.environ.get("MOTIONEXT_REQUIRE_COMPILED") == "1" and not COMPILED:
        raise pytest.UsageError(f"MOTIONEXT_REQUIRE_COMPILED=1 but motionext._C did not load: {_extension.load_error()}")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)


def devices():
    """The devices to parametrize over; the CUDA one carries the `cuda` marker (pytest -m cuda)."""
    return ["cpu"] + ([pytest.param("cuda", marks=pytest.mark.cuda)] if CUDA else [])
