// kumiki/ops/fill.hpp: parameter initialization: Philox normal samples and constants, thread-count independent.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/ops/context.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

/// The Fill signature: normal (p, n, seed, stream, mean, std), zero_bytes (p, bytes), constant (p, n, value).
/// X names the parameter type filled (a policy or one scalar type).
template <class Op, class Backend, class X>
concept FillOp = requires(Ctx<Backend>& ctx, param_of<X>* p, void* raw, std::int64_t n, std::uint64_t u, double d,
                          param_of<X> v) {
  { Op::normal(ctx, p, n, u, u, d, d) } -> std::same_as<void>;
  { Op::zero_bytes(ctx, raw, std::size_t{0}) } -> std::same_as<void>;
  { Op::constant(ctx, p, n, v) } -> std::same_as<void>;
};

/// Parameter fills: normal(seed, stream) from Philox, addressed by element index; constants.
/// Specializations: ops/cpu/fill.hpp (Cpu), ops/cuda/fill.cuh (Cuda).
/// \tparam Backend device tag (`Cpu`, `Cuda`)
template <class Backend>
struct Fill {
  static_assert(always_false<Backend>,
                "kumiki: no Fill op for this backend; include kumiki/cpu.hpp (Cpu) or kumiki/cuda.cuh (Cuda)");
};

}  // namespace ops
KUMIKI_NAMESPACE_END
