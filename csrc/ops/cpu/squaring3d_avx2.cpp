// See squaring3d_avx2.h. As in warp2d_avx2.cpp, the vector functions carry the AVX2 target
// attribute and the parallel loops' lambdas only call them.
#include "squaring3d_avx2.h"

#include <algorithm>
#include <vector>

#include <ATen/Parallel.h>

#include "motionext/scaling_squaring.h"
#include "avx2_stencil.h"
#include "parallel.h"
#include "warp2d_avx2.h"

namespace motionext {
namespace cpu {

#if MOTIONEXT_HAVE_AVX2_PATH

namespace {

// Rows along the last axis per task of the forward step.
constexpr int64_t kRowsPerTask = 8;

// The trilinear stencil of the 8 voxels (i0, i1, j..j+7), as linear_stencil() builds it per voxel.
struct Stencil3 {
  Axis axis[3];
  alignas(32) int32_t corner[8];  // flat offset of each point's corner (q0, q1, q2)
  __m256 finite;                  // all-ones where the sample point is finite
};

MOTIONEXT_AVX2 inline void block_stencil(const float* u, int64_t n, int64_t voxel, int64_t i0, int64_t i1, int64_t j,
                                         float scale, const Grid<3>& grid, Padding padding, Stencil3& s) {
  const __m256 factor = _mm256_set1_ps(scale);
  const __m256 lanes = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256 p[3] = {
      _mm256_fmadd_ps(factor, _mm256_loadu_ps(u + voxel), _mm256_set1_ps(static_cast<float>(i0))),
      _mm256_fmadd_ps(factor, _mm256_loadu_ps(u + n + voxel), _mm256_set1_ps(static_cast<float>(i1))),
      _mm256_fmadd_ps(factor, _mm256_loadu_ps(u + 2 * n + voxel),
                      _mm256_add_ps(_mm256_set1_ps(static_cast<float>(j)), lanes))};
  __m256 finite = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
  for (int k = 0; k < 3; ++k) {
    // finite: x - x == 0, as is_finite()
    finite = _mm256_and_ps(finite, _mm256_cmp_ps(_mm256_sub_ps(p[k], p[k]), _mm256_setzero_ps(), _CMP_EQ_OQ));
    s.axis[k] = axis_stencil(p[k], grid.size[k], padding);
  }
  s.finite = finite;
  const __m256i corner = _mm256_add_epi32(
      _mm256_add_epi32(_mm256_mullo_epi32(s.axis[0].q, _mm256_set1_epi32(static_cast<int>(grid.stride[0]))),
                       _mm256_mullo_epi32(s.axis[1].q, _mm256_set1_epi32(static_cast<int>(grid.stride[1])))),
      s.axis[2].q);
  _mm256_store_si256(reinterpret_cast<__m256i*>(s.corner), corner);
}

// The 8 corners of every point's cell in one channel: v[a][b][c] is the corner a along axis 0, b
// along axis 1 and c along axis 2.
struct Corners3 {
  __m256 v[2][2][2];
};

MOTIONEXT_AVX2 inline Corners3 load_cell(const float* channel, const Stencil3& s, const Grid<3>& grid) {
  Corners3 c;
  for (int a = 0; a < 2; ++a) {
    for (int b = 0; b < 2; ++b) {
      load_pairs(channel + a * grid.stride[0] + b * grid.stride[1], s.corner, c.v[a][b][0], c.v[a][b][1]);
    }
  }
  return c;
}

MOTIONEXT_AVX2 inline __m256 lerp(__m256 w_lo, __m256 lo, __m256 w_hi, __m256 hi) {
  return _mm256_fmadd_ps(w_lo, lo, _mm256_mul_ps(w_hi, hi));
}

MOTIONEXT_AVX2 inline __m256 trilinear(const Stencil3& s, const Corners3& c) {
  const Axis &x = s.axis[0], &y = s.axis[1], &z = s.axis[2];
  __m256 plane[2];
  for (int a = 0; a < 2; ++a) {
    plane[a] = lerp(y.w_lo, lerp(z.w_lo, c.v[a][0][0], z.w_hi, c.v[a][0][1]), y.w_hi,
                    lerp(z.w_lo, c.v[a][1][0], z.w_hi, c.v[a][1][1]));
  }
  return lerp(x.w_lo, plane[0], x.w_hi, plane[1]);
}

// d(trilinear value) / d(sample point) along the three axes.
MOTIONEXT_AVX2 inline void trilinear_derivatives(const Stencil3& s, const Corners3& c, __m256 (&d)[3]) {
  const Axis &x = s.axis[0], &y = s.axis[1], &z = s.axis[2];
  __m256 value[2], along_y[2], along_z[2];
  for (int a = 0; a < 2; ++a) {
    const __m256 row0 = lerp(z.w_lo, c.v[a][0][0], z.w_hi, c.v[a][0][1]);
    const __m256 row1 = lerp(z.w_lo, c.v[a][1][0], z.w_hi, c.v[a][1][1]);
    const __m256 drow0 = lerp(z.dw_lo, c.v[a][0][0], z.dw_hi, c.v[a][0][1]);
    const __m256 drow1 = lerp(z.dw_lo, c.v[a][1][0], z.dw_hi, c.v[a][1][1]);
    value[a] = lerp(y.w_lo, row0, y.w_hi, row1);
    along_y[a] = lerp(y.dw_lo, row0, y.dw_hi, row1);
    along_z[a] = lerp(y.w_lo, drow0, y.w_hi, drow1);
  }
  d[0] = lerp(x.dw_lo, value[0], x.dw_hi, value[1]);
  d[1] = lerp(x.w_lo, along_y[0], x.w_hi, along_y[1]);
  d[2] = lerp(x.w_lo, along_z[0], x.w_hi, along_z[1]);
}

// Rows [begin, end) along the last axis of all batch items (row r is row r % (D0 * D1) of item
// r / (D0 * D1)): op.block(b, voxel, stencil) for each block of 8 voxels, and
// op.tail(b, voxel, index) for each voxel left over (the scalar shared math).
template <typename Op>
MOTIONEXT_AVX2 void walk_rows(int64_t begin, int64_t end, const float* field, float scale, const Grid<3>& grid,
                              Padding padding, const Op& op) {
  const int64_t n = grid.numel, rows = grid.size[0] * grid.size[1], width = grid.size[2];
  Stencil3 s;
  for (int64_t r = begin; r < end; ++r) {
    const int64_t b = r / rows, row = r - b * rows, i0 = row / grid.size[1], i1 = row - i0 * grid.size[1];
    const float* u = field + b * 3 * n;
    int64_t j = 0;
    for (; j + 8 <= width; j += 8) {
      const int64_t voxel = row * width + j;
      block_stencil(u, n, voxel, i0, i1, j, scale, grid, padding, s);
      op.block(b, voxel, s);
    }
    for (; j < width; ++j) {
      const int64_t index[3] = {i0, i1, j};
      op.tail(b, row * width + j, index);
    }
  }
}

struct Step {
  const float* field;
  float scale;
  float* u_next;
  const Grid<3>& grid;
  Padding padding;

