// motionext::warp on the CPU.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include "../checks.h"
#include "../ops.h"
#include "motionext/warp.h"
#include "parallel.h"

namespace motionext {
namespace {

constexpr const char* kOp = "motionext.warp";

template <int NDIM, Interpolation MODE, typename scalar_t>
void forward(const at::Tensor& image, const at::Tensor& displacement, at::Tensor& out, Padding padding) {
  using T = at::opmath_type<scalar_t>;
  const auto grid = make_grid<NDIM>(image);
  const int64_t channels = image.size(1), n = grid.numel;
  const scalar_t* img = image.const_data_ptr<scalar_t>();
  const scalar_t* u = displacement.const_data_ptr<scalar_t>();
  scalar_t* o = out.mutable_data_ptr<scalar_t>();
  cpu::for_each_voxel(image.size(0), grid, [&](int64_t b, int64_t voxel, const int64_t(&index)[NDIM]) {
    warp_voxel_forward<NDIM, T, MODE>(img + b * channels * n, u + b * NDIM * n, o + b * channels * n,
                                      channels, grid, voxel, index, padding);
  });
}

template <int NDIM, Interpolation MODE, typename scalar_t>
void backward(const at::Tensor& grad_output, const at::Tensor& image, const at::Tensor& displacement,
              at::Tensor& grad_image, at::Tensor& grad_displacement, Padding padding) {
  using T = at::opmath_type<scalar_t>;
  const auto grid = make_grid<NDIM>(image);
  const int64_t channels = image.size(1), n = grid.numel;
  const scalar_t* go = grad_output.const_data_ptr<scalar_t>();
  const scalar_t* img = image.const_data_ptr<scalar_t>();
  const scalar_t* u = displacement.const_data_ptr<scalar_t>();
  T* gi = grad_image.defined() ? grad_image.mutable_data_ptr<T>() : nullptr;
  scalar_t* gu = grad_displacement.defined() ? grad_displacement.mutable_data_ptr<scalar_t>() : nullptr;
  auto body = [&](int64_t b, int64_t voxel, const int64_t(&index)[NDIM], const auto& add) {
    warp_voxel_backward<NDIM, T, MODE>(go + b * channels * n, img + b * channels * n, u + b * NDIM * n,
                                       gi ? gi + b * channels * n : nullptr, gu ? gu + b * NDIM * n : nullptr,
                                       channels, grid, voxel, index, padding, add);
  };
  if (gi) {
    cpu::for_each_voxel_spreading(image.size(0), grid, body);
  } else {
    cpu::for_each_voxel(image.size(0), grid, [&](int64_t b, int64_t voxel, const int64_t(&index)[NDIM]) {
      body(b, voxel, index, cpu::PlainAdd());
    });
  }
}

at::Tensor warp_cpu(const at::Tensor& image_in, const at::Tensor& displacement_in,
                    c10::string_view mode, c10::string_view padding_name) {
  check_warp_args(image_in, displacement_in);
  const Interpolation interpolation = parse_interpolation(kOp, mode);
  const Padding padding = parse_padding(kOp, padding_name);
  const at::Tensor image = image_in.contiguous(), displacement = displacement_in.contiguous();
  at::Tensor out = at::empty(image.sizes(), image.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, image.scalar_type(), "motionext_warp_cpu", [&] {
    MOTIONEXT_DISPATCH_NDIM(image.dim() - 2, [&] {
      MOTIONEXT_DISPATCH_MODE(interpolation, [&] {
        forward<NDIM, MODE, scalar_t>(image, displacement, out, padding);
      });
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> warp_backward_cpu(const at::Tensor& grad_output_in,
                                                     const at::Tensor& image_in,
                                                     const at::Tensor& displacement_in,
                                                     c10::string_view mode,
                                                     c10::string_view padding_name,
                                                     std::array<bool, 2> output_mask) {
  check_warp_backward_args(grad_output_in, image_in, displacement_in);
  const Interpolation interpolation = parse_interpolation(kOp, mode);
  const Padding padding = parse_padding(kOp, padding_name);
  const at::Tensor grad_output = grad_output_in.contiguous();
  const at::Tensor image = image_in.contiguous(), displacement = displacement_in.contiguous();
  const auto opmath = at::toOpMathType(image.scalar_type());
  // The image gradient is spread by accumulation, so it is summed in the op-math type.
  at::Tensor grad_image = output_mask[0] ? at::zeros(image.sizes(), image.options().dtype(opmath)) : at::Tensor();
  at::Tensor grad_displacement =
      output_mask[1] ? at::empty(displacement.sizes(), displacement.options()) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, image.scalar_type(), "motionext_warp_backward_cpu", [&] {
    MOTIONEXT_DISPATCH_NDIM(image.dim() - 2, [&] {
      MOTIONEXT_DISPATCH_MODE(interpolation, [&] {
        backward<NDIM, MODE, scalar_t>(grad_output, image, displacement, grad_image, grad_displacement, padding);
      });
    });
  });
  return {grad_image.defined() ? grad_image.to(image.scalar_type()) : no_gradient(image),
          grad_displacement.defined() ? grad_displacement : no_gradient(image)};
}

}  // namespace

TORCH_LIBRARY_IMPL(motionext, CPU, m) {
  m.impl("warp", &warp_cpu);
  m.impl("warp_backward", &warp_backward_cpu);
}

}  // namespace motionext
