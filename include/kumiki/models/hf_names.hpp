// kumiki/models/hf_names.hpp: the Hugging Face Llama / Mixtral parameter names and shapes of a
// configuration, in arena order: the one place they are spelled (the model, upcycling and interop use it).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "kumiki/config.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/dtype.hpp"
#include "kumiki/core/shape.hpp"
#include "kumiki/models/transformer_config.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace models::hf {

inline std::string layer_prefix(std::int64_t layer) { return "model.layers." + std::to_string(layer) + "."; }
/// Dense MLP: "<layer>mlp.gate_proj.weight", ... (gate, up, down).
inline std::string mlp_prefix(std::int64_t layer) { return layer_prefix(layer) + "mlp."; }
/// MoE router: "<layer>block_sparse_moe.gate.weight".
inline std::string router_name(std::int64_t layer) { return layer_prefix(layer) + "block_sparse_moe.gate.weight"; }
/// Expert e: "<layer>block_sparse_moe.experts.<e>.w1.weight" (gate), w3 (up), w2 (down).
inline std::string expert_prefix(std::int64_t layer, std::int64_t expert) {
  return layer_prefix(layer) + "block_sparse_moe.experts." + std::to_string(expert) + ".";
}
inline constexpr char const* embedding_name = "model.embed_tokens.weight";
inline constexpr char const* final_norm_name = "model.norm.weight";
inline constexpr char const* lm_head_name = "lm_head.weight";

/// Whether a parameter is an output projection, whose Megatron init std is init_std / sqrt(2 L):
/// attention's o_proj, the MLP's down_proj and an expert's w2 (down).
inline bool is_output_projection(std::string_view name) {
  auto ends_with = [&](std::string_view suffix) {
    return name.size() >= suffix.size() && name.substr(name.size() - suffix.size()) == suffix;
  };
  return ends_with(".self_attn.o_proj.weight") || ends_with(".mlp.down_proj.weight") || ends_with(".w2.weight");
}

/// Parameter names and shapes of configuration `c` in Hugging Face Llama (dense) or Mixtral (MoE)
/// order, every tensor of type `dtype`. Within a layer q, k, v and gate, up (an expert's w1, w3) are
/// adjacent, so each group runs as one GEMM. The embedding and LM head have the padded vocabulary.
inline ArenaLayout param_layout(TransformerConfig const& c, DType dtype) {
  std::int64_t const C = c.hidden, KV = c.kv_width(), F = c.ffn_hidden, E = c.num_experts, Fe = c.expert_ffn();
  ArenaLayout l;
  l.add(embedding_name, dtype, Shape{c.padded_vocab(), C});
  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    std::string const p = layer_prefix(i);
    l.add(p + "input_layernorm.weight", dtype, Shape{C});
    l.add(p + "self_attn.q_proj.weight", dtype, Shape{C, C});
    l.add(p + "self_attn.k_proj.weight", dtype, Shape{KV, C});
    l.add(p + "self_attn.v_proj.weight", dtype, Shape{KV, C});
    l.add(p + "self_attn.o_proj.weight", dtype, Shape{C, C});
    l.add(p + "post_attention_layernorm.weight", dtype, Shape{C});
    if (c.is_moe()) {
      l.add(router_name(i), dtype, Shape{E, C});
      for (std::int64_t e = 0; e < E; ++e) {
        std::string const x = expert_prefix(i, e);
        l.add(x + "w1.weight", dtype, Shape{Fe, C});
        l.add(x + "w3.weight", dtype, Shape{Fe, C});
        l.add(x + "w2.weight", dtype, Shape{C, Fe});
      }
    } else {
      std::string const m = mlp_prefix(i);
      l.add(m + "gate_proj.weight", dtype, Shape{F, C});
      l.add(m + "up_proj.weight", dtype, Shape{F, C});
      l.add(m + "down_proj.weight", dtype, Shape{C, F});
    }
  }
  l.add(final_norm_name, dtype, Shape{C});
  l.add(lm_head_name, dtype, Shape{c.padded_vocab(), C});
  return l;
}

}  // namespace models::hf
KUMIKI_NAMESPACE_END
