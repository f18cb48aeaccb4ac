// CUDA launch helpers shared by the kernels: grid sizing and the atomic add used to spread
// gradients onto neighbouring voxels.
#pragma once

// Deliberately not ATen/cuda/CUDAContext.h: it needs the cuBLAS/cuSPARSE headers, which a
// compiler-only CUDA toolkit (as on CI) lacks.
#include <ATen/cuda/Atomic.cuh>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "motionext/grid.h"

namespace motionext {
namespace cuda {

constexpr int kThreads = 256;

inline unsigned int blocks_for(int64_t work) {
  TORCH_CHECK(work / kThreads < (int64_t{1} << 31) - 1, "motionext: tensor too large for one CUDA launch");
  return static_cast<unsigned int>((work + kThreads - 1) / kThreads);
}

inline cudaStream_t stream() { return c10::cuda::getCurrentCUDAStream(); }

struct AtomicAdd {
  template <typename T, typename V>
  __device__ void operator()(T* address, V value) const {
    gpuAtomicAdd(address, static_cast<T>(value));
  }
};

// Global thread index as 64 bits, so offsets past 2^31 elements stay exact.
__device__ inline int64_t thread_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

// The batch item, voxel and coordinates this thread handles in a (batch, *grid) launch;
// false for threads past the end.
template <int NDIM>
__device__ inline bool locate_voxel(int64_t batch, const Grid<NDIM>& grid, int64_t& b, int64_t& voxel,
                                    int64_t (&index)[NDIM]) {
  const int64_t i = thread_index();
  if (i >= batch * grid.numel) return false;
  b = i / grid.numel;
  voxel = i - b * grid.numel;
  grid.unravel(voxel, index);
  return true;
}

}  // namespace cuda
}  // namespace motionext
