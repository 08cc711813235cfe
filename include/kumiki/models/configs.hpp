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
    .name = "llmjp4_1_3b", .vocab_size = 99487, .make_vocab_divisible_by = 128, .hidden = 2048, .ffn_hidden = 7168, .num_layers = 16,
    .num_heads = 16, .num_query_groups = 8, .rope_base = 500000.0, .rms_eps = 1e-6, .max_seq_len = 8192,
    .untie_embeddings = true, .z_loss = 0.0, .init_std = 0.02};

/// LLM-jp-4 8B ("7.7B", Llama-3-8B compatible shapes): about 7.8e9 parameters; max_seq_len 8192 as
/// for the 1.3B.
inline constexpr TransformerConfig llmjp4_8b{
    .name = "llmjp4_8b", .vocab_size = 99487, .make_vocab_divisible_by = 128, .hidden = 4096, .ffn_hidden = 14336, .num_layers = 32,
    .num_heads = 32, .num_query_groups = 8, .rope_base = 500000.0, .rms_eps = 1e-6, .max_seq_len = 8192,
    .untie_embeddings = true, .z_loss = 0.0, .init_std = 0.02};

/// A tiny GQA model for unit tests (vocab 50 padded to 64, so padded rows are exercised).
inline constexpr TransformerConfig tiny_test{
    .name = "tiny_test", .vocab_size = 50, .make_vocab_divisible_by = 16, .hidden = 32, .ffn_hidden = 40, .num_layers = 2,
    .num_heads = 4, .num_query_groups = 2, .rope_base = 10000.0, .rms_eps = 1e-5, .max_seq_len = 32,
    .untie_embeddings = true, .z_loss = 0.0, .init_std = 0.02};

/// The benchmark reference of issue 3 (compared against PyTorch): batch 8 x seq 256 per step.
inline constexpr TransformerConfig bench_ref{
    .name = "bench_ref", .vocab_size = 8192, .make_vocab_divisible_by = 128, .hidden = 256, .ffn_hidden = 704, .num_layers = 4,
    .num_heads = 4, .num_query_groups = 2, .rope_base = 10000.0, .rms_eps = 1e-6, .max_seq_len = 256,
    .untie_embeddings = true, .z_loss = 0.0, .init_std = 0.02};

/// A few-million-parameter model for the CPU demo on byte-level tokens (256 bytes + BOS/EOS = 258,
/// padded to 384).
inline constexpr TransformerConfig demo{
    .name = "demo", .vocab_size = 258, .make_vocab_divisible_by = 128, .hidden = 256, .ffn_hidden = 688, .num_layers = 4,
    .num_heads = 8, .num_query_groups = 4, .rope_base = 10000.0, .rms_eps = 1e-5, .max_seq_len = 256,
    .untie_embeddings = true, .z_loss = 0.0, .init_std = 0.02};

/// LLM-jp-3 8x1.8B, the Drop-Upcycling MoE built from LLM-jp-3 1.8B: 24 layers, hidden 2048, 8 experts
/// of width 7168, top-2, Switch load-balancing loss 1e-2, no router z-loss. 9.27e9 parameters, 2.92e9
/// active per token (the Drop-Upcycling paper, Nakamura et al.,
/// ICLR 2025, and the llm-jp-3-8x1.8b model card); Mixtral-compatible shapes.
inline constexpr TransformerConfig llmjp3_8x1_8b{
    .name = "llmjp3_8x1_8b", .vocab_size = 99487, .make_vocab_divisible_by = 128, .hidden = 2048, .ffn_hidden = 7168, .num_layers = 24,
    .num_heads = 16, .num_query_groups = 16, .rope_base = 10000.0, .rms_eps = 1e-5, .max_seq_len = 4096,
    .untie_embeddings = true, .z_loss = 0.0, .init_std = 0.02, .num_experts = 8, .moe_top_k = 2,
    .moe_ffn_hidden = 0, .moe_aux_loss_coeff = 1e-2, .moe_z_loss_coeff = 0.0};

/// A tiny MoE for unit tests: 4 experts, top-2, both router losses on.
inline constexpr TransformerConfig tiny_moe_test{
    .name = "tiny_moe_test", .vocab_size = 50, .make_vocab_divisible_by = 16, .hidden = 32, .ffn_hidden = 40, .num_layers = 2,
    .num_heads = 4, .num_query_groups = 2, .rope_base = 10000.0, .rms_eps = 1e-5, .max_seq_len = 32,
    .untie_embeddings = true, .z_loss = 0.0, .init_std = 0.02, .num_experts = 4, .moe_top_k = 2,
    .moe_ffn_hidden = 24, .moe_aux_loss_coeff = 1e-2, .moe_z_loss_coeff = 1e-3};

