// kumiki/ops/residual_rmsnorm.hpp: a residual add and the RMSNorm that reads its result, as one op.
#pragma once

#include <concepts>
#include <cstdint>

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/ops/context.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

/// The ResidualRmsNorm signature: forward (a, b, sum, w, y, rstd, n, c, eps).
template <class Op, class Backend, class X>
concept ResidualRmsNormOp = requires(Ctx<Backend>& ctx, act_of<X> const* c, act_of<X>* p, param_of<X> const* w,
                                     stat_of<X>* s, std::int64_t n, double eps) {
  { Op::forward(ctx, c, c, p, w, p, s, n, n, eps) } -> std::same_as<void>;
};

/// sum (n, c) = a + b, then y = RMSNorm(sum) * w with rstd (n) saved: the pre-norm block's
/// "x_mid = x + attention(...); ln2 = norm(x_mid)". A GPU reads a and b once and writes sum and y in
/// one pass instead of three; the CPU specialization composes Residual and RmsNorm, so its results are
/// theirs bit for bit. There is no fused backward: the residual's gradient is the identity, so the
/// block adds RmsNorm's input gradient into the residual stream (RmsNorm::backward with accumulate).
/// Specializations: ops/cpu/residual_rmsnorm.hpp (Cpu), ops/cuda/residual_rmsnorm.cuh (Cuda).
/// \tparam Backend device tag (`Cpu`, `Cuda`)
template <class Backend>
struct ResidualRmsNorm {
  static_assert(always_false<Backend>, "kumiki: no ResidualRmsNorm op for this backend; include kumiki/cpu.hpp (Cpu) "
                                       "or kumiki/cuda.cuh (Cuda)");
};

}  // namespace ops
KUMIKI_NAMESPACE_END
