// motionext::scaling_squaring on CUDA: one launch per squaring step, forward and backward.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "../checks.h"
#include "../ops.h"
#include "launch.cuh"
#include "motionext/scaling_squaring.h"

namespace motionext {
namespace {

constexpr const char* kOp = "motionext.scaling_squaring";

template <int NDIM, typename T>
__global__ void step_kernel(const T* u, T* u_next, int64_t batch, Grid<NDIM> grid, Padding padding) {
  const int64_t i = cuda::thread_index(), n = grid.numel;
  if (i >= batch * n) return;
  const int64_t b = i / n, voxel = i - b * n;
  int64_t index[NDIM];
  grid.unravel(voxel, index);
  squaring_voxel_forward<NDIM, T>(u + b * NDIM * n, u_next + b * NDIM * n, grid, voxel, index, padding);
}

template <int NDIM, typename T>
__global__ void step_backward_kernel(const T* u, const T* g_next, T* grad, int64_t batch, Grid<NDIM> grid,
                                     Padding padding) {
  const int64_t i = cuda::thread_index(), n = grid.numel;
  if (i >= batch * n) return;
  const int64_t b = i / n, voxel = i - b * n;
  int64_t index[NDIM];
  grid.unravel(voxel, index);
  squaring_voxel_backward<NDIM, T>(u + b * NDIM * n, g_next + b * NDIM * n, grad + b * NDIM * n, grid, voxel,
                                   index, padding, cuda::AtomicAdd());
}

std::tuple<at::Tensor, at::Tensor> scaling_squaring_cuda(const at::Tensor& velocity_in, int64_t steps,
                                                         c10::string_view padding_name, bool keep_trajectory) {
  check_scaling_squaring_args(velocity_in, steps);
  const Padding padding = parse_padding(kOp, padding_name);
  const c10::cuda::CUDAGuard guard(velocity_in.device());
  const auto options = velocity_in.options().dtype(at::toOpMathType(velocity_in.scalar_type()));
  std::vector<int64_t> trajectory_shape{steps};
  trajectory_shape.insert(trajectory_shape.end(), velocity_in.sizes().begin(), velocity_in.sizes().end());
  at::Tensor trajectory = keep_trajectory ? at::empty(trajectory_shape, options) : at::Tensor();
  at::Tensor current = keep_trajectory ? trajectory[0] : at::empty(velocity_in.sizes(), options);
  current.copy_(velocity_in).div_(static_cast<double>(int64_t{1} << steps));
  at::Tensor spare = keep_trajectory ? at::Tensor() : at::empty(velocity_in.sizes(), options);
  const int64_t batch = velocity_in.size(0);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, velocity_in.scalar_type(), "motionext_ss_cuda", [&] {
    using T = at::opmath_type<scalar_t>;
    MOTIONEXT_DISPATCH_NDIM(velocity_in.dim() - 2, [&] {
      const auto grid = make_grid<NDIM>(velocity_in);
      for (int64_t k = 0; k < steps; ++k) {
        at::Tensor next;
        if (k + 1 == steps) next = at::empty(velocity_in.sizes(), options);
        else next = keep_trajectory ? trajectory[k + 1] : spare;
        step_kernel<NDIM, T><<<cuda::blocks_for(batch * grid.numel), cuda::kThreads, 0, cuda::stream()>>>(
            current.const_data_ptr<T>(), next.mutable_data_ptr<T>(), batch, grid, padding);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        if (!keep_trajectory) spare = current;
        current = next;
      }
    });
  });
  return {current.to(velocity_in.scalar_type()), keep_trajectory ? trajectory : no_gradient(current)};
}

at::Tensor scaling_squaring_backward_cuda(const at::Tensor& grad_output, const at::Tensor& trajectory_in,
                                          int64_t steps, c10::string_view padding_name) {
  check_scaling_squaring_backward_args(grad_output, trajectory_in, steps);
  const Padding padding = parse_padding(kOp, padding_name);
  const auto opmath = at::toOpMathType(grad_output.scalar_type());
  TORCH_CHECK_TYPE(trajectory_in.scalar_type() == opmath, "motionext.scaling_squaring_backward: argument "
                   "'trajectory' must have dtype ", opmath, "; got ", trajectory_in.scalar_type());
  const c10::cuda::CUDAGuard guard(grad_output.device());
  const at::Tensor trajectory = trajectory_in.contiguous();
  at::Tensor g_next = grad_output.to(opmath).contiguous();
  if (g_next.is_same(grad_output)) g_next = g_next.clone();
  at::Tensor grad = at::empty(grad_output.sizes(), g_next.options());
  const int64_t batch = grad_output.size(0);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_output.scalar_type(), "motionext_ss_backward_cuda", [&] {
    using T = at::opmath_type<scalar_t>;
    MOTIONEXT_DISPATCH_NDIM(grad_output.dim() - 2, [&] {
      const auto grid = make_grid<NDIM>(grad_output);
      for (int64_t k = steps - 1; k >= 0; --k) {
        grad.zero_();
        step_backward_kernel<NDIM, T><<<cuda::blocks_for(batch * grid.numel), cuda::kThreads, 0, cuda::stream()>>>(
            trajectory[k].const_data_ptr<T>(), g_next.const_data_ptr<T>(), grad.mutable_data_ptr<T>(), batch, grid,
            padding);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        std::swap(grad, g_next);
      }
    });
  });
  return g_next.div_(static_cast<double>(int64_t{1} << steps)).to(grad_output.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(motionext, CUDA, m) {
  m.impl("scaling_squaring", &scaling_squaring_cuda);
  m.impl("scaling_squaring_backward", &scaling_squaring_backward_cuda);
}

}  // namespace motionext
