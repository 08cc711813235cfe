// kumiki/ops/cpu/residual_rmsnorm.hpp: the CPU residual + RMSNorm, composed of the two CPU ops.
#pragma once

#include <cstdint>

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/ops/cpu/residual.hpp"
#include "kumiki/ops/cpu/rmsnorm.hpp"
#include "kumiki/ops/residual_rmsnorm.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

template <>
struct ResidualRmsNorm<Cpu> {
  /// sum = a + b; y = sum * rstd * w (see ops/residual_rmsnorm.hpp). Two passes: the sum is memory
  /// bound and the norm parallel over rows, so fusing them buys the CPU little.
  template <class T>
  static void forward(Ctx<Cpu>& ctx, T const* a, T const* b, T* sum, T const* w, T* y, T* rstd, std::int64_t n,
                      std::int64_t c, double eps) {
    Residual<Cpu>::forward(ctx, a, b, sum, n * c);
    RmsNorm<Cpu>::forward(ctx, sum, w, y, rstd, n, c, eps);
  }
};

static_assert(ResidualRmsNormOp<ResidualRmsNorm<Cpu>, Cpu, float> &&
              ResidualRmsNormOp<ResidualRmsNorm<Cpu>, Cpu, double>);

}  // namespace ops
KUMIKI_NAMESPACE_END
