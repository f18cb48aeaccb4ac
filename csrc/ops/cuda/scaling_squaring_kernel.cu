// motionext::scaling_squaring on CUDA: one launch per squaring step, forward and backward; the
// host logic is in ../scaling_squaring_driver.h.
#include <ATen/Context.h>
#include <torch/library.h>

#include "../scaling_squaring_driver.h"
#include "launch.cuh"
#include "motionext/scaling_squaring.h"

namespace motionext {
namespace {

template <int NDIM, typename T, typename field_t>
__global__ void step_kernel(const field_t* field, T scale, T* u_next, int64_t batch, Grid<NDIM> grid,
                            Padding padding) {
  int64_t b, voxel, index[NDIM];
  if (!cuda::locate_voxel(batch, grid, b, voxel, index)) return;
  const int64_t n = grid.numel;
  squaring_voxel_forward<NDIM, T>(field + b * NDIM * n, scale, u_next + b * NDIM * n, grid, voxel, index, padding);
}

template <int NDIM, typename T, typename field_t>
__global__ void step_backward_kernel(const field_t* field, T scale, const T* g_next, T* grad, int64_t batch,
                                     Grid<NDIM> grid, Padding padding) {
  int64_t b, voxel, index[NDIM];
  if (!cuda::locate_voxel(batch, grid, b, voxel, index)) return;
  const int64_t n = grid.numel;
  squaring_voxel_backward<NDIM, T>(field + b * NDIM * n, scale, g_next + b * NDIM * n, grad + b * NDIM * n, grid,
                                   voxel, index, padding, cuda::AtomicAdd());
}

struct CudaSquaring {
  using Guard = c10::cuda::CUDAGuard;

  template <typename T>
  static void zero(T* data, int64_t count) {
    C10_CUDA_CHECK(cudaMemsetAsync(data, 0, count * sizeof(T), cuda::stream()));
  }

  // One launch per step covers the whole batch.
  template <typename Chain>
  static void for_chains(int64_t batch, bool /*split_remainder*/, const Chain& chain) { chain(0, batch); }

  template <int NDIM, typename T, typename field_t>
  static void step(const field_t* field, T scale, T* u_next, int64_t batch, const Grid<NDIM>& grid, Padding padding) {
    step_kernel<NDIM, T><<<cuda::blocks_for(batch * grid.numel), cuda::kThreads, 0, cuda::stream()>>>(
        field, scale, u_next, batch, grid, padding);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }

  template <int NDIM, typename T, typename field_t>
  static void step_backward(const field_t* field, T scale, const T* g_next, T* grad, int64_t batch,
                            const Grid<NDIM>& grid, Padding padding) {
    // Each step's adjoint warp is summed with atomics, in no fixed order.
    at::globalContext().alertNotDeterministic("motionext::scaling_squaring_backward (CUDA)");
    step_backward_kernel<NDIM, T><<<cuda::blocks_for(batch * grid.numel), cuda::kThreads, 0, cuda::stream()>>>(
        field, scale, g_next, grad, batch, grid, padding);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(motionext, CUDA, m) {
  m.impl("scaling_squaring", &scaling_squaring_forward<CudaSquaring>);
  m.impl("scaling_squaring_backward", &scaling_squaring_backward<CudaSquaring>);
}

}  // namespace motionext
