// motionext::scaling_squaring on the CPU.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include "../checks.h"
#include "../ops.h"
#include "motionext/scaling_squaring.h"
#include "parallel.h"

namespace motionext {
namespace {

constexpr const char* kOp = "motionext.scaling_squaring";

// u_next = u + u∘(id + u), fields in the op-math type T.
template <int NDIM, typename T>
void squaring_step(const at::Tensor& u, at::Tensor& u_next, Padding padding) {
  const auto grid = make_grid<NDIM>(u);
  const int64_t n = grid.numel;
  const T* src = u.const_data_ptr<T>();
  T* dst = u_next.mutable_data_ptr<T>();
  cpu::for_each_voxel(u.size(0), grid, [&](int64_t b, int64_t voxel, const int64_t(&index)[NDIM]) {
    squaring_voxel_forward<NDIM, T>(src + b * NDIM * n, dst + b * NDIM * n, grid, voxel, index, padding);
  });
}

// grad = adjoint of one step applied to g_next; grad is zeroed here.
template <int NDIM, typename T>
void squaring_step_backward(const at::Tensor& u, const at::Tensor& g_next, at::Tensor& grad, Padding padding) {
  const auto grid = make_grid<NDIM>(u);
  const int64_t n = grid.numel;
  const T* src = u.const_data_ptr<T>();
  const T* gn = g_next.const_data_ptr<T>();
  T* g = grad.mutable_data_ptr<T>();
  grad.zero_();
  cpu::for_each_voxel_spreading(u.size(0), grid, [&](int64_t b, int64_t voxel, const int64_t(&index)[NDIM], const auto& add) {
    squaring_voxel_backward<NDIM, T>(src + b * NDIM * n, gn + b * NDIM * n, g + b * NDIM * n, grid, voxel,
                                     index, padding, add);
  });
}

std::tuple<at::Tensor, at::Tensor> scaling_squaring_cpu(const at::Tensor& velocity_in, int64_t steps,
                                                        c10::string_view padding_name, bool keep_trajectory) {
  check_scaling_squaring_args(velocity_in, steps);
  const Padding padding = parse_padding(kOp, padding_name);
  const auto opmath = at::toOpMathType(velocity_in.scalar_type());
  const auto options = velocity_in.options().dtype(opmath);
  const int64_t ndim = velocity_in.dim() - 2;

  std::vector<int64_t> trajectory_shape{steps};
  trajectory_shape.insert(trajectory_shape.end(), velocity_in.sizes().begin(), velocity_in.sizes().end());
  at::Tensor trajectory = keep_trajectory ? at::empty(trajectory_shape, options) : at::Tensor();

  // u_0 = v / 2^steps; then ping-pong between two buffers, or walk the trajectory slots.
  at::Tensor current = keep_trajectory ? trajectory[0] : at::empty(velocity_in.sizes(), options);
  current.copy_(velocity_in).div_(static_cast<double>(int64_t{1} << steps));
  at::Tensor spare = keep_trajectory ? at::Tensor() : at::empty(velocity_in.sizes(), options);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, velocity_in.scalar_type(), "motionext_ss_cpu", [&] {
    using T = at::opmath_type<scalar_t>;
    MOTIONEXT_DISPATCH_NDIM(ndim, [&] {
      for (int64_t k = 0; k < steps; ++k) {
        at::Tensor next;
        if (k + 1 == steps) next = at::empty(velocity_in.sizes(), options);
        else next = keep_trajectory ? trajectory[k + 1] : spare;
        squaring_step<NDIM, T>(current, next, padding);
        if (!keep_trajectory) spare = current;
        current = next;
      }
    });
  });
  return {current.to(velocity_in.scalar_type()),
          keep_trajectory ? trajectory : no_gradient(current)};
}

at::Tensor scaling_squaring_backward_cpu(const at::Tensor& grad_output, const at::Tensor& trajectory_in,
                                         int64_t steps, c10::string_view padding_name) {
  check_scaling_squaring_backward_args(grad_output, trajectory_in, steps);
  const Padding padding = parse_padding(kOp, padding_name);
  const auto opmath = at::toOpMathType(grad_output.scalar_type());
  TORCH_CHECK_TYPE(trajectory_in.scalar_type() == opmath, "motionext.scaling_squaring_backward: argument "
                   "'trajectory' must have dtype ", opmath, "; got ", trajectory_in.scalar_type());
  const at::Tensor trajectory = trajectory_in.contiguous();
  at::Tensor g_next = grad_output.to(opmath).contiguous();
  if (g_next.is_same(grad_output)) g_next = g_next.clone();  // never write into the caller's tensor
  at::Tensor grad = at::empty(grad_output.sizes(), g_next.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_output.scalar_type(), "motionext_ss_backward_cpu", [&] {
    using T = at::opmath_type<scalar_t>;
    MOTIONEXT_DISPATCH_NDIM(grad_output.dim() - 2, [&] {
      for (int64_t k = steps - 1; k >= 0; --k) {
        squaring_step_backward<NDIM, T>(trajectory[k], g_next, grad, padding);
        std::swap(grad, g_next);
      }
    });
  });
  // u_0 = v / 2^steps
  return g_next.div_(static_cast<double>(int64_t{1} << steps)).to(grad_output.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(motionext, CPU, m) {
  m.impl("scaling_squaring", &scaling_squaring_cpu);
  m.impl("scaling_squaring_backward", &scaling_squaring_backward_cpu);
}

}  // namespace motionext
