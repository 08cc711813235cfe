// kumiki/ops/rope.hpp: rotary position embedding, rotate-half convention (Hugging Face Llama, Megatron default).
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/ops/context.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

/// The Rope signature: tables (cos, sin, seq, head_dim, base) and apply (x, B, T, heads, head_dim, ld, cos,
/// sin, inverse).
template <class Op, class Backend, class T>
concept RopeOp = requires(Ctx<Backend>& ctx, T const* c, T* p, std::int64_t n, double base, bool inv) {
  { Op::tables(ctx, p, p, n, n, base) } -> std::same_as<void>;
  { Op::apply(ctx, p, n, n, n, n, n, c, c, inv) } -> std::same_as<void>;
};

/// RoPE on (B, T, heads, head_dim) rows: cos/sin tables, in-place rotation and its transpose.
/// Specializations: ops/cpu/rope.hpp (Cpu), ops/cuda/rope.cuh (Cuda).
/// \tparam Backend device tag (`Cpu`, `Cuda`)
template <class Backend>
struct Rope {
  static_assert(always_false<Backend>,
                "kumiki: no Rope op for this backend; include kumiki/cpu.hpp (Cpu) or kumiki/cuda.cuh (Cuda)");
};

}  // namespace ops
KUMIKI_NAMESPACE_END
