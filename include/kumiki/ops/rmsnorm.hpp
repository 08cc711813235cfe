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
/// c, accumulate); rstd holds statistics of type S (fp32 beside bf16 activations on a GPU).
template <class Op, class Backend, class T, class S = T>
concept RmsNormOp = requires(Ctx<Backend>& ctx, T const* c, T* p, S const* cs, S* s, std::int64_t n, double eps, bool acc) {
  { Op::forward(ctx, c, c, p, s, n, n, eps) } -> std::same_as<void>;
  { Op::backward(ctx, c, c, c, cs, p, p, n, n, acc) } -> std::same_as<void>;
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
