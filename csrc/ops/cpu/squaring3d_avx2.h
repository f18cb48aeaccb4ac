// A vectorised CPU path for the 3D scaling-and-squaring step and its adjoint (float32,
// trilinear). Eight voxels along the last axis at a time: their stencils in vectors, each point's
// two corners along the last axis read as one 64-bit pair (four cell rows per channel), and the
// adjoint's spread as scalar adds of masked values. Compiled for AVX2 and FMA and chosen at run
// time like the 2D path (warp2d_avx2.h); it computes the scalar shared math of
// motionext/scaling_squaring.h up to float rounding (tests/test_ops_simd.py checks one against
// the other).
#pragma once

#include <cstdint>

#include "motionext/grid.h"

namespace motionext {
namespace cpu {

// The AVX2 path is active (avx2_path_active()), every axis has at least 2 voxels, the last at
// least 8, and offsets fit 32 bits.
bool squaring3d_avx2_usable(const Grid<3>& grid);

// One step, u_next = scale * (field + field(x + scale * field)), fields (B, 3, *spatial).
void squaring3d_avx2_step(const float* field, float scale, float* u_next, int64_t batch, const Grid<3>& grid,
                          Padding padding);

// Its adjoint, grad (zeroed) += adjoint applied to g_next; any batch size. With fewer items than
// threads each thread owns a slab of planes, or, for fields that move points too far, a range of
// rows with a private copy (spread_in_ranges).
void squaring3d_avx2_step_backward(const float* field, float scale, const float* g_next, float* grad, int64_t batch,
                                   const Grid<3>& grid, Padding padding);

}  // namespace cpu
}  // namespace motionext
