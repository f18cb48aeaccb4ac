// See warp2d_avx2.h. The vector functions are compiled for AVX2+FMA through a target attribute
// (lambdas do not inherit it, so the parallel loops only call them); callers check
// warp2d_avx2_usable() first.
#include "warp2d_avx2.h"

#include <cstdlib>
#include <cstring>

#include <ATen/Parallel.h>

#include "motionext/interpolation.h"
#include "motionext/scaling_squaring.h"
#include "motionext/warp.h"
#include "avx2_stencil.h"
#include "parallel.h"

namespace motionext {
namespace cpu {

namespace {
constexpr int64_t kRowsPerTask = 16;

bool simd_allowed() {
  static const bool allowed = [] {
    const char* flag = std::getenv("MOTIONEXT_CPU_SIMD");
    return flag == nullptr || std::strcmp(flag, "0") != 0;
  }();
  return allowed;
}
}  // namespace

#if MOTIONEXT_HAVE_AVX2_PATH

namespace {

// The sample points (i, j..j+7) + scale * (u0, u1) of 8 voxels of a row.
struct Points {
  __m256 x, y, columns;
};

MOTIONEXT_AVX2 inline Points sample_points(const float* u0, const float* u1, int64_t i, int64_t j, float scale) {
  const __m256 factor = _mm256_set1_ps(scale);
  const __m256 columns = _mm256_add_ps(_mm256_set1_ps(static_cast<float>(j)), _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7));
  return {_mm256_fmadd_ps(factor, _mm256_loadu_ps(u0), _mm256_set1_ps(static_cast<float>(i))),
          _mm256_fmadd_ps(factor, _mm256_loadu_ps(u1), columns), columns};
}

// The interior case, where every weight is a plain fraction. A smooth field moves neighbouring
// points by nearly the same amount, so the 8 points' whole-voxel parts often share one row r
// and one column offset c: corner 00 of lane L is then at base + L, and the others at +1,
// +width and +width + 1. With those cells inside the image (0 <= r <= H - 2, 0 <= j + c and
// j + c + 7 <= W - 2) neither padding nor clamping acts, and plain vector loads and adds
// replace the pair loads and the scatter. This holds for 80% of the blocks of the bundled
// model's fields; most of the others are patterned blocks (see Pattern).
struct Cell {
  __m256 frac_x, frac_y;  // the weights of the far corners along each axis
  int64_t base;           // corner 00 of lane 0
};

// NaN and Inf fail the comparisons and take the general path.
MOTIONEXT_AVX2 inline bool interior_cell(const Points& p, const Grid<2>& grid, Cell& cell) {
  const __m256 fx = _mm256_floor_ps(p.x), fy = _mm256_floor_ps(p.y);
  const __m256 shift = _mm256_sub_ps(fy, p.columns);
  const __m256 row = _mm256_broadcastss_ps(_mm256_castps256_ps128(fx));
  const __m256 offset = _mm256_broadcastss_ps(_mm256_castps256_ps128(shift));
  const __m256 same = _mm256_and_ps(_mm256_cmp_ps(fx, row, _CMP_EQ_OQ), _mm256_cmp_ps(shift, offset, _CMP_EQ_OQ));
  if (_mm256_movemask_ps(same) != 0xFF) return false;
  const float r = _mm256_cvtss_f32(fx), c = _mm256_cvtss_f32(fy);
  if (!(r >= 0.0f && r <= static_cast<float>(grid.size[0] - 2) && c >= 0.0f &&
        c + 7.0f <= static_cast<float>(grid.size[1] - 2))) {
    return false;
  }
  cell.frac_x = _mm256_sub_ps(p.x, fx);
  cell.frac_y = _mm256_sub_ps(p.y, fy);
  cell.base = static_cast<int64_t>(r) * grid.stride[0] + static_cast<int64_t>(c);
  return true;
}

// Blocks that are not interior but whose points' cells (Axis::q, always inside the image) start
// on at most two neighbouring rows and at most two neighbouring column offsets (q_y - column).
// Three vector loads per row cover both offsets (two without a column straddle), and blends pick
// each point's own corners from them, so every point reads exactly its cell, as in the general
// path. These are mostly the first and last block of a row and the first and last row, where
// the in-image cell moves one lane or the points' floors straddle two cells: 20% of the bundled
// model's blocks, nearly all of those that are not interior.
struct Pattern {
  int64_t base;                    // flat offset of the first tap: row min q_x, column min(q_y - lane)
  bool three_rows, three_columns;  // a second row or column offset occurs
  __m256 next_row, next_column;    // all-ones in the lanes whose cell starts one tap further
};

// Near blocks (near_block()): every point within a voxel of its own voxel, away from the border.
// Along each axis a point that moves d reads the voxel before its own with weight max(-d, 0), its
// own with 1 - |d| and the one after with max(d, 0): its cell's two bilinear weights, and a zero
// on the side it does not reach. So all 8 points read the same 3 x 3 taps around their own
// voxels, and no mask or variable blend (several uops each on Intel cores) picks each point's cell.
// Where the cell starts at the own voxel (d >= 0) the weights are those of the general path's
// cell exactly, and where it starts one voxel before, 1 + d and -d are too; the sums that take
// the zero add nothing, so values and derivatives are the patterned path's bit for bit. The tap a
// point does not reach is read as 0, so that a NaN or Inf there stays out, as it does where only
// the cell is read.
struct NearTaps {
  __m256 w[3];   // weights of taps -1, 0, +1 along one axis
  __m256 dw[3];  // their derivatives by d: -1 and 1 on the two taps of the cell
  __m256 after;  // all-ones where the cell starts at the own voxel (d >= 0): tap +1 is read, not -1
};

enum class BlockKind { Interior, Patterned, Near, General };

// The bilinear stencil of 8 consecutive voxels (row i, columns j..j+7).
struct Block {
  Axis x, y;                         // axis 0 (rows) and axis 1 (columns)
  __m256i corner;                    // flat offset of corner 00 of each point's cell (general blocks)
  __m256 finite;                     // all-ones where the sample point is finite
  BlockKind kind;
  Cell cell;                         // interior blocks
  Pattern pattern;                   // patterned blocks
  NearTaps near_x, near_y;           // near blocks: the taps along rows (axis 0) and columns (axis 1)
  int64_t near_base;                 // near blocks: flat offset of tap (-1, -1) of lane 0
  int64_t width;                     // the row stride
};

// The smallest of 8 lanes, in every lane.
MOTIONEXT_AVX2 inline __m256i lanes_min(__m256i v) {
  v = _mm256_min_epi32(v, _mm256_permute2x128_si256(v, v, 0x01));
  v = _mm256_min_epi32(v, _mm256_shuffle_epi32(v, _MM_SHUFFLE(1, 0, 3, 2)));
  return _mm256_min_epi32(v, _mm256_shuffle_epi32(v, _MM_SHUFFLE(2, 3, 0, 1)));
}

// True when every lane of q is its smallest value or one more; `next` marks the latter.
MOTIONEXT_AVX2 inline bool two_taps(__m256i q, int32_t& low, __m256& next) {
  const __m256i smallest = lanes_min(q);
  const __m256i above = _mm256_sub_epi32(q, smallest);
  if (_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(above, _mm256_set1_epi32(1)))) != 0) return false;
  low = _mm256_cvtsi256_si32(smallest);
  next = _mm256_castsi256_ps(_mm256_cmpeq_epi32(above, _mm256_set1_epi32(1)));
  return true;
}

