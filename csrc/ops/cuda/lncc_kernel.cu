// motionext::lncc on CUDA: the five window sums by running sums, one thread per line and axis,
// ping-ponging between two plane buffers.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "../checks.h"
#include "../ops.h"
#include "launch.cuh"
#include "motionext/lncc.h"

namespace motionext {
namespace {

template <typename scalar_t, typename T>
__global__ void fill_kernel(const scalar_t* a, const scalar_t* b, T* s, int64_t total) {
  const int64_t i = cuda::thread_index();
  if (i >= total) return;
  const T va = static_cast<T>(a[i]), vb = static_cast<T>(b[i]);
  s[kSumA * total + i] = va;
  s[kSumB * total + i] = vb;
  s[kSumAA * total + i] = va * va;
  s[kSumBB * total + i] = vb * vb;
  s[kSumAB * total + i] = va * vb;
}

template <typename T>
__global__ void box_line_kernel(const T* src, T* dst, int64_t lines, int64_t len, int64_t axis_stride,
                                int64_t radius) {
  const int64_t line = cuda::thread_index();
  if (line >= lines) return;
  const int64_t outer = line / axis_stride, inner = line - outer * axis_stride;
  const int64_t start = outer * len * axis_stride + inner;
  box_sum_line<T>(src + start, axis_stride, dst + start, axis_stride, len, radius);
}

// Box-sum `count` elements (planes × B·C·N) at `data` along every spatial axis; `scratch` is as large.
template <typename T>
void box_filter(T* data, T* scratch, int64_t count, const std::vector<int64_t>& spatial, int64_t radius) {
  T* src = data;
  T* dst = scratch;
  int64_t stride = 1;
  for (int64_t axis = static_cast<int64_t>(spatial.size()) - 1; axis >= 0; --axis) {
    const int64_t len = spatial[axis], lines = count / len;
    box_line_kernel<T><<<cuda::blocks_for(lines), cuda::kThreads, 0, cuda::stream()>>>(src, dst, lines, len, stride, radius);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    std::swap(src, dst);
    stride *= len;
  }
  if (src != data) {
    C10_CUDA_CHECK(cudaMemcpyAsync(data, src, count * sizeof(T), cudaMemcpyDeviceToDevice, cuda::stream()));
  }
}

template <typename T>
__device__ WindowSums<T> sums_at(const T* s, int64_t total, int64_t i) {
  return {s[kSumA * total + i], s[kSumB * total + i], s[kSumAA * total + i], s[kSumBB * total + i],
          s[kSumAB * total + i]};
}

template <typename scalar_t, typename T>
__global__ void cc_kernel(const T* s, scalar_t* out, int64_t total, T n, T nr, T dr) {
  const int64_t i = cuda::thread_index();
  if (i >= total) return;
  out[i] = static_cast<scalar_t>(lncc_terms(sums_at(s, total, i), n, nr, dr).cc);
}

template <typename scalar_t, typename T>
__global__ void sum_gradient_kernel(T* s, const scalar_t* grad, int64_t total, T n, T nr, T dr) {
  const int64_t i = cuda::thread_index();
  if (i >= total) return;
  const WindowSums<T> d = lncc_sum_gradients(sums_at(s, total, i), n, nr, dr, static_cast<T>(grad[i]));
  s[kSumA * total + i] = d.a;
  s[kSumB * total + i] = d.b;
  s[kSumAA * total + i] = d.aa;
  s[kSumBB * total + i] = d.bb;
  s[kSumAB * total + i] = d.ab;
}

template <typename scalar_t, typename T>
__global__ void input_gradient_kernel(const T* s, const scalar_t* a, const scalar_t* b, scalar_t* grad_a,
                                      scalar_t* grad_b, int64_t total) {
  const int64_t i = cuda::thread_index();
  if (i >= total) return;
  const WindowSums<T> d = sums_at(s, total, i);
  const T va = static_cast<T>(a[i]), vb = static_cast<T>(b[i]);
  if (grad_a) grad_a[i] = static_cast<scalar_t>(lncc_input_gradient(d.a, d.aa, d.ab, va, vb));
  if (grad_b) grad_b[i] = static_cast<scalar_t>(lncc_input_gradient(d.b, d.bb, d.ab, vb, va));
}

template <typename T>
T window_volume(const at::Tensor& a, int64_t window) {
  T n = T(1);
  for (int64_t k = 2; k < a.dim(); ++k) n *= static_cast<T>(window);
  return n;
}

// Window sums of a, b, a^2, b^2, ab as (5, total) planes, plus a scratch buffer of the same size.
template <typename scalar_t>
std::pair<at::Tensor, at::Tensor> window_sums(const at::Tensor& a, const at::Tensor& b, int64_t window) {
  using T = at::opmath_type<scalar_t>;
  const int64_t total = a.numel();
  const auto options = a.options().dtype(at::toOpMathType(a.scalar_type()));
  at::Tensor sums = at::empty({kSumPlanes, total}, options), scratch = at::empty({kSumPlanes, total}, options);
  fill_kernel<scalar_t, T><<<cuda::blocks_for(total), cuda::kThreads, 0, cuda::stream()>>>(
      a.const_data_ptr<scalar_t>(), b.const_data_ptr<scalar_t>(), sums.mutable_data_ptr<T>(), total);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const std::vector<int64_t> spatial(a.sizes().begin() + 2, a.sizes().end());
  box_filter(sums.mutable_data_ptr<T>(), scratch.mutable_data_ptr<T>(), kSumPlanes * total, spatial, window / 2);
  return {sums, scratch};
}

at::Tensor lncc_cuda(const at::Tensor& a_in, const at::Tensor& b_in, int64_t window, double smooth_nr,
                     double smooth_dr) {
  check_lncc_args(a_in, b_in, window);
  const c10::cuda::CUDAGuard guard(a_in.device());
  const at::Tensor a = a_in.contiguous(), b = b_in.contiguous();
  at::Tensor cc = at::empty(a.sizes(), a.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, a.scalar_type(), "motionext_lncc_cuda", [&] {
    using T = at::opmath_type<scalar_t>;
    const auto buffers = window_sums<scalar_t>(a, b, window);
    const int64_t total = a.numel();
    cc_kernel<scalar_t, T><<<cuda::blocks_for(total), cuda::kThreads, 0, cuda::stream()>>>(
        buffers.first.const_data_ptr<T>(), cc.mutable_data_ptr<scalar_t>(), total, window_volume<T>(a, window),
        static_cast<T>(smooth_nr), static_cast<T>(smooth_dr));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return cc;
}

std::tuple<at::Tensor, at::Tensor> lncc_backward_cuda(const at::Tensor& grad_cc_in, const at::Tensor& a_in,
                                                      const at::Tensor& b_in, int64_t window, double smooth_nr,
                                                      double smooth_dr, std::array<bool, 2> output_mask) {
  check_lncc_backward_args(grad_cc_in, a_in, b_in, window);
  const c10::cuda::CUDAGuard guard(a_in.device());
  const at::Tensor grad_cc = grad_cc_in.contiguous(), a = a_in.contiguous(), b = b_in.contiguous();
  at::Tensor grad_a = output_mask[0] ? at::empty(a.sizes(), a.options()) : no_gradient(a);
  at::Tensor grad_b = output_mask[1] ? at::empty(b.sizes(), b.options()) : no_gradient(b);
  if (!output_mask[0] && !output_mask[1]) return {grad_a, grad_b};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, a.scalar_type(), "motionext_lncc_backward_cuda", [&] {
    using T = at::opmath_type<scalar_t>;
    auto buffers = window_sums<scalar_t>(a, b, window);
    T* s = buffers.first.mutable_data_ptr<T>();
    T* scratch = buffers.second.mutable_data_ptr<T>();
    const int64_t total = a.numel();
    sum_gradient_kernel<scalar_t, T><<<cuda::blocks_for(total), cuda::kThreads, 0, cuda::stream()>>>(
        s, grad_cc.const_data_ptr<scalar_t>(), total, window_volume<T>(a, window), static_cast<T>(smooth_nr),
        static_cast<T>(smooth_dr));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    // All five planes at once: one set of launches beats skipping the two unneeded planes.
    const std::vector<int64_t> spatial(a.sizes().begin() + 2, a.sizes().end());
    box_filter(s, scratch, kSumPlanes * total, spatial, window / 2);
    input_gradient_kernel<scalar_t, T><<<cuda::blocks_for(total), cuda::kThreads, 0, cuda::stream()>>>(
        s, a.const_data_ptr<scalar_t>(), b.const_data_ptr<scalar_t>(),
        output_mask[0] ? grad_a.mutable_data_ptr<scalar_t>() : nullptr,
        output_mask[1] ? grad_b.mutable_data_ptr<scalar_t>() : nullptr, total);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {grad_a, grad_b};
}

}  // namespace

TORCH_LIBRARY_IMPL(motionext, CUDA, m) {
  m.impl("lncc", &lncc_cuda);
  m.impl("lncc_backward", &lncc_backward_cuda);
}

}  // namespace motionext
