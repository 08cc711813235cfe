// kumiki/ops/residual.hpp: residual additions (the backward of a residual add is the identity).
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/ops/context.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

/// The Residual signature: forward (a, b, out, n) and accumulate (d_acc, d, n).
template <class Op, class Backend, class X>
concept ResidualOp = requires(Ctx<Backend>& ctx, act_of<X> const* c, act_of<X>* p, std::int64_t n) {
  { Op::forward(ctx, c, c, p, n) } -> std::same_as<void>;
  { Op::accumulate(ctx, p, c, n) } -> std::same_as<void>;
};

/// Residual add: out = a + b elementwise.
/// Specializations: ops/cpu/residual.hpp (Cpu), ops/cuda/residual.cuh (Cuda).
/// \tparam Backend device tag (`Cpu`, `Cuda`)
template <class Backend>
struct Residual {
  static_assert(always_false<Backend>,
                "kumiki: no Residual op for this backend; include kumiki/cpu.hpp (Cpu) or kumiki/cuda.cuh (Cuda)");
};

}  // namespace ops
KUMIKI_NAMESPACE_END
