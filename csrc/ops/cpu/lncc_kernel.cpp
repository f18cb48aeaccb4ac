// motionext::lncc on the CPU: five window sums, streamed row by row along the slowest axis.
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

// Vectorise the loop that follows; _Pragma, unlike #pragma, may sit inside AT_DISPATCH's lambda.
#define MOTIONEXT_SIMD _Pragma("omp simd")

// The row loops are also compiled for AVX2 and picked at load time. Without FMA, the AVX2 clone
// rounds exactly as the baseline one, so results do not depend on the machine.
#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define MOTIONEXT_CPU_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define MOTIONEXT_CPU_CLONES
#endif

namespace motionext {
namespace {

// Sliding box sums of `lanes` independent sequences of length `len`: element (lane l, step i)
// sits at src[l * lane_stride + i * src_step] and goes to dst[l * lane_stride + i * dst_step].
// Running sums are kept in double so long lines do not drift in float32. kContiguousLanes
// (lane_stride == 1) lets the compiler vectorise across lanes; otherwise the lanes still run as
// independent dependency chains. src and dst must not overlap.
template <bool kContiguousLanes, typename T>
MOTIONEXT_CPU_CLONES void box_sum_lanes(const T* __restrict src, int64_t src_step, T* __restrict dst, int64_t dst_step, int64_t lanes,
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
  inline void set(int64_t i, const WindowSums<T>& v) const {
    a[i] = v.a;
    b[i] = v.b;
    aa[i] = v.aa;
    bb[i] = v.bb;
    ab[i] = v.ab;
  }
};

// Every pass streams along the slowest spatial axis ("rows": y in 2D, z in 3D). Each row is
// box-filtered over the other axes as it is made, and a running sum over the last 2r+1 rows
// gives the window sums of one row at a time, used at once. A thread's working set is a few
// rows. (The scheme before made several passes over whole (5, N) buffers, with transposes for
// the last axis; it cost 2.9x more per voxel, see docs/design.md.)

// out[j] = padded[j] + ... + padded[j + 2 radius]: kBlock outputs at a time, summed in registers
// tap by tap, so the inner loop vectorises.
template <typename T>
MOTIONEXT_CPU_CLONES void direct_line_sum(const T* __restrict padded, T* __restrict out, int64_t len, int64_t radius) {
  constexpr int64_t kBlock = 16;
  int64_t j = 0;
  for (; j + kBlock <= len; j += kBlock) {
    T sum[kBlock] = {};
    for (int64_t k = 0; k <= 2 * radius; ++k) {
      MOTIONEXT_SIMD
      for (int64_t l = 0; l < kBlock; ++l) sum[l] += padded[j + k + l];
    }
    for (int64_t l = 0; l < kBlock; ++l) out[j + l] = sum[l];
  }
  for (; j < len; ++j) {
    T sum = T(0);
    for (int64_t k = 0; k <= 2 * radius; ++k) sum += padded[j + k];
    out[j] = sum;
  }
}

// Box-sum `lines` contiguous lines of `len` in place along the line, zero outside. A direct sum
// over the window vectorises across the line; its cost grows with the window, so wide windows
// take the running sum instead.
template <typename T>
void box_sum_last_axis(T* data, int64_t lines, int64_t len, int64_t radius, std::vector<T>& scratch,
                       std::vector<double>& acc) {
  constexpr int64_t kDirectRadius = 8;
  if (radius > kDirectRadius) {
    scratch.assign(data, data + lines * len);
    acc.resize(lines);
    box_sum_lanes<false>(scratch.data(), 1, data, 1, lines, len, len, radius, acc.data());
    return;
  }
  scratch.assign(len + 2 * radius, T(0));
  for (int64_t line = 0; line < lines; ++line) {
    T* row = data + line * len;
    std::copy(row, row + len, scratch.begin() + radius);
    direct_line_sum(scratch.data(), row, len, radius);
  }
}

// Box-filters the planes of one row in place over the row's own axes (x in 2D; y, x in 3D).
template <typename T>
class RowFilter {
 public:
  RowFilter(const std::vector<int64_t>& axes, int64_t radius) : axes_(axes), radius_(radius) {
    for (int64_t n : axes_) size_ *= n;
  }

