// motionext::warp on the CPU: per-voxel loops over the shared math; the host logic is in
// ../warp_driver.h.
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../warp_driver.h"
#include <type_traits>

#include "motionext/warp.h"
#include "parallel.h"
#include "warp2d_avx2.h"

namespace motionext {
namespace {

// The cases with a vectorised path (warp2d_avx2.h); the rest run the scalar shared math.
template <int NDIM, Interpolation MODE, typename scalar_t>
constexpr bool kVectorised = NDIM == 2 && MODE == Interpolation::Linear && std::is_same_v<scalar_t, float>;

struct CpuWarp {
  struct Guard {
    explicit Guard(const c10::Device&) {}
  };

  template <int NDIM, Interpolation MODE, typename scalar_t>
  static void forward(const scalar_t* image, const scalar_t* displacement, scalar_t* out, int64_t batch,
                      int64_t channels, const Grid<NDIM>& grid, Padding padding) {
    using T = at::opmath_type<scalar_t>;
    if constexpr (kVectorised<NDIM, MODE, scalar_t>) {
      if (cpu::warp2d_avx2_usable(grid)) {
        return cpu::warp2d_avx2_forward(image, displacement, out, batch, channels, grid, padding);
      }
    }
    const int64_t n = grid.numel;
    cpu::for_each_voxel(batch, grid, [&](int64_t b, int64_t voxel, const int64_t(&index)[NDIM]) {
      warp_voxel_forward<NDIM, T, MODE>(image + b * channels * n, displacement + b * NDIM * n, out + b * channels * n,
                                        channels, grid, voxel, index, padding);
    });
  }

  template <int NDIM, typename scalar_t>
  static void forward_with_gradient(const scalar_t* image, const scalar_t* displacement, scalar_t* out,
                                    scalar_t* gradient, int64_t batch, int64_t channels, const Grid<NDIM>& grid,
                                    Padding padding) {
    using T = at::opmath_type<scalar_t>;
    if constexpr (kVectorised<NDIM, Interpolation::Linear, scalar_t>) {
      if (cpu::warp2d_avx2_usable(grid)) {
        return cpu::warp2d_avx2_forward_with_gradient(image, displacement, out, gradient, batch, channels, grid,
                                                      padding);
      }
    }
    const int64_t n = grid.numel;
    cpu::for_each_voxel(batch, grid, [&](int64_t b, int64_t voxel, const int64_t(&index)[NDIM]) {
      warp_voxel_forward_with_gradient<NDIM, T>(image + b * channels * n, displacement + b * NDIM * n,
                                                out + b * channels * n, gradient + b * channels * NDIM * n, channels,
                                                grid, voxel, index, padding);
    });
  }

  template <int NDIM, Interpolation MODE, typename scalar_t>
  static void backward(const scalar_t* grad_output, const scalar_t* image, const scalar_t* displacement,
                       at::opmath_type<scalar_t>* grad_image, scalar_t* grad_displacement, int64_t batch,
                       int64_t channels, const Grid<NDIM>& grid, Padding padding) {
    using T = at::opmath_type<scalar_t>;
    if constexpr (kVectorised<NDIM, MODE, scalar_t>) {
      if (!grad_image && cpu::warp2d_avx2_usable(grid)) {
        return cpu::warp2d_avx2_displacement_grad(grad_output, image, displacement, grad_displacement, batch, channels,
                                                  grid, padding);
      }
      // the image gradient is spread with plain adds: only where threads own whole batch items
      if (grad_image && cpu::warp2d_avx2_usable(grid) && cpu::items_per_thread(batch)) {
        return cpu::warp2d_avx2_backward(grad_output, image, displacement, grad_image, grad_displacement, batch,
                                         channels, grid, padding);
      }
    }
    const int64_t n = grid.numel;
    auto body = [&](int64_t b, int64_t voxel, const int64_t(&index)[NDIM], const auto& add) {
      warp_voxel_backward<NDIM, T, MODE>(grad_output + b * channels * n, image + b * channels * n,
                                         displacement + b * NDIM * n, grad_image ? grad_image + b * channels * n : nullptr,
                                         grad_displacement ? grad_displacement + b * NDIM * n : nullptr, channels, grid,
                                         voxel, index, padding, add);
    };
    if (grad_image) {
      cpu::for_each_voxel_spreading(batch, grid, grad_image, batch * channels * n, body);  // the image gradient is spread onto neighbours
    } else {
      cpu::for_each_voxel(batch, grid, [&](int64_t b, int64_t voxel, const int64_t(&index)[NDIM]) {
        body(b, voxel, index, cpu::PlainAdd());
      });
    }
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(motionext, CPU, m) {
  m.impl("warp", &warp_forward<CpuWarp>);
  m.impl("warp_backward", &warp_backward<CpuWarp>);
  m.impl("warp_with_gradient", &warp_with_gradient<CpuWarp>);
}

}  // namespace motionext
