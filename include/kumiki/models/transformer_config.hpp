// kumiki/models/transformer_config.hpp: the compile-time description of a dense LLaMA-style
// transformer (LLM-jp-4 family) and the quantities derived from it.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace models {

/// A configuration's name as recipes, checkpoints and the command line spell it ("demo"): a fixed-size
/// string, so that it can live inside a TransformerConfig used as a template argument.
struct ConfigName {
  static constexpr std::size_t capacity = 47;
  char text[capacity + 1] = {};

  constexpr ConfigName() = default;
  template <std::size_t N>
  constexpr ConfigName(char const (&s)[N]) {  // NOLINT: implicit, so that `.name = "demo"` reads naturally
    static_assert(N - 1 <= capacity, "kumiki: a configuration name has at most 47 characters");
    for (std::size_t i = 0; i + 1 < N; ++i) text[i] = s[i];
  }
  constexpr std::string_view view() const {
    std::size_t n = 0;
    while (n < capacity && text[n] != '\0') ++n;
    return {text, n};
  }
  constexpr bool empty() const { return text[0] == '\0'; }
  friend constexpr bool operator==(ConfigName const&, ConfigName const&) = default;
};

/// A decoder-only transformer: RMSNorm, RoPE (rotate-half), causal GQA attention, a SwiGLU MLP or a
/// mixture of SwiGLU experts (Mixtral / Megatron MoE, num_experts > 0), no biases, untied embeddings. A structural aggregate, usable as a template argument:
/// `nn::Transformer<models::llmjp4_1_3b, Cpu>`. Field names follow Megatron's flags.
struct TransformerConfig {
  ConfigName name{};                            // recipes' and checkpoints' `model` (empty: unnamed)
  std::int64_t vocab_size = 0;                  // --vocab-size (real tokenizer vocabulary)
  std::int64_t make_vocab_divisible_by = 128;   // --make-vocab-size-divisible-by (TP = 1)
  std::int64_t hidden = 0;                      // --hidden-size
  std::int64_t ffn_hidden = 0;                  // --ffn-hidden-size
  std::int64_t num_layers = 0;                  // --num-layers
  std::int64_t num_heads = 0;                   // --num-attention-heads
  std::int64_t num_query_groups = 0;            // --num-query-groups (K/V heads, GQA)
  double rope_base = 10000.0;                   // --rotary-base
  double rms_eps = 1e-5;                        // --norm-epsilon
  std::int64_t max_seq_len = 0;                 // --seq-length
  bool untie_embeddings = true;                 // --untie-embeddings-and-output-weights
  double z_loss = 0.0;                          // z-loss coefficient (0: off)
  double init_std = 0.02;                       // --init-method-std

  // Mixture of experts (dropless, token-choice top-k). num_experts = 0: the dense SwiGLU MLP.
  std::int64_t num_experts = 0;                 // --num-experts
  std::int64_t moe_top_k = 0;                   // --moe-router-topk
  std::int64_t moe_ffn_hidden = 0;              // --moe-ffn-hidden-size (0: ffn_hidden)
  double moe_aux_loss_coeff = 0.0;              // --moe-aux-loss-coeff (Switch load balancing, Megatron's form)
  double moe_z_loss_coeff = 0.0;                // --moe-z-loss-coeff (router z-loss)
  bool moe_pre_softmax = false;                 // --moe-router-pre-softmax: softmax over all experts, top-k
                                                // weights not renormalized (default: Mixtral's renormalized top-k)

  constexpr bool is_moe() const { return num_experts > 0; }
  /// Intermediate width of one expert (Mixtral's intermediate_size).
  constexpr std::int64_t expert_ffn() const { return moe_ffn_hidden > 0 ? moe_ffn_hidden : ffn_hidden; }
  /// Parameters of a block's MLP: gate/up/down, or the router plus every expert's w1/w3/w2.
  constexpr std::int64_t mlp_params() const {
    return is_moe() ? num_experts * hidden + num_experts * 3 * hidden * expert_ffn() : 3 * hidden * ffn_hidden;
  }
  /// MLP parameters one token multiplies with: the router and its top-k experts.
  constexpr std::int64_t active_mlp_params() const {
    return is_moe() ? num_experts * hidden + moe_top_k * 3 * hidden * expert_ffn() : 3 * hidden * ffn_hidden;
  }

  /// Vocabulary rounded up to a multiple of make_vocab_divisible_by (embedding and LM-head rows).
  constexpr std::int64_t padded_vocab() const {
    return (vocab_size + make_vocab_divisible_by - 1) / make_vocab_divisible_by * make_vocab_divisible_by;
  }
  constexpr std::int64_t head_dim() const { return hidden / num_heads; }
  /// Width of the K (and of the V) projection: query groups x head_dim.
  constexpr std::int64_t kv_width() const { return num_query_groups * head_dim(); }
  constexpr std::int64_t heads_per_group() const { return num_heads / num_query_groups; }

