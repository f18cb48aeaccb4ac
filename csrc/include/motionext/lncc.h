// Per-voxel math of the local squared normalized cross-correlation (MONAI's rectangular LNCC),
// its derivatives with respect to the five window sums, and the sliding box sum along one line.
// Shared by the CPU and CUDA kernels.
#pragma once

#include <cstdint>

#include "motionext/macros.h"

namespace motionext {

// The five window sums at one voxel: sum a, sum b, sum a^2, sum b^2, sum ab.
template <typename T>
struct WindowSums {
  T a, b, aa, bb, ab;
};

// Window sum planes are stored quantity-major: plane q of a (5, L, *spatial) buffer.
enum WindowSumPlane : int { kSumA = 0, kSumB = 1, kSumAA = 2, kSumBB = 3, kSumAB = 4, kSumPlanes = 5 };

template <typename T>
struct LnccTerms {
  T cross, var_a, var_b, cc;
  T active_a, active_b;  // d max(raw variance, smooth_dr) / d raw variance (1/2 at a tie, as torch.maximum)
};

// Operation order follows MONAI's so float32 results agree to rounding.
template <typename T>
MOTIONEXT_INLINE LnccTerms<T> lncc_terms(const WindowSums<T>& s, T n, T smooth_nr, T smooth_dr) {
  LnccTerms<T> t;
  const T mean_a = s.a / n, mean_b = s.b / n;
  t.cross = s.ab - mean_a * s.b;
  const T raw_a = s.aa - mean_a * s.a;
  const T raw_b = s.bb - mean_b * s.b;
  t.var_a = raw_a > smooth_dr ? raw_a : smooth_dr;
  t.var_b = raw_b > smooth_dr ? raw_b : smooth_dr;
  t.active_a = raw_a > smooth_dr ? T(1) : (raw_a == smooth_dr ? T(0.5) : T(0));
  t.active_b = raw_b > smooth_dr ? T(1) : (raw_b == smooth_dr ? T(0.5) : T(0));
  t.cc = (t.cross * t.cross + smooth_nr) / (t.var_a * t.var_b);
  return t;
}

// grad * d cc / d (each window sum).
template <typename T>
MOTIONEXT_INLINE WindowSums<T> lncc_sum_gradients(const WindowSums<T>& s, T n, T smooth_nr,
                                                  T smooth_dr, T grad) {
  const LnccTerms<T> t = lncc_terms(s, n, smooth_nr, smooth_dr);
  const T d_cross = grad * T(2) * t.cross / (t.var_a * t.var_b);
  const T d_var_a = -grad * t.cc / t.var_a * t.active_a;
  const T d_var_b = -grad * t.cc / t.var_b * t.active_b;
  WindowSums<T> d;
  d.ab = d_cross;
  d.aa = d_var_a;
  d.bb = d_var_b;
  d.a = -d_cross * s.b / n - d_var_a * T(2) * s.a / n;
  d.b = -d_cross * s.a / n - d_var_b * T(2) * s.b / n;
  return d;
}

// Gradient at one voxel from the box-filtered sum gradients (the box filter is its own adjoint):
// d/da = D_a + 2 a D_aa + b D_ab, d/db = D_b + 2 b D_bb + a D_ab.
template <typename T>
MOTIONEXT_INLINE T lncc_input_gradient(T d_sum, T d_square, T d_cross, T self, T other) {
  return d_sum + T(2) * self * d_square + other * d_cross;
}

// dst[i] = sum of src[j] for |j - i| <= radius, zero outside [0, len): a running sum, so the
// cost does not depend on the window. src and dst must not overlap. Acc is the running-sum type.
template <typename Acc, typename T>
MOTIONEXT_INLINE void box_sum_line(const T* src, int64_t src_stride, T* dst, int64_t dst_stride,
                                   int64_t len, int64_t radius) {
  Acc sum = Acc(0);
  const int64_t head = radius < len ? radius : len;
  for (int64_t j = 0; j < head; ++j) sum += static_cast<Acc>(src[j * src_stride]);
  for (int64_t i = 0; i < len; ++i) {
    if (i + radius < len) sum += static_cast<Acc>(src[(i + radius) * src_stride]);
    dst[i * dst_stride] = static_cast<T>(sum);
    if (i - radius >= 0) sum -= static_cast<Acc>(src[(i - radius) * src_stride]);
  }
}

}  // namespace motionext
