// kumiki/ops/rmsnorm.hpp: RMSNorm forward and backward (Zhang & Sennrich 2019, as in Llama).
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/ops/context.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

/// The RmsNorm signature: forward (x, w, y, rstd, n, c, eps) and backward (d_y, x, w, rstd, d_x, d_w, n,
/// c, accumulate); rstd holds statistics (fp32 beside bf16 activations on a GPU), w is a parameter
/// and d_w a weight gradient.
template <class Op, class Backend, class X>
concept RmsNormOp = requires(Ctx<Backend>& ctx, act_of<X> const* c, act_of<X>* p, param_of<X> const* w,
                             grad_of<X>* dw, stat_of<X> const* cs, stat_of<X>* s, std::int64_t n, double eps, bool acc) {
  { Op::forward(ctx, c, w, p, s, n, n, eps) } -> std::same_as<void>;
  { Op::backward(ctx, c, c, w, cs, p, dw, n, n, acc) } -> std::same_as<void>;
};

/// RMSNorm: y = x / sqrt(mean(x^2) + eps) * w over the last dimension; saves 1/rms per row.
/// Specializations: ops/cpu/rmsnorm.hpp (Cpu), ops/cuda/rmsnorm.cuh (Cuda).
/// \tparam Backend device tag (`Cpu`, `Cuda`)
template <class Backend>
struct RmsNorm {
  static_assert(always_false<Backend>,
                "kumiki: no RmsNorm op for this backend; include kumiki/cpu.hpp (Cpu) or kumiki/cuda.cuh (Cuda)");
};

}  // namespace ops
KUMIKI_NAMESPACE_END
