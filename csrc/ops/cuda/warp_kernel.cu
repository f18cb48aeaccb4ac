// motionext::warp on CUDA: one thread per output voxel; the image gradient is spread with atomics.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include "../checks.h"
#include "../ops.h"
#include "launch.cuh"
#include "motionext/warp.h"

namespace motionext {
namespace {

constexpr const char* kOp = "motionext.warp";

template <int NDIM, Interpolation MODE, typename scalar_t>
__global__ void forward_kernel(const scalar_t* image, const scalar_t* displacement, scalar_t* out,
                               int64_t batch, int64_t channels, Grid<NDIM> grid, Padding padding) {
  using T = at::opmath_type<scalar_t>;
  const int64_t i = cuda::thread_index(), n = grid.numel;
  if (i >= batch * n) return;
  const int64_t b = i / n, voxel = i - b * n;
  int64_t index[NDIM];
  grid.unravel(voxel, index);
  warp_voxel_forward<NDIM, T, MODE>(image + b * channels * n, displacement + b * NDIM * n,
                                    out + b * channels * n, channels, grid, voxel, index, padding);
}

template <int NDIM, Interpolation MODE, typename scalar_t>
__global__ void backward_kernel(const scalar_t* grad_output, const scalar_t* image,
                                const scalar_t* displacement, at::opmath_type<scalar_t>* grad_image,
                                scalar_t* grad_displacement, int64_t batch, int64_t channels,
                                Grid<NDIM> grid, Padding padding) {
  using T = at::opmath_type<scalar_t>;
  const int64_t i = cuda::thread_index(), n = grid.numel;
  if (i >= batch * n) return;
  const int64_t b = i / n, voxel = i - b * n;
  int64_t index[NDIM];
  grid.unravel(voxel, index);
  warp_voxel_backward<NDIM, T, MODE>(grad_output + b * channels * n, image + b * channels * n,
                                     displacement + b * NDIM * n,
                                     grad_image ? grad_image + b * channels * n : nullptr,
                                     grad_displacement ? grad_displacement + b * NDIM * n : nullptr,
                                     channels, grid, voxel, index, padding, cuda::AtomicAdd());
}

at::Tensor warp_cuda(const at::Tensor& image_in, const at::Tensor& displacement_in,
                     c10::string_view mode, c10::string_view padding_name) {
  check_warp_args(image_in, displacement_in);
  const Interpolation interpolation = parse_interpolation(kOp, mode);
  const Padding padding = parse_padding(kOp, padding_name);
  const c10::cuda::CUDAGuard guard(image_in.device());
  const at::Tensor image = image_in.contiguous(), displacement = displacement_in.contiguous();
  at::Tensor out = at::empty(image.sizes(), image.options());
  const int64_t batch = image.size(0), channels = image.size(1);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, image.scalar_type(), "motionext_warp_cuda", [&] {
    MOTIONEXT_DISPATCH_NDIM(image.dim() - 2, [&] {
      MOTIONEXT_DISPATCH_MODE(interpolation, [&] {
        const auto grid = make_grid<NDIM>(image);
        forward_kernel<NDIM, MODE, scalar_t><<<cuda::blocks_for(batch * grid.numel), cuda::kThreads, 0, cuda::stream()>>>(
            image.const_data_ptr<scalar_t>(), displacement.const_data_ptr<scalar_t>(),
            out.mutable_data_ptr<scalar_t>(), batch, channels, grid, padding);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> warp_backward_cuda(const at::Tensor& grad_output_in,
                                                      const at::Tensor& image_in,
                                                      const at::Tensor& displacement_in,
                                                      c10::string_view mode,
                                                      c10::string_view padding_name,
                                                      std::array<bool, 2> output_mask) {
  check_warp_backward_args(grad_output_in, image_in, displacement_in);
  const Interpolation interpolation = parse_interpolation(kOp, mode);
  const Padding padding = parse_padding(kOp, padding_name);
  const c10::cuda::CUDAGuard guard(image_in.device());
  const at::Tensor grad_output = grad_output_in.contiguous();
  const at::Tensor image = image_in.contiguous(), displacement = displacement_in.contiguous();
  const auto opmath = at::toOpMathType(image.scalar_type());
  at::Tensor grad_image = output_mask[0] ? at::zeros(image.sizes(), image.options().dtype(opmath)) : at::Tensor();
  at::Tensor grad_displacement =
      output_mask[1] ? at::empty(displacement.sizes(), displacement.options()) : at::Tensor();
  const int64_t batch = image.size(0), channels = image.size(1);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, image.scalar_type(), "motionext_warp_backward_cuda", [&] {
    using T = at::opmath_type<scalar_t>;
    MOTIONEXT_DISPATCH_NDIM(image.dim() - 2, [&] {
      MOTIONEXT_DISPATCH_MODE(interpolation, [&] {
        const auto grid = make_grid<NDIM>(image);
        backward_kernel<NDIM, MODE, scalar_t><<<cuda::blocks_for(batch * grid.numel), cuda::kThreads, 0, cuda::stream()>>>(
            grad_output.const_data_ptr<scalar_t>(), image.const_data_ptr<scalar_t>(),
            displacement.const_data_ptr<scalar_t>(),
            grad_image.defined() ? grad_image.mutable_data_ptr<T>() : nullptr,
            grad_displacement.defined() ? grad_displacement.mutable_data_ptr<scalar_t>() : nullptr, batch,
            channels, grid, padding);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  });
  return {grad_image.defined() ? grad_image.to(image.scalar_type()) : no_gradient(image),
          grad_displacement.defined() ? grad_displacement : no_gradient(image)};
}

}  // namespace

TORCH_LIBRARY_IMPL(motionext, CUDA, m) {
  m.impl("warp", &warp_cuda);
  m.impl("warp_backward", &warp_backward_cuda);
}

}  // namespace motionext
