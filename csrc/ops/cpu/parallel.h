// CPU loop helpers: walk (batch, voxel) pairs in parallel, and spread gradients onto
// neighbours without data races.
#pragma once

#include <algorithm>
#include <vector>

#include <ATen/Parallel.h>

#include "motionext/grid.h"

namespace motionext {
namespace cpu {

// Voxels per task: large enough that scheduling costs nothing next to the per-voxel work.
constexpr int64_t kGrain = 4096;

// fn(b, voxel, index) for the flat (batch item, voxel) positions [begin, end), in order.
template <int NDIM, typename Fn>
void walk_voxels(int64_t begin, int64_t end, const Grid<NDIM>& grid, const Fn& fn) {
  const int64_t n = grid.numel;
  for (int64_t i = begin; i < end;) {
    const int64_t b = i / n;
    int64_t voxel = i - b * n;
    const int64_t stop = end < (b + 1) * n ? end : (b + 1) * n;
    int64_t index[NDIM];
    grid.unravel(voxel, index);
    for (; i < stop; ++i, ++voxel, grid.advance(index)) fn(b, voxel, index);
  }
}

// fn(b, voxel, index) for every voxel of every batch item, split across threads.
template <int NDIM, typename Fn>
void for_each_voxel(int64_t batch, const Grid<NDIM>& grid, const Fn& fn) {
  at::parallel_for(0, batch * grid.numel, kGrain, [&](int64_t begin, int64_t end) { walk_voxels(begin, end, grid, fn); });
}

struct PlainAdd {
  template <typename T, typename V>
  void operator()(T* address, V value) const { *address += static_cast<T>(value); }
};

// True when whole batch items can go to threads (plain adds suffice for spreading).
inline bool items_per_thread(int64_t batch) {
  return batch >= at::get_num_threads() || at::get_num_threads() == 1 || at::in_parallel_region();
}

// Adds into a private copy of the target at the same offset.
template <typename T>
struct PrivateAdd {
  T* target;
  T* copy;
  template <typename V>
  void operator()(T* address, V value) const { copy[address - target] += static_cast<T>(value); }
};

// Private copies are capped at this many bytes in all; past it fewer ranges (threads) are used.
constexpr int64_t kPrivateCopyBytes = int64_t{256} << 20;

// run(begin, end, dest) for the units of work [begin, end) of batch items that each hold
// `units_per_item` units, where a unit's writes into `target` (`size` elements) may land anywhere
// in its batch item; dest is `target` or a private copy of it with the same layout. With at least
// as many batch items as threads, each thread owns whole batch items and writes into target.
// Otherwise the units are cut into one range per thread: the first range writes into `target`,
// each other one into a zeroed private copy, and the copies are summed in at the end. Atomic
// adds instead measured 1.6x slower on 2 threads than one thread's plain adds.
template <typename T, typename Run>
void spread_in_ranges(int64_t batch, int64_t units_per_item, T* target, int64_t size, const Run& run) {
  const int64_t total = batch * units_per_item;
  if (items_per_thread(batch)) {
    at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
      run(begin * units_per_item, end * units_per_item, target);
    });
    return;
  }
  const int64_t copies_allowed = kPrivateCopyBytes / std::max<int64_t>(1, size * int64_t(sizeof(T)));
  const int64_t ranges = std::max<int64_t>(1, std::min<int64_t>({at::get_num_threads(), copies_allowed + 1, total}));
  // Zeroed in full: copies mapped lazily (a page becomes memory when first written) kept the 3D
  // squaring's peak where it was without them (23.9 against 26.9 MiB) but made its backward 1.8x
  // slower on the development VM, whose page faults are costly.
  std::vector<T> copies((ranges - 1) * size, T(0));
  at::parallel_for(0, ranges, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      run(total * r / ranges, total * (r + 1) / ranges, r == 0 ? target : copies.data() + (r - 1) * size);
    }
  });
  at::parallel_for(0, size, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t r = 1; r < ranges; ++r) {
      const T* __restrict copy = copies.data() + (r - 1) * size;
      T* __restrict out = target;
      for (int64_t i = begin; i < end; ++i) out[i] += copy[i];
    }
  });
}

// Like for_each_voxel, for loops that spread values onto other voxels of the same batch item:
// fn(b, voxel, index, add), where every write into `target` (`size` elements) goes through add
// (split as spread_in_ranges splits units, here voxels).
template <int NDIM, typename T, typename Fn>
void for_each_voxel_spreading(int64_t batch, const Grid<NDIM>& grid, T* target, int64_t size, const Fn& fn) {
  spread_in_ranges(batch, grid.numel, target, size, [&](int64_t begin, int64_t end, T* dest) {
    if (dest == target) {
      walk_voxels(begin, end, grid,
                  [&](int64_t b, int64_t voxel, const int64_t(&index)[NDIM]) { fn(b, voxel, index, PlainAdd()); });
    } else {
      const PrivateAdd<T> add{target, dest};
      walk_voxels(begin, end, grid,
                  [&](int64_t b, int64_t voxel, const int64_t(&index)[NDIM]) { fn(b, voxel, index, add); });
    }
  });
}

}  // namespace cpu
}  // namespace motionext
