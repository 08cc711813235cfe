// kumiki/ops/attention.hpp: causal grouped-query self-attention, flash-attention style (tiled online softmax).
#pragma once

#include <cstdint>

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

/// Sizes and row strides of one attention call. q is (B, T, heads, head_dim) and k, v are
/// (B, T, groups, head_dim), each token row `ld_*` elements apart (they may live in one fused qkv
/// buffer); o and d_o are (B, T, heads, head_dim) with stride ld_o. Gradients use the same strides.
struct AttentionShape {
  std::int64_t batch = 0, seq = 0, heads = 0, groups = 0, head_dim = 0;
  std::int64_t ld_q = 0, ld_k = 0, ld_v = 0, ld_o = 0;
};

/// Causal GQA attention: never materializes repeated K/V nor a T x T score matrix; the forward saves
/// the log-sum-exp per row, the backward recomputes the probabilities tile by tile.
/// Specializations: ops/cpu/attention.hpp (Cpu), ops/cuda/attention.cuh (Cuda).
/// \tparam Backend device tag (`Cpu`, `Cuda`)
template <class Backend>
struct Attention {
  static_assert(always_false<Backend>,
                "kumiki: no Attention op for this backend; include kumiki/ops/cpu/attention.hpp (Cpu) or the CUDA header");
};

}  // namespace ops
KUMIKI_NAMESPACE_END