  void operator()(T* planes, int64_t count) {
    const int64_t last = axes_.back();
    box_sum_last_axis(planes, count * (size_ / last), last, radius_, scratch_, acc_);
    if (axes_.size() == 1) return;
    // 3D: along y, with x as contiguous lanes.
    acc_.resize(last);
    for (int64_t q = 0; q < count; ++q) {
      T* plane = planes + q * size_;
      scratch_.assign(plane, plane + size_);
      box_sum_lanes<true>(scratch_.data(), last, plane, last, last, 1, axes_[0], radius_, acc_.data());
    }
  }

 private:
  std::vector<int64_t> axes_;
  int64_t radius_, size_ = 1;
  std::vector<T> scratch_;
  std::vector<double> acc_;
};

template <typename T>
MOTIONEXT_CPU_CLONES void accumulate_row(double* __restrict sums, const T* __restrict values, int64_t count, double sign) {
  MOTIONEXT_SIMD
  for (int64_t i = 0; i < count; ++i) sums[i] += sign * static_cast<double>(values[i]);
}

// Window sums along the rows, one row at a time. next() returns, for rows first, first + 1, ...,
// `quantities` planes (double, quantity-major) summed over rows i - r .. i + r. Rows are made on
// demand by fill(row, planes), already filtered over their own axes; a ring keeps the 2r + 2
// rows the running sum still needs. Sums are kept in double so long axes do not drift.
template <typename T, typename Fill>
class RowStream {
 public:
  RowStream(int64_t rows, int64_t radius, int64_t quantities, int64_t size, int64_t first, Fill fill)
      : rows_(rows), radius_(radius), width_(quantities * size), capacity_(2 * radius + 2),
        next_in_(std::max<int64_t>(0, first - radius)), lowest_(next_in_), next_out_(first),
        ring_(capacity_ * width_), sums_(width_, 0.0), fill_(std::move(fill)) {}

  const double* next() {
    const int64_t row = next_out_++;
    for (const int64_t last = std::min(rows_ - 1, row + radius_); next_in_ <= last; ++next_in_) {
      T* planes = slot(next_in_);
      fill_(next_in_, planes);
      accumulate(planes, 1.0);
    }
    if (row - radius_ - 1 >= lowest_) accumulate(slot(row - radius_ - 1), -1.0);
    return sums_.data();
  }

 private:
  T* slot(int64_t row) { return ring_.data() + (row % capacity_) * width_; }

  void accumulate(const T* values, double sign) { accumulate_row(sums_.data(), values, width_, sign); }

  int64_t rows_, radius_, width_, capacity_, next_in_, lowest_, next_out_;
  std::vector<T> ring_;
  std::vector<double> sums_;
  Fill fill_;
};

// How one call is cut into tasks: items (batch x channel), each of `rows` rows of `size` voxels,
// each item's rows in `chunks` consecutive ranges.
struct RowTasks {
  int64_t items, rows, size = 1, radius, chunks;
  std::vector<int64_t> row_axes;

  RowTasks(const at::Tensor& a, int64_t window)
      : items(a.size(0) * a.size(1)), rows(a.size(2)), radius(window / 2), row_axes(a.sizes().begin() + 3, a.sizes().end()) {
    for (int64_t n : row_axes) size *= n;
    // Fewer items than threads (one 3D volume): cut the rows so every thread has work. A chunk
    // recomputes up to 2r rows either side, so a chunk is kept at 2 windows or more.
    const int64_t threads = at::get_num_threads();
    const int64_t wanted = (threads + items - 1) / items;
    chunks = std::max<int64_t>(1, std::min(wanted, rows / (2 * (2 * radius + 1))));
  }

