// kumiki/models/configs.hpp: the compiled-in model configurations (LLM-jp-4 1.3B / 8B, LLM-jp-3
// 8x1.8B MoE, test, benchmark and demo sizes) and the runtime-name -> compile-time-config dispatch table.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/models/transformer_config.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace models {

/// LLM-jp-4 1.3B (tokenizer v3, Megatron phase-1 settings): about 1.31e9 parameters. max_seq_len is
/// 8192, the longest sequence of LLM-jp-4's plan (pretraining runs at 4096, mid-training at 8192; a
/// recipe's seq_len chooses): RoPE has no learned positions, so it is a bound, not a shape.
inline constexpr TransformerConfig llmjp4_1_3b{
    .vocab_size = 99487, .make_vocab_divisible_by = 128, .hidden = 2048, .ffn_hidden = 7168, .num_layers = 16,
    .num_heads = 16, .num_query_groups = 8, .rope_base = 500000.0, .rms_eps = 1e-6, .max_seq_len = 8192,
    .untie_embeddings = true, .z_loss = 0.0, .init_std = 0.02};

/// LLM-jp-4 8B ("7.7B", Llama-3-8B compatible shapes): about 7.8e9 parameters; max_seq_len 8192 as
/// for the 1.3B.
inline constexpr TransformerConfig llmjp4_8b{
    .vocab_size = 99487, .make_vocab_divisible_by = 128, .hidden = 4096, .ffn_hidden = 14336, .num_layers = 32,
    .num_heads = 32, .num_query_groups = 8, .rope_base = 500000.0, .rms_eps = 1e-6, .max_seq_len = 8192,
    .untie_embeddings = true, .z_loss = 0.0, .init_std = 0.02};

/// A tiny GQA model for unit tests (vocab 50 padded to 64, so padded rows are exercised).
inline constexpr TransformerConfig tiny_test{
    .vocab_size = 50, .make_vocab_divisible_by = 16, .hidden = 32, .ffn_hidden = 40, .num_layers = 2,
    .num_heads = 4, .num_query_groups = 2, .rope_base = 10000.0, .rms_eps = 1e-5, .max_seq_len = 32,
    .untie_embeddings = true, .z_loss = 0.0, .init_std = 0.02};

/// The benchmark reference of issue 3 (compared against PyTorch): batch 8 x seq 256 per step.
inline constexpr TransformerConfig bench_ref{
    .vocab_size = 8192, .make_vocab_divisible_by = 128, .hidden = 256, .ffn_hidden = 704, .num_layers = 4,
    .num_heads = 4, .num_query_groups = 2, .rope_base = 10000.0, .rms_eps = 1e-6, .max_seq_len = 256,
    .untie_embeddings = true, .z_loss = 0.0, .init_std = 0.02};

/// A few-million-parameter model for the CPU demo on byte-level tokens (256 bytes + BOS/EOS = 258,
/// padded to 384).
inline constexpr TransformerConfig demo{
    .vocab_size = 258, .make_vocab_divisible_by = 128, .hidden = 256, .ffn_hidden = 688, .num_layers = 4,
    .num_heads = 8, .num_query_groups = 4, .rope_base = 10000.0, .rms_eps = 1e-5, .max_seq_len = 256,
    .untie_embeddings = true, .z_loss = 0.0, .init_std = 0.02};

/// LLM-jp-3 8x1.8B, the Drop-Upcycling MoE built from LLM-jp-3 1.8B: 24 layers, hidden 2048, 8 experts
/// of width 7168, top-2, Switch load-balancing loss 1e-2, no router z-loss. 9.27e9 parameters, 2.92e9
/// active per token (llmjp-recipes.md section 5); Mixtral-compatible shapes.
inline constexpr TransformerConfig llmjp3_8x1_8b{
    .vocab_size = 99487, .make_vocab_divisible_by = 128, .hidden = 2048, .ffn_hidden = 7168, .num_layers = 24,
    .num_heads = 16, .num_query_groups = 16, .rope_base = 10000.0, .rms_eps = 1e-5, .max_seq_len = 4096,
    .untie_embeddings = true, .z_loss = 0.0, .init_std = 0.02, .num_experts = 8, .moe_top_k = 2,
    .moe_ffn_hidden = 0, .moe_aux_loss_coeff = 1e-2, .moe_z_loss_coeff = 0.0};

