// kumiki/io/hf.hpp: Hugging Face Llama / Mixtral interoperability: config.json <-> TransformerConfig,
// matching a Hugging Face config against the compiled-in configurations, export of a kumiki checkpoint
// as a Hugging Face model directory and import of one into a kumiki checkpoint.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "kumiki/config.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/atomic_file.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/json.hpp"
#include "kumiki/io/safetensors.hpp"
#include "kumiki/models/configs.hpp"
#include "kumiki/models/hf_names.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace io {

// ---- config.json ---------------------------------------------------------------------------------

/// The fields of a Hugging Face config.json kumiki reads: LlamaForCausalLM (dense) or
/// MixtralForCausalLM (MoE: intermediate_size is one expert's width).
struct HfConfig {
  std::string architecture;                  // architectures[0]
  std::string model_type;                    // "llama", "mixtral"
  std::int64_t hidden_size = 0;
  std::int64_t intermediate_size = 0;
  std::int64_t num_hidden_layers = 0;
  std::int64_t num_attention_heads = 0;
  std::int64_t num_key_value_heads = 0;
  std::int64_t vocab_size = 0;               // rows of embed_tokens / lm_head: kumiki's padded vocabulary
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
  std::int64_t max_position_embeddings = 0;
  bool tie_word_embeddings = false;
  std::int64_t num_local_experts = 0;        // Mixtral: experts per layer (0: dense Llama)
  std::int64_t num_experts_per_tok = 0;      // Mixtral: top-k (0: dense Llama)
  double router_aux_loss_coef = 0.0;         // Mixtral: informational (a training setting, not compared)
  std::optional<std::int64_t> bos_token_id, eos_token_id;
};

/// Options of `hf_config_json` / `export_hf`.
struct HfExportOptions {
  DType dtype = DType::bf16;                   ///< weights: bf16 (round to nearest even) or f32
  std::optional<std::int64_t> bos_token_id{};   ///< default: by vocabulary (see default_special_tokens)
  std::optional<std::int64_t> eos_token_id{};
  std::filesystem::path tokenizer{};            ///< tokenizer model copied beside the weights (optional)
  std::uint64_t max_shard_bytes = 5'000'000'000;
};

/// BOS / EOS of the tokenizers kumiki uses: the byte tokenizer (256 bytes + EOD 256 + BOS 257, a
/// vocabulary of 258) has BOS 257 / EOS 256; SentencePiece LLM-jp tokenizers have BOS 1 / EOS 2.
inline std::pair<std::int64_t, std::int64_t> default_special_tokens(std::int64_t real_vocab) {
  if (real_vocab == 258) return {257, 256};
  return {1, 2};
}

inline char const* hf_torch_dtype(DType t) {
  switch (t) {
    case DType::f32: return "float32";
    case DType::bf16: return "bfloat16";
    case DType::f16: return "float16";
    default: KUMIKI_FAIL("models are exported as f32, bf16 or f16, not ", dtype_name(t));
  }
}

/// Throws unless configuration `c` can be written as a Hugging Face model: HF Mixtral always
/// renormalizes the top-k routing weights, so a pre-softmax (unrenormalized) router has no equivalent.
inline void check_hf_exportable(models::TransformerConfig const& c) {
  KUMIKI_REQUIRE(!(c.is_moe() && c.moe_pre_softmax),
               "this MoE configuration routes with moe_pre_softmax (top-k weights not renormalized); Hugging Face "
               "Mixtral always renormalizes the top-k weights, so it cannot be exported as MixtralForCausalLM");
}