  MOTIONEXT_AVX2 void block(int64_t b, int64_t voxel, const Stencil3& s) const {
    const int64_t n = grid.numel;
    const float* u = field + b * 3 * n;
    const __m256 nan = _mm256_set1_ps(quiet_nan<float>()), factor = _mm256_set1_ps(scale);
    for (int k = 0; k < 3; ++k) {
      const __m256 value = _mm256_add_ps(_mm256_loadu_ps(u + k * n + voxel), trilinear(s, load_cell(u + k * n, s, grid)));
      _mm256_storeu_ps(u_next + b * 3 * n + k * n + voxel, _mm256_blendv_ps(nan, _mm256_mul_ps(factor, value), s.finite));
    }
  }

  void tail(int64_t b, int64_t voxel, const int64_t (&index)[3]) const {
    const int64_t n = grid.numel;
    squaring_voxel_forward<3, float>(field + b * 3 * n, scale, u_next + b * 3 * n, grid, voxel, index, padding);
  }
};

// Adds into dest at the offset `address` has in target, where that voxel's plane along axis 0
// lies in [lo, hi); drops the write elsewhere.
struct OwnedAdd {
  float* target;
  float* dest;
  int64_t numel, plane_stride, lo, hi;
  template <typename V>
  void operator()(float* address, V value) const {
    const int64_t offset = address - target, plane = offset % numel / plane_stride;
    if (plane >= lo && plane < hi) dest[offset] += static_cast<float>(value);
  }
};

// The adjoint of one step, as squaring_voxel_backward(): `dest` (grad itself or a private copy
// of it, spread_in_ranges) receives g_next plus the derivative through each sample point, and the
// spread of g_next onto the corners each point read. Only planes [own_lo, own_hi) of axis 0 are
// written: a point's own terms where it lies in them, its spread where the corners do. So threads
// that own disjoint slabs of planes may walk overlapping rows without sharing a write.
struct StepAdjoint {
  const float* field;
  float scale;
  const float* g_next;
  float* grad;
  float* dest;
  const Grid<3>& grid;
  Padding padding;
  int64_t own_lo, own_hi;