// Whether a general block's points fit a Pattern whose taps lie inside one channel plane
// (taps may run into the neighbouring row; they are never used there).
MOTIONEXT_AVX2 inline bool find_pattern(const Grid<2>& grid, Block& b) {
  if (_mm256_movemask_ps(b.finite) != 0xFF) return false;
  Pattern& p = b.pattern;
  int32_t row, column;
  if (!two_taps(b.x.q, row, p.next_row) ||
      !two_taps(_mm256_sub_epi32(b.y.q, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)), column, p.next_column)) {
    return false;
  }
  p.three_rows = _mm256_movemask_ps(p.next_row) != 0;
  p.three_columns = _mm256_movemask_ps(p.next_column) != 0;
  p.base = int64_t{row} * b.width + column;
  const int64_t last = p.base + (p.three_rows ? 2 : 1) * b.width + (p.three_columns ? 9 : 8);
  if (p.base < 0 || last >= grid.numel) return false;
  b.kind = BlockKind::Patterned;
  return true;
}

// The general stencil: clamps, masks and each point's cell; then whether the cells fit a Pattern.
MOTIONEXT_AVX2 inline void general_block(const Points& p, const Grid<2>& grid, Padding padding, Block& b) {
  b.kind = BlockKind::General;
  // finite: x - x == 0 for both coordinates, as is_finite()
  b.finite = _mm256_and_ps(_mm256_cmp_ps(_mm256_sub_ps(p.x, p.x), _mm256_setzero_ps(), _CMP_EQ_OQ),
                           _mm256_cmp_ps(_mm256_sub_ps(p.y, p.y), _mm256_setzero_ps(), _CMP_EQ_OQ));
  b.x = axis_stencil(p.x, grid.size[0], padding);
  b.y = axis_stencil(p.y, grid.size[1], padding);
  b.width = grid.stride[0];
  if (find_pattern(grid, b)) return;
  b.corner = _mm256_add_epi32(_mm256_mullo_epi32(b.x.q, _mm256_set1_epi32(static_cast<int>(b.width))), b.y.q);
}

// The weights of finite points whose cells lie inside the image (no padding acts): 1 - frac and
// frac along each axis, derivatives -1 and 1.
MOTIONEXT_AVX2 inline void plain_weights(__m256 frac_x, __m256 frac_y, Block& b) {
  const __m256 one = _mm256_set1_ps(1.0f);
  b.x.w_lo = _mm256_sub_ps(one, frac_x);
  b.x.w_hi = frac_x;
  b.y.w_lo = _mm256_sub_ps(one, frac_y);
  b.y.w_hi = frac_y;
  b.x.dw_lo = b.y.dw_lo = _mm256_set1_ps(-1.0f);
  b.x.dw_hi = b.y.dw_hi = one;
  b.finite = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
}

// The taps of 8 points that move d (|d| < 1) along one axis; after_mask: all-ones where d >= 0.
MOTIONEXT_AVX2 inline NearTaps near_taps(__m256 d, __m256 after_mask) {
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
  NearTaps t;
  t.after = after_mask;
  const __m256 after = _mm256_and_ps(after_mask, one);
  t.w[0] = _mm256_max_ps(_mm256_sub_ps(zero, d), zero);
  t.w[2] = _mm256_max_ps(d, zero);
  t.w[1] = _mm256_sub_ps(one, _mm256_add_ps(t.w[0], t.w[2]));
  t.dw[0] = _mm256_sub_ps(after, one);
  t.dw[1] = _mm256_sub_ps(one, _mm256_add_ps(after, after));
  t.dw[2] = after;
  return t;
}

