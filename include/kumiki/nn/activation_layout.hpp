// kumiki/nn/activation_layout.hpp: the plan of a Transformer's activation arena for one (batch,
// sequence, recompute) shape, independent of any backend or memory: what nn::Transformer allocates,
// and what a dry run counts before allocating anything.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "kumiki/config.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/dtype.hpp"
#include "kumiki/models/transformer_config.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace nn {

/// Activations and backward scratch of a forward-backward on (B, T): block inputs x.0..x.L always;
/// the saved activations of every layer, or of one reused slot when recomputing; the final norm; the
/// backward scratch (shared by all layers); the LM-head loss scratch (`loss_chunk` rows of the padded
/// vocabulary); the RoPE tables; document starts. Activations are `act`, row statistics (rstd, lse,
/// the router, RoPE tables) `stat`. Offsets aligned to `alignment` (the device's). With `light` (light
/// recomputation, without `recompute`) the layers keep neither their first norm's output ln1 nor their
/// SwiGLU output h: the block writes them into the backward scratch (scratch.tmp, scratch.d_h) and
/// recomputes them in its backward.
inline ArenaLayout activation_layout(models::TransformerConfig const& c, std::int64_t B, std::int64_t Tn, bool recompute,
                                     std::int64_t loss_chunk, DType act, DType stat,
                                     std::size_t alignment = host_alignment, bool light = false) {
  bool const keep_all = recompute || !light;
  std::int64_t const N = B * Tn, C = c.hidden, F = c.ffn_hidden, QKV = c.hidden + 2 * c.kv_width();
  std::int64_t const E = c.num_experts, K = c.moe_top_k, Fe = c.expert_ffn();
  std::int64_t const chunk = std::min(loss_chunk, N);
  ArenaLayout l(alignment);
  for (std::int64_t i = 0; i <= c.num_layers; ++i) l.add("x." + std::to_string(i), act, Shape{N, C});
  std::int64_t const slots = recompute ? 1 : c.num_layers;
  for (std::int64_t i = 0; i < slots; ++i) {
    std::string const p = "block." + std::to_string(i) + ".";
    if (keep_all) l.add(p + "ln1", act, Shape{N, C});
    l.add(p + "rstd1", stat, Shape{N});
    l.add(p + "qkv", act, Shape{N, QKV});
    l.add(p + "att", act, Shape{N, C});
    l.add(p + "lse", stat, Shape{B, c.num_heads, Tn});
    l.add(p + "x_mid", act, Shape{N, C});
    l.add(p + "ln2", act, Shape{N, C});
    l.add(p + "rstd2", stat, Shape{N});
    if (c.is_moe()) {
      l.add(p + "moe.logits", stat, Shape{N, E});
      l.add(p + "moe.probs", stat, Shape{N, E});
      l.add(p + "moe.lse", stat, Shape{N});
      l.add(p + "moe.topk_idx", DType::i32, Shape{N, K});
      l.add(p + "moe.topk_w", stat, Shape{N, K});
      l.add(p + "moe.counts", DType::i64, Shape{E});
      l.add(p + "moe.offsets", DType::i64, Shape{E + 1});
      l.add(p + "moe.row_token", DType::i32, Shape{N * K});
      l.add(p + "moe.token_row", DType::i32, Shape{N, K});
      l.add(p + "moe.xg", act, Shape{N * K, C});
      l.add(p + "moe.gu", act, Shape{N * K, 2 * Fe});
      l.add(p + "moe.h", act, Shape{N * K, Fe});
      l.add(p + "moe.y", act, Shape{N * K, C});
    } else {
      l.add(p + "gu", act, Shape{N, 2 * F});
      if (keep_all) l.add(p + "h", act, Shape{N, F});
    }
  }
  l.add("final.ln", act, Shape{N, C});
  l.add("final.rstd", stat, Shape{N});
  l.add("scratch.tmp", act, Shape{N, C});
  l.add("scratch.d_res", act, Shape{N, C});
  l.add("scratch.d_ln", act, Shape{N, C});
  l.add("scratch.d_att", act, Shape{N, C});
  l.add("scratch.d_qkv", act, Shape{N, QKV});
  if (c.is_moe()) {
    l.add("scratch.moe.d_y", act, Shape{N * K, C});
    l.add("scratch.moe.d_h", act, Shape{N * K, Fe});
    l.add("scratch.moe.d_gu", act, Shape{N * K, 2 * Fe});
    l.add("scratch.moe.d_xg", act, Shape{N * K, C});
    l.add("scratch.moe.d_w", stat, Shape{N, K});
    l.add("scratch.moe.d_logits", stat, Shape{N, E});
  } else {
    l.add("scratch.d_h", act, Shape{N, F});
    l.add("scratch.d_gu", act, Shape{N, 2 * F});
  }
  l.add("scratch.loss", stat, Shape{chunk, c.padded_vocab()});
  l.add("rope.cos", stat, Shape{Tn, c.head_dim() / 2});
  l.add("rope.sin", stat, Shape{Tn, c.head_dim() / 2});
  l.add("doc_start", DType::i32, Shape{B, Tn});
  return l;
}

}  // namespace nn
KUMIKI_NAMESPACE_END
