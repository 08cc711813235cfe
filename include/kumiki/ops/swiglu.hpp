// kumiki/ops/swiglu.hpp: the SwiGLU activation h = silu(gate) * up and its backward.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/ops/context.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

/// The SwiGlu signature: forward (gate, up, ld_in, h, ld_h, n, f) and backward (d_h, ld_h, gate, up,
/// ld_in, d_gate, d_up, ld_d, n, f).
template <class Op, class Backend, class X>
concept SwiGluOp = requires(Ctx<Backend>& ctx, act_of<X> const* c, act_of<X>* p, std::int64_t n) {
  { Op::forward(ctx, c, c, n, p, n, n, n) } -> std::same_as<void>;
  { Op::backward(ctx, c, n, c, c, n, p, p, n, n, n) } -> std::same_as<void>;
};

/// SwiGLU: h = silu(gate) * up elementwise, silu(g) = g * sigmoid(g).
/// Specializations: ops/cpu/swiglu.hpp (Cpu), ops/cuda/swiglu.cuh (Cuda).
/// \tparam Backend device tag (`Cpu`, `Cuda`)
template <class Backend>
struct SwiGlu {
  static_assert(always_false<Backend>,
                "kumiki: no SwiGlu op for this backend; include kumiki/cpu.hpp (Cpu) or kumiki/cuda.cuh (Cuda)");
};

}  // namespace ops
KUMIKI_NAMESPACE_END