// Blocks whose points all lie less than a voxel from their own voxels (i, j + L) along both axes,
// away from the border (rows i - 1 .. i + 1 and columns j - 1 .. j + 8 inside the image). Each
// point's cell starts at its own row or the one before, and at its own column or the one before.
// Where the points go both ways along both axes (white noise: nearly every such block), the
// block reads the 3 x 3 taps of NearTaps. Where all go one way along an axis (mostly the blocks
// of smooth fields where the motion changes sign), it is a Pattern whose masks are the points'
// signs, with plain weights, which reads fewer taps. Either skips the general stencil and
// find_pattern(), which cost more than the block's loads and adds: on a white-noise velocity
// every block of the first five of seven squaring steps is near. NaN fails the comparison and
// takes the general path.
MOTIONEXT_AVX2 inline bool near_block(const Points& p, int64_t i, int64_t j, const Grid<2>& grid, Block& b) {
  if (i < 1 || i > grid.size[0] - 2 || j < 1 || j + 9 > grid.size[1]) return false;
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
  const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 row = _mm256_set1_ps(static_cast<float>(i));
  const __m256 dx = _mm256_sub_ps(p.x, row), dy = _mm256_sub_ps(p.y, p.columns);
  const __m256 near = _mm256_and_ps(_mm256_cmp_ps(_mm256_and_ps(dx, magnitude), one, _CMP_LT_OQ),
                                    _mm256_cmp_ps(_mm256_and_ps(dy, magnitude), one, _CMP_LT_OQ));
  if (_mm256_movemask_ps(near) != 0xFF) return false;
  b.width = grid.stride[0];
  // a lane is one tap further where its cell starts at its own row (column), not the one before
  const __m256 next_row = _mm256_cmp_ps(dx, zero, _CMP_GE_OQ), next_column = _mm256_cmp_ps(dy, zero, _CMP_GE_OQ);
  const int rows = _mm256_movemask_ps(next_row), columns = _mm256_movemask_ps(next_column);
  const bool three_rows = rows != 0 && rows != 0xFF, three_columns = columns != 0 && columns != 0xFF;
  if (three_rows && three_columns) {
    b.near_x = near_taps(dx, next_row);
    b.near_y = near_taps(dy, next_column);
    b.near_base = (i - 1) * b.width + j - 1;
    b.finite = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    b.kind = BlockKind::Near;
    return true;
  }
  Pattern& pattern = b.pattern;
  pattern.three_rows = three_rows;
  pattern.three_columns = three_columns;
  pattern.next_row = three_rows ? next_row : zero;
  pattern.next_column = three_columns ? next_column : zero;
  pattern.base = (i - (rows == 0xFF ? 0 : 1)) * b.width + j - (columns == 0xFF ? 0 : 1);
  plain_weights(_mm256_sub_ps(p.x, _mm256_floor_ps(p.x)), _mm256_sub_ps(p.y, _mm256_floor_ps(p.y)), b);
  b.kind = BlockKind::Patterned;
  return true;
}

// Any stencil, for the forward passes. TryNear: test for near_block() first; only the squaring
// does, as the warps' displacements are rarely under a voxel everywhere, and on white noise the
// test cost their forward 6%.
template <bool TryNear>
MOTIONEXT_AVX2 inline void block_stencil(const float* u0, const float* u1, int64_t i, int64_t j, const Grid<2>& grid,
                                         Padding padding, float scale, Block& b) {
  const Points p = sample_points(u0, u1, i, j, scale);
  if (!interior_cell(p, grid, b.cell)) {
    if (TryNear && near_block(p, i, j, grid, b)) return;
    return general_block(p, grid, padding, b);
  }
  plain_weights(b.cell.frac_x, b.cell.frac_y, b);
  b.kind = BlockKind::Interior;
  b.width = grid.stride[0];
}

MOTIONEXT_AVX2 inline bool all_finite(__m256 v) {
  return _mm256_movemask_ps(_mm256_cmp_ps(_mm256_sub_ps(v, v), _mm256_setzero_ps(), _CMP_EQ_OQ)) == 0xFF;
}

struct Corners {
  __m256 v00, v01, v10, v11;
};

MOTIONEXT_AVX2 inline Corners load_corners(const float* channel, const Cell& cell, int64_t width) {
  const float* top = channel + cell.base;
  return {_mm256_loadu_ps(top), _mm256_loadu_ps(top + 1), _mm256_loadu_ps(top + width),
          _mm256_loadu_ps(top + width + 1)};
}

// The four corners of 8 points whose cells start at channel + corner[L].
MOTIONEXT_AVX2 inline Corners load_cells(const float* channel, const int32_t (&corner)[8], int64_t width) {
  Corners v;
  load_pairs(channel, corner, v.v00, v.v01);
  load_pairs(channel + width, corner, v.v10, v.v11);
  return v;
}

// Corners 0 and 1 of one cell row of a patterned block, whose taps start at `row`.
MOTIONEXT_AVX2 inline void load_pattern_row(const float* row, const Pattern& p, __m256& first, __m256& second) {
  const __m256 t0 = _mm256_loadu_ps(row), t1 = _mm256_loadu_ps(row + 1);
  if (!p.three_columns) {
    first = t0;
    second = t1;
    return;
  }
  const __m256 t2 = _mm256_loadu_ps(row + 2);
  first = _mm256_blendv_ps(t0, t1, p.next_column);
  second = _mm256_blendv_ps(t1, t2, p.next_column);
}

MOTIONEXT_AVX2 inline Corners load_pattern(const float* channel, const Pattern& p, int64_t width) {
  const float* top = channel + p.base;
  Corners v;
  load_pattern_row(top, p, v.v00, v.v01);
  load_pattern_row(top + width, p, v.v10, v.v11);
  if (p.three_rows) {
    __m256 below0, below1;
    load_pattern_row(top + 2 * width, p, below0, below1);
    v.v00 = _mm256_blendv_ps(v.v00, v.v10, p.next_row);
    v.v01 = _mm256_blendv_ps(v.v01, v.v11, p.next_row);
    v.v10 = _mm256_blendv_ps(v.v10, below0, p.next_row);
    v.v11 = _mm256_blendv_ps(v.v11, below1, p.next_row);
  }
  return v;
}

MOTIONEXT_AVX2 inline Corners load_block(const float* channel, const Block& b) {
  if (b.kind == BlockKind::Interior) return load_corners(channel, b.cell, b.width);
  if (b.kind == BlockKind::Patterned) return load_pattern(channel, b.pattern, b.width);
  alignas(32) int32_t corner[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(corner), b.corner);
  return load_cells(channel, corner, b.width);
}

MOTIONEXT_AVX2 inline __m256 bilinear(const Block& s, const Corners& v) {
  const __m256 top = _mm256_fmadd_ps(s.y.w_lo, v.v00, _mm256_mul_ps(s.y.w_hi, v.v01));
  const __m256 bottom = _mm256_fmadd_ps(s.y.w_lo, v.v10, _mm256_mul_ps(s.y.w_hi, v.v11));
  return _mm256_fmadd_ps(s.x.w_lo, top, _mm256_mul_ps(s.x.w_hi, bottom));
}

// w[0] * before + w[1] * own + w[2] * after, summed as the bilinear path sums a cell's two corners
// (the zero-weight tap adds exactly nothing).
MOTIONEXT_AVX2 inline __m256 three_taps(const __m256 (&w)[3], __m256 before, __m256 own, __m256 after) {
  return _mm256_fmadd_ps(w[0], before, _mm256_fmadd_ps(w[1], own, _mm256_mul_ps(w[2], after)));
}

