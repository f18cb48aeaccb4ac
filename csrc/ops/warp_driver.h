// Host side of warp shared by the CPU and CUDA implementations: argument checks, contiguous
// inputs, output and gradient buffers, dtype / ndim / mode dispatch. A Backend supplies:
//   Backend::Guard(device)
//   Backend::forward<NDIM, MODE, scalar_t>(image, displacement, out, batch, channels, grid, padding)
//   Backend::backward<NDIM, MODE, scalar_t>(grad_output, image, displacement, grad_image (op-math,
//       zeroed, or null), grad_displacement (or null), batch, channels, grid, padding)
//   Backend::forward_with_gradient<NDIM, scalar_t>(image, displacement, out, gradient, batch, channels, grid,
//       padding): linear warping and the image's gradient at the sample points
#pragma once

#include <array>
#include <tuple>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include "checks.h"
#include "ops.h"

namespace motionext {

template <typename Backend>
at::Tensor warp_forward(const at::Tensor& image_in, const at::Tensor& displacement_in, c10::string_view mode,
                        c10::string_view padding_name) {
  check_warp_args(image_in, displacement_in);
  const Interpolation interpolation = parse_interpolation("motionext.warp", mode);
  const Padding padding = parse_padding("motionext.warp", padding_name);
  const typename Backend::Guard guard(image_in.device());
  const at::Tensor image = image_in.contiguous(), displacement = displacement_in.contiguous();
  at::Tensor out = at::empty(image.sizes(), image.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, image.scalar_type(), "motionext_warp", [&] {
    MOTIONEXT_DISPATCH_NDIM(image.dim() - 2, [&] {
      MOTIONEXT_DISPATCH_MODE(interpolation, [&] {
        Backend::template forward<NDIM, MODE, scalar_t>(
            image.const_data_ptr<scalar_t>(), displacement.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(),
            image.size(0), image.size(1), make_grid<NDIM>(image), padding);
      });
    });
  });
  return out;
}

template <typename Backend>
std::tuple<at::Tensor, at::Tensor> warp_backward(const at::Tensor& grad_output_in, const at::Tensor& image_in,
                                                 const at::Tensor& displacement_in, c10::string_view mode,
                                                 c10::string_view padding_name, std::array<bool, 2> output_mask) {
  check_warp_backward_args(grad_output_in, image_in, displacement_in);
  const Interpolation interpolation = parse_interpolation("motionext.warp", mode);
  const Padding padding = parse_padding("motionext.warp", padding_name);
  const typename Backend::Guard guard(image_in.device());
  const at::Tensor grad_output = grad_output_in.contiguous();
  const at::Tensor image = image_in.contiguous(), displacement = displacement_in.contiguous();
  const auto opmath = at::toOpMathType(image.scalar_type());
  // The image gradient is spread by accumulation, so it is summed in the op-math type.
  at::Tensor grad_image = output_mask[0] ? at::zeros(image.sizes(), image.options().dtype(opmath)) : at::Tensor();
  at::Tensor grad_displacement =
      output_mask[1] ? at::empty(displacement.sizes(), displacement.options()) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, image.scalar_type(), "motionext_warp_backward", [&] {
    using T = at::opmath_type<scalar_t>;
    MOTIONEXT_DISPATCH_NDIM(image.dim() - 2, [&] {
      MOTIONEXT_DISPATCH_MODE(interpolation, [&] {
        Backend::template backward<NDIM, MODE, scalar_t>(
            grad_output.const_data_ptr<scalar_t>(), image.const_data_ptr<scalar_t>(),
            displacement.const_data_ptr<scalar_t>(), grad_image.defined() ? grad_image.mutable_data_ptr<T>() : nullptr,
            grad_displacement.defined() ? grad_displacement.mutable_data_ptr<scalar_t>() : nullptr, image.size(0),
            image.size(1), make_grid<NDIM>(image), padding);
      });
    });
  });
  return {grad_image.defined() ? grad_image.to(image.scalar_type()) : no_gradient(image),
          grad_displacement.defined() ? grad_displacement : no_gradient(image)};
}

// (out, gradient): the linear warp and d out / d displacement per channel, (B, C, ndim, *spatial).
template <typename Backend>
std::tuple<at::Tensor, at::Tensor> warp_with_gradient(const at::Tensor& image_in, const at::Tensor& displacement_in,
                                                      c10::string_view padding_name) {
  check_warp_args(image_in, displacement_in);
  const Padding padding = parse_padding("motionext.warp", padding_name);
  const typename Backend::Guard guard(image_in.device());
  const at::Tensor image = image_in.contiguous(), displacement = displacement_in.contiguous();
  const int64_t ndim = image.dim() - 2;
  std::vector<int64_t> gradient_shape{image.size(0), image.size(1), ndim};
  for (int64_t k = 0; k < ndim; ++k) gradient_shape.push_back(image.size(2 + k));
  at::Tensor out = at::empty(image.sizes(), image.options());
  at::Tensor gradient = at::empty(gradient_shape, image.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, image.scalar_type(), "motionext_warp_with_gradient", [&] {
    MOTIONEXT_DISPATCH_NDIM(ndim, [&] {
      Backend::template forward_with_gradient<NDIM, scalar_t>(
          image.const_data_ptr<scalar_t>(), displacement.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(),
          gradient.mutable_data_ptr<scalar_t>(), image.size(0), image.size(1), make_grid<NDIM>(image), padding);
    });
  });
  return {out, gradient};
}

}  // namespace motionext
