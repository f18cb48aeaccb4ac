// Pieces of the AVX2 paths that 2D and 3D share (warp2d_avx2.cpp, squaring3d_avx2.cpp): the
// target attribute, one axis of the linear stencil for 8 points, and the pair loads of a cell's two
// neighbouring corners along the last axis.
#pragma once

#include <cstdint>

#include "motionext/grid.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define MOTIONEXT_HAVE_AVX2_PATH 1
#include <immintrin.h>
#define MOTIONEXT_AVX2 __attribute__((target("avx2,fma")))
#else
#define MOTIONEXT_HAVE_AVX2_PATH 0
#endif

namespace motionext {
namespace cpu {

#if MOTIONEXT_HAVE_AVX2_PATH

// One axis of the linear stencil for 8 sample coordinates, as in linear_stencil(), but on a
// cell that always lies inside the image: neighbours q and q + 1 with 0 <= q <= size - 2. A
// point whose own neighbours are the last index and the one after it (or -1 and 0) moves to
// the inner cell with the outside neighbour's weight 0, which interpolates the same. So the
// two neighbours of every point are adjacent in memory and inside the image, and the corners
// can be read as pairs (see load_pairs()). Needs size >= 2.
struct Axis {
  __m256i q;             // the lower neighbour
  __m256 w_lo, w_hi;     // weights of q and q + 1, 0 for a neighbour outside the image
  __m256 dw_lo, dw_hi;   // their derivatives, 0 where border padding clamped the point
};

MOTIONEXT_AVX2 inline Axis axis_stencil(__m256 p, int64_t size, Padding padding) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const float last = static_cast<float>(size - 1);
  Axis a;
  __m256 slope = one;
  if (padding == Padding::Border) {
    // max/min return their second operand for NaN, so a NaN point lands on the image too.
    const __m256 clamped = _mm256_min_ps(_mm256_max_ps(p, _mm256_setzero_ps()), _mm256_set1_ps(last));
    slope = _mm256_and_ps(_mm256_cmp_ps(clamped, p, _CMP_EQ_OQ), one);
    p = clamped;
  } else {
    p = _mm256_min_ps(_mm256_max_ps(p, _mm256_set1_ps(-2.0f)), _mm256_set1_ps(last + 2.0f));
  }
  const __m256 floor = _mm256_floor_ps(p);
  const __m256 frac = _mm256_sub_ps(p, floor);
  const __m256i lo = _mm256_cvttps_epi32(floor);
  const __m256i zero = _mm256_setzero_si256();
  // Both neighbours of every point inside (0 <= lo <= size - 2), as for nearly every block away
  // from the image's edge: the masks and blends below would all keep these values.
  const __m256i outside = _mm256_or_si256(_mm256_cmpgt_epi32(zero, lo),
                                          _mm256_cmpgt_epi32(lo, _mm256_set1_epi32(static_cast<int>(size - 2))));
  if (_mm256_testz_si256(outside, outside)) {
    a.q = lo;
    a.w_lo = _mm256_sub_ps(one, frac);
    a.w_hi = frac;
    a.dw_lo = _mm256_sub_ps(_mm256_setzero_ps(), slope);
    a.dw_hi = slope;
    return a;
  }
  const __m256i hi = _mm256_add_epi32(lo, _mm256_set1_epi32(1));
  const __m256i top = _mm256_set1_epi32(static_cast<int>(size - 1));
  // inside: 0 <= index <= size - 1
  const __m256 in_lo = _mm256_and_ps(
      _mm256_castsi256_ps(_mm256_andnot_si256(_mm256_or_si256(_mm256_cmpgt_epi32(zero, lo), _mm256_cmpgt_epi32(lo, top)),
                                              _mm256_set1_epi32(-1))), one);
  const __m256 in_hi = _mm256_and_ps(
      _mm256_castsi256_ps(_mm256_andnot_si256(_mm256_or_si256(_mm256_cmpgt_epi32(zero, hi), _mm256_cmpgt_epi32(hi, top)),
                                              _mm256_set1_epi32(-1))), one);
  const __m256 w_lo = _mm256_mul_ps(_mm256_sub_ps(one, frac), in_lo), w_hi = _mm256_mul_ps(frac, in_hi);
  const __m256 dw_lo = _mm256_mul_ps(_mm256_sub_ps(_mm256_setzero_ps(), slope), in_lo);
  const __m256 dw_hi = _mm256_mul_ps(slope, in_hi);
  // lo == size - 1: the weight moves to the cell's upper neighbour; lo == -1: to its lower one
  const __m256 at_last = _mm256_castsi256_ps(_mm256_cmpeq_epi32(lo, top));
  const __m256 before_first = _mm256_castsi256_ps(_mm256_cmpeq_epi32(lo, _mm256_set1_epi32(-1)));
  const __m256 none = _mm256_setzero_ps();
  a.q = _mm256_min_epi32(_mm256_max_epi32(lo, zero), _mm256_set1_epi32(static_cast<int>(size - 2)));
  a.w_lo = _mm256_blendv_ps(_mm256_blendv_ps(w_lo, none, at_last), w_hi, before_first);
  a.w_hi = _mm256_blendv_ps(_mm256_blendv_ps(w_hi, w_lo, at_last), none, before_first);
  a.dw_lo = _mm256_blendv_ps(_mm256_blendv_ps(dw_lo, none, at_last), dw_hi, before_first);
  a.dw_hi = _mm256_blendv_ps(_mm256_blendv_ps(dw_hi, dw_lo, at_last), none, before_first);
  return a;
}

// Corners 0 and 1 of one cell row for 8 points, whose pairs start at row + offsets[L]: one 64-bit
// load per point, then a transpose. AVX2 gathers cost about twice as much here (measured).
MOTIONEXT_AVX2 inline void load_pairs(const float* row, const int32_t (&offsets)[8], __m256& first, __m256& second) {
  auto pair = [&](int lane, __m128 into, bool high) {
    const __m64* at = reinterpret_cast<const __m64*>(row + offsets[lane]);
    return high ? _mm_loadh_pi(into, at) : _mm_loadl_pi(into, at);
  };
  const __m128 none = _mm_setzero_ps();
  const __m128 p01 = pair(1, pair(0, none, false), true), p23 = pair(3, pair(2, none, false), true);
  const __m128 p45 = pair(5, pair(4, none, false), true), p67 = pair(7, pair(6, none, false), true);
  // lanes 0, 1, 4, 5 and 2, 3, 6, 7, each as (corner 0, corner 1)
  const __m256 even = _mm256_insertf128_ps(_mm256_castps128_ps256(p01), p45, 1);
  const __m256 odd = _mm256_insertf128_ps(_mm256_castps128_ps256(p23), p67, 1);
  first = _mm256_shuffle_ps(even, odd, _MM_SHUFFLE(2, 0, 2, 0));
  second = _mm256_shuffle_ps(even, odd, _MM_SHUFFLE(3, 1, 3, 1));
}

#endif

}  // namespace cpu
}  // namespace motionext