/// config.json of a kumiki model with the padded vocabulary (the rows the embedding and LM head have,
/// as LLM-jp's released models ship them): LlamaForCausalLM for a dense configuration,
/// MixtralForCausalLM for an MoE one (intermediate_size = one expert's width; the fields a
/// transformers-written Mixtral config.json has, no Llama-only keys). Mixtral has no router z-loss
/// field and its aux-loss formula differs from Megatron's (docs/hf.md), so router_aux_loss_coef is
/// written for information only.
inline nlohmann::ordered_json hf_config_json(models::TransformerConfig const& c, HfExportOptions const& opt = {}) {
  check_hf_exportable(c);
  auto const [bos, eos] = default_special_tokens(c.vocab_size);
  bool const moe = c.is_moe();
  nlohmann::ordered_json j;
  j["architectures"] = {moe ? "MixtralForCausalLM" : "LlamaForCausalLM"};
  j["model_type"] = moe ? "mixtral" : "llama";
  j["hidden_size"] = c.hidden;
  j["intermediate_size"] = moe ? c.expert_ffn() : c.ffn_hidden;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_query_groups;
  if (!moe) j["head_dim"] = c.head_dim();
  j["vocab_size"] = c.padded_vocab();
  j["rms_norm_eps"] = c.rms_eps;
  j["rope_theta"] = c.rope_base;
  if (!moe) j["rope_scaling"] = nullptr;
  j["max_position_embeddings"] = c.max_seq_len;
  j["tie_word_embeddings"] = !c.untie_embeddings;
  j["torch_dtype"] = hf_torch_dtype(opt.dtype);
  j["hidden_act"] = "silu";
  if (!moe) j["attention_bias"] = false;
  j["attention_dropout"] = 0.0;
  if (moe) {
    j["num_local_experts"] = c.num_experts;
    j["num_experts_per_tok"] = c.moe_top_k;
    j["router_aux_loss_coef"] = c.moe_aux_loss_coeff;
    j["output_router_logits"] = false;
    j["router_jitter_noise"] = 0.0;
    j["sliding_window"] = nullptr;
  } else {
    j["mlp_bias"] = false;
    j["pretraining_tp"] = 1;
  }
  j["use_cache"] = true;
  j["bos_token_id"] = opt.bos_token_id.value_or(bos);
  j["eos_token_id"] = opt.eos_token_id.value_or(eos);
  j["initializer_range"] = c.init_std;
  return j;
}

inline nlohmann::ordered_json hf_generation_config_json(nlohmann::ordered_json const& config) {
  nlohmann::ordered_json g;
  g["_from_model_config"] = true;
  g["bos_token_id"] = config.at("bos_token_id");
  g["eos_token_id"] = config.at("eos_token_id");
  return g;
}

