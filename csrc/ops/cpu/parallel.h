// CPU loop helpers: walk (batch, voxel) pairs in parallel, and spread gradients onto
// neighbours without data races.
#pragma once

#include <cstring>
#include <type_traits>

#include <ATen/Parallel.h>

#include "motionext/grid.h"

namespace motionext {
namespace cpu {

// Voxels per task: large enough that scheduling costs nothing next to the per-voxel work.
constexpr int64_t kGrain = 4096;

// fn(b, voxel, index) for every voxel of every batch item, split across threads.
template <int NDIM, typename Fn>
void for_each_voxel(int64_t batch, const Grid<NDIM>& grid, const Fn& fn) {
  const int64_t n = grid.numel;
  at::parallel_for(0, batch * n, kGrain, [&](int64_t begin, int64_t end) {
    int64_t i = begin;
    while (i < end) {
      const int64_t b = i / n;
      int64_t voxel = i - b * n;
      const int64_t stop = end < (b + 1) * n ? end : (b + 1) * n;
      int64_t index[NDIM];
      grid.unravel(voxel, index);
      for (; i < stop; ++i, ++voxel, grid.advance(index)) fn(b, voxel, index);
    }
  });
}

// x += v where other threads may add to the same element (compare-and-swap on its bits).
template <typename T>
inline void atomic_add(T* address, T value) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "atomic_add: float or double only");
  using Bits = std::conditional_t<sizeof(T) == 8, uint64_t, uint32_t>;
  Bits* bits = reinterpret_cast<Bits*>(address);
  Bits expected = __atomic_load_n(bits, __ATOMIC_RELAXED);
  Bits desired;
  do {
    T current;
    std::memcpy(&current, &expected, sizeof(T));
    current += value;
    std::memcpy(&desired, &current, sizeof(T));
  } while (!__atomic_compare_exchange_n(bits, &expected, desired, /*weak=*/true,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED));
}

struct PlainAdd {
  template <typename T, typename V>
  void operator()(T* address, V value) const { *address += static_cast<T>(value); }
};

struct AtomicAdd {
  template <typename T, typename V>
  void operator()(T* address, V value) const { atomic_add(address, static_cast<T>(value)); }
};

// Like for_each_voxel, for loops that spread values onto other voxels of the same batch item:
// fn(b, voxel, index, add). With at least as many batch items as threads, each thread owns whole
// batch items and adds plainly; otherwise voxels are split across threads and adds are atomic.
// True when whole batch items can go to threads (plain adds suffice for spreading).
inline bool items_per_thread(int64_t batch) {
  return batch >= at::get_num_threads() || at::get_num_threads() == 1 || at::in_parallel_region();
}

template <int NDIM, typename Fn>
void for_each_voxel_spreading(int64_t batch, const Grid<NDIM>& grid, const Fn& fn) {
  if (items_per_thread(batch)) {
    at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
      const PlainAdd add;
      for (int64_t b = begin; b < end; ++b) {
        int64_t index[NDIM];
        grid.unravel(0, index);
        for (int64_t voxel = 0; voxel < grid.numel; ++voxel, grid.advance(index)) fn(b, voxel, index, add);
      }
    });
    return;
  }
  const AtomicAdd add;
  for_each_voxel(batch, grid, [&](int64_t b, int64_t voxel, const int64_t(&index)[NDIM]) {
    fn(b, voxel, index, add);
  });
}

}  // namespace cpu
}  // namespace motionext
