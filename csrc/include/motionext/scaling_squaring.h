// Per-voxel math of one scaling-and-squaring step, u_next(x) = u(x) + u(x + u(x)),
// and of its adjoint, shared by the CPU and CUDA kernels. Fields are one batch item,
// contiguous (ndim, *spatial). The step reads u = scale * field, so the first step can read the
// velocity itself (scale 2^-steps) and u_0 is never stored; results are in the op-math type T.
#pragma once

#include "motionext/interpolation.h"
#include "motionext/warp.h"

namespace motionext {

template <int NDIM, typename T, typename field_t>
MOTIONEXT_INLINE void squaring_voxel_forward(const field_t* u, T scale, T* u_next, const Grid<NDIM>& grid,
                                             int64_t voxel, const int64_t (&index)[NDIM],
                                             Padding padding) {
  const int64_t n = grid.numel;
  T position[NDIM];
  if (!sample_position(index, u, n, voxel, position, scale)) {
    for (int k = 0; k < NDIM; ++k) u_next[k * n + voxel] = quiet_nan<T>();
    return;
  }
  Stencil<NDIM, T, Interpolation::Linear> s;
  linear_stencil<false>(position, grid, padding, s);
  for (int k = 0; k < NDIM; ++k) {
    u_next[k * n + voxel] = scale * (static_cast<T>(u[k * n + voxel]) + interpolate(u + k * n, s));
  }
}

// Given g_next = dL/du_next, accumulate dL/du into `grad` (zeroed by the caller): the identity
// term and the derivative through the sample point at this voxel, and the spread of g_next
// onto the corners the voxel read. Every write goes through `add`, since other voxels spread
// onto this one concurrently.
template <int NDIM, typename T, typename field_t, typename Add>
MOTIONEXT_INLINE void squaring_voxel_backward(const field_t* u, T scale, const T* g_next, T* grad,
                                              const Grid<NDIM>& grid, int64_t voxel,
                                              const int64_t (&index)[NDIM], Padding padding,
                                              const Add& add) {
  const int64_t n = grid.numel;
  T position[NDIM];
  if (!sample_position(index, u, n, voxel, position, scale)) {
    for (int k = 0; k < NDIM; ++k) add(grad + k * n + voxel, quiet_nan<T>());
    return;
  }
  Stencil<NDIM, T, Interpolation::Linear> s;
  linear_stencil<true>(position, grid, padding, s);
  T local[NDIM];
  for (int k = 0; k < NDIM; ++k) local[k] = T(0);
  // The derivatives first, so that no write through `add` (which may alias u as far as the
  // compiler knows) comes between the reads of a channel's corners.
  for (int ch = 0; ch < NDIM; ++ch) {
    const T g = g_next[ch * n + voxel];
    for (int k = 0; k < NDIM; ++k) local[k] += g * scale * interpolate_derivative(u + ch * n, s, k);
  }
  for (int ch = 0; ch < NDIM; ++ch) spread(grad + ch * n, s, static_cast<T>(g_next[ch * n + voxel]), add);
  for (int k = 0; k < NDIM; ++k) add(grad + k * n + voxel, g_next[k * n + voxel] + local[k]);
}

}  // namespace motionext
