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

// u_next = u + u∘(id + u) with u = scale * field; u_next in the op-math type T.
template <int NDIM, typename T, typename field_t>
void squaring_step(const field_t* field, T scale, T* u_next, int64_t batch, const Grid<NDIM>& grid,
                   Padding padding) {
  const int64_t n = grid.numel;
  cpu::for_each_voxel(batch, grid, [&](int64_t b, int64_t voxel, const int64_t(&index)[NDIM]) {
    squaring_voxel_forward<NDIM, T>(field + b * NDIM * n, scale, u_next + b * NDIM * n, grid, voxel, index, padding);
  });
}

// grad = adjoint of one step (u = scale * field) applied to g_next.
template <int NDIM, typename T, typename field_t>
void squaring_step_backward(const field_t* field, T scale, const T* g_next, at::Tensor& grad, int64_t batch,
                            const Grid<NDIM>& grid, Padding padding) {
  const int64_t n = grid.numel;
  grad.zero_();
  T* g = grad.mutable_data_ptr<T>();
  cpu::for_each_voxel_spreading(batch, grid, [&](int64_t b, int64_t voxel, const int64_t(&index)[NDIM], const auto& add) {
    squaring_voxel_backward<NDIM, T>(field + b * NDIM * n, scale, g_next + b * NDIM * n, g + b * NDIM * n, grid,
                                     voxel, index, padding, add);
  });
}

std::tuple<at::Tensor, at::Tensor> scaling_squaring_cpu(const at::Tensor& velocity_in, int64_t steps,
                                                        c10::string_view padding_name, bool keep_trajectory) {
  check_scaling_squaring_args(velocity_in, steps);
  const Padding padding = parse_padding(kOp, padding_name);
  const at::Tensor velocity = velocity_in.contiguous();
  const auto options = velocity.options().dtype(at::toOpMathType(velocity.scalar_type()));
  // The trajectory holds u_1 .. u_{steps-1}; u_0 = v / 2^steps is read from the velocity.
  at::Tensor trajectory = at::empty(trajectory_shape(velocity, keep_trajectory ? steps - 1 : 0), options);
  at::Tensor out = at::empty(velocity.sizes(), options);
  at::Tensor spare = keep_trajectory || steps < 2 ? at::Tensor() : at::empty(velocity.sizes(), options);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, velocity.scalar_type(), "motionext_ss_cpu", [&] {
    using T = at::opmath_type<scalar_t>;
    MOTIONEXT_DISPATCH_NDIM(velocity.dim() - 2, [&] {
      const auto grid = make_grid<NDIM>(velocity);
      const int64_t batch = velocity.size(0);
      // Each step writes the next trajectory slot, or alternates between `out` and `spare` so
      // that the last step lands in `out`.
      auto target = [&](int64_t k) -> T* {
        if (k + 1 == steps) return out.mutable_data_ptr<T>();
        if (keep_trajectory) return trajectory[k].mutable_data_ptr<T>();
        return ((steps - 1 - k) % 2 == 0 ? out : spare).mutable_data_ptr<T>();
      };
      squaring_step<NDIM, T>(velocity.const_data_ptr<scalar_t>(), T(1) / T(int64_t{1} << steps), target(0), batch,
                             grid, padding);
      for (int64_t k = 1; k < steps; ++k) squaring_step<NDIM, T>(target(k - 1), T(1), target(k), batch, grid, padding);
    });
  });
  return {out.to(velocity.scalar_type()), trajectory};
}

at::Tensor scaling_squaring_backward_cpu(const at::Tensor& grad_output, const at::Tensor& velocity_in,
                                         const at::Tensor& trajectory_in, int64_t steps,
                                         c10::string_view padding_name) {
  check_scaling_squaring_backward_args(grad_output, velocity_in, trajectory_in, steps);
  const Padding padding = parse_padding(kOp, padding_name);
  const at::Tensor velocity = velocity_in.contiguous(), trajectory = trajectory_in.contiguous();
  at::Tensor g_next = grad_output.to(trajectory.scalar_type()).contiguous();
  if (g_next.is_same(grad_output)) g_next = g_next.clone();  // never write into the caller's tensor
  at::Tensor grad = at::empty(grad_output.sizes(), g_next.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, velocity.scalar_type(), "motionext_ss_backward_cpu", [&] {
    using T = at::opmath_type<scalar_t>;
    MOTIONEXT_DISPATCH_NDIM(velocity.dim() - 2, [&] {
      const auto grid = make_grid<NDIM>(velocity);
      const int64_t batch = velocity.size(0);
      for (int64_t k = steps - 1; k >= 1; --k) {
        squaring_step_backward<NDIM, T>(trajectory[k - 1].const_data_ptr<T>(), T(1), g_next.const_data_ptr<T>(),
                                        grad, batch, grid, padding);
        std::swap(grad, g_next);
      }
      squaring_step_backward<NDIM, T>(velocity.const_data_ptr<scalar_t>(), T(1) / T(int64_t{1} << steps),
                                      g_next.const_data_ptr<T>(), grad, batch, grid, padding);
    });
  });
  // u_0 = v / 2^steps
  return grad.div_(static_cast<double>(int64_t{1} << steps)).to(velocity.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(motionext, CPU, m) {
  m.impl("scaling_squaring", &scaling_squaring_cpu);
  m.impl("scaling_squaring_backward", &scaling_squaring_backward_cpu);
}

}  // namespace motionext