  MOTIONEXT_AVX2 void block(int64_t b, int64_t voxel, const Stencil3& s) const {
    const int64_t n = grid.numel;
    const float* u = field + b * 3 * n;
    const float* g_item = g_next + b * 3 * n;
    float* out = dest + b * 3 * n;
    const int64_t plane = voxel / grid.stride[0];
    const bool own_point = plane >= own_lo && plane < own_hi;
    const __m256 factor = _mm256_set1_ps(scale), zero = _mm256_setzero_ps();
    __m256 g[3], local[3] = {zero, zero, zero};
    for (int ch = 0; ch < 3; ++ch) {
      g[ch] = _mm256_loadu_ps(g_item + ch * n + voxel);
      if (!own_point) continue;
      __m256 d[3];
      trilinear_derivatives(s, load_cell(u + ch * n, s, grid), d);
      const __m256 gs = _mm256_mul_ps(g[ch], factor);
      for (int k = 0; k < 3; ++k) local[k] = _mm256_fmadd_ps(gs, d[k], local[k]);
    }
    // The spread: each corner's weight times g, added where the weight is not 0 (nothing, not
    // 0 * Inf, as in spread()), the point is finite and the corner's plane is owned.
    const Axis &x = s.axis[0], &y = s.axis[1], &z = s.axis[2];
    const __m256 wx[2] = {x.w_lo, x.w_hi}, wy[2] = {y.w_lo, y.w_hi}, wz[2] = {z.w_lo, z.w_hi};
    for (int a = 0; a < 2; ++a) {
      const __m256i corner_plane = _mm256_add_epi32(x.q, _mm256_set1_epi32(a));
      const __m256 owned = _mm256_castsi256_ps(_mm256_andnot_si256(
          _mm256_or_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(own_lo)), corner_plane),
                          _mm256_cmpgt_epi32(corner_plane, _mm256_set1_epi32(static_cast<int>(own_hi - 1)))),
          _mm256_set1_epi32(-1)));
      const __m256 reach = _mm256_and_ps(owned, s.finite);
      if (_mm256_movemask_ps(reach) == 0) continue;
      for (int bb = 0; bb < 2; ++bb) {
        const __m256 wxy = _mm256_mul_ps(wx[a], wy[bb]);
        const int64_t row = a * grid.stride[0] + bb * grid.stride[1];
        for (int c = 0; c < 2; ++c) {
          const __m256 weight = _mm256_mul_ps(wxy, wz[c]);
          const int used = _mm256_movemask_ps(_mm256_and_ps(reach, _mm256_cmp_ps(weight, zero, _CMP_NEQ_UQ)));
          for (int ch = 0; ch < 3; ++ch) {
            alignas(32) float part[8];
            _mm256_store_ps(part, _mm256_mul_ps(weight, g[ch]));
            float* target = out + ch * n + row + c;
            if (used == 0xFF) {
              for (int lane = 0; lane < 8; ++lane) target[s.corner[lane]] += part[lane];
            } else {
              for (int lane = 0; lane < 8; ++lane) {
                if (used >> lane & 1) target[s.corner[lane]] += part[lane];
              }
            }
          }
        }
      }
    }
    if (!own_point) return;
    const __m256 nan = _mm256_set1_ps(quiet_nan<float>());
    for (int k = 0; k < 3; ++k) {
      float* here = out + k * n + voxel;
      const __m256 own = _mm256_blendv_ps(nan, _mm256_add_ps(g[k], local[k]), s.finite);
      _mm256_storeu_ps(here, _mm256_add_ps(_mm256_loadu_ps(here), own));
    }
  }

  // Left-over voxels take the scalar shared math, its writes dropped outside the owned planes.
  void tail(int64_t b, int64_t voxel, const int64_t (&index)[3]) const {
    const int64_t n = grid.numel;
    squaring_voxel_backward<3, float>(field + b * 3 * n, scale, g_next + b * 3 * n, grad + b * 3 * n, grid, voxel,
                                      index, padding, OwnedAdd{grad, dest, n, grid.stride[0], own_lo, own_hi});
  }
};

