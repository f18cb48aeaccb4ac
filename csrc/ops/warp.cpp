// motionext::warp — schema and argument checks.
#include <torch/library.h>

#include "checks.h"
#include "ops.h"

TORCH_LIBRARY_FRAGMENT(motionext, m) {
  m.def("warp(Tensor image, Tensor displacement, str mode, str padding) -> Tensor");
  // output_mask: which of (grad_image, grad_displacement) to compute; the others come back empty.
  m.def(
      "warp_backward(Tensor grad_output, Tensor image, Tensor displacement, str mode, "
      "str padding, bool[2] output_mask) -> (Tensor, Tensor)");
  // Linear warping that also returns the image's spatial gradient at every sample point,
  // (B, C, ndim, *spatial): the derivative of each output voxel by its own displacement. Autograd
  // keeps it, so the displacement's gradient is a product instead of a second pass of sampling.
  m.def("warp_with_gradient(Tensor image, Tensor displacement, str padding) -> (Tensor, Tensor)");
}

namespace motionext {

void check_warp_args(const at::Tensor& image, const at::Tensor& displacement) {
  check_spatial_tensor("motionext.warp", "image", image);
  check_field_for("motionext.warp", "displacement", displacement, "image", image);
}

void check_warp_backward_args(const at::Tensor& grad_output, const at::Tensor& image,
                              const at::Tensor& displacement) {
  check_warp_args(image, displacement);
  TORCH_CHECK_VALUE(grad_output.sizes() == image.sizes(),
                    "motionext.warp_backward: argument 'grad_output' must have shape ",
                    image.sizes(), "; got ", grad_output.sizes());
  check_same_device_dtype("motionext.warp_backward", "image", image, "grad_output", grad_output);
}

}  // namespace motionext