// Three taps of a near block along one axis, the one not reached (see NearTaps) set to 0.
MOTIONEXT_AVX2 inline void reached(const NearTaps& t, __m256& before, __m256& after) {
  before = _mm256_andnot_ps(t.after, before);
  after = _mm256_and_ps(t.after, after);
}

// The three column taps of a near block's row starting at `row`, as reached().
MOTIONEXT_AVX2 inline void load_taps(const float* row, const NearTaps& columns, __m256 (&taps)[3]) {
  taps[0] = _mm256_loadu_ps(row);
  taps[1] = _mm256_loadu_ps(row + 1);
  taps[2] = _mm256_loadu_ps(row + 2);
  reached(columns, taps[0], taps[2]);
}

// A near block's bilinear value in one channel plane.
MOTIONEXT_AVX2 inline __m256 near_value(const float* channel, const Block& s) {
  const float* top = channel + s.near_base;
  __m256 rows[3];
  for (int r = 0; r < 3; ++r) {
    __m256 taps[3];
    load_taps(top + r * s.width, s.near_y, taps);
    rows[r] = three_taps(s.near_y.w, taps[0], taps[1], taps[2]);
  }
  reached(s.near_x, rows[0], rows[2]);
  return three_taps(s.near_x.w, rows[0], rows[1], rows[2]);
}

// d(bilinear value) / d(sample point) along both axes.
struct Derivatives {
  __m256 dx, dy;
};

MOTIONEXT_AVX2 inline Derivatives derivatives(const Block& s, const Corners& v) {
  const __m256 top = _mm256_fmadd_ps(s.y.w_lo, v.v00, _mm256_mul_ps(s.y.w_hi, v.v01));
  const __m256 bottom = _mm256_fmadd_ps(s.y.w_lo, v.v10, _mm256_mul_ps(s.y.w_hi, v.v11));
  const __m256 dtop = _mm256_fmadd_ps(s.y.dw_lo, v.v00, _mm256_mul_ps(s.y.dw_hi, v.v01));
  const __m256 dbottom = _mm256_fmadd_ps(s.y.dw_lo, v.v10, _mm256_mul_ps(s.y.dw_hi, v.v11));
  return {_mm256_fmadd_ps(s.x.dw_lo, top, _mm256_mul_ps(s.x.dw_hi, bottom)),
          _mm256_fmadd_ps(s.x.w_lo, dtop, _mm256_mul_ps(s.x.w_hi, dbottom))};
}

// Rows [begin, end) of all batch items (row r is row r % H of item r / H), sampled at
// x + scale * field(x): op.block(b, voxel, stencil) for each block of 8 columns, and
// op.tail(b, voxel, index) for each column left over (the scalar shared math). Op::near_blocks
// says whether to try near_block() before the general stencil.
template <typename Op>
MOTIONEXT_AVX2 void walk_rows(int64_t begin, int64_t end, const float* field, float scale, const Grid<2>& grid,
                              Padding padding, const Op& op) {
  const int64_t n = grid.numel, rows = grid.size[0], width = grid.size[1];
  Block block;
  for (int64_t r = begin; r < end; ++r) {
    const int64_t b = r / rows, i = r - b * rows;
    const float* u = field + b * 2 * n;
    int64_t j = 0;
    for (; j + 8 <= width; j += 8) {
      const int64_t voxel = i * width + j;
      block_stencil<Op::near_blocks>(u + voxel, u + n + voxel, i, j, grid, padding, scale, block);
      op.block(b, voxel, block);
    }
    for (; j < width; ++j) {
      const int64_t index[2] = {i, j};
      op.tail(b, i * width + j, index);
    }
  }
}

struct WarpForward {
  static constexpr bool near_blocks = false;
  const float *image, *displacement;
  float* out;
  int64_t channels;
  const Grid<2>& grid;
  Padding padding;

  MOTIONEXT_AVX2 void block(int64_t b, int64_t voxel, const Block& s) const {
    const __m256 nan = _mm256_set1_ps(quiet_nan<float>());
    for (int64_t ch = 0; ch < channels; ++ch) {
      const int64_t c = (b * channels + ch) * grid.numel;
      _mm256_storeu_ps(out + c + voxel, _mm256_blendv_ps(nan, bilinear(s, load_block(image + c, s)), s.finite));
    }
  }

  void tail(int64_t b, int64_t voxel, const int64_t (&index)[2]) const {
    const int64_t n = grid.numel;
    warp_voxel_forward<2, float, Interpolation::Linear>(image + b * channels * n, displacement + b * 2 * n,
                                                         out + b * channels * n, channels, grid, voxel, index, padding);
  }
};

// Warp and, from the same corners, the image's derivative at each sample point.
struct WarpWithGradient {
  static constexpr bool near_blocks = false;
  const float *image, *displacement;
  float *out, *gradient;
  int64_t channels;
  const Grid<2>& grid;
  Padding padding;

  MOTIONEXT_AVX2 void block(int64_t b, int64_t voxel, const Block& s) const {
    const int64_t n = grid.numel;
    const __m256 nan = _mm256_set1_ps(quiet_nan<float>());
    for (int64_t ch = 0; ch < channels; ++ch) {
      const int64_t c = (b * channels + ch) * n;
      const Corners v = load_block(image + c, s);
      const Derivatives d = derivatives(s, v);
      float* g = gradient + 2 * c + voxel;  // channel (b, ch) of gradient starts at 2 * c
      _mm256_storeu_ps(out + c + voxel, _mm256_blendv_ps(nan, bilinear(s, v), s.finite));
      _mm256_storeu_ps(g, _mm256_blendv_ps(nan, d.dx, s.finite));
      _mm256_storeu_ps(g + n, _mm256_blendv_ps(nan, d.dy, s.finite));
    }
  }

  void tail(int64_t b, int64_t voxel, const int64_t (&index)[2]) const {
    const int64_t n = grid.numel;
    warp_voxel_forward_with_gradient<2, float>(image + b * channels * n, displacement + b * 2 * n,
                                               out + b * channels * n, gradient + b * channels * 2 * n, channels, grid,
                                               voxel, index, padding);
  }
};

// One scaling-and-squaring step: u_next = scale * (field + field(x + scale * field)).
struct SquaringStep {
  static constexpr bool near_blocks = true;  // early steps move points by fractions of a voxel
  const float* field;
  float scale;
  float* u_next;
  const Grid<2>& grid;
  Padding padding;

