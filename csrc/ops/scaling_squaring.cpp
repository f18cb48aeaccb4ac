// motionext::scaling_squaring — schema and argument checks.
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "checks.h"
#include "ops.h"

TORCH_LIBRARY_FRAGMENT(motionext, m) {
  // Returns the displacement of exp(velocity) and, when keep_trajectory, the fields
  // u_1 .. u_{steps-1} (steps-1, B, ndim, *spatial) in the op-math dtype for the backward pass
  // (u_0 = velocity / 2^steps is not stored); otherwise an empty (0, B, ndim, *spatial) tensor.
  m.def(
      "scaling_squaring(Tensor velocity, int steps, str padding, bool keep_trajectory) "
      "-> (Tensor, Tensor)");
  m.def(
      "scaling_squaring_backward(Tensor grad_output, Tensor velocity, Tensor trajectory, int steps, "
      "str padding) -> Tensor");
}

namespace motionext {

constexpr int64_t kMaxSteps = 30;

void check_scaling_squaring_args(const at::Tensor& velocity, int64_t steps) {
  const char* op = "motionext.scaling_squaring";
  check_spatial_tensor(op, "velocity", velocity);
  const int64_t ndim = velocity.dim() - 2;
  TORCH_CHECK_VALUE(velocity.size(1) == ndim, op, ": argument 'velocity' must have ", ndim,
                    " channels (one per spatial axis); got shape ", velocity.sizes());
  TORCH_CHECK_VALUE(steps >= 1 && steps <= kMaxSteps, op, ": argument 'steps' must be in [1, ",
                    kMaxSteps, "]; got ", steps);
}

std::vector<int64_t> trajectory_shape(const at::Tensor& velocity, int64_t slots) {
  std::vector<int64_t> shape{slots};
  shape.insert(shape.end(), velocity.sizes().begin(), velocity.sizes().end());
  return shape;
}

void check_scaling_squaring_backward_args(const at::Tensor& grad_output, const at::Tensor& velocity,
                                          const at::Tensor& trajectory, int64_t steps) {
  const char* op = "motionext.scaling_squaring_backward";
  check_scaling_squaring_args(velocity, steps);
  TORCH_CHECK_VALUE(grad_output.sizes() == velocity.sizes(), op, ": argument 'grad_output' must have shape ",
                    velocity.sizes(), "; got ", grad_output.sizes());
  check_same_device_dtype(op, "velocity", velocity, "grad_output", grad_output);
  TORCH_CHECK_VALUE(at::IntArrayRef(trajectory_shape(velocity, steps - 1)) == trajectory.sizes(), op,
                    ": argument 'trajectory' must have shape (", steps - 1, ", ", velocity.sizes(),
                    "), as kept by the forward pass; got ", trajectory.sizes());
  TORCH_CHECK_VALUE(trajectory.device() == velocity.device(), op, ": argument 'trajectory' is on ",
                    trajectory.device(), " but 'velocity' is on ", velocity.device());
  const auto opmath = at::toOpMathType(velocity.scalar_type());
  TORCH_CHECK_TYPE(trajectory.scalar_type() == opmath, op, ": argument 'trajectory' must have dtype ", opmath,
                   "; got ", trajectory.scalar_type());
}

}  // namespace motionext
