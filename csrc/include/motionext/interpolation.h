// Per-voxel interpolation math shared by the CPU and CUDA kernels of warp and
// scaling-and-squaring: where a sample point falls, its neighbours' weights and the weights'
// derivatives, for linear (bi/trilinear) and nearest-neighbour sampling.
#pragma once

#include <cmath>
#include <cstdint>

#include "motionext/grid.h"

namespace motionext {

// The voxels a sample point reads and how much each counts. Every corner lies inside the image,
// so reads are always in bounds; a neighbour outside the image (zeros padding) gets weight 0
// instead, which keeps the per-voxel math free of branches.
template <int NDIM, typename T, Interpolation kMode>
struct Stencil {
  static constexpr int kCount = kMode == Interpolation::Linear ? 1 << NDIM : 1;
  int64_t offset[kCount];      // flat spatial offset, always inside the image
  T weight[kCount];            // 0 for corners outside the image
  T dweight[NDIM][kCount];     // d weight / d position_k; zero where border padding clamped
};

// Build the linear stencil at a (finite) position given in voxel coordinates.
// kDerivative: also fill dweight (only the backward passes need it).
template <bool kDerivative, int NDIM, typename T>
MOTIONEXT_INLINE void linear_stencil(const T (&position)[NDIM], const Grid<NDIM>& grid,
                                     Padding padding, Stencil<NDIM, T, Interpolation::Linear>& s) {
  // Per axis: the two neighbours' offsets and weights, and the weights' derivatives.
  int64_t off[NDIM][2];
  T w[NDIM][2], dw[NDIM][2];
  for (int k = 0; k < NDIM; ++k) {
    T p = position[k];
    const int64_t size = grid.size[k];
    const T last = static_cast<T>(size - 1);
    T slope = T(1);
    if (padding == Padding::Border) {
      // Border clamps the point onto the image; the clamped coordinate no longer moves with p.
      if (p < T(0)) { p = T(0); slope = T(0); }
      else if (p > last) { p = last; slope = T(0); }
    } else {
      // Two voxels outside, every neighbour is padding; clamping there keeps the index in range.
      if (p < T(-2)) p = T(-2);
      else if (p > last + T(2)) p = last + T(2);
    }
    const int64_t lo = floor_to_index(p);
    const T frac = p - static_cast<T>(lo);
    const T in_lo = (lo >= 0 && lo < size) ? T(1) : T(0);
    const T in_hi = (lo + 1 >= 0 && lo + 1 < size) ? T(1) : T(0);
    const T w_lo = (T(1) - frac) * in_lo, w_hi = frac * in_hi;
    const T dw_lo = -slope * in_lo, dw_hi = slope * in_hi;
    // The cell read is always inside the image, voxels q and q + 1 (when size >= 2): a point
    // between the last voxel and the one after it (or -1 and 0) reads the inner cell, its outside
    // neighbour's weight 0 moving to the other corner. It interpolates the same, and lets the
    // vectorised CPU path read both neighbours as one adjacent pair. Selects, not branches:
    // the hot loops stay branch-free.
    const bool at_last = size >= 2 && lo == size - 1, before_first = lo == -1;
    const int64_t q = lo < 0 ? 0 : (lo > size - 2 ? (size >= 2 ? size - 2 : 0) : lo);
    w[k][0] = at_last ? T(0) : (before_first ? w_hi : w_lo);
    w[k][1] = at_last ? w_lo : (before_first ? T(0) : w_hi);
    dw[k][0] = at_last ? T(0) : (before_first ? dw_hi : dw_lo);
    dw[k][1] = at_last ? dw_lo : (before_first ? T(0) : dw_hi);
    off[k][0] = q * grid.stride[k];
    off[k][1] = (q + 1 < size ? q + 1 : q) * grid.stride[k];
  }
  for (int c = 0; c < (1 << NDIM); ++c) {
    int64_t offset = 0;
    T weight = T(1);
    for (int k = 0; k < NDIM; ++k) {
      const int hi = (c >> (NDIM - 1 - k)) & 1;
      offset += off[k][hi];
      weight *= w[k][hi];
    }
    s.offset[c] = offset;
    s.weight[c] = weight;
    if (!kDerivative) continue;
    for (int k = 0; k < NDIM; ++k) {
      T d = T(1);
      for (int j = 0; j < NDIM; ++j) {
        const int hi = (c >> (NDIM - 1 - j)) & 1;
        d *= j == k ? dw[j][hi] : w[j][hi];
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
    offset += (i < 0 ? 0 : (i >= grid.size[k] ? grid.size[k] - 1 : i)) * grid.stride[k];
  }
  s.offset[0] = offset;
  s.weight[0] = inside ? T(1) : T(0);
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
    value += s.weight[c] * static_cast<T>(channel[s.offset[c]]);
  }
  return value;
}

// d(interpolated value of one channel) / d position_k.
template <int NDIM, typename T, Interpolation kMode, typename in_t>
MOTIONEXT_INLINE T interpolate_derivative(const in_t* channel, const Stencil<NDIM, T, kMode>& s, int k) {
  T value = T(0);
  for (int c = 0; c < Stencil<NDIM, T, kMode>::kCount; ++c) {
    value += s.dweight[k][c] * static_cast<T>(channel[s.offset[c]]);
  }
  return value;
}

// Adjoint of interpolate: spread `grad` onto the corners. `Add` is a plain or atomic add.
template <int NDIM, typename T, Interpolation kMode, typename Add, typename grad_t>
MOTIONEXT_INLINE void spread(grad_t* channel, const Stencil<NDIM, T, kMode>& s, T grad, const Add& add) {
  for (int c = 0; c < Stencil<NDIM, T, kMode>::kCount; ++c) {
    if (s.weight[c] != T(0)) add(channel + s.offset[c], s.weight[c] * grad);
  }
}

}  // namespace motionext