  MOTIONEXT_AVX2 void block(int64_t b, int64_t voxel, const Block& s) const {
    if (s.kind == BlockKind::Near) return near_block_step(b, voxel, s);
    const int64_t n = grid.numel;
    const float* u = field + b * 2 * n;
    const __m256 nan = _mm256_set1_ps(quiet_nan<float>()), factor = _mm256_set1_ps(scale);
    for (int k = 0; k < 2; ++k) {
      const __m256 value = _mm256_add_ps(_mm256_loadu_ps(u + k * n + voxel), bilinear(s, load_block(u + k * n, s)));
      _mm256_storeu_ps(u_next + b * 2 * n + k * n + voxel, _mm256_blendv_ps(nan, _mm256_mul_ps(factor, value), s.finite));
    }
  }

  // A near block (NearTaps), whose points are all finite. Out of line: inlined into block(), it
  // slowed the interior blocks' loop by 10-20% (the squaring forward on a constant field).
  __attribute__((noinline)) MOTIONEXT_AVX2 void near_block_step(int64_t b, int64_t voxel, const Block& s) const {
    const int64_t n = grid.numel;
    const float* u = field + b * 2 * n;
    const __m256 factor = _mm256_set1_ps(scale);
    for (int k = 0; k < 2; ++k) {
      const __m256 value = _mm256_add_ps(_mm256_loadu_ps(u + k * n + voxel), near_value(u + k * n, s));
      _mm256_storeu_ps(u_next + b * 2 * n + k * n + voxel, _mm256_mul_ps(factor, value));
    }
  }

  void tail(int64_t b, int64_t voxel, const int64_t (&index)[2]) const {
    const int64_t n = grid.numel;
    squaring_voxel_forward<2, float>(field + b * 2 * n, scale, u_next + b * 2 * n, grid, voxel, index, padding);
  }
};

// Adds the spread of one row of taps to `target`: taps[t][L] lands at base + t + L (two taps, or
// three for a patterned block with two column offsets), as one vector add for base .. base + 7
// and scalar adds for the one or two values beyond. The next block's vector load usually
// overlaps those scalar stores and waits for them; carrying the values over to it in
// registers instead cost more than that wait (measured: backward 7.3 -> 6.8 ms on one thread).
template <bool ThreeTaps>
MOTIONEXT_AVX2 inline void add_taps(float* target, int64_t base, __m256 t0, __m256 t1, __m256 t2) {
  const __m256 zero = _mm256_setzero_ps();
  // t1 moved up one lane (lane 0 holds t1[7]); t2 up two (lanes 0, 1 hold t2[6], t2[7])
  const __m256 up1 = _mm256_permutevar8x32_ps(t1, _mm256_setr_epi32(7, 0, 1, 2, 3, 4, 5, 6));
  __m256 sum = _mm256_add_ps(t0, _mm256_blend_ps(up1, zero, 0x01));
  if constexpr (ThreeTaps) {
    const __m256 up2 = _mm256_permutevar8x32_ps(t2, _mm256_setr_epi32(6, 7, 0, 1, 2, 3, 4, 5));
    sum = _mm256_add_ps(sum, _mm256_blend_ps(up2, zero, 0x03));
    // base + 8 receives t1[7] + t2[6], base + 9 t2[7]
    const __m128 beyond = _mm256_castps256_ps128(_mm256_add_ps(up2, _mm256_blend_ps(zero, up1, 0x01)));
    target[base + 8] += _mm_cvtss_f32(beyond);
    target[base + 9] += _mm_cvtss_f32(_mm_movehdup_ps(beyond));
  } else {
    target[base + 8] += _mm256_cvtss_f32(up1);
  }
  _mm256_storeu_ps(target + base, _mm256_add_ps(_mm256_loadu_ps(target + base), sum));
}

// The adjoint of one squaring step for 8 voxels (row i, columns at `voxel`), as
// squaring_voxel_backward(): grad receives g_next + the derivative through each sample point,
// and the spread of g_next onto the corners each voxel read.

