// kumiki/ops/attention.hpp: causal grouped-query self-attention, flash-attention style (tiled online softmax).
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/ops/context.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

/// Sizes and row strides of one attention call. q is (B, T, heads, head_dim) and k, v are
/// (B, T, groups, head_dim), each token row `ld_*` elements apart (they may live in one fused qkv
/// buffer); o and d_o are (B, T, heads, head_dim) with stride ld_o. Gradients use the same strides.
struct AttentionShape {
  std::int64_t batch = 0, seq = 0, heads = 0, groups = 0, head_dim = 0;
  std::int64_t ld_q = 0, ld_k = 0, ld_v = 0, ld_o = 0;
};

/// The Attention signature: document_starts (tokens, B, T, eod, doc_start), forward (shape, q, k, v, o,
/// lse, doc_start, scale) and backward (shape, q, k, v, o, d_o, lse, d_q, d_k, d_v, doc_start, scale);
/// lse and the softmax scale are of the statistics type S.
template <class Op, class Backend, class X>
concept AttentionOp = requires(Ctx<Backend>& ctx, AttentionShape const& sh, act_of<X> const* c, act_of<X>* p,
                               stat_of<X> const* cs, stat_of<X>* s, std::int32_t const* ci, std::int32_t* pi,
                               std::int64_t n, stat_of<X> scale) {
  { Op::document_starts(ctx, ci, n, n, std::int32_t{0}, pi) } -> std::same_as<void>;
  { Op::forward(ctx, sh, c, c, c, p, s, ci, scale) } -> std::same_as<void>;
  { Op::backward(ctx, sh, c, c, c, c, c, cs, p, p, p, ci, scale) } -> std::same_as<void>;
};

/// Causal GQA attention: never materializes repeated K/V nor a T x T score matrix; the forward saves
/// the log-sum-exp per row, the backward recomputes the probabilities tile by tile.
/// Specializations: ops/cpu/attention.hpp (Cpu), ops/cuda/attention.cuh (Cuda).
/// \tparam Backend device tag (`Cpu`, `Cuda`)
template <class Backend>
struct Attention {
  static_assert(always_false<Backend>,
                "kumiki: no Attention op for this backend; include kumiki/cpu.hpp (Cpu) or kumiki/cuda.cuh (Cuda)");
};

}  // namespace ops
KUMIKI_NAMESPACE_END
