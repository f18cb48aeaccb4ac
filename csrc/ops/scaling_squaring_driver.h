// Host side of scaling-and-squaring shared by the CPU and CUDA implementations: buffers, the
// order of the steps, the kept trajectory and the reverse walk of the backward pass. A Backend
// supplies one squaring step, its adjoint, a device guard, zeroing, and how the batch is cut
// into chains:
//   Backend::Guard(device)
//   Backend::step<NDIM, T>(field, scale, u_next, batch, grid, padding)
//   Backend::step_backward<NDIM, T>(field, scale, g_next, grad (zeroed), batch, grid, padding)
//   Backend::zero<T>(data, count)
//   Backend::for_chains(batch, split_remainder, chain): chain(first, count) for groups of batch
//     items that make every step on their own (the whole batch at once, or one item at a time
//     per thread); split_remainder: a group may hold items whose steps split their voxels
//     across threads (the forward step can, the adjoint cannot)
// where the step reads u = scale * field.
#pragma once

#include <tuple>
#include <utility>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include "checks.h"
#include "ops.h"

namespace motionext {

template <typename Backend>
std::tuple<at::Tensor, at::Tensor> scaling_squaring_forward(const at::Tensor& velocity_in, int64_t steps,
                                                            c10::string_view padding_name, bool keep_trajectory) {
  check_scaling_squaring_args(velocity_in, steps);
  const Padding padding = parse_padding("motionext.scaling_squaring", padding_name);
  const typename Backend::Guard guard(velocity_in.device());
  const at::Tensor velocity = velocity_in.contiguous();
  const auto options = velocity.options().dtype(at::toOpMathType(velocity.scalar_type()));
  // The trajectory holds u_1 .. u_{steps-1}; u_0 = v / 2^steps is read from the velocity.
  at::Tensor trajectory = at::empty(trajectory_shape(velocity, keep_trajectory ? steps - 1 : 0), options);
  at::Tensor out = at::empty(velocity.sizes(), options);
  at::Tensor spare = keep_trajectory || steps < 2 ? at::Tensor() : at::empty(velocity.sizes(), options);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, velocity.scalar_type(), "motionext_scaling_squaring", [&] {
    using T = at::opmath_type<scalar_t>;
    MOTIONEXT_DISPATCH_NDIM(velocity.dim() - 2, [&] {
      const auto grid = make_grid<NDIM>(velocity);
      const int64_t batch = velocity.size(0), item = NDIM * grid.numel, slot = batch * item;
      // Pointers taken once, before the chains run on several threads.
      const scalar_t* const velocity_data = velocity.const_data_ptr<scalar_t>();
      T* const out_data = out.mutable_data_ptr<T>();
      T* const trajectory_data = keep_trajectory ? trajectory.mutable_data_ptr<T>() : nullptr;
      T* const spare_data = spare.defined() ? spare.mutable_data_ptr<T>() : nullptr;
      // Step k writes trajectory slot k, or alternates between `out` and `spare` so that the
      // last step lands in `out`; `first` is the chain's first batch item.
      auto target = [&](int64_t k, int64_t first) -> T* {
        if (k + 1 == steps) return out_data + first * item;
        if (keep_trajectory) return trajectory_data + k * slot + first * item;
        return ((steps - 1 - k) % 2 == 0 ? out_data : spare_data) + first * item;
      };
      Backend::for_chains(batch, /*split_remainder=*/true, [&](int64_t first, int64_t count) {
        Backend::template step<NDIM, T>(velocity_data + first * item, T(1) / T(int64_t{1} << steps),
                                        target(0, first), count, grid, padding);
        for (int64_t k = 1; k < steps; ++k) {
          Backend::template step<NDIM, T>(target(k - 1, first), T(1), target(k, first), count, grid, padding);
        }
      });
    });
  });
  return {out.to(velocity.scalar_type()), trajectory};
}

template <typename Backend>
at::Tensor scaling_squaring_backward(const at::Tensor& grad_output, const at::Tensor& velocity_in,
                                     const at::Tensor& trajectory_in, int64_t steps, c10::string_view padding_name) {
  check_scaling_squaring_backward_args(grad_output, velocity_in, trajectory_in, steps);
  const Padding padding = parse_padding("motionext.scaling_squaring", padding_name);
  const typename Backend::Guard guard(velocity_in.device());
  const at::Tensor velocity = velocity_in.contiguous(), trajectory = trajectory_in.contiguous();
  // u_0 = v / 2^steps, so dL/dv = 2^-steps dL/du_0. Every step's adjoint is linear in g_next,
  // so scaling the first g_next by that power of two (exact) does it once, in the copy that
  // keeps the caller's tensor unwritten.
  at::Tensor g_next =
      grad_output.to(trajectory.scalar_type()).mul(1.0 / static_cast<double>(int64_t{1} << steps)).contiguous();
  at::Tensor grad = at::empty(grad_output.sizes(), g_next.options());
  // Each step swaps the roles of the two buffers; the last step's adjoint lands in `grad` when
  // the number of swaps before it is even.
  at::Tensor result = (steps - 1) % 2 == 0 ? grad : g_next;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, velocity.scalar_type(), "motionext_scaling_squaring_backward", [&] {
    using T = at::opmath_type<scalar_t>;
    MOTIONEXT_DISPATCH_NDIM(velocity.dim() - 2, [&] {
      const auto grid = make_grid<NDIM>(velocity);
      const int64_t batch = velocity.size(0), item = NDIM * grid.numel, slot = batch * item;
      // Pointers taken once, before the chains run on several threads.
      const scalar_t* const velocity_data = velocity.const_data_ptr<scalar_t>();
      const T* const trajectory_data = trajectory.const_data_ptr<T>();
      T* const g_next_data = g_next.mutable_data_ptr<T>();
      T* const grad_data = grad.mutable_data_ptr<T>();
      Backend::for_chains(batch, /*split_remainder=*/false, [&](int64_t first, int64_t count) {
        T* next = g_next_data + first * item;
        T* current = grad_data + first * item;
        for (int64_t k = steps - 1; k >= 1; --k) {
          Backend::template zero<T>(current, count * item);
          Backend::template step_backward<NDIM, T>(trajectory_data + (k - 1) * slot + first * item, T(1), next,
                                                   current, count, grid, padding);
          std::swap(current, next);
        }
        Backend::template zero<T>(current, count * item);
        Backend::template step_backward<NDIM, T>(velocity_data + first * item, T(1) / T(int64_t{1} << steps), next,
                                                 current, count, grid, padding);
      });
    });
  });
  return result.to(velocity.scalar_type());
}

}  // namespace motionext
