// motionext::lncc — schema and argument checks.
#include <algorithm>

#include <torch/library.h>

#include "checks.h"
#include "ops.h"

TORCH_LIBRARY_FRAGMENT(motionext, m) {
  // The per-voxel local squared correlation (B, C, *spatial); reductions are left to the caller.
  m.def("lncc(Tensor a, Tensor b, int window, float smooth_nr, float smooth_dr) -> Tensor");
  m.def(
      "lncc_backward(Tensor grad_cc, Tensor a, Tensor b, int window, float smooth_nr, "
      "float smooth_dr, bool[2] output_mask) -> (Tensor, Tensor)");
}

namespace motionext {

void check_lncc_args(const at::Tensor& a, const at::Tensor& b, int64_t window) {
  const char* op = "motionext.lncc";
  check_spatial_tensor(op, "a", a);
  check_spatial_tensor(op, "b", b);
  TORCH_CHECK_VALUE(a.sizes() == b.sizes(), op, ": arguments 'a' and 'b' must have the same shape; got ",
                    a.sizes(), " and ", b.sizes());
  check_same_device_dtype(op, "a", a, "b", b);
  TORCH_CHECK_VALUE(window >= 1 && window % 2 == 1, op,
                    ": argument 'window' must be a positive odd number; got ", window);
  for (int64_t k = 2; k < a.dim(); ++k) {
    TORCH_CHECK_VALUE(window <= a.size(k), op, ": argument 'window' (", window,
                      ") is larger than the image along spatial axis ", k - 2, " (size ", a.size(k), ")");
  }
}

void check_lncc_backward_args(const at::Tensor& grad_cc, const at::Tensor& a, const at::Tensor& b,
                              int64_t window) {
  check_lncc_args(a, b, window);
  TORCH_CHECK_VALUE(grad_cc.sizes() == a.sizes(), "motionext.lncc_backward: argument 'grad_cc' must have shape ",
                    a.sizes(), "; got ", grad_cc.sizes());
  check_same_device_dtype("motionext.lncc_backward", "a", a, "grad_cc", grad_cc);
}

}  // namespace motionext
