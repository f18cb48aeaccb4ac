// A vectorised CPU path for the most common warps: 2D, float32, bilinear; warp forward, its
// displacement gradient, and the scaling-and-squaring step and its adjoint. Eight voxels of a
// row at a time: plain vector loads and adds where their points share one cell pattern inside
// the image, or two neighbouring rows and column offsets of cells (blended loads), the 3 x 3
// voxels around each point's own where the squaring moves points by under a voxel, and 64-bit
// pair loads and a scatter elsewhere. Compiled for AVX2 and FMA only and chosen at run time,
// so the library still runs on any x86-64 (and elsewhere the scalar shared math in
// motionext/warp.h serves). It computes exactly that math, up to float rounding; the
// tests check one against the other (MOTIONEXT_CPU_SIMD=0 turns it off).
#pragma once

#include <cstdint>

#include "motionext/grid.h"

namespace motionext {
namespace cpu {

// True when this build has the path, the CPU has AVX2 and FMA, and MOTIONEXT_CPU_SIMD is not "0".
bool avx2_path_active();

// avx2_path_active(), and the images have at least 2 rows and 2 columns and are small enough
// for 32-bit offsets.
bool warp2d_avx2_usable(const Grid<2>& grid);

// out (B, C, H, W) = image warped by displacement (B, 2, H, W).
void warp2d_avx2_forward(const float* image, const float* displacement, float* out, int64_t batch,
                         int64_t channels, const Grid<2>& grid, Padding padding);

// out (B, C, H, W) as warp2d_avx2_forward, and gradient (B, C, 2, H, W): the image's derivative at
// each sample point along both axes (what grad_displacement is made of).
void warp2d_avx2_forward_with_gradient(const float* image, const float* displacement, float* out, float* gradient,
                                       int64_t batch, int64_t channels, const Grid<2>& grid, Padding padding);

// grad_displacement (B, 2, H, W) from grad_output (B, C, H, W); no image gradient.
void warp2d_avx2_displacement_grad(const float* grad_output, const float* image, const float* displacement,
                                   float* grad_displacement, int64_t batch, int64_t channels,
                                   const Grid<2>& grid, Padding padding);

// Both gradients: grad_image (B, C, H, W, zeroed) += the spread of grad_output onto the corners each
// point read, and grad_displacement (B, 2, H, W) when not null. Each thread owns whole batch items,
// so callers use it only when there are at least as many items as threads.
void warp2d_avx2_backward(const float* grad_output, const float* image, const float* displacement, float* grad_image,
                          float* grad_displacement, int64_t batch, int64_t channels, const Grid<2>& grid,
                          Padding padding);

// One scaling-and-squaring step, u_next = scale * (field + field(x + scale * field)), fields (B, 2, H, W).
void squaring2d_avx2_step(const float* field, float scale, float* u_next, int64_t batch, const Grid<2>& grid,
                          Padding padding);

// Its adjoint, grad (zeroed) += adjoint applied to g_next. Each thread owns whole batch items, so
// callers use it only when there are at least as many items as threads.
void squaring2d_avx2_step_backward(const float* field, float scale, const float* g_next, float* grad, int64_t batch,
                                   const Grid<2>& grid, Padding padding);

}  // namespace cpu
}  // namespace motionext