// The largest |scale * u_0| over the finite values of one item's axis-0 channel: how many planes
// away from its own a point's corners may lie, less the cell's one.
MOTIONEXT_AVX2 float largest_step(const float* u0, int64_t n, float scale) {
  const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 largest = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(u0 + i);
    const __m256 finite = _mm256_cmp_ps(_mm256_sub_ps(v, v), _mm256_setzero_ps(), _CMP_EQ_OQ);
    largest = _mm256_max_ps(largest, _mm256_and_ps(finite, _mm256_and_ps(v, magnitude)));
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, largest);
  float result = 0.0f;
  for (float v : lanes) result = v > result ? v : result;
  for (; i < n; ++i) {
    const float v = u0[i] < 0 ? -u0[i] : u0[i];
    if (is_finite(v) && v > result) result = v;
  }
  return result * (scale < 0 ? -scale : scale);
}

}  // namespace

bool squaring3d_avx2_usable(const Grid<3>& grid) {
  return avx2_path_active() && grid.size[0] >= 2 && grid.size[1] >= 2 && grid.size[2] >= 8 &&
         grid.numel < (int64_t(1) << 31);
}

void squaring3d_avx2_step(const float* field, float scale, float* u_next, int64_t batch, const Grid<3>& grid,
                          Padding padding) {
  const Step op{field, scale, u_next, grid, padding};
  at::parallel_for(0, batch * grid.size[0] * grid.size[1], kRowsPerTask,
                   [&](int64_t begin, int64_t end) { walk_rows(begin, end, field, scale, grid, padding, op); });
}

void squaring3d_avx2_step_backward(const float* field, float scale, const float* g_next, float* grad, int64_t batch,
                                   const Grid<3>& grid, Padding padding) {
  const int64_t n = grid.numel, planes = grid.size[0], rows = planes * grid.size[1];
  const int64_t slabs = std::min<int64_t>(at::get_num_threads(), planes);
  auto walk = [&](int64_t begin, int64_t end, float* dest, int64_t own_lo, int64_t own_hi) {
    const StepAdjoint op{field, scale, g_next, grad, dest, grid, padding, own_lo, own_hi};
    walk_rows(begin, end, field, scale, grid, padding, op);
  };
  if (!items_per_thread(batch)) {
    // Fewer items than threads: each thread owns a slab of planes and walks the rows whose
    // points can reach it, `margins[b]` planes either side. No private copies, so the peak memory
    // stays that of the trajectory. Fields that move points too far for the slabs to pay
    // (margins adding over half the planes) take the copies below.
    bool slabs_pay = true;
    std::vector<int64_t> margins(batch);
    for (int64_t b = 0; b < batch; ++b) {
      const float step = largest_step(field + b * 3 * n, n, scale);
      margins[b] = step < static_cast<float>(planes) ? static_cast<int64_t>(step) + 2 : planes;
      slabs_pay = slabs_pay && 2 * margins[b] * (slabs - 1) <= planes / 2;
    }
    if (slabs_pay) {
      for (int64_t b = 0; b < batch; ++b) {
        at::parallel_for(0, slabs, 1, [&](int64_t s0, int64_t s1) {
          for (int64_t slab = s0; slab < s1; ++slab) {
            const int64_t lo = planes * slab / slabs, hi = planes * (slab + 1) / slabs;
            const int64_t first = std::max<int64_t>(0, lo - margins[b]), last = std::min(planes, hi + margins[b]);
            walk(b * rows + first * grid.size[1], b * rows + last * grid.size[1], grad, lo, hi);
          }
        });
      }
      return;
    }
  }
  spread_in_ranges(batch, rows, grad, batch * 3 * n,
                   [&](int64_t begin, int64_t end, float* dest) { walk(begin, end, dest, 0, planes); });
}

#else  // no AVX2 path on this platform: never usable, never called

bool squaring3d_avx2_usable(const Grid<3>&) { return false; }
void squaring3d_avx2_step(const float*, float, float*, int64_t, const Grid<3>&, Padding) {}
void squaring3d_avx2_step_backward(const float*, float, const float*, float*, int64_t, const Grid<3>&, Padding) {}

#endif

}  // namespace cpu
}  // namespace motionext
