// Per-voxel math of warp(image, u)(x) = image(x + u(x)), forward and backward,
// shared by the CPU and CUDA kernels. Pointers are to one batch item of contiguous tensors:
// image and output (C, *spatial), displacement (ndim, *spatial).
#pragma once

#include "motionext/interpolation.h"

namespace motionext {

template <typename T>
MOTIONEXT_INLINE T quiet_nan() {
  return T(0) / T(0);  // NaN on host and device; used where a sample point is not finite
}

template <int NDIM, typename T, Interpolation kMode, typename image_t, typename field_t, typename out_t>
MOTIONEXT_INLINE void warp_voxel_forward(const image_t* image, const field_t* displacement,
                                         out_t* out, int64_t channels, const Grid<NDIM>& grid,
                                         int64_t voxel, const int64_t (&index)[NDIM],
                                         Padding padding) {
  T position[NDIM];
  const int64_t n = grid.numel;
  if (!sample_position(index, displacement, n, voxel, position)) {
    for (int64_t ch = 0; ch < channels; ++ch) out[ch * n + voxel] = static_cast<out_t>(quiet_nan<T>());
    return;
  }
  Stencil<NDIM, T, kMode> s;
  make_stencil<false>(position, grid, padding, s);
  for (int64_t ch = 0; ch < channels; ++ch) {
    out[ch * n + voxel] = static_cast<out_t>(interpolate(image + ch * n, s));
  }
}

// Linear warping of one voxel and, for each channel ch and axis k, the derivative of its value by
// the sample point: gradient (C, NDIM, *spatial) at (ch * NDIM + k) * n + voxel. Both are NaN where
// the sample point is not finite, as warp_voxel_backward's displacement gradient is.
template <int NDIM, typename T, typename image_t, typename field_t, typename out_t>
MOTIONEXT_INLINE void warp_voxel_forward_with_gradient(const image_t* image, const field_t* displacement, out_t* out,
                                                       out_t* gradient, int64_t channels, const Grid<NDIM>& grid,
                                                       int64_t voxel, const int64_t (&index)[NDIM], Padding padding) {
  T position[NDIM];
  const int64_t n = grid.numel;
  const bool finite = sample_position(index, displacement, n, voxel, position);
  Stencil<NDIM, T, Interpolation::Linear> s;
  if (finite) make_stencil<true>(position, grid, padding, s);
  for (int64_t ch = 0; ch < channels; ++ch) {
    out[ch * n + voxel] = static_cast<out_t>(finite ? interpolate(image + ch * n, s) : quiet_nan<T>());
    for (int k = 0; k < NDIM; ++k) {
      gradient[(ch * NDIM + k) * n + voxel] =
          static_cast<out_t>(finite ? interpolate_derivative(image + ch * n, s, k) : quiet_nan<T>());
    }
  }
}

// grad_image (may be null) receives the spread of grad_output through `add`;
// grad_displacement (may be null) is written at this voxel only.
template <int NDIM, typename T, Interpolation kMode, typename image_t, typename field_t,
          typename grad_t, typename gimage_t, typename gfield_t, typename Add>
MOTIONEXT_INLINE void warp_voxel_backward(const grad_t* grad_output, const image_t* image,
                                          const field_t* displacement, gimage_t* grad_image,
                                          gfield_t* grad_displacement, int64_t channels,
                                          const Grid<NDIM>& grid, int64_t voxel,
                                          const int64_t (&index)[NDIM], Padding padding,
                                          const Add& add) {
  T position[NDIM];
  const int64_t n = grid.numel;
  if (!sample_position(index, displacement, n, voxel, position)) {
    if (grad_displacement) {
      for (int k = 0; k < NDIM; ++k) grad_displacement[k * n + voxel] = static_cast<gfield_t>(quiet_nan<T>());
    }
    return;
  }
  Stencil<NDIM, T, kMode> s;
  make_stencil<true>(position, grid, padding, s);
  T gpos[NDIM];
  for (int k = 0; k < NDIM; ++k) gpos[k] = T(0);
  for (int64_t ch = 0; ch < channels; ++ch) {
    const T g = static_cast<T>(grad_output[ch * n + voxel]);
    if (grad_image) spread(grad_image + ch * n, s, g, add);
    if (grad_displacement && kMode == Interpolation::Linear) {
      for (int k = 0; k < NDIM; ++k) gpos[k] += g * interpolate_derivative(image + ch * n, s, k);
    }
  }
  if (grad_displacement) {
    for (int k = 0; k < NDIM; ++k) grad_displacement[k * n + voxel] = static_cast<gfield_t>(gpos[k]);
  }
}

}  // namespace motionext
