// kumiki/ops/embedding.hpp: token embedding lookup (forward) and scatter-add (backward).
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/ops/context.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

/// The Embedding signature: forward (tokens, table, out, n, c, rows) and backward (tokens, d_out,
/// d_table, n, c).
template <class Op, class Backend, class X>
concept EmbeddingOp = requires(Ctx<Backend>& ctx, std::int32_t const* ids, param_of<X> const* table, act_of<X>* out,
                               act_of<X> const* d_out, grad_of<X>* d_table, std::int64_t n) {
  { Op::forward(ctx, ids, table, out, n, n, n) } -> std::same_as<void>;
  { Op::backward(ctx, ids, d_out, d_table, n, n) } -> std::same_as<void>;
};

/// Token embedding: out[i] = table[tokens[i]]; backward scatter-adds rows into the table gradient.
/// Specializations: ops/cpu/embedding.hpp (Cpu), ops/cuda/embedding.cuh (Cuda).
/// \tparam Backend device tag (`Cpu`, `Cuda`)
template <class Backend>
struct Embedding {
  static_assert(always_false<Backend>,
                "kumiki: no Embedding op for this backend; include kumiki/cpu.hpp (Cpu) or kumiki/cuda.cuh (Cuda)");
};

}  // namespace ops
KUMIKI_NAMESPACE_END