namespace detail {

inline nlohmann::json read_json_file(std::filesystem::path const& p, char const* what) {
  KUMIKI_REQUIRE(std::filesystem::is_regular_file(p), what, " '", p.string(), "' is missing");
  std::ifstream in(p, std::ios::binary);
  KUMIKI_REQUIRE(in.good(), "cannot read ", what, " '", p.string(), "'");
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j = ::kumiki::detail::parse_json_strict(ss.str(), std::string(what) + " '" + p.string() + "'");
  KUMIKI_REQUIRE(j.is_object(), what, " '", p.string(), "' is ", ::kumiki::detail::json_describe(j),
                 ", not a JSON object");
  return j;
}

template <class T>
T hf_field(nlohmann::json const& j, char const* key, std::string const& src, std::optional<T> fallback = std::nullopt) {
  auto const it = j.find(key);
  if (it == j.end() || it->is_null()) {
    KUMIKI_REQUIRE(fallback.has_value(), "config '", src, "' has no '", key, "'");
    return *fallback;
  }
  std::string const found = ::kumiki::detail::json_describe(*it);
  if constexpr (std::is_same_v<T, bool>) {
    KUMIKI_REQUIRE(it->is_boolean(), "config '", src, "': '", key, "' is not a boolean (", found, ")");
  } else if constexpr (std::is_integral_v<T>) {
    KUMIKI_REQUIRE(it->is_number_integer(), "config '", src, "': '", key, "' is not an integer (", found, ")");
    KUMIKI_REQUIRE(!it->is_number_unsigned() || it->template get<std::uint64_t>() <= std::uint64_t{INT64_MAX},
                   "config '", src, "': '", key, "' is too large (", found, ")");
  } else if constexpr (std::is_floating_point_v<T>) {
    KUMIKI_REQUIRE(it->is_number(), "config '", src, "': '", key, "' is not a number (", found, ")");
  } else {
    KUMIKI_REQUIRE(it->is_string(), "config '", src, "': '", key, "' is not a string (", found, ")");
  }
  return it->template get<T>();
}

inline std::optional<std::int64_t> hf_token_id(nlohmann::json const& j, char const* key) {
  auto const it = j.find(key);
  if (it == j.end()) return std::nullopt;
  if (it->is_number_integer()) return it->get<std::int64_t>();
  if (it->is_array() && !it->empty() && it->front().is_number_integer()) return it->front().get<std::int64_t>();
  return std::nullopt;
}

inline std::string fmt_number(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

}  // namespace detail

/// Parses `dir/config.json` (or a config.json path) of a Llama or Mixtral model. Refuses, each with
/// its own message: a missing or malformed file, missing or mistyped fields, other model types, a
/// Llama with experts or a Mixtral without (num_local_experts >= 1, 1 <= num_experts_per_tok <=
/// num_local_experts), tied embeddings, another activation, biases, RoPE scaling, a sliding window
/// shorter than the context, a head_dim other than hidden / heads.
inline HfConfig read_hf_config(std::filesystem::path const& path) {
  std::filesystem::path const p = std::filesystem::is_directory(path) ? path / "config.json" : path;
  std::string const src = p.string();
  nlohmann::json const j = detail::read_json_file(p, "Hugging Face config");
  HfConfig c;
  if (auto const a = j.find("architectures"); a != j.end() && a->is_array() && !a->empty() && a->front().is_string())
    c.architecture = a->front().get<std::string>();
  c.model_type = detail::hf_field<std::string>(j, "model_type", src, std::string());
  bool const llama = c.model_type == "llama" || (c.model_type.empty() && c.architecture == "LlamaForCausalLM");
  bool const mixtral = c.model_type == "mixtral" || (c.model_type.empty() && c.architecture == "MixtralForCausalLM");
  KUMIKI_REQUIRE(llama || mixtral, "config '", src, "' is model_type '", c.model_type, "' (", c.architecture,
                 "); only Llama (LlamaForCausalLM) and Mixtral (MixtralForCausalLM) are supported");
  KUMIKI_REQUIRE(c.architecture != (llama ? "MixtralForCausalLM" : "LlamaForCausalLM"), "config '", src,
                 "': architecture '", c.architecture, "' contradicts model_type '", c.model_type, "'");
  if (mixtral) {
    c.num_local_experts = detail::hf_field<std::int64_t>(j, "num_local_experts", src);
    c.num_experts_per_tok = detail::hf_field<std::int64_t>(j, "num_experts_per_tok", src);
    KUMIKI_REQUIRE(c.num_local_experts >= 1, "config '", src, "': num_local_experts ", c.num_local_experts,
                   " must be at least 1 for a Mixtral model");
    KUMIKI_REQUIRE(c.num_experts_per_tok >= 1 && c.num_experts_per_tok <= c.num_local_experts, "config '", src,
                   "': num_experts_per_tok ", c.num_experts_per_tok, " must be between 1 and num_local_experts ",
                   c.num_local_experts);
    c.router_aux_loss_coef = detail::hf_field<double>(j, "router_aux_loss_coef", src, 0.001);
    if (auto const sw = j.find("sliding_window"); sw != j.end() && !sw->is_null()) {
      std::int64_t const window = detail::hf_field<std::int64_t>(j, "sliding_window", src);
      std::int64_t const max_pos = detail::hf_field<std::int64_t>(j, "max_position_embeddings", src, 2048);
      KUMIKI_REQUIRE(window >= max_pos, "config '", src, "': sliding_window ", window,
                     " is shorter than max_position_embeddings ", max_pos, " (kumiki attention is fully causal)");
    }
  } else {
    for (char const* key : {"num_local_experts", "num_experts_per_tok"}) {
      auto const n = detail::hf_field<std::int64_t>(j, key, src, 0);
      KUMIKI_REQUIRE(n == 0, "config '", src, "': a Llama model with ", key, " ", n,
                     "; mixture-of-experts models are model_type 'mixtral' (MixtralForCausalLM)");
    }
  }
  c.hidden_size = detail::hf_field<std::int64_t>(j, "hidden_size", src);
  c.intermediate_size = detail::hf_field<std::int64_t>(j, "intermediate_size", src);
  c.num_hidden_layers = detail::hf_field<std::int64_t>(j, "num_hidden_layers", src);
  c.num_attention_heads = detail::hf_field<std::int64_t>(j, "num_attention_heads", src);
  c.num_key_value_heads = detail::hf_field<std::int64_t>(j, "num_key_value_heads", src, c.num_attention_heads);
  c.vocab_size = detail::hf_field<std::int64_t>(j, "vocab_size", src);
  c.rope_theta = detail::hf_field<double>(j, "rope_theta", src, 10000.0);
  c.rms_norm_eps = detail::hf_field<double>(j, "rms_norm_eps", src, 1e-6);
  c.max_position_embeddings = detail::hf_field<std::int64_t>(j, "max_position_embeddings", src, 2048);
  c.tie_word_embeddings = detail::hf_field<bool>(j, "tie_word_embeddings", src, false);
  c.bos_token_id = detail::hf_token_id(j, "bos_token_id");
  c.eos_token_id = detail::hf_token_id(j, "eos_token_id");
  KUMIKI_REQUIRE(!c.tie_word_embeddings, "config '", src,
                 "' ties the LM head to the embedding (tie_word_embeddings: true); kumiki models are untied");
  std::string const act = detail::hf_field<std::string>(j, "hidden_act", src, std::string("silu"));
  KUMIKI_REQUIRE(act == "silu", "config '", src, "': hidden_act '", act, "' is not supported (SwiGLU needs 'silu')");
  KUMIKI_REQUIRE(!detail::hf_field<bool>(j, "attention_bias", src, false), "config '", src,
                 "': attention_bias true is not supported (kumiki projections have no biases)");
  KUMIKI_REQUIRE(!detail::hf_field<bool>(j, "mlp_bias", src, false), "config '", src,
                 "': mlp_bias true is not supported (kumiki projections have no biases)");
  if (auto const rs = j.find("rope_scaling"); rs != j.end() && !rs->is_null())
    KUMIKI_FAIL("config '", src, "': rope_scaling is ", ::kumiki::detail::json_describe(*rs),
                " (not null); it is not supported (plain RoPE only)");
  // Newer transformers write RoPE as "rope_parameters": {"rope_type": "default", "rope_theta": ...}.
  if (auto const rp = j.find("rope_parameters"); rp != j.end() && !rp->is_null()) {
    KUMIKI_REQUIRE(rp->is_object(), "config '", src, "': rope_parameters is ", ::kumiki::detail::json_describe(*rp),
                   ", not an object");
    std::string const where = src + " (rope_parameters)";
    std::string const type = detail::hf_field<std::string>(*rp, "rope_type", where, std::string("default"));
    KUMIKI_REQUIRE(type == "default", "config '", src, "': rope_parameters rope_type '", type,
                   "' is not supported (plain RoPE only)");
    double const theta = detail::hf_field<double>(*rp, "rope_theta", where);
    KUMIKI_REQUIRE(j.find("rope_theta") == j.end() || j.at("rope_theta").is_null() || c.rope_theta == theta, "config '",
                   src, "': rope_theta ", detail::fmt_number(c.rope_theta), " contradicts rope_parameters.rope_theta ",
                   detail::fmt_number(theta));
    c.rope_theta = theta;
  }
  KUMIKI_REQUIRE(c.hidden_size > 0 && c.num_attention_heads > 0 && c.hidden_size % c.num_attention_heads == 0,
                 "config '", src, "': hidden_size ", c.hidden_size,
                 " is not a positive multiple of num_attention_heads ", c.num_attention_heads);
  std::int64_t const head_dim = detail::hf_field<std::int64_t>(j, "head_dim", src, c.hidden_size / c.num_attention_heads);
  KUMIKI_REQUIRE(head_dim == c.hidden_size / c.num_attention_heads, "config '", src, "': head_dim ", head_dim,
                 " differs from hidden_size / num_attention_heads = ", c.hidden_size / c.num_attention_heads);
  return c;
}

/// One field where a Hugging Face config and a compiled-in configuration disagree.
struct ConfigFieldDiff {
  std::string field;     // config.json key
  std::string expected;  // the compiled-in configuration's value
  std::string got;       // config.json's value
};

/// The config.json fields (named as there) that differ from configuration `c`. vocab_size matches
/// anything from c's real to its padded vocabulary; intermediate_size with one expert's width for an MoE
/// configuration; num_local_experts / num_experts_per_tok with the expert count and top-k (0 for a
/// dense configuration and a Llama config.json), so dense and MoE never match each other;
/// max_position_embeddings anything up to c's max_seq_len. Training
/// settings (init, z-loss, router loss coefficients) are not compared.
inline std::vector<ConfigFieldDiff> hf_config_diff(models::TransformerConfig const& c, HfConfig const& h) {
  std::vector<ConfigFieldDiff> d;
  auto const i = [&](char const* f, std::int64_t want, std::int64_t got) {
    if (want != got) d.push_back({f, std::to_string(want), std::to_string(got)});
  };
  auto const r = [&](char const* f, double want, double got) {
    if (want != got) d.push_back({f, detail::fmt_number(want), detail::fmt_number(got)});
  };
  i("hidden_size", c.hidden, h.hidden_size);
  i("intermediate_size", c.is_moe() ? c.expert_ffn() : c.ffn_hidden, h.intermediate_size);
  i("num_hidden_layers", c.num_layers, h.num_hidden_layers);
  i("num_attention_heads", c.num_heads, h.num_attention_heads);
  i("num_key_value_heads", c.num_query_groups, h.num_key_value_heads);
  // A Hugging Face model may carry the real (unpadded) vocabulary or any size up to the padded one:
  // import pads the embedding and LM head (load_hf_weights). Anything else is a different model.
  if (h.vocab_size < c.vocab_size || h.vocab_size > c.padded_vocab())
    d.push_back({"vocab_size",
                 c.vocab_size == c.padded_vocab() ? std::to_string(c.vocab_size)
                                                  : std::to_string(c.vocab_size) + ".." + std::to_string(c.padded_vocab()),
                 std::to_string(h.vocab_size)});
  r("rope_theta", c.rope_base, h.rope_theta);
  r("rms_norm_eps", c.rms_eps, h.rms_norm_eps);
  // The longest sequence is a bound, not a shape (RoPE has no learned positions): a model saved for
  // shorter sequences (LLM-jp-4 pretrained at 4096) is the same model; a longer one is not accepted.
  if (h.max_position_embeddings < 1 || h.max_position_embeddings > c.max_seq_len)
    d.push_back({"max_position_embeddings", "1.." + std::to_string(c.max_seq_len), std::to_string(h.max_position_embeddings)});
  i("num_local_experts", c.num_experts, h.num_local_experts);
  i("num_experts_per_tok", c.moe_top_k, h.num_experts_per_tok);
  if (c.untie_embeddings == h.tie_word_embeddings)
    d.push_back({"tie_word_embeddings", c.untie_embeddings ? "false" : "true", h.tie_word_embeddings ? "true" : "false"});
  return d;
}

/// The name of the configuration of `Configs` (the program's list, models::ConfigList) matching `h` in
/// every compared field. When none does, throws an Error listing, for the closest configurations
/// (fewest differing fields), each differing field with the expected and the found value.
template <class Configs = models::BuiltinConfigs>
std::string match_hf_config(HfConfig const& h, std::string const& source = "config.json") {
  struct Candidate {
    std::string name;
    std::vector<ConfigFieldDiff> diff;
  };
  std::vector<Candidate> all;
  for (auto const name : Configs::names())
    Configs::dispatch(name, [&](auto tag) { all.push_back({std::string(name), hf_config_diff(decltype(tag)::config, h)}); });
  std::stable_sort(all.begin(), all.end(), [](Candidate const& a, Candidate const& b) { return a.diff.size() < b.diff.size(); });
  if (!all.empty() && all.front().diff.empty()) return all.front().name;
  std::string msg = "'" + source + "' matches no compiled-in model configuration; closest:";
  for (std::size_t k = 0; k < all.size() && k < 3; ++k) {
    msg += "\n  " + all[k].name + " (" + std::to_string(all[k].diff.size()) + " differing):";
    for (auto const& f : all[k].diff) msg += " " + f.field + " expected " + f.expected + ", got " + f.got + ";";
    msg.pop_back();
  }
  KUMIKI_FAIL(msg);
}

// ---- model weights ----------------------------------------------------------------------------

/// The parameter layout (Hugging Face names, fp32) of the configuration of `Configs` named `name`:
/// Llama names for a dense configuration, Mixtral's (block_sparse_moe.gate, experts.e.w1/w3/w2) for an
/// MoE one. An unknown name throws kumiki::InputError listing the list's names.
template <class Configs = models::BuiltinConfigs>
ArenaLayout model_param_layout(std::string_view name) {
  return models::hf::param_layout(Configs::find(name), DType::f32);
}

template <class Configs = models::BuiltinConfigs>
models::TransformerConfig model_config(std::string_view name) {
  return Configs::find(name);
}

/// True for the tensors with one row per vocabulary id (the embedding and the LM head).
inline bool is_vocab_tensor(std::string_view name) {
  return name == models::hf::embedding_name || name == models::hf::lm_head_name;
}

/// Reads the weights of a Hugging Face model directory (one file or sharded; F32, BF16 or F16) into
/// a new fp32 arena with `layout`, checking every tensor's presence and shape. Rotary inv_freq buffers
/// some exports carry are skipped; any other tensor the model has no place for is an error.
/// `model` names the model in that error (e.g. "a Mixtral model of configuration 'tiny_moe_test'").
/// `vocab_rows` (config.json's vocab_size) may be smaller than the arena's padded vocabulary: the
/// embedding and LM head rows beyond it are then filled with copies of the last row, as Megatron-LM's
/// checkpoint converter pads a vocabulary (tools/checkpoint saver, "replicating final entry").
inline Arena<Cpu> load_hf_weights(std::filesystem::path const& dir, ArenaLayout const& layout,
                                  std::string_view model = "the model", std::int64_t vocab_rows = -1) {
  SafetensorsModel const m(dir);
  Arena<Cpu> arena(layout);
  FillOptions o;
  o.convert_dtype = true;
  o.owner = std::string(model);
  o.ignorable = [](std::string_view n) {
    std::string_view const skip = "rotary_emb.inv_freq";
    return n.size() >= skip.size() && n.compare(n.size() - skip.size(), skip.size(), skip) == 0;
  };
  o.stored_rows = [vocab_rows](ArenaEntry const& e) { return is_vocab_tensor(e.name) ? vocab_rows : std::int64_t{0}; };
  fill_arena(m, arena, o);
  return arena;
}

/// A Hugging Face directory read into memory: the matched configuration and fp32 weights.
struct HfModel {
  std::string config_name;
  HfConfig config;
  Arena<Cpu> params;
};

/// Reads a Hugging Face directory as the configuration of `Configs` its config.json matches.
template <class Configs = models::BuiltinConfigs>
HfModel read_hf_model(std::filesystem::path const& dir) {
  KUMIKI_REQUIRE(std::filesystem::is_directory(dir), "Hugging Face model directory '", dir.string(), "' does not exist");
  HfConfig cfg = read_hf_config(dir);
  std::string name = match_hf_config<Configs>(cfg, (dir / "config.json").string());
  std::string const what =
      std::string(cfg.num_local_experts > 0 ? "a Mixtral" : "a Llama") + " model of configuration '" + name + "'";
  Arena<Cpu> params = load_hf_weights(dir, model_param_layout<Configs>(name), what, cfg.vocab_size);
  return {std::move(name), std::move(cfg), std::move(params)};
}

}  // namespace io
KUMIKI_NAMESPACE_END
