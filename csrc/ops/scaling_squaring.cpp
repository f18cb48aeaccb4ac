// motionext::scaling_squaring — schema and argument checks.
#include <torch/library.h>

#include "checks.h"
#include "ops.h"

TORCH_LIBRARY_FRAGMENT(motionext, m) {
  // Returns the displacement of exp(velocity) and, when keep_trajectory, the fields
  // u_0 .. u_{steps-1} (steps, B, ndim, *spatial) in the op-math dtype for the backward pass.
  m.def(
      "scaling_squaring(Tensor velocity, int steps, str padding, bool keep_trajectory) "
      "-> (Tensor, Tensor)");
  m.def(
      "scaling_squaring_backward(Tensor grad_output, Tensor trajectory, int steps, str padding) "
      "-> Tensor");
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

void check_scaling_squaring_backward_args(const at::Tensor& grad_output,
                                          const at::Tensor& trajectory, int64_t steps) {
  const char* op = "motionext.scaling_squaring_backward";
  check_scaling_squaring_args(grad_output, steps);
  bool ok = trajectory.dim() == grad_output.dim() + 1 && trajectory.size(0) == steps;
  for (int64_t k = 0; ok && k < grad_output.dim(); ++k) ok = trajectory.size(k + 1) == grad_output.size(k);
  TORCH_CHECK_VALUE(ok, op, ": argument 'trajectory' must have shape (", steps, ", ",
                    grad_output.sizes(), "); got ", trajectory.sizes());
  TORCH_CHECK_VALUE(trajectory.device() == grad_output.device(), op,
                    ": argument 'trajectory' is on ", trajectory.device(), " but 'grad_output' is on ",
                    grad_output.device());
}

}  // namespace motionext
