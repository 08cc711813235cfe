// kumiki/ops/cpu/residual.hpp: CPU residual add.
#pragma once

#include <cstdint>

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/ops/residual.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

template <>
struct Residual<Cpu> {
  /// out = a + b over n elements (out may alias a or b). The backward passes d_out to both inputs
  /// unchanged, so it needs no kernel; `accumulate` below adds a gradient into a residual stream.
  template <class T>
  static void forward(Ctx<Cpu>& /*ctx*/, T const* a, T const* b, T* out, std::int64_t n) {
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
  }
  /// d_acc += d over n elements.
  template <class T>
  static void accumulate(Ctx<Cpu>& /*ctx*/, T* d_acc, T const* d, std::int64_t n) {
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) d_acc[i] += d[i];
  }
};

static_assert(ResidualOp<Residual<Cpu>, Cpu, float> && ResidualOp<Residual<Cpu>, Cpu, double>);

}  // namespace ops
KUMIKI_NAMESPACE_END