  /// Parameters of one block: two norms, q/k/v/o, the MLP (dense or experts).
  constexpr std::int64_t block_params() const {
    return 2 * hidden + hidden * hidden + 2 * kv_width() * hidden + hidden * hidden + mlp_params();
  }
  /// Exact parameter count with the padded embedding (and padded LM head when untied).
  constexpr std::int64_t num_params() const {
    std::int64_t const emb = padded_vocab() * hidden;
    return emb + num_layers * block_params() + hidden + (untie_embeddings ? emb : 0);
  }
  /// Parameters that take part in a matrix multiplication per token: all projections (for MoE the
  /// router and the top-k experts a token is sent to) and the h x V_padded output layer (the
  /// embedding lookup and the norms are not matmuls).
  constexpr std::int64_t matmul_params() const {
    return num_layers * (2 * hidden * hidden + 2 * kv_width() * hidden + active_mlp_params()) + padded_vocab() * hidden;
  }
  /// Parameters one token uses (MoE: "active" parameters; equal to num_params() when dense).
  constexpr std::int64_t active_params() const { return num_params() - num_layers * (mlp_params() - active_mlp_params()); }
  /// Model FLOPs per token for one training step (forward + backward) at sequence length `seq`,
  /// Megatron's MFU formula: 6 * matmul_params + 6 * num_layers * hidden(q width) * seq.
  /// The first term is 2 FLOPs per multiply-add x 3 (forward, input grad, weight grad); the second is
  /// the causal attention (QK^T and PV, 2 * 2 * seq * hidden per token forward, halved by the causal
  /// mask, x 3 for the backward), i.e. 6 * hidden * seq^2 per layer and sequence.
  constexpr double flops_per_token(std::int64_t seq) const {
    return 6.0 * static_cast<double>(matmul_params()) +
           6.0 * static_cast<double>(num_layers) * static_cast<double>(hidden) * static_cast<double>(seq);
  }
  constexpr double flops_per_token() const { return flops_per_token(max_seq_len); }

  /// fp32 parameters, fp32 gradients, and AdamW's two fp32 moments.
  constexpr std::int64_t param_bytes() const { return 4 * num_params(); }
  constexpr std::int64_t grad_bytes() const { return 4 * num_params(); }
  constexpr std::int64_t optimizer_bytes() const { return 8 * num_params(); }
  /// Megatron's bf16 recipe without sharding: bf16 params (2) + fp32 grads (4) + fp32 main params (4)
  /// + Adam moments (8) = 18 bytes per parameter.
  constexpr std::int64_t megatron_bf16_bytes() const { return 18 * num_params(); }

  friend constexpr bool operator==(TransformerConfig const&, TransformerConfig const&) = default;
};

/// What the model templates need of a configuration type. `TransformerConfig` models it; a user type
/// with the same members (e.g. a derived aggregate adding fields) does too.
template <class C>
concept TransformerConfigLike = requires(C const c) {
  { c.vocab_size } -> std::convertible_to<std::int64_t>;
  { c.hidden } -> std::convertible_to<std::int64_t>;
  { c.ffn_hidden } -> std::convertible_to<std::int64_t>;
  { c.num_layers } -> std::convertible_to<std::int64_t>;
  { c.num_heads } -> std::convertible_to<std::int64_t>;
  { c.num_query_groups } -> std::convertible_to<std::int64_t>;
  { c.rope_base } -> std::convertible_to<double>;
  { c.rms_eps } -> std::convertible_to<double>;
  { c.max_seq_len } -> std::convertible_to<std::int64_t>;
  { c.untie_embeddings } -> std::convertible_to<bool>;
  { c.z_loss } -> std::convertible_to<double>;
  { c.init_std } -> std::convertible_to<double>;
  { c.num_experts } -> std::convertible_to<std::int64_t>;
  { c.moe_top_k } -> std::convertible_to<std::int64_t>;
  { c.moe_aux_loss_coeff } -> std::convertible_to<double>;
  { c.moe_z_loss_coeff } -> std::convertible_to<double>;
  { c.moe_pre_softmax } -> std::convertible_to<bool>;
  { c.expert_ffn() } -> std::convertible_to<std::int64_t>;
  { c.padded_vocab() } -> std::convertible_to<std::int64_t>;
  { c.head_dim() } -> std::convertible_to<std::int64_t>;
  { c.kv_width() } -> std::convertible_to<std::int64_t>;
  { c.num_params() } -> std::convertible_to<std::int64_t>;
  { c.flops_per_token(1) } -> std::convertible_to<double>;
};

/// Compile-time validation with readable messages; evaluated by every model template.
/// `static_assert(models::check_config<Cfg>())` reports the first violated rule.
template <auto Cfg>
  requires TransformerConfigLike<decltype(Cfg)>