// An interior block: four vector loads per channel, and the spread as two vector adds.
MOTIONEXT_AVX2 inline void interior_adjoint(const float* u, float scale, const float* g_next, float* grad,
                                            const Grid<2>& grid, int64_t voxel, const Cell& cell) {
  const int64_t n = grid.numel, width = grid.stride[0];
  const __m256 one = _mm256_set1_ps(1.0f), factor = _mm256_set1_ps(scale);
  const __m256 wx0 = _mm256_sub_ps(one, cell.frac_x), wx1 = cell.frac_x;
  const __m256 wy0 = _mm256_sub_ps(one, cell.frac_y), wy1 = cell.frac_y;
  const __m256 weights[4] = {_mm256_mul_ps(wx0, wy0), _mm256_mul_ps(wx0, wy1), _mm256_mul_ps(wx1, wy0),
                             _mm256_mul_ps(wx1, wy1)};
  __m256 local[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  for (int ch = 0; ch < 2; ++ch) {
    const Corners v = load_corners(u + ch * n, cell, width);
    // d(bilinear value) / d(point) along both axes
    const __m256 dx = _mm256_fmadd_ps(wy0, _mm256_sub_ps(v.v10, v.v00), _mm256_mul_ps(wy1, _mm256_sub_ps(v.v11, v.v01)));
    const __m256 dy = _mm256_fmadd_ps(wx0, _mm256_sub_ps(v.v01, v.v00), _mm256_mul_ps(wx1, _mm256_sub_ps(v.v11, v.v10)));
    const __m256 g = _mm256_loadu_ps(g_next + ch * n + voxel);
    const __m256 gs = _mm256_mul_ps(g, factor);
    local[0] = _mm256_fmadd_ps(gs, dx, local[0]);
    local[1] = _mm256_fmadd_ps(gs, dy, local[1]);
    __m256 part[4];
    for (int c = 0; c < 4; ++c) part[c] = _mm256_mul_ps(weights[c], g);
    if (!all_finite(g)) {  // a corner of weight 0 receives nothing, not 0 * Inf, as in spread()
      for (int c = 0; c < 4; ++c) {
        part[c] = _mm256_and_ps(_mm256_cmp_ps(weights[c], _mm256_setzero_ps(), _CMP_NEQ_UQ), part[c]);
      }
    }
    add_taps<false>(grad + ch * n, cell.base, part[0], part[1], _mm256_setzero_ps());
    add_taps<false>(grad + ch * n, cell.base + width, part[2], part[3], _mm256_setzero_ps());
  }
  for (int k = 0; k < 2; ++k) {
    float* here = grad + k * n + voxel;
    const __m256 own = _mm256_add_ps(_mm256_loadu_ps(g_next + k * n + voxel), local[k]);
    _mm256_storeu_ps(here, _mm256_add_ps(_mm256_loadu_ps(here), own));
  }
}

// One cell row's spread of a patterned block, first[L] and second[L] onto the two corners of lane
// L's cell, which starts at tap 0, or at tap 1 where the lane's cell is one column further.
MOTIONEXT_AVX2 inline void add_pattern_row(float* target, int64_t base, __m256 first, __m256 second,
                                           const Pattern& p) {
  if (!p.three_columns) return add_taps<false>(target, base, first, second, _mm256_setzero_ps());
  add_taps<true>(target, base, _mm256_andnot_ps(p.next_column, first), _mm256_blendv_ps(second, first, p.next_column),
                 _mm256_and_ps(p.next_column, second));
}

// A patterned block's spread of one channel: one vector add per row of taps.
MOTIONEXT_AVX2 inline void add_pattern(float* target, const Pattern& p, int64_t width, const __m256 (&part)[4]) {
  if (!p.three_rows) {
    add_pattern_row(target, p.base, part[0], part[1], p);
    add_pattern_row(target, p.base + width, part[2], part[3], p);
    return;
  }
  // a lane whose cell is one row further puts its top corners on tap row 1, its bottom on row 2
  const __m256 next = p.next_row;
  add_pattern_row(target, p.base, _mm256_andnot_ps(next, part[0]), _mm256_andnot_ps(next, part[1]), p);
  add_pattern_row(target, p.base + width, _mm256_blendv_ps(part[2], part[0], next),
                  _mm256_blendv_ps(part[3], part[1], next), p);
  add_pattern_row(target, p.base + 2 * width, _mm256_and_ps(next, part[2]), _mm256_and_ps(next, part[3]), p);
}

// A general block's spread of one channel, lane by lane, corner by corner.
MOTIONEXT_AVX2 inline void scatter(float* target, const int32_t (&corner)[8], int64_t width, const __m256 (&part)[4]) {
  alignas(32) float parts[4][8];
  for (int c = 0; c < 4; ++c) _mm256_store_ps(parts[c], part[c]);
  const int64_t offsets[4] = {0, 1, width, width + 1};
  for (int lane = 0; lane < 8; ++lane) {
    for (int c = 0; c < 4; ++c) target[corner[lane] + offsets[c]] += parts[c][lane];
  }
}

MOTIONEXT_AVX2 inline void add_pair(float* at, __m128 pair) {  // at[0..1] += pair[0..1]
  __m64* p = reinterpret_cast<__m64*>(at);
  _mm_storel_pi(p, _mm_add_ps(_mm_loadl_pi(_mm_setzero_ps(), p), pair));
}

// Lanes L and L + 1 of a cell row, each lane's (corner 0, corner 1) side by side in `pairs`.
MOTIONEXT_AVX2 inline void add_two_lanes(float* target, const int32_t (&corner)[8], int lane, __m128 pairs) {
  add_pair(target + corner[lane], pairs);
  add_pair(target + corner[lane + 1], _mm_movehl_ps(pairs, pairs));
}

// The same spread as scatter(), with one 64-bit add per point and cell row: a cell's two corners
// along a row are neighbours in memory (Axis keeps both inside the image). Lanes that share a
// cell add in turn. The warp's image gradient on white noise, both gradients: backward 1.05 ->
// 0.87 ms. The squaring adjoint keeps scatter(): inlined there, this one cost its patterned
// blocks registers (model fields' backward 3.86 -> 4.0-4.3 ms), and out of line it gave back
// half the warp's gain.
MOTIONEXT_AVX2 inline void scatter_pairs(float* target, const int32_t (&corner)[8], int64_t width,
                                         const __m256 (&part)[4]) {
  for (int row = 0; row < 2; ++row) {
    float* cells = target + row * width;
    // unpacklo holds lanes 0, 1 | 4, 5 as pairs, unpackhi lanes 2, 3 | 6, 7
    const __m256 low = _mm256_unpacklo_ps(part[2 * row], part[2 * row + 1]);
    const __m256 high = _mm256_unpackhi_ps(part[2 * row], part[2 * row + 1]);
    add_two_lanes(cells, corner, 0, _mm256_castps256_ps128(low));
    add_two_lanes(cells, corner, 2, _mm256_castps256_ps128(high));
    add_two_lanes(cells, corner, 4, _mm256_extractf128_ps(low, 1));
    add_two_lanes(cells, corner, 6, _mm256_extractf128_ps(high, 1));
  }
}

// Spreads g onto the corners each of the 8 points read, in one channel plane `target`, with the
// block's weights: two vector adds per row for an interior block, add_pattern() for a patterned
// one, a scatter for a general one. Corners of weight 0 (outside, or a non-finite point) receive
// nothing, not 0 * Inf, as in spread(); a patterned or interior block's points are all finite.
// PairAdds: a general block's spread by scatter_pairs() rather than scatter().
template <bool PairAdds = false>
MOTIONEXT_AVX2 inline void spread_block(float* target, const Block& s, __m256 g) {
  const __m256 zero = _mm256_setzero_ps();
  const __m256 weights[4] = {_mm256_mul_ps(s.x.w_lo, s.y.w_lo), _mm256_mul_ps(s.x.w_lo, s.y.w_hi),
                             _mm256_mul_ps(s.x.w_hi, s.y.w_lo), _mm256_mul_ps(s.x.w_hi, s.y.w_hi)};
  __m256 part[4];
  for (int c = 0; c < 4; ++c) part[c] = _mm256_mul_ps(weights[c], g);
  if (s.kind == BlockKind::General || !all_finite(g)) {
    for (int c = 0; c < 4; ++c) {
      part[c] = _mm256_and_ps(_mm256_and_ps(s.finite, _mm256_cmp_ps(weights[c], zero, _CMP_NEQ_UQ)), part[c]);
    }
  }
  if (s.kind == BlockKind::Interior) {
    add_taps<false>(target, s.cell.base, part[0], part[1], zero);
    add_taps<false>(target, s.cell.base + s.width, part[2], part[3], zero);
  } else if (s.kind == BlockKind::Patterned) {
    add_pattern(target, s.pattern, s.width, part);
  } else {
    alignas(32) int32_t corner[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(corner), s.corner);
    if constexpr (PairAdds) {
      scatter_pairs(target, corner, s.width, part);
    } else {
      scatter(target, corner, s.width, part);
    }
  }
}

// A near block: nine vector loads per channel for the value's derivatives, and the spread as one
// three-tap add per row of taps (see NearTaps). Each voxel's own gradient (g_next and the
// derivative through its point) joins the middle row's taps, whose tap 0 lands on the voxels
// themselves: a separate add there would load what the row's add has just stored, offset by one
// lane, and wait for it.
MOTIONEXT_AVX2 inline void near_adjoint(const float* u, float scale, const float* g_next, float* grad,
                                        const Grid<2>& grid, int64_t voxel, const Block& s) {
  const int64_t n = grid.numel;
  const __m256 zero = _mm256_setzero_ps(), factor = _mm256_set1_ps(scale);
  __m256 g[2], own[2] = {zero, zero};
  for (int ch = 0; ch < 2; ++ch) {
    const float* top = u + ch * n + s.near_base;
    __m256 rows[3], slopes[3];  // each tap row's value and its derivative along the columns
    for (int r = 0; r < 3; ++r) {
      __m256 taps[3];
      load_taps(top + r * s.width, s.near_y, taps);
      rows[r] = three_taps(s.near_y.w, taps[0], taps[1], taps[2]);
      slopes[r] = three_taps(s.near_y.dw, taps[0], taps[1], taps[2]);
    }
    reached(s.near_x, rows[0], rows[2]);
    reached(s.near_x, slopes[0], slopes[2]);
    g[ch] = _mm256_loadu_ps(g_next + ch * n + voxel);
    const __m256 gs = _mm256_mul_ps(g[ch], factor);
    own[0] = _mm256_fmadd_ps(gs, three_taps(s.near_x.dw, rows[0], rows[1], rows[2]), own[0]);
    own[1] = _mm256_fmadd_ps(gs, three_taps(s.near_x.w, slopes[0], slopes[1], slopes[2]), own[1]);
  }
  __m256 weights[3][3];
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) weights[r][c] = _mm256_mul_ps(s.near_x.w[r], s.near_y.w[c]);
  }
  for (int ch = 0; ch < 2; ++ch) {
    const bool finite = all_finite(g[ch]);
    for (int r = 0; r < 3; ++r) {
      __m256 taps[3];
      for (int c = 0; c < 3; ++c) {
        taps[c] = _mm256_mul_ps(weights[r][c], g[ch]);
        // a tap of weight 0 receives nothing, not 0 * Inf, as in spread()
        if (!finite) taps[c] = _mm256_and_ps(_mm256_cmp_ps(weights[r][c], zero, _CMP_NEQ_UQ), taps[c]);
      }
      if (r == 1) taps[1] = _mm256_add_ps(taps[1], _mm256_add_ps(g[ch], own[ch]));
      add_taps<true>(grad + ch * n, s.near_base + r * s.width, taps[0], taps[1], taps[2]);
    }
  }
}

