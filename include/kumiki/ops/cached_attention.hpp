// kumiki/ops/cached_attention.hpp: causal GQA attention of new query rows against a key/value cache
// (incremental decoding: prefill once, then one token at a time).
#pragma once

#include <concepts>
#include <cstdint>

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/ops/context.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

/// One sequence's call: `rows` new queries at positions past .. past + rows - 1, q laid out
/// (rows, heads, head_dim) with row stride ld_q, o likewise with ld_o; the cache holds that
/// sequence's keys and values for positions 0 .. past + rows - 1, (positions, groups, head_dim) with
/// row stride ld_kv (the new rows already written). Query row i sees keys 0 .. past + i.
struct CachedAttentionShape {
  std::int64_t rows = 0, past = 0, heads = 0, groups = 0, head_dim = 0;
  std::int64_t ld_q = 0, ld_kv = 0, ld_o = 0;
};

/// The CachedAttention signature: forward (shape, q, k_cache, v_cache, o, scale).
template <class Op, class Backend, class T>
concept CachedAttentionOp = requires(Ctx<Backend>& ctx, CachedAttentionShape const& s, T const* c, T* p, T scale) {
  { Op::forward(ctx, s, c, c, c, p, scale) } -> std::same_as<void>;
};

/// o = softmax(scale * q k^T) v over the cached keys, query head h reading group h / (heads / groups):
/// the inference twin of ops::Attention (no log-sum-exp saved, no backward). Specializations:
/// ops/cpu/cached_attention.hpp (Cpu). A backend without one cannot generate yet.
template <class Backend>
struct CachedAttention {
  static_assert(always_false<Backend>,
                "kumiki: no CachedAttention op for this backend (generation); include kumiki/cpu.hpp for Cpu");
};

}  // namespace ops
KUMIKI_NAMESPACE_END