  // fn(offset of the item's first voxel, first row, end row) for every task, in parallel. The
  // chunks depend on the thread count, so the last bits may differ between thread counts (the
  // running sums start at other rows), never between runs.
  template <typename Fn>
  void run(const Fn& fn) const {
    at::parallel_for(0, items * chunks, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t item = t / chunks, c = t % chunks;
        fn(item * rows * size, rows * c / chunks, rows * (c + 1) / chunks);
      }
    });
  }
};

template <typename scalar_t, typename T>
MOTIONEXT_CPU_CLONES void products_row(const scalar_t* __restrict pa, const scalar_t* __restrict pb, int64_t size,
                                       const Planes<T> out) {
  MOTIONEXT_SIMD
  for (int64_t v = 0; v < size; ++v) {
    const T va = static_cast<T>(pa[v]), vb = static_cast<T>(pb[v]);
    out.set(v, {va, vb, va * va, vb * vb, va * vb});
  }
}

// fill() for the window sums: the five products of one row, filtered over the row's axes.
template <typename scalar_t, typename T>
struct ProductRows {
  const scalar_t* a;
  const scalar_t* b;
  int64_t size;
  RowFilter<T>* filter;

  void operator()(int64_t row, T* planes) const {
    products_row<scalar_t, T>(a + row * size, b + row * size, size, Planes<T>(planes, size));
    (*filter)(planes, kSumPlanes);
  }
};

// Window sums of a row of RowStream's planes (double, quantity-major), as pointers per plane.
struct RowSums {
  const double* __restrict a;
  const double* __restrict b;
  const double* __restrict aa;
  const double* __restrict bb;
  const double* __restrict ab;
  RowSums(const double* s, int64_t size)
      : a(s + kSumA * size), b(s + kSumB * size), aa(s + kSumAA * size), bb(s + kSumBB * size),
        ab(s + kSumAB * size) {}
  template <typename T>
  inline WindowSums<T> at(int64_t v) const {
    return {static_cast<T>(a[v]), static_cast<T>(b[v]), static_cast<T>(aa[v]), static_cast<T>(bb[v]),
            static_cast<T>(ab[v])};
  }
};

// The per-row loops are plain functions: inside AT_DISPATCH's lambdas GCC does not vectorise them.
template <typename scalar_t, typename T>
MOTIONEXT_CPU_CLONES void cc_row(const RowSums s, int64_t size, T n, T nr, T dr, scalar_t* __restrict out) {
  MOTIONEXT_SIMD
  for (int64_t v = 0; v < size; ++v) out[v] = static_cast<scalar_t>(lncc_terms(s.template at<T>(v), n, nr, dr).cc);
}

template <typename scalar_t, typename T>
MOTIONEXT_CPU_CLONES void sum_gradient_row(const RowSums s, const scalar_t* __restrict g, int64_t size, T n, T nr,
                                           T dr, const Planes<T> d) {
  MOTIONEXT_SIMD
  for (int64_t v = 0; v < size; ++v) d.set(v, lncc_sum_gradients(s.template at<T>(v), n, nr, dr, static_cast<T>(g[v])));
}

