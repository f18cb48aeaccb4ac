// Per-voxel interpolation math shared by the CPU and CUDA kernels of warp and
// scaling-and-squaring: where a sample point falls, its neighbours' weights and the weights'
// derivatives, for linear (bi/trilinear) and nearest-neighbour sampling.
#pragma once

#include <cmath>
#include <cstdint>

#include "motionext/grid.h"

namespace motionext {

// The voxels a sample point reads and how much each counts. Corners outside the image
// (zeros padding) have offset -1 and are skipped; their padding value is zero.
template <int NDIM, typename T, Interpolation kMode>
struct Stencil {
  static constexpr int kCount = kMode == Interpolation::Linear ? 1 << NDIM : 1;
  int64_t offset[kCount];      // flat spatial offset, or -1 outside
  T weight[kCount];
  T dweight[NDIM][kCount];     // d weight / d position_k; zero where border padding clamped
};

// Build the linear stencil at a (finite) position given in voxel coordinates.
// kDerivative: also fill dweight (only the backward passes need it).
template <bool kDerivative, int NDIM, typename T>
MOTIONEXT_INLINE void linear_stencil(const T (&position)[NDIM], const Grid<NDIM>& grid,
                                     Padding padding, Stencil<NDIM, T, Interpolation::Linear>& s) {
  int64_t lo[NDIM];
  bool lo_in[NDIM], hi_in[NDIM];
  T frac[NDIM], slope[NDIM];
  for (int k = 0; k < NDIM; ++k) {
    T p = position[k];
    const T last = static_cast<T>(grid.size[k] - 1);
    slope[k] = T(1);
    if (padding == Padding::Border) {
      // Border clamps the point onto the image; the clamped coordinate no longer moves with p.
      if (p < T(0)) { p = T(0); slope[k] = T(0); }
      else if (p > last) { p = last; slope[k] = T(0); }
    } else {
      // Two voxels outside, every neighbour is padding; clamping there keeps floor() in range.
      if (p < T(-2)) p = T(-2);
      else if (p > last + T(2)) p = last + T(2);
    }
    lo[k] = floor_to_index(p);
    frac[k] = p - static_cast<T>(lo[k]);
    lo_in[k] = lo[k] >= 0 && lo[k] < grid.size[k];
    hi_in[k] = lo[k] + 1 >= 0 && lo[k] + 1 < grid.size[k];
  }
  for (int c = 0; c < (1 << NDIM); ++c) {
    bool inside = true;
    int64_t offset = 0;
    T w = T(1);
    for (int k = 0; k < NDIM; ++k) {
      const bool hi = (c >> (NDIM - 1 - k)) & 1;
      inside = inside && (hi ? hi_in[k] : lo_in[k]);
      offset += (lo[k] + hi) * grid.stride[k];
      w *= hi ? frac[k] : T(1) - frac[k];
    }
    s.offset[c] = inside ? offset : -1;
    s.weight[c] = w;
    if (!kDerivative) continue;
    for (int k = 0; k < NDIM; ++k) {
      T d = slope[k];
      for (int j = 0; j < NDIM; ++j) {
        const bool hi = (c >> (NDIM - 1 - j)) & 1;
        if (j == k) d *= hi ? T(1) : T(-1);
        else d *= hi ? frac[j] : T(1) - frac[j];
      }
      s.dweight[k][c] = d;
    }
  }
}

// Nearest neighbour: one corner, rounding half to even as grid_sample does; no derivative.
template <int NDIM, typename T>
MOTIONEXT_INLINE void nearest_stencil(const T (&position)[NDIM], const Grid<NDIM>& grid,
                                      Padding padding, Stencil<NDIM, T, Interpolation::Nearest>& s) {
  bool inside = true;
  int64_t offset = 0;
  for (int k = 0; k < NDIM; ++k) {
    T p = position[k];
    const T last = static_cast<T>(grid.size[k] - 1);
    if (padding == Padding::Border) {
      p = p < T(0) ? T(0) : (p > last ? last : p);
    } else {
      p = p < T(-2) ? T(-2) : (p > last + T(2) ? last + T(2) : p);
    }
    const int64_t i = static_cast<int64_t>(nearbyint(p));
    inside = inside && i >= 0 && i < grid.size[k];
    offset += i * grid.stride[k];
  }
  s.offset[0] = inside ? offset : -1;
  s.weight[0] = T(1);
  for (int k = 0; k < NDIM; ++k) s.dweight[k][0] = T(0);
}

template <bool kDerivative, int NDIM, typename T>
MOTIONEXT_INLINE void make_stencil(const T (&position)[NDIM], const Grid<NDIM>& grid,
                                   Padding padding, Stencil<NDIM, T, Interpolation::Linear>& s) {
  linear_stencil<kDerivative>(position, grid, padding, s);
}

template <bool kDerivative, int NDIM, typename T>
MOTIONEXT_INLINE void make_stencil(const T (&position)[NDIM], const Grid<NDIM>& grid,
                                   Padding padding, Stencil<NDIM, T, Interpolation::Nearest>& s) {
  nearest_stencil(position, grid, padding, s);
}

// Sample point of voxel `index`: index + scale * displacement, the displacement read from a
// (ndim, *spatial) block with `channel_stride` between its channels. False if not finite.
template <int NDIM, typename T, typename field_t>
MOTIONEXT_INLINE bool sample_position(const int64_t (&index)[NDIM], const field_t* displacement,
                                      int64_t channel_stride, int64_t voxel, T (&position)[NDIM],
                                      T scale = T(1)) {
  bool finite = true;
  for (int k = 0; k < NDIM; ++k) {
    position[k] = static_cast<T>(index[k]) + scale * static_cast<T>(displacement[k * channel_stride + voxel]);
    finite = finite && is_finite(position[k]);
  }
  return finite;
}

// Interpolated value of one channel.
template <int NDIM, typename T, Interpolation kMode, typename in_t>
MOTIONEXT_INLINE T interpolate(const in_t* channel, const Stencil<NDIM, T, kMode>& s) {
  T value = T(0);
  for (int c = 0; c < Stencil<NDIM, T, kMode>::kCount; ++c) {
    if (s.offset[c] >= 0) value += s.weight[c] * static_cast<T>(channel[s.offset[c]]);
  }
  return value;
}

// d(interpolated value of one channel) / d position_k.
template <int NDIM, typename T, Interpolation kMode, typename in_t>
MOTIONEXT_INLINE T interpolate_derivative(const in_t* channel, const Stencil<NDIM, T, kMode>& s, int k) {
  T value = T(0);
  for (int c = 0; c < Stencil<NDIM, T, kMode>::kCount; ++c) {
    if (s.offset[c] >= 0) value += s.dweight[k][c] * static_cast<T>(channel[s.offset[c]]);
  }
  return value;
}

// Adjoint of interpolate: spread `grad` onto the corners. `Add` is a plain or atomic add.
template <int NDIM, typename T, Interpolation kMode, typename Add, typename grad_t>
MOTIONEXT_INLINE void spread(grad_t* channel, const Stencil<NDIM, T, kMode>& s, T grad, const Add& add) {
  for (int c = 0; c < Stencil<NDIM, T, kMode>::kCount; ++c) {
    if (s.offset[c] >= 0) add(channel + s.offset[c], s.weight[c] * grad);
  }
}

}  // namespace motionext
