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
/// sin, inverse); the tables are in the statistics type S (fp32 beside bf16 activations on a GPU).
template <class Op, class Backend, class X>
concept RopeOp = requires(Ctx<Backend>& ctx, stat_of<X> const* cs, stat_of<X>* s, act_of<X>* p, std::int64_t n,
                          double base, bool inv) {
  { Op::tables(ctx, s, s, n, n, base) } -> std::same_as<void>;
  { Op::apply(ctx, p, n, n, n, n, n, cs, cs, inv) } -> std::same_as<void>;
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
