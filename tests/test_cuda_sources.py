"""Every .cu file compiles with nvcc, so a CUDA syntax error fails CI even on machines
without a GPU (where the extension itself is built CPU-only)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch.utils.cpp_extension as cpp

ROOT = Path(__file__).resolve().parents[1]
CU_FILES = sorted((ROOT / "csrc" / "ops" / "cuda").glob("*.cu"))
NVCC = shutil.which("nvcc") or (os.path.join(os.environ["CUDA_HOME"], "bin", "nvcc") if os.environ.get("CUDA_HOME") else None)

pytestmark = pytest.mark.skipif(not NVCC or not os.path.exists(NVCC), reason="nvcc not found")


def test_there_are_cuda_sources():
    assert {p.stem for p in CU_FILES} == {"warp_kernel", "scaling_squaring_kernel", "lncc_kernel"}


@pytest.mark.parametrize("source", CU_FILES, ids=[p.stem for p in CU_FILES])
def test_cuda_source_compiles(source, tmp_path):
    includes = [f"-I{p}" for p in cpp.include_paths()] + [f"-I{ROOT / 'csrc' / 'include'}", f"-I{sys.base_prefix}/include"]
    if not any(Path(p, "c10/cuda/impl/cuda_cmake_macros.h").exists() for p in cpp.include_paths()):
        # A CPU build of torch ships c10/cuda headers but not this one, generated at torch's build.
        shim = tmp_path / "shim" / "c10" / "cuda" / "impl"
        shim.mkdir(parents=True)
        (shim / "cuda_cmake_macros.h").write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
        includes.append(f"-I{tmp_path / 'shim'}")
    abi = "1" if cpp.torch._C._GLIBCXX_USE_CXX11_ABI else "0"
    cmd = [
        NVCC, "-c", str(source), "-o", str(tmp_path / "out.o"), "-std=c++17", "-O0",
        "--expt-relaxed-constexpr", "-arch=sm_80", f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
        "-Xcompiler", "-fPIC", *includes,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"nvcc failed on {source.name}:\n{result.stderr[-6000:]}"
