// motionext::lncc on the CPU: five window sums by running sums along each axis in turn.
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

namespace motionext {
namespace {

// Box-sum a contiguous (L, *spatial) block in place along every spatial axis.
// Running sums are kept in double so long lines do not drift in float32.
template <typename T>
void box_filter_inplace(T* data, int64_t lines_total, const std::vector<int64_t>& spatial, int64_t radius) {
  int64_t stride = 1;
  for (int64_t axis = static_cast<int64_t>(spatial.size()) - 1; axis >= 0; --axis) {
    const int64_t len = spatial[axis];
    const int64_t lines = lines_total / len;
    const int64_t axis_stride = stride;
    at::parallel_for(0, lines, std::max<int64_t>(1, cpu::kGrain / len), [&](int64_t begin, int64_t end) {
      std::vector<T> scratch(len);
      for (int64_t line = begin; line < end; ++line) {
        const int64_t outer = line / axis_stride, inner = line - outer * axis_stride;
        T* start = data + outer * len * axis_stride + inner;
        for (int64_t i = 0; i < len; ++i) scratch[i] = start[i * axis_stride];
        box_sum_line<double>(scratch.data(), 1, start, axis_stride, len, radius);
      }
    });
    stride *= len;
  }
}

// (5, B*C*N) planes of window sums of a, b, a^2, b^2, ab in the op-math type.
template <typename scalar_t>
at::Tensor window_sums(const at::Tensor& a, const at::Tensor& b, int64_t window) {
  using T = at::opmath_type<scalar_t>;
  const int64_t total = a.numel();
  at::Tensor sums = at::empty({kSumPlanes, total}, a.options().dtype(at::toOpMathType(a.scalar_type())));
  const scalar_t* pa = a.const_data_ptr<scalar_t>();
  const scalar_t* pb = b.const_data_ptr<scalar_t>();
  T* s = sums.mutable_data_ptr<T>();
  at::parallel_for(0, total, cpu::kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const T va = static_cast<T>(pa[i]), vb = static_cast<T>(pb[i]);
      s[kSumA * total + i] = va;
      s[kSumB * total + i] = vb;
      s[kSumAA * total + i] = va * va;
      s[kSumBB * total + i] = vb * vb;
      s[kSumAB * total + i] = va * vb;
    }
  });
  const std::vector<int64_t> spatial(a.sizes().begin() + 2, a.sizes().end());
  box_filter_inplace(s, kSumPlanes * total, spatial, window / 2);
  return sums;
}

template <typename T>
WindowSums<T> sums_at(const T* s, int64_t total, int64_t i) {
  return {s[kSumA * total + i], s[kSumB * total + i], s[kSumAA * total + i], s[kSumBB * total + i],
          s[kSumAB * total + i]};
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
    const at::Tensor sums = window_sums<scalar_t>(a, b, window);
    const T* s = sums.const_data_ptr<T>();
    scalar_t* out = cc.mutable_data_ptr<scalar_t>();
    const int64_t total = a.numel();
    const T n = window_volume<T>(a, window), nr = static_cast<T>(smooth_nr), dr = static_cast<T>(smooth_dr);
    at::parallel_for(0, total, cpu::kGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) out[i] = static_cast<scalar_t>(lncc_terms(sums_at(s, total, i), n, nr, dr).cc);
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
    const T n = window_volume<T>(a, window), nr = static_cast<T>(smooth_nr), dr = static_cast<T>(smooth_dr);
    const scalar_t* g = grad_cc.const_data_ptr<scalar_t>();
    at::parallel_for(0, total, cpu::kGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const WindowSums<T> d = lncc_sum_gradients(sums_at(s, total, i), n, nr, dr, static_cast<T>(g[i]));
        s[kSumA * total + i] = d.a;
        s[kSumB * total + i] = d.b;
        s[kSumAA * total + i] = d.aa;
        s[kSumBB * total + i] = d.bb;
        s[kSumAB * total + i] = d.ab;
      }
    });
    const std::vector<int64_t> spatial(a.sizes().begin() + 2, a.sizes().end());
    const int64_t radius = window / 2;
    auto filter = [&](int plane) { box_filter_inplace(s + plane * total, total, spatial, radius); };
    filter(kSumAB);
    if (output_mask[0]) { filter(kSumA); filter(kSumAA); }
    if (output_mask[1]) { filter(kSumB); filter(kSumBB); }
    const scalar_t* pa = a.const_data_ptr<scalar_t>();
    const scalar_t* pb = b.const_data_ptr<scalar_t>();
    scalar_t* ga = output_mask[0] ? grad_a.mutable_data_ptr<scalar_t>() : nullptr;
    scalar_t* gb = output_mask[1] ? grad_b.mutable_data_ptr<scalar_t>() : nullptr;
    at::parallel_for(0, total, cpu::kGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const WindowSums<T> d = sums_at(s, total, i);
        const T va = static_cast<T>(pa[i]), vb = static_cast<T>(pb[i]);
        if (ga) ga[i] = static_cast<scalar_t>(lncc_input_gradient(d.a, d.aa, d.ab, va, vb));
        if (gb) gb[i] = static_cast<scalar_t>(lncc_input_gradient(d.b, d.bb, d.ab, vb, va));
      }
    });
  });
  return {grad_a, grad_b};
}

}  // namespace

TORCH_LIBRARY_IMPL(motionext, CPU, m) {
  m.impl("lncc", &lncc_cpu);
  m.impl("lncc_backward", &lncc_backward_cpu);
}

}  // namespace motionext
