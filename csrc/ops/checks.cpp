#include "checks.h"

#include <c10/util/irange.h>

namespace motionext {

void check_spatial_tensor(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK_VALUE(t.defined(), op, ": argument '", name, "' is undefined");
  TORCH_CHECK_VALUE(t.dim() == 4 || t.dim() == 5, op, ": argument '", name,
                    "' must be (B, C, H, W) or (B, C, D, H, W); got shape ", t.sizes());
  TORCH_CHECK_TYPE(at::isFloatingType(t.scalar_type()), op, ": argument '", name,
                   "' must be a floating-point tensor; got ", t.scalar_type());
  TORCH_CHECK_VALUE(t.numel() > 0, op, ": argument '", name, "' is empty (shape ", t.sizes(), ")");
}

void check_same_device_dtype(const char* op, const char* ref_name, const at::Tensor& ref,
                             const char* name, const at::Tensor& other) {
  TORCH_CHECK_VALUE(other.device() == ref.device(), op, ": argument '", name, "' is on ",
                    other.device(), " but '", ref_name, "' is on ", ref.device());
  TORCH_CHECK_TYPE(other.scalar_type() == ref.scalar_type(), op, ": argument '", name,
                   "' has dtype ", other.scalar_type(), " but '", ref_name, "' has ",
                   ref.scalar_type());
}

void check_field_for(const char* op, const char* name, const at::Tensor& field,
                     const char* image_name, const at::Tensor& image) {
  check_spatial_tensor(op, name, field);
  const int64_t ndim = image.dim() - 2;
  bool ok = field.dim() == image.dim() && field.size(0) == image.size(0) && field.size(1) == ndim;
  for (int64_t k = 2; ok && k < image.dim(); ++k) ok = field.size(k) == image.size(k);
  TORCH_CHECK_VALUE(ok, op, ": argument '", name, "' must have shape (B, ", ndim,
                    ", *spatial) matching '", image_name, "' ", image.sizes(), "; got ",
                    field.sizes());
  check_same_device_dtype(op, image_name, image, name, field);
}

Padding parse_padding(const char* op, c10::string_view padding) {
  if (padding == "border") return Padding::Border;
  if (padding == "zeros") return Padding::Zeros;
  TORCH_CHECK_VALUE(false, op, ": argument 'padding' must be \"border\" or \"zeros\"; got \"",
                    std::string(padding), "\"");
}

Interpolation parse_interpolation(const char* op, c10::string_view mode) {
  if (mode == "bilinear" || mode == "trilinear" || mode == "linear") return Interpolation::Linear;
  if (mode == "nearest") return Interpolation::Nearest;
  TORCH_CHECK_VALUE(false, op, ": argument 'mode' must be \"bilinear\", \"trilinear\" or \"nearest\"; got \"",
                    std::string(mode), "\"");
}

}  // namespace motionext
