// motionext::scaling_squaring on the CPU: the squaring step and its adjoint; the host logic is
// in ../scaling_squaring_driver.h.
#include <torch/library.h>

#include "../scaling_squaring_driver.h"
#include <type_traits>

#include "motionext/scaling_squaring.h"
#include "parallel.h"
#include "squaring3d_avx2.h"
#include "warp2d_avx2.h"

namespace motionext {
namespace {

struct CpuSquaring {
  struct Guard {
    explicit Guard(const c10::Device&) {}
  };

  // u_next = u + u∘(id + u) with u = scale * field.
  template <int NDIM, typename T, typename field_t>
  static void step(const field_t* field, T scale, T* u_next, int64_t batch, const Grid<NDIM>& grid, Padding padding) {
    if constexpr (NDIM == 2 && std::is_same_v<T, float> && std::is_same_v<field_t, float>) {
      if (cpu::warp2d_avx2_usable(grid)) return cpu::squaring2d_avx2_step(field, scale, u_next, batch, grid, padding);
    }
    if constexpr (NDIM == 3 && std::is_same_v<T, float> && std::is_same_v<field_t, float>) {
      if (cpu::squaring3d_avx2_usable(grid)) return cpu::squaring3d_avx2_step(field, scale, u_next, batch, grid, padding);
    }
    const int64_t n = grid.numel;
    cpu::for_each_voxel(batch, grid, [&](int64_t b, int64_t voxel, const int64_t(&index)[NDIM]) {
      squaring_voxel_forward<NDIM, T>(field + b * NDIM * n, scale, u_next + b * NDIM * n, grid, voxel, index, padding);
    });
  }

  // grad += adjoint of one step applied to g_next.
  template <int NDIM, typename T, typename field_t>
  static void step_backward(const field_t* field, T scale, const T* g_next, T* grad, int64_t batch,
                            const Grid<NDIM>& grid, Padding padding) {
    if constexpr (NDIM == 2 && std::is_same_v<T, float> && std::is_same_v<field_t, float>) {
      if (cpu::warp2d_avx2_usable(grid) && cpu::items_per_thread(batch)) {
        return cpu::squaring2d_avx2_step_backward(field, scale, g_next, grad, batch, grid, padding);
      }
    }
    if constexpr (NDIM == 3 && std::is_same_v<T, float> && std::is_same_v<field_t, float>) {
      if (cpu::squaring3d_avx2_usable(grid)) {
        return cpu::squaring3d_avx2_step_backward(field, scale, g_next, grad, batch, grid, padding);
      }
    }
    const int64_t n = grid.numel;
    cpu::for_each_voxel_spreading(batch, grid, grad, batch * NDIM * n, [&](int64_t b, int64_t voxel, const int64_t(&index)[NDIM], const auto& add) {
      squaring_voxel_backward<NDIM, T>(field + b * NDIM * n, scale, g_next + b * NDIM * n, grad + b * NDIM * n, grid,
                                       voxel, index, padding, add);
    });
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(motionext, CPU, m) {
  m.impl("scaling_squaring", &scaling_squaring_forward<CpuSquaring>);
  m.impl("scaling_squaring_backward", &scaling_squaring_backward<CpuSquaring>);
}

}  // namespace motionext
