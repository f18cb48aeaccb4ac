// motionext::lncc on the CPU: five window sums by running sums along each axis in turn.
#include <algorithm>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "../checks.h"
#include "../ops.h"
#include "motionext/lncc.h"
#include "parallel.h"

// Vectorise the loop that follows; _Pragma, unlike #pragma, may sit inside AT_DISPATCH's lambda.
#define MOTIONEXT_SIMD _Pragma("omp simd")

namespace motionext {
namespace {

// Sliding box sums of `lanes` independent sequences of length `len`: element (lane l, step i)
// sits at src[l * lane_stride + i * src_step] and goes to dst[l * lane_stride + i * dst_step].
// Running sums are kept in double so long lines do not drift in float32. kContiguousLanes
// (lane_stride == 1) lets the compiler vectorise across lanes; otherwise the lanes still run as
// independent dependency chains. src and dst must not overlap.
template <bool kContiguousLanes, typename T>
void box_sum_lanes(const T* __restrict src, int64_t src_step, T* __restrict dst, int64_t dst_step, int64_t lanes,
                   int64_t lane_stride, int64_t len, int64_t radius, double* __restrict acc) {
  const int64_t ls = kContiguousLanes ? 1 : lane_stride;
  for (int64_t l = 0; l < lanes; ++l) acc[l] = 0.0;
  for (int64_t i = 0; i < std::min(radius, len); ++i) {
    const T* row = src + i * src_step;
    for (int64_t l = 0; l < lanes; ++l) acc[l] += static_cast<double>(row[l * ls]);
  }
  for (int64_t i = 0; i < len; ++i) {
    if (i + radius < len) {
      const T* row = src + (i + radius) * src_step;
      for (int64_t l = 0; l < lanes; ++l) acc[l] += static_cast<double>(row[l * ls]);
    }
    T* out = dst + i * dst_step;
    for (int64_t l = 0; l < lanes; ++l) out[l * ls] = static_cast<T>(acc[l]);
    if (i - radius >= 0) {
      const T* row = src + (i - radius) * src_step;
      for (int64_t l = 0; l < lanes; ++l) acc[l] -= static_cast<double>(row[l * ls]);
    }
  }
}

// Box-sum a contiguous (L, *spatial) block in place along every spatial axis. Work is cut into
// blocks of lanes; each block is copied to a per-thread scratch so the sums can be written back
// in place.
template <typename T>
void box_filter_inplace(T* data, int64_t count, const std::vector<int64_t>& spatial, int64_t radius) {
  constexpr int64_t kLastAxisLanes = 32;   // rows summed together along the last axis
  constexpr int64_t kInnerChunk = 512;     // contiguous lanes per block along other axes
  int64_t inner = 1;                       // stride of the current axis
  for (int64_t axis = static_cast<int64_t>(spatial.size()) - 1; axis >= 0; --axis) {
    const int64_t len = spatial[axis];
    const int64_t slab = len * inner;      // one (len, inner) slab per outer index
    const int64_t outer = count / slab;
    if (inner == 1) {
      // Lanes would be rows `len` apart: transpose blocks of rows into scratch so the lanes are
      // contiguous, sum there, and transpose back.
      const int64_t lines = outer, blocks = (lines + kLastAxisLanes - 1) / kLastAxisLanes;
      at::parallel_for(0, blocks, std::max<int64_t>(1, cpu::kGrain / (len * kLastAxisLanes)), [&](int64_t b0, int64_t b1) {
        std::vector<T> across(kLastAxisLanes * len), summed(kLastAxisLanes * len);
        std::vector<double> acc(kLastAxisLanes);
        for (int64_t block = b0; block < b1; ++block) {
          const int64_t first = block * kLastAxisLanes, lanes = std::min(kLastAxisLanes, lines - first);
          T* start = data + first * len;
          for (int64_t l = 0; l < lanes; ++l)
            for (int64_t i = 0; i < len; ++i) across[i * lanes + l] = start[l * len + i];
          box_sum_lanes<true>(across.data(), lanes, summed.data(), lanes, lanes, 1, len, radius, acc.data());
          for (int64_t l = 0; l < lanes; ++l)
            for (int64_t i = 0; i < len; ++i) start[l * len + i] = summed[i * lanes + l];
        }
      });
    } else {
      const int64_t chunks = (inner + kInnerChunk - 1) / kInnerChunk;
      at::parallel_for(0, outer * chunks, std::max<int64_t>(1, cpu::kGrain / (len * kInnerChunk)), [&](int64_t t0, int64_t t1) {
        std::vector<T> scratch(len * kInnerChunk);
        std::vector<double> acc(kInnerChunk);
        for (int64_t task = t0; task < t1; ++task) {
          const int64_t o = task / chunks, c0 = (task - o * chunks) * kInnerChunk;
          const int64_t lanes = std::min(kInnerChunk, inner - c0);
          T* start = data + o * slab + c0;
          for (int64_t i = 0; i < len; ++i) std::copy(start + i * inner, start + i * inner + lanes, scratch.data() + i * lanes);
          box_sum_lanes<true>(scratch.data(), lanes, start, inner, lanes, 1, len, radius, acc.data());
        }
      });
    }
    inner *= len;
  }
}

// The five planes of a (5, total) window-sum buffer as separate non-aliasing pointers, so the
// per-voxel loops vectorise.
template <typename T>
struct Planes {
  T* __restrict a;
  T* __restrict b;
  T* __restrict aa;
  T* __restrict bb;
  T* __restrict ab;
  Planes(T* s, int64_t total)
      : a(s + kSumA * total), b(s + kSumB * total), aa(s + kSumAA * total), bb(s + kSumBB * total),
        ab(s + kSumAB * total) {}
  inline WindowSums<T> at(int64_t i) const { return {a[i], b[i], aa[i], bb[i], ab[i]}; }
  inline void set(int64_t i, const WindowSums<T>& v) const {
    a[i] = v.a;
    b[i] = v.b;
    aa[i] = v.aa;
    bb[i] = v.bb;
    ab[i] = v.ab;
  }
};

// (5, B*C*N) planes of window sums of a, b, a^2, b^2, ab in the op-math type.
template <typename scalar_t>
at::Tensor window_sums(const at::Tensor& a, const at::Tensor& b, int64_t window) {
  using T = at::opmath_type<scalar_t>;
  const int64_t total = a.numel();
  at::Tensor sums = at::empty({kSumPlanes, total}, a.options().dtype(at::toOpMathType(a.scalar_type())));
  const scalar_t* __restrict pa = a.const_data_ptr<scalar_t>();
  const scalar_t* __restrict pb = b.const_data_ptr<scalar_t>();
  const Planes<T> planes(sums.mutable_data_ptr<T>(), total);
  at::parallel_for(0, total, cpu::kGrain, [&](int64_t begin, int64_t end) {
    MOTIONEXT_SIMD
    for (int64_t i = begin; i < end; ++i) {
      const T va = static_cast<T>(pa[i]), vb = static_cast<T>(pb[i]);
      planes.set(i, {va, vb, va * va, vb * vb, va * vb});
    }
  });
  const std::vector<int64_t> spatial(a.sizes().begin() + 2, a.sizes().end());
  box_filter_inplace(sums.mutable_data_ptr<T>(), kSumPlanes * total, spatial, window / 2);
  return sums;
}

template <typename T>
T window_volume(const at::Tensor& a, int64_t window) {
  T n = T(1);
  for (int64_t k = 2; k < a.dim(); ++k) n *= static_cast<T>(window);
  return n;
}

at::Tensor lncc_cpu(const at::Tensor& a_in, const at::Tensor& b_in, int64_t window, double smooth_nr,
                    double smooth_dr) {
  check_lncc_args(a_in, b_in, window);
  const at::Tensor a = a_in.contiguous(), b = b_in.contiguous();
  at::Tensor cc = at::empty(a.sizes(), a.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, a.scalar_type(), "motionext_lncc_cpu", [&] {
    using T = at::opmath_type<scalar_t>;
    at::Tensor sums = window_sums<scalar_t>(a, b, window);
    const int64_t total = a.numel();
    const Planes<T> planes(sums.mutable_data_ptr<T>(), total);
    scalar_t* __restrict out = cc.mutable_data_ptr<scalar_t>();
    const T n = window_volume<T>(a, window), nr = static_cast<T>(smooth_nr), dr = static_cast<T>(smooth_dr);
    at::parallel_for(0, total, cpu::kGrain, [&](int64_t begin, int64_t end) {
    MOTIONEXT_SIMD
      for (int64_t i = begin; i < end; ++i) out[i] = static_cast<scalar_t>(lncc_terms(planes.at(i), n, nr, dr).cc);
    });
  });
  return cc;
}

std::tuple<at::Tensor, at::Tensor> lncc_backward_cpu(const at::Tensor& grad_cc_in, const at::Tensor& a_in,
                                                     const at::Tensor& b_in, int64_t window, double smooth_nr,
                                                     double smooth_dr, std::array<bool, 2> output_mask) {
  check_lncc_backward_args(grad_cc_in, a_in, b_in, window);
  const at::Tensor grad_cc = grad_cc_in.contiguous(), a = a_in.contiguous(), b = b_in.contiguous();
  at::Tensor grad_a = output_mask[0] ? at::empty(a.sizes(), a.options()) : no_gradient(a);
  at::Tensor grad_b = output_mask[1] ? at::empty(b.sizes(), b.options()) : no_gradient(b);
  if (!output_mask[0] && !output_mask[1]) return {grad_a, grad_b};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, a.scalar_type(), "motionext_lncc_backward_cpu", [&] {
    using T = at::opmath_type<scalar_t>;
    // Recompute the window sums, turn them in place into d(loss)/d(sum), box-filter those back
    // onto the voxels that fed each window, and combine: five planes in all.
    at::Tensor sums = window_sums<scalar_t>(a, b, window);
    T* s = sums.mutable_data_ptr<T>();
    const int64_t total = a.numel();
    const Planes<T> planes(s, total);
    const T n = window_volume<T>(a, window), nr = static_cast<T>(smooth_nr), dr = static_cast<T>(smooth_dr);
    const scalar_t* __restrict g = grad_cc.const_data_ptr<scalar_t>();
    at::parallel_for(0, total, cpu::kGrain, [&](int64_t begin, int64_t end) {
    MOTIONEXT_SIMD
      for (int64_t i = begin; i < end; ++i) {
        planes.set(i, lncc_sum_gradients(planes.at(i), n, nr, dr, static_cast<T>(g[i])));
      }
    });
    const std::vector<int64_t> spatial(a.sizes().begin() + 2, a.sizes().end());
    const int64_t radius = window / 2;
    auto filter = [&](int plane) { box_filter_inplace(s + plane * total, total, spatial, radius); };
    filter(kSumAB);
    if (output_mask[0]) { filter(kSumA); filter(kSumAA); }
    if (output_mask[1]) { filter(kSumB); filter(kSumBB); }
    const scalar_t* __restrict pa = a.const_data_ptr<scalar_t>();
    const scalar_t* __restrict pb = b.const_data_ptr<scalar_t>();
    // One loop per requested gradient keeps each loop free of branches.
    auto combine = [&](scalar_t* __restrict out, const T* __restrict d_sum, const T* __restrict d_square,
                       const scalar_t* __restrict self, const scalar_t* __restrict other) {
      at::parallel_for(0, total, cpu::kGrain, [&](int64_t begin, int64_t end) {
    MOTIONEXT_SIMD
        for (int64_t i = begin; i < end; ++i) {
          out[i] = static_cast<scalar_t>(lncc_input_gradient(d_sum[i], d_square[i], planes.ab[i],
                                                             static_cast<T>(self[i]), static_cast<T>(other[i])));
        }
      });
    };
    if (output_mask[0]) combine(grad_a.mutable_data_ptr<scalar_t>(), planes.a, planes.aa, pa, pb);
    if (output_mask[1]) combine(grad_b.mutable_data_ptr<scalar_t>(), planes.b, planes.bb, pb, pa);
  });
  return {grad_a, grad_b};
}

}  // namespace

TORCH_LIBRARY_IMPL(motionext, CPU, m) {
  m.impl("lncc", &lncc_cpu);
  m.impl("lncc_backward", &lncc_backward_cpu);
}

}  // namespace motionext
