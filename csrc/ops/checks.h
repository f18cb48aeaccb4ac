// Argument checks shared by the CPU and CUDA implementations of every op. Each message names
// the op and the argument, so a user calling torch.ops.motionext.* directly sees what is wrong.
#pragma once

#include <string>

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <c10/util/string_view.h>

#include "motionext/grid.h"

namespace motionext {

// A (B, C, *spatial) tensor with 2 or 3 spatial axes, floating point, not empty.
void check_spatial_tensor(const char* op, const char* name, const at::Tensor& t);

// `other` lies on the same device and has the same dtype as `ref`.
void check_same_device_dtype(const char* op, const char* ref_name, const at::Tensor& ref,
                             const char* name, const at::Tensor& other);

// A displacement/velocity field (B, ndim, *spatial) for an image of the given shape.
void check_field_for(const char* op, const char* name, const at::Tensor& field,
                     const char* image_name, const at::Tensor& image);

Padding parse_padding(const char* op, c10::string_view padding);
Interpolation parse_interpolation(const char* op, c10::string_view mode);

// Grid of the spatial axes of a contiguous (B, C, *spatial) tensor.
template <int NDIM>
Grid<NDIM> make_grid(const at::Tensor& t) {
  Grid<NDIM> g;
  int64_t stride = 1;
  for (int k = NDIM - 1; k >= 0; --k) {
    g.size[k] = t.size(2 + k);
    g.stride[k] = stride;
    stride *= g.size[k];
  }
  g.numel = stride;
  return g;
}

}  // namespace motionext

// Run BODY with the compile-time constant NDIM set to 2 or 3.
#define MOTIONEXT_DISPATCH_NDIM(ndim, ...)            \
  [&] {                                               \
    if ((ndim) == 2) {                                \
      constexpr int NDIM = 2;                         \
      return __VA_ARGS__();                           \
    }                                                 \
    constexpr int NDIM = 3;                           \
    return __VA_ARGS__();                             \
  }()

// Run BODY with the compile-time constant MODE set to the interpolation mode.
#define MOTIONEXT_DISPATCH_MODE(mode, ...)                                       \
  [&] {                                                                          \
    if ((mode) == ::motionext::Interpolation::Nearest) {                         \
      constexpr ::motionext::Interpolation MODE = ::motionext::Interpolation::Nearest; \
      return __VA_ARGS__();                                                      \
    }                                                                            \
    constexpr ::motionext::Interpolation MODE = ::motionext::Interpolation::Linear; \
    return __VA_ARGS__();                                                        \
  }()
