// The pybind11 module motionext._C. Loading it runs the TORCH_LIBRARY registrations of every
// op linked into it; the module itself only reports how it was built.
#include <pybind11/pybind11.h>

#include "ops/cpu/warp2d_avx2.h"

#ifndef MOTIONEXT_WITH_CUDA
#define MOTIONEXT_WITH_CUDA 0
#endif
#ifndef MOTIONEXT_TORCH_VERSION
#define MOTIONEXT_TORCH_VERSION "unknown"
#endif
#ifndef MOTIONEXT_CUDA_VERSION
#define MOTIONEXT_CUDA_VERSION ""
#endif

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "motionext compiled kernels (ops are registered under torch.ops.motionext)";
  m.def("build_info", [] {
    py::dict info;
    info["compiled"] = true;
    info["cuda"] = static_cast<bool>(MOTIONEXT_WITH_CUDA);
    info["built_with_torch"] = MOTIONEXT_TORCH_VERSION;
    info["built_with_cuda"] = MOTIONEXT_CUDA_VERSION;
    // the vectorised CPU path of 2D float32 bilinear warping (MOTIONEXT_CPU_SIMD=0 turns it off)
    info["cpu_simd"] = motionext::cpu::avx2_path_active() ? "avx2" : "none";
#if defined(__clang__)
    info["compiler"] = "clang " __clang_version__;
#elif defined(__GNUC__)
    info["compiler"] = "gcc " __VERSION__;
#else
    info["compiler"] = "unknown";
#endif
    return info;
  });
}