/// The demo model as an MoE: 4 experts, each the size of demo's MLP, top-2, so demo checkpoints can be
/// upcycled into it. Load-balancing loss 1e-2 and router z-loss 1e-3 (LLM-jp-4 MoE's coefficients).
inline constexpr TransformerConfig demo_moe{
    .name = "demo_moe", .vocab_size = 258, .make_vocab_divisible_by = 128, .hidden = 256, .ffn_hidden = 688, .num_layers = 4,
    .num_heads = 8, .num_query_groups = 4, .rope_base = 10000.0, .rms_eps = 1e-5, .max_seq_len = 256,
    .untie_embeddings = true, .z_loss = 0.0, .init_std = 0.02, .num_experts = 4, .moe_top_k = 2,
    .moe_ffn_hidden = 0, .moe_aux_loss_coeff = 1e-2, .moe_z_loss_coeff = 1e-3};

/// A list of named configurations: the runtime names a program accepts (a recipe's or checkpoint's
/// `model`, a command-line choice) and the compile-time configuration each selects. kumiki's own
/// programs use BuiltinConfigs; a program of one's own lists its configurations, plus or instead of
/// those: `using MyConfigs = models::BuiltinConfigs::with<my_config>;`.
template <TransformerConfig... Cfgs>
struct ConfigList {
  static constexpr std::size_t size = sizeof...(Cfgs);
  static_assert(size > 0, "kumiki: a configuration list needs at least one configuration");
  static_assert((!Cfgs.name.empty() && ...), "kumiki: every configuration in a list needs a name (.name = \"...\")");
  static_assert([] {
    std::array<std::string_view, size> const n{Cfgs.name.view()...};
    for (std::size_t i = 0; i < size; ++i)
      for (std::size_t j = i + 1; j < size; ++j)
        if (n[i] == n[j]) return false;
    return true;
  }(), "kumiki: two configurations in a list have the same name");

  /// Appends configurations.
  template <TransformerConfig... More>
  using with = ConfigList<Cfgs..., More...>;

  /// The names, in list order.
  static constexpr std::array<std::string_view, size> names() { return {Cfgs.name.view()...}; }
  static constexpr bool contains(std::string_view name) { return ((Cfgs.name.view() == name) || ...); }
  /// "a, b, c", for messages.
  static std::string names_text() {
    std::string out;
    for (auto n : names()) out += (out.empty() ? "" : ", ") + std::string(n);
    return out;
  }
  /// The configuration named `name`; throws kumiki::InputError listing the names when there is none.
  static TransformerConfig find(std::string_view name) {
    TransformerConfig out{};
    bool const hit = ((Cfgs.name.view() == name ? (out = Cfgs, true) : false) || ...);
    KUMIKI_REQUIRE(hit, "unknown model configuration '", name, "' (known: ", names_text(), ")");
    return out;
  }

  /// Calls `f(ConfigTag<Cfg>{})` for the configuration named `name` and returns its result; every
  /// branch must return the same type. An unknown name throws kumiki::InputError listing the names.
  ///   MyConfigs::dispatch(recipe.model, [&](auto tag) { nn::Transformer<decltype(tag)::config, Cpu> m; ... });
  template <class F>
  static decltype(auto) dispatch(std::string_view name, F&& f) {
    (void)find(name);  // the message for an unknown name
    using R = decltype(f(ConfigTag<first()>{}));
    if constexpr (std::is_void_v<R>) {
      (void)((Cfgs.name.view() == name ? (f(ConfigTag<Cfgs>{}), true) : false) || ...);
    } else {
      R out{};
      (void)((Cfgs.name.view() == name ? (out = f(ConfigTag<Cfgs>{}), true) : false) || ...);
      return out;
    }
  }

 private:
  static constexpr TransformerConfig first() {
    TransformerConfig const all[] = {Cfgs...};
    return all[0];
  }
};

/// kumiki's own configurations, the list its programs accept.
using BuiltinConfigs = ConfigList<llmjp4_1_3b, llmjp4_8b, tiny_test, bench_ref, demo, llmjp3_8x1_8b, tiny_moe_test, demo_moe>;

/// Names accepted by `dispatch_config`, in table order.
inline constexpr std::array<std::string_view, BuiltinConfigs::size> config_names() { return BuiltinConfigs::names(); }

/// BuiltinConfigs::dispatch: `f(ConfigTag<Cfg>{})` for the built-in configuration named `name`.
///   models::dispatch_config("demo", [&](auto tag) { nn::Transformer<decltype(tag)::config, Cpu> m; ... });
template <class F>
decltype(auto) dispatch_config(std::string_view name, F&& f) {
  return BuiltinConfigs::dispatch(name, std::forward<F>(f));
}

}  // namespace models
KUMIKI_NAMESPACE_END
