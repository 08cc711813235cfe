// kumiki/ops/linear.hpp: bias-free linear layers y = x W^T with W in Hugging Face [out, in] layout, forward and backward.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/ops/context.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

/// The Linear signature: forward (x, W, y, n, in, out, accumulate, ldx, ldy), backward_input (d_y, W,
/// d_x, n, in, out, accumulate, ld_dy, ld_dx) and backward_weight (d_y, x, d_W, n, in, out, ld_dy, ldx);
/// row strides of 0 mean dense rows. x, y and their gradients are activations, W a parameter, d_W a
/// weight gradient (X: a precision policy or one scalar type).
template <class Op, class Backend, class X>
concept LinearOp = requires(Ctx<Backend>& ctx, act_of<X> const* c, act_of<X>* p, param_of<X> const* w,
                            grad_of<X>* dw, std::int64_t n, bool acc) {
  { Op::forward(ctx, c, w, p, n, n, n, acc, n, n) } -> std::same_as<void>;
  { Op::backward_input(ctx, c, w, p, n, n, n, acc, n, n) } -> std::same_as<void>;
  { Op::backward_weight(ctx, c, c, dw, n, n, n, n, n) } -> std::same_as<void>;
};

/// Linear: y (N, out) = x (N, in) W^T, d_x = d_y W, d_W += d_y^T x.
/// Specializations: ops/cpu/linear.hpp (Cpu), ops/cuda/linear.cuh (Cuda).
/// \tparam Backend device tag (`Cpu`, `Cuda`)
template <class Backend>
struct Linear {
  static_assert(always_false<Backend>,
                "kumiki: no Linear op for this backend; include kumiki/cpu.hpp (Cpu) or kumiki/cuda.cuh (Cuda)");
};

}  // namespace ops
KUMIKI_NAMESPACE_END
