// Argument checks of each op, called by its CPU and CUDA implementations before any work.
#pragma once

#include <array>
#include <vector>

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

namespace motionext {

void check_warp_args(const at::Tensor& image, const at::Tensor& displacement);
void check_warp_backward_args(const at::Tensor& grad_output, const at::Tensor& image,
                              const at::Tensor& displacement);

void check_scaling_squaring_args(const at::Tensor& velocity, int64_t steps);
void check_scaling_squaring_backward_args(const at::Tensor& grad_output, const at::Tensor& velocity,
                                          const at::Tensor& trajectory, int64_t steps);
// (slots, *velocity.shape): the shape of the kept trajectory.
std::vector<int64_t> trajectory_shape(const at::Tensor& velocity, int64_t slots);

void check_lncc_args(const at::Tensor& a, const at::Tensor& b, int64_t window);
void check_lncc_backward_args(const at::Tensor& grad_cc, const at::Tensor& a, const at::Tensor& b,
                              int64_t window);

// An empty placeholder for a gradient that was not asked for.
inline at::Tensor no_gradient(const at::Tensor& like) { return at::empty({0}, like.options()); }

}  // namespace motionext