consteval bool check_config() {
  static_assert(Cfg.vocab_size > 0, "kumiki config: vocab_size must be positive");
  static_assert(Cfg.make_vocab_divisible_by > 0, "kumiki config: make_vocab_divisible_by must be positive");
  static_assert(Cfg.hidden > 0 && Cfg.ffn_hidden > 0, "kumiki config: hidden and ffn_hidden must be positive");
  static_assert(Cfg.num_layers > 0, "kumiki config: num_layers must be positive");
  static_assert(Cfg.num_heads > 0 && Cfg.num_query_groups > 0,
                "kumiki config: num_heads and num_query_groups must be positive");
  static_assert(Cfg.hidden % Cfg.num_heads == 0,
                "kumiki config: hidden must be divisible by num_heads (head_dim = hidden / num_heads)");
  static_assert(Cfg.num_heads % Cfg.num_query_groups == 0,
                "kumiki config: num_heads must be divisible by num_query_groups (GQA)");
  static_assert(Cfg.head_dim() % 2 == 0, "kumiki config: head_dim must be even for rotate-half RoPE");
  static_assert(Cfg.rope_base > 1.0, "kumiki config: rope_base must exceed 1");
  static_assert(Cfg.rms_eps > 0.0, "kumiki config: rms_eps must be positive");
  static_assert(Cfg.max_seq_len > 0, "kumiki config: max_seq_len must be positive");
  static_assert(Cfg.z_loss >= 0.0, "kumiki config: z_loss must not be negative");
  static_assert(Cfg.init_std > 0.0, "kumiki config: init_std must be positive");
  static_assert(Cfg.untie_embeddings, "kumiki config: tied embeddings are not implemented (LLM-jp-4 unties them)");
  static_assert(Cfg.num_experts >= 0, "kumiki config: num_experts must not be negative (0: dense MLP)");
  static_assert(Cfg.num_experts == 0 || (Cfg.moe_top_k >= 1 && Cfg.moe_top_k <= Cfg.num_experts),
                "kumiki config: an MoE config needs 1 <= moe_top_k <= num_experts");
  static_assert(Cfg.num_experts != 0 || Cfg.moe_top_k == 0,
                "kumiki config: moe_top_k is set but num_experts is 0 (a dense model has no router)");
  static_assert(Cfg.moe_ffn_hidden >= 0, "kumiki config: moe_ffn_hidden must not be negative (0: ffn_hidden)");
  static_assert(Cfg.moe_aux_loss_coeff >= 0.0 && Cfg.moe_z_loss_coeff >= 0.0,
                "kumiki config: MoE loss coefficients must not be negative");
  static_assert(Cfg.num_experts <= 1024, "kumiki config: more than 1024 experts per layer is not supported");
  return true;
}

/// A configuration as a type, what `dispatch_config` hands to its callback.
template <TransformerConfig Cfg>
struct ConfigTag {
  static constexpr TransformerConfig config = Cfg;
};

/// Calls `f(field_name, a.field, b.field)` for every field but the name, in declaration order: one list
/// for config_differences and for the record of its configuration a checkpoint keeps
/// (train/checkpoint.hpp). `a` and `b` may be the same object, and non-const to write the fields.
template <class A, class B, class F>
constexpr void for_each_field(A& a, B& b, F&& f) {
  f("vocab_size", a.vocab_size, b.vocab_size);
  f("make_vocab_divisible_by", a.make_vocab_divisible_by, b.make_vocab_divisible_by);
  f("hidden", a.hidden, b.hidden);
  f("ffn_hidden", a.ffn_hidden, b.ffn_hidden);
  f("num_layers", a.num_layers, b.num_layers);
  f("num_heads", a.num_heads, b.num_heads);
  f("num_query_groups", a.num_query_groups, b.num_query_groups);
  f("rope_base", a.rope_base, b.rope_base);
  f("rms_eps", a.rms_eps, b.rms_eps);
  f("max_seq_len", a.max_seq_len, b.max_seq_len);
  f("untie_embeddings", a.untie_embeddings, b.untie_embeddings);
  f("z_loss", a.z_loss, b.z_loss);
  f("init_std", a.init_std, b.init_std);
  f("num_experts", a.num_experts, b.num_experts);
  f("moe_top_k", a.moe_top_k, b.moe_top_k);
  f("moe_ffn_hidden", a.moe_ffn_hidden, b.moe_ffn_hidden);
  f("moe_aux_loss_coeff", a.moe_aux_loss_coeff, b.moe_aux_loss_coeff);
  f("moe_z_loss_coeff", a.moe_z_loss_coeff, b.moe_z_loss_coeff);
  f("moe_pre_softmax", a.moe_pre_softmax, b.moe_pre_softmax);
}

/// The fields in which configuration a differs from b, each as "field a vs b" (names aside), in
/// declaration order; empty when they have the same shapes and settings.
inline std::vector<std::string> config_differences(TransformerConfig const& a, TransformerConfig const& b) {
  std::vector<std::string> d;
  for_each_field(a, b, [&](char const* f, auto x, auto y) {
    if (x != y) d.push_back(kumiki::detail::concat(f, " ", x, " vs ", y));
  });
  return d;
}

/// ", they differ in hidden 32 vs 16, ..." for a message about a and b, or `same` when no field differs.
inline std::string differences_text(TransformerConfig const& a, TransformerConfig const& b, std::string const& same = "") {
  std::string out;
  for (auto const& x : config_differences(a, b)) out += (out.empty() ? "; they differ in " : ", ") + x;
  return out.empty() ? same : out;
}

}  // namespace models
KUMIKI_NAMESPACE_END