/// A tiny MoE for unit tests: 4 experts, top-2, both router losses on.
inline constexpr TransformerConfig tiny_moe_test{
    .vocab_size = 50, .make_vocab_divisible_by = 16, .hidden = 32, .ffn_hidden = 40, .num_layers = 2,
    .num_heads = 4, .num_query_groups = 2, .rope_base = 10000.0, .rms_eps = 1e-5, .max_seq_len = 32,
    .untie_embeddings = true, .z_loss = 0.0, .init_std = 0.02, .num_experts = 4, .moe_top_k = 2,
    .moe_ffn_hidden = 24, .moe_aux_loss_coeff = 1e-2, .moe_z_loss_coeff = 1e-3};

/// The demo model as an MoE: 4 experts, each the size of demo's MLP, top-2, so demo checkpoints can be
/// upcycled into it. Load-balancing loss 1e-2 and router z-loss 1e-3 (LLM-jp-4 MoE's coefficients).
inline constexpr TransformerConfig demo_moe{
    .vocab_size = 258, .make_vocab_divisible_by = 128, .hidden = 256, .ffn_hidden = 688, .num_layers = 4,
    .num_heads = 8, .num_query_groups = 4, .rope_base = 10000.0, .rms_eps = 1e-5, .max_seq_len = 256,
    .untie_embeddings = true, .z_loss = 0.0, .init_std = 0.02, .num_experts = 4, .moe_top_k = 2,
    .moe_ffn_hidden = 0, .moe_aux_loss_coeff = 1e-2, .moe_z_loss_coeff = 1e-3};

namespace detail {
template <TransformerConfig Cfg>
struct NamedConfig {
  std::string_view name;
  using tag = ConfigTag<Cfg>;
};
// The whitelist: the only configurations a runtime name can select. Add a line to add one.
inline constexpr auto config_table = std::make_tuple(
    NamedConfig<llmjp4_1_3b>{"llmjp4_1_3b"}, NamedConfig<llmjp4_8b>{"llmjp4_8b"}, NamedConfig<tiny_test>{"tiny_test"},
    NamedConfig<bench_ref>{"bench_ref"}, NamedConfig<demo>{"demo"}, NamedConfig<llmjp3_8x1_8b>{"llmjp3_8x1_8b"},
    NamedConfig<tiny_moe_test>{"tiny_moe_test"}, NamedConfig<demo_moe>{"demo_moe"});
using ConfigTable = std::remove_cvref_t<decltype(config_table)>;
inline constexpr std::size_t config_count = std::tuple_size_v<ConfigTable>;
template <std::size_t I>
using TableTag = typename std::tuple_element_t<I, ConfigTable>::tag;
}  // namespace detail

/// Names accepted by `dispatch_config`, in table order.
inline constexpr std::array<std::string_view, detail::config_count> config_names() {
  return std::apply([](auto const&... e) { return std::array<std::string_view, detail::config_count>{e.name...}; },
                    detail::config_table);
}

/// Calls `f(ConfigTag<Cfg>{})` for the configuration named `name` (whitelist above) and returns its
/// result; every branch must return the same type. Unknown names throw kumiki::Error listing the names.
///   models::dispatch_config("demo", [&](auto tag) { nn::Transformer<decltype(tag)::config, Cpu> m; ... });
template <class F>
decltype(auto) dispatch_config(std::string_view name, F&& f) {
  using R = decltype(f(detail::TableTag<0>{}));
  auto const try_all = [&]<std::size_t... I>(std::index_sequence<I...>) -> R {
    std::size_t const hit = [&] {
      std::size_t k = detail::config_count;
      (void)((std::get<I>(detail::config_table).name == name ? (k = I, true) : false) || ...);
      return k;
    }();
    if (hit == detail::config_count) {
      std::string known;
      for (auto n : config_names()) known += (known.empty() ? "" : ", ") + std::string(n);
      KUMIKI_FAIL("unknown model configuration '", name, "' (known: ", known, ")");
    }
    if constexpr (std::is_void_v<R>) {
      ((I == hit ? (f(detail::TableTag<I>{}), 0) : 0), ...);
    } else {
      R out{};
      ((I == hit ? (out = f(detail::TableTag<I>{}), 0) : 0),
       ...);
      return out;
    }
  };
  return try_all(std::make_index_sequence<detail::config_count>{});
}

}  // namespace models
KUMIKI_NAMESPACE_END
