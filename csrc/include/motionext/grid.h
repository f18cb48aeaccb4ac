// The voxel grid of a contiguous (B, C, *spatial) tensor, and the option enums shared by the ops.
#pragma once

#include <cstdint>

#include "motionext/macros.h"

namespace motionext {

enum class Padding : int { Border = 0, Zeros = 1 };
enum class Interpolation : int { Linear = 0, Nearest = 1 };

template <int NDIM>
struct Grid {
  int64_t size[NDIM];
  int64_t stride[NDIM];  // contiguous strides of the spatial axes, last axis fastest
  int64_t numel;         // voxels per channel

  // Flat voxel index -> integer coordinates.
  MOTIONEXT_INLINE void unravel(int64_t voxel, int64_t (&index)[NDIM]) const {
    for (int k = 0; k < NDIM; ++k) {
      index[k] = voxel / stride[k];
      voxel -= index[k] * stride[k];
    }
  }

  // Step the coordinates to the next voxel in memory order (an odometer: no division).
  MOTIONEXT_INLINE void advance(int64_t (&index)[NDIM]) const {
    for (int k = NDIM - 1; k > 0; --k) {
      if (++index[k] < size[k]) return;
      index[k] = 0;
    }
    ++index[0];
  }
};

// True for finite values; written without <cmath> so it means the same on host and device.
template <typename T>
MOTIONEXT_INLINE bool is_finite(T x) {
  return (x - x) == T(0);
}

// floor() as an integer, without a libm call on baseline x86-64 (no SSE4.1 round instruction).
// x must lie well inside the int64 range; callers clamp coordinates first.
template <typename T>
MOTIONEXT_INLINE int64_t floor_to_index(T x) {
  const int64_t i = static_cast<int64_t>(x);  // truncates toward zero
  return i - (static_cast<T>(i) > x ? 1 : 0);
}

}  // namespace motionext
