// motionext::warp on CUDA: one thread per output voxel; the image gradient is spread with
// atomics. The host logic is in ../warp_driver.h.
#include <ATen/Context.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../warp_driver.h"
#include "launch.cuh"
#include "motionext/warp.h"

namespace motionext {
namespace {

template <int NDIM, Interpolation MODE, typename scalar_t>
__global__ void forward_kernel(const scalar_t* image, const scalar_t* displacement, scalar_t* out, int64_t batch,
                               int64_t channels, Grid<NDIM> grid, Padding padding) {
  using T = at::opmath_type<scalar_t>;
  int64_t b, voxel, index[NDIM];
  if (!cuda::locate_voxel(batch, grid, b, voxel, index)) return;
  const int64_t n = grid.numel;
  warp_voxel_forward<NDIM, T, MODE>(image + b * channels * n, displacement + b * NDIM * n, out + b * channels * n,
                                    channels, grid, voxel, index, padding);
}

template <int NDIM, typename scalar_t>
__global__ void forward_with_gradient_kernel(const scalar_t* image, const scalar_t* displacement, scalar_t* out,
                                             scalar_t* gradient, int64_t batch, int64_t channels, Grid<NDIM> grid,
                                             Padding padding) {
  using T = at::opmath_type<scalar_t>;
  int64_t b, voxel, index[NDIM];
  if (!cuda::locate_voxel(batch, grid, b, voxel, index)) return;
  const int64_t n = grid.numel;
  warp_voxel_forward_with_gradient<NDIM, T>(image + b * channels * n, displacement + b * NDIM * n,
                                            out + b * channels * n, gradient + b * channels * NDIM * n, channels,
                                            grid, voxel, index, padding);
}

template <int NDIM, Interpolation MODE, typename scalar_t>
__global__ void backward_kernel(const scalar_t* grad_output, const scalar_t* image, const scalar_t* displacement,
                                at::opmath_type<scalar_t>* grad_image, scalar_t* grad_displacement, int64_t batch,
                                int64_t channels, Grid<NDIM> grid, Padding padding) {
  using T = at::opmath_type<scalar_t>;
  int64_t b, voxel, index[NDIM];
  if (!cuda::locate_voxel(batch, grid, b, voxel, index)) return;
  const int64_t n = grid.numel;
  warp_voxel_backward<NDIM, T, MODE>(grad_output + b * channels * n, image + b * channels * n,
                                     displacement + b * NDIM * n, grad_image ? grad_image + b * channels * n : nullptr,
                                     grad_displacement ? grad_displacement + b * NDIM * n : nullptr, channels, grid,
                                     voxel, index, padding, cuda::AtomicAdd());
}

struct CudaWarp {
  using Guard = c10::cuda::CUDAGuard;

  template <int NDIM, Interpolation MODE, typename scalar_t>
  static void forward(const scalar_t* image, const scalar_t* displacement, scalar_t* out, int64_t batch,
                      int64_t channels, const Grid<NDIM>& grid, Padding padding) {
    forward_kernel<NDIM, MODE, scalar_t><<<cuda::blocks_for(batch * grid.numel), cuda::kThreads, 0, cuda::stream()>>>(
        image, displacement, out, batch, channels, grid, padding);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }

  template <int NDIM, typename scalar_t>
  static void forward_with_gradient(const scalar_t* image, const scalar_t* displacement, scalar_t* out,
                                    scalar_t* gradient, int64_t batch, int64_t channels, const Grid<NDIM>& grid,
                                    Padding padding) {
    forward_with_gradient_kernel<NDIM, scalar_t>
        <<<cuda::blocks_for(batch * grid.numel), cuda::kThreads, 0, cuda::stream()>>>(
            image, displacement, out, gradient, batch, channels, grid, padding);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }

  template <int NDIM, Interpolation MODE, typename scalar_t>
  static void backward(const scalar_t* grad_output, const scalar_t* image, const scalar_t* displacement,
                       at::opmath_type<scalar_t>* grad_image, scalar_t* grad_displacement, int64_t batch,
                       int64_t channels, const Grid<NDIM>& grid, Padding padding) {
    // The image's gradient is summed with atomics, in no fixed order (as grid_sample's is).
    if (grad_image) at::globalContext().alertNotDeterministic("motionext::warp_backward (CUDA, image gradient)");
    backward_kernel<NDIM, MODE, scalar_t><<<cuda::blocks_for(batch * grid.numel), cuda::kThreads, 0, cuda::stream()>>>(
        grad_output, image, displacement, grad_image, grad_displacement, batch, channels, grid, padding);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(motionext, CUDA, m) {
  m.impl("warp", &warp_forward<CudaWarp>);
  m.impl("warp_backward", &warp_backward<CudaWarp>);
  m.impl("warp_with_gradient", &warp_with_gradient<CudaWarp>);
}

}  // namespace motionext