template <typename scalar_t, typename T>
MOTIONEXT_CPU_CLONES void input_gradient_row(const double* __restrict d_sum, const double* __restrict d_square,
                                             const double* __restrict d_cross, const scalar_t* __restrict self,
                                             const scalar_t* __restrict other, int64_t size,
                                             scalar_t* __restrict out) {
  MOTIONEXT_SIMD
  for (int64_t v = 0; v < size; ++v) {
    out[v] = static_cast<scalar_t>(lncc_input_gradient(static_cast<T>(d_sum[v]), static_cast<T>(d_square[v]),
                                                       static_cast<T>(d_cross[v]), static_cast<T>(self[v]),
                                                       static_cast<T>(other[v])));
  }
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
  const RowTasks tasks(a, window);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, a.scalar_type(), "motionext_lncc_cpu", [&] {
    using T = at::opmath_type<scalar_t>;
    const T n = window_volume<T>(a, window), nr = static_cast<T>(smooth_nr), dr = static_cast<T>(smooth_dr);
    const int64_t size = tasks.size;
    tasks.run([&](int64_t offset, int64_t begin, int64_t end) {
      RowFilter<T> filter(tasks.row_axes, tasks.radius);
      const ProductRows<scalar_t, T> products{a.const_data_ptr<scalar_t>() + offset, b.const_data_ptr<scalar_t>() + offset,
                                              size, &filter};
      RowStream<T, ProductRows<scalar_t, T>> sums(tasks.rows, tasks.radius, kSumPlanes, size, begin, products);
      for (int64_t row = begin; row < end; ++row) {
        cc_row(RowSums(sums.next(), size), size, n, nr, dr, cc.mutable_data_ptr<scalar_t>() + offset + row * size);
      }
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
  const RowTasks tasks(a, window);
  // The sum-gradient planes the requested inputs need, packed: d/d(sum ab) always, then d/d(sum a)
  // and d/d(sum a^2) for a, d/d(sum b) and d/d(sum b^2) for b.
  std::array<int64_t, kSumPlanes> packed;
  packed.fill(-1);
  int64_t needed = 0;
  packed[kSumAB] = needed++;
  if (output_mask[0]) { packed[kSumA] = needed++; packed[kSumAA] = needed++; }
  if (output_mask[1]) { packed[kSumB] = needed++; packed[kSumBB] = needed++; }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, a.scalar_type(), "motionext_lncc_backward_cpu", [&] {
    using T = at::opmath_type<scalar_t>;
    const T n = window_volume<T>(a, window), nr = static_cast<T>(smooth_nr), dr = static_cast<T>(smooth_dr);
    const int64_t size = tasks.size, radius = tasks.radius;
    tasks.run([&](int64_t offset, int64_t begin, int64_t end) {
      const scalar_t* pa = a.const_data_ptr<scalar_t>() + offset;
      const scalar_t* pb = b.const_data_ptr<scalar_t>() + offset;
      const scalar_t* pg = grad_cc.const_data_ptr<scalar_t>() + offset;
      // Two streams in series: window sums, turned row by row into d(loss)/d(sums); then those,
      // box-filtered back onto the voxels that fed each window (the box filter is its own adjoint).
      RowFilter<T> filter(tasks.row_axes, radius);
      RowStream<T, ProductRows<scalar_t, T>> sums(tasks.rows, radius, kSumPlanes, size, std::max<int64_t>(0, begin - radius),
                                                  ProductRows<scalar_t, T>{pa, pb, size, &filter});
      std::vector<T> all(kSumPlanes * size);
      auto sum_gradients = [&](int64_t row, T* planes) {
        sum_gradient_row(RowSums(sums.next(), size), pg + row * size, size, n, nr, dr, Planes<T>(all.data(), size));
        for (int q = 0; q < kSumPlanes; ++q)
          if (packed[q] >= 0) std::copy(all.begin() + q * size, all.begin() + (q + 1) * size, planes + packed[q] * size);
        filter(planes, needed);
      };
      RowStream<T, decltype(sum_gradients)> spread(tasks.rows, radius, needed, size, begin, sum_gradients);
      for (int64_t row = begin; row < end; ++row) {
        const double* d = spread.next();
        const int64_t at = offset + row * size, local = row * size;
        const double* d_cross = d + packed[kSumAB] * size;
        if (output_mask[0])
          input_gradient_row<scalar_t, T>(d + packed[kSumA] * size, d + packed[kSumAA] * size, d_cross, pa + local,
                                          pb + local, size, grad_a.mutable_data_ptr<scalar_t>() + at);
        if (output_mask[1])
          input_gradient_row<scalar_t, T>(d + packed[kSumB] * size, d + packed[kSumBB] * size, d_cross, pb + local,
                                          pa + local, size, grad_b.mutable_data_ptr<scalar_t>() + at);
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