// Any other block, patterned (the corners by load_pattern(), the spread by add_pattern()) or
// general (pair loads, and the spread as a scatter).
MOTIONEXT_AVX2 inline void block_adjoint(const float* u, float scale, const float* g_next, float* grad,
                                         const Grid<2>& grid, int64_t voxel, const Block& s) {
  const int64_t n = grid.numel;
  const __m256 nan = _mm256_set1_ps(quiet_nan<float>()), factor = _mm256_set1_ps(scale);
  __m256 local[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  for (int ch = 0; ch < 2; ++ch) {
    const __m256 g = _mm256_loadu_ps(g_next + ch * n + voxel);
    const Derivatives d = derivatives(s, load_block(u + ch * n, s));
    const __m256 gs = _mm256_mul_ps(g, factor);
    local[0] = _mm256_fmadd_ps(gs, d.dx, local[0]);
    local[1] = _mm256_fmadd_ps(gs, d.dy, local[1]);
    spread_block(grad + ch * n, s, g);
  }
  for (int k = 0; k < 2; ++k) {
    float* here = grad + k * n + voxel;
    const __m256 own = _mm256_add_ps(_mm256_loadu_ps(g_next + k * n + voxel), local[k]);
    _mm256_storeu_ps(here, _mm256_add_ps(_mm256_loadu_ps(here), _mm256_blendv_ps(nan, own, s.finite)));
  }
}

// The gradients of a warp, each skipped where its pointer is null: the displacement's, from the
// derivative of each point's bilinear value, and the image's, the spread of grad_output onto the
// corners each point read. With the image's, rows are walked one batch item per thread, so the
// spread's plain adds are safe.
struct WarpBackward {
  static constexpr bool near_blocks = false;
  const float *grad_output, *image, *displacement;
  float *grad_image, *grad_displacement;
  int64_t channels;
  const Grid<2>& grid;
  Padding padding;

  MOTIONEXT_AVX2 void block(int64_t b, int64_t voxel, const Block& s) const {
    const int64_t n = grid.numel;
    __m256 g0 = _mm256_setzero_ps(), g1 = _mm256_setzero_ps();
    for (int64_t ch = 0; ch < channels; ++ch) {
      const int64_t c = (b * channels + ch) * n;
      const __m256 g = _mm256_loadu_ps(grad_output + c + voxel);
      if (grad_displacement) {
        const Derivatives d = derivatives(s, load_block(image + c, s));
        g0 = _mm256_fmadd_ps(g, d.dx, g0);
        g1 = _mm256_fmadd_ps(g, d.dy, g1);
      }
      if (grad_image) spread_block<true>(grad_image + c, s, g);
    }
    if (!grad_displacement) return;
    const __m256 nan = _mm256_set1_ps(quiet_nan<float>());
    float* gu = grad_displacement + b * 2 * n + voxel;
    _mm256_storeu_ps(gu, _mm256_blendv_ps(nan, g0, s.finite));
    _mm256_storeu_ps(gu + n, _mm256_blendv_ps(nan, g1, s.finite));
  }

  void tail(int64_t b, int64_t voxel, const int64_t (&index)[2]) const {
    const int64_t n = grid.numel;
    warp_voxel_backward<2, float, Interpolation::Linear>(
        grad_output + b * channels * n, image + b * channels * n, displacement + b * 2 * n,
        grad_image ? grad_image + b * channels * n : nullptr, grad_displacement ? grad_displacement + b * 2 * n : nullptr,
        channels, grid, voxel, index, padding, PlainAdd());
  }
};

// The adjoint of one step for one batch item; grad is zeroed. One thread owns the item, so
// plain adds are safe.
MOTIONEXT_AVX2 void squaring_backward_item(const float* u, float scale, const float* g_next, float* grad,
                                           const Grid<2>& grid, Padding padding) {
  const int64_t n = grid.numel, rows = grid.size[0], width = grid.size[1];
  for (int64_t i = 0; i < rows; ++i) {
    int64_t j = 0;
    for (; j + 8 <= width; j += 8) {
      const int64_t voxel = i * width + j;
      const Points p = sample_points(u + voxel, u + n + voxel, i, j, scale);
      Cell cell;
      if (interior_cell(p, grid, cell)) {
        interior_adjoint(u, scale, g_next, grad, grid, voxel, cell);
      } else {
        Block block;
        if (!near_block(p, i, j, grid, block)) general_block(p, grid, padding, block);
        if (block.kind == BlockKind::Near) {
          near_adjoint(u, scale, g_next, grad, grid, voxel, block);
        } else {
          block_adjoint(u, scale, g_next, grad, grid, voxel, block);
        }
      }
    }
    for (; j < width; ++j) {
      const int64_t index[2] = {i, j};
      squaring_voxel_backward<2, float>(u, scale, g_next, grad, grid, i * width + j, index, padding, PlainAdd());
    }
  }
}

}  // namespace

bool avx2_path_active() {
  static const bool cpu_ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return cpu_ok && simd_allowed();
}

// Cells inside the image need two rows and two columns.
bool warp2d_avx2_usable(const Grid<2>& grid) {
  return avx2_path_active() && grid.size[0] >= 2 && grid.size[1] >= 2 && grid.numel < (int64_t(1) << 31);
}

void warp2d_avx2_forward(const float* image, const float* displacement, float* out, int64_t batch, int64_t channels,
                         const Grid<2>& grid, Padding padding) {
  const WarpForward op{image, displacement, out, channels, grid, padding};
  at::parallel_for(0, batch * grid.size[0], kRowsPerTask,
                   [&](int64_t begin, int64_t end) { walk_rows(begin, end, displacement, 1.0f, grid, padding, op); });
}

void warp2d_avx2_forward_with_gradient(const float* image, const float* displacement, float* out, float* gradient,
                                       int64_t batch, int64_t channels, const Grid<2>& grid, Padding padding) {
  const WarpWithGradient op{image, displacement, out, gradient, channels, grid, padding};
  at::parallel_for(0, batch * grid.size[0], kRowsPerTask,
                   [&](int64_t begin, int64_t end) { walk_rows(begin, end, displacement, 1.0f, grid, padding, op); });
}

void squaring2d_avx2_step(const float* field, float scale, float* u_next, int64_t batch, const Grid<2>& grid,
                          Padding padding) {
  const SquaringStep op{field, scale, u_next, grid, padding};
  at::parallel_for(0, batch * grid.size[0], kRowsPerTask,
                   [&](int64_t begin, int64_t end) { walk_rows(begin, end, field, scale, grid, padding, op); });
}

void squaring2d_avx2_step_backward(const float* field, float scale, const float* g_next, float* grad, int64_t batch,
                                   const Grid<2>& grid, Padding padding) {
  const int64_t n = grid.numel;
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      squaring_backward_item(field + b * 2 * n, scale, g_next + b * 2 * n, grad + b * 2 * n, grid, padding);
    }
  });
}

void warp2d_avx2_displacement_grad(const float* grad_output, const float* image, const float* displacement,
                                   float* grad_displacement, int64_t batch, int64_t channels, const Grid<2>& grid,
                                   Padding padding) {
  const WarpBackward op{grad_output, image, displacement, nullptr, grad_displacement, channels, grid, padding};
  at::parallel_for(0, batch * grid.size[0], kRowsPerTask,
                   [&](int64_t begin, int64_t end) { walk_rows(begin, end, displacement, 1.0f, grid, padding, op); });
}

void warp2d_avx2_backward(const float* grad_output, const float* image, const float* displacement, float* grad_image,
                          float* grad_displacement, int64_t batch, int64_t channels, const Grid<2>& grid,
                          Padding padding) {
  const WarpBackward op{grad_output, image, displacement, grad_image, grad_displacement, channels, grid, padding};
  const int64_t rows = grid.size[0];
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    walk_rows(begin * rows, end * rows, displacement, 1.0f, grid, padding, op);
  });
}

#else  // no AVX2 path on this platform: never usable, never called

bool avx2_path_active() { return false; }
bool warp2d_avx2_usable(const Grid<2>&) { return false; }
void warp2d_avx2_forward(const float*, const float*, float*, int64_t, int64_t, const Grid<2>&, Padding) {}
void warp2d_avx2_forward_with_gradient(const float*, const float*, float*, float*, int64_t, int64_t, const Grid<2>&,
                                       Padding) {}
void warp2d_avx2_displacement_grad(const float*, const float*, const float*, float*, int64_t, int64_t,
                                   const Grid<2>&, Padding) {}
void warp2d_avx2_backward(const float*, const float*, const float*, float*, float*, int64_t, int64_t, const Grid<2>&,
                          Padding) {}
void squaring2d_avx2_step(const float*, float, float*, int64_t, const Grid<2>&, Padding) {}
void squaring2d_avx2_step_backward(const float*, float, const float*, float*, int64_t, const Grid<2>&, Padding) {}

#endif

}  // namespace cpu
}  // namespace motionext
