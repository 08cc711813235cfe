// Hugging Face Llama / Mixtral export / import: config.json mapping and matching, bitwise round trips
// (f32, sharded), bf16 rounding, and a specific error for each malformed input.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <type_traits>

#include <unistd.h>

#include "kumiki/cpu.hpp"
#include "kumiki/core/bf16.hpp"
#include "kumiki/io/hf.hpp"
#include "kumiki/train/hf_interop.hpp"
#include "kumiki/models/configs.hpp"
#include "kumiki/nn/transformer.hpp"
#include "kumiki/optim/adamw.hpp"
#include "kumiki/train/checkpoint.hpp"
#include "kumiki/train/recipe.hpp"

namespace {

using namespace kumiki;
namespace fs = std::filesystem;
using Tiny = nn::Transformer<models::tiny_test, Cpu, float>;
using TinyMoe = nn::Transformer<models::tiny_moe_test, Cpu, float>;

struct Scratch {
  fs::path root;
  explicit Scratch(std::string const& name)
      : root(fs::temp_directory_path() / ("kumiki_hf_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(root);
    fs::create_directories(root);
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
};

/// A tiny_test (or tiny_moe_test) checkpoint with random weights; returns its directory and the model.
template <class Model>
fs::path make_checkpoint(fs::path const& root, Model& m, std::uint64_t seed) {
  std::string const name = std::is_same_v<Model, TinyMoe> ? "tiny_moe_test" : "tiny_test";
  m.init(seed);
  optim::AdamW<Cpu> opt(m.params().layout());
  train::TrainState st;
  st.step = 5;
  return train::save_checkpoint(root, m.params(), opt, st,
                                "model = \"" + name + "\"\nseq_len = 16\nglobal_batch = 2\nmicro_batch = 1\n");
}

std::string slurp(fs::path const& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}
void spit(fs::path const& p, std::string const& s) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << s;
}

/// Round to nearest even, written independently of kumiki::bf16 (finite inputs).
std::uint16_t rne_bits(float f) {
  std::uint32_t u = 0;
  std::memcpy(&u, &f, 4);
  std::uint32_t const lsb = (u >> 16) & 1u;
  return static_cast<std::uint16_t>((u + 0x7fffu + lsb) >> 16);
}

/// Every tensor of the checkpoint model file equal byte for byte to the arena.
/// Checks that every tensor of `params` is stored in the bf16 export `f` as the round-to-nearest-even
/// of its fp32 value; returns how many values the rounding changed.
std::size_t require_rne_export(io::SafetensorsFile const& f, Arena<Cpu> const& params) {
  std::size_t inexact = 0;
  for (auto const& e : params.layout().entries()) {
    INFO(e.name);
    io::SafetensorsEntry const& se = f.entry(e.name);
    REQUIRE(se.dtype == DType::bf16);
    REQUIRE(se.shape == e.shape);
    auto const bytes = f.bytes(se);
    float const* w = params.get<float>(e.name).data();
    for (std::size_t i = 0; i < e.numel(); ++i) {
      std::uint16_t got = 0;
      std::memcpy(&got, bytes.data() + 2 * i, 2);
      REQUIRE(got == rne_bits(w[i]));
      REQUIRE(got == bf16(w[i]).bits);
      inexact += bf16::from_bits(got).to_float() != w[i];
    }
  }
  return inexact;
}

/// Checks that `imported` holds exactly the bf16-rounded values of `params`, widened to fp32.
void require_rne_import(Arena<Cpu> const& imported, Arena<Cpu> const& params) {
  for (auto const& e : params.layout().entries()) {
    float const* w = params.get<float>(e.name).data();
    float const* g = imported.get<float>(e.name).data();
    for (std::size_t i = 0; i < e.numel(); ++i) {
      std::uint32_t const u = std::uint32_t(rne_bits(w[i])) << 16;
      float want = 0;
      std::memcpy(&want, &u, 4);
      REQUIRE(g[i] == want);
    }
  }
}

void require_bitwise(Arena<Cpu> const& a, Arena<Cpu> const& b) {
  REQUIRE(a.layout() == b.layout());
  for (std::size_t i = 0; i < a.layout().size(); ++i) {
    INFO(a.layout()[i].name);
    REQUIRE(std::memcmp(a.view(i).data, b.view(i).data, a.view(i).bytes()) == 0);
  }
}

Arena<Cpu> load_ckpt_params(fs::path const& dir, ArenaLayout const& layout = Tiny::param_layout()) {
  Arena<Cpu> a(layout);
  optim::AdamW<Cpu> opt(layout);
  train::load_checkpoint(dir, a, opt);
  return a;
}

std::string error_of(auto&& f) {
  try {
    f();
  } catch (kumiki::Error const& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace

TEST_CASE("hf config.json: LlamaForCausalLM with the padded vocabulary, parsed back and matched", "[hf]") {
  io::HfExportOptions opt;
  opt.dtype = DType::bf16;
  auto const j = io::hf_config_json(models::tiny_test, opt);
  CHECK(j.at("architectures") == nlohmann::json::array({"LlamaForCausalLM"}));
  CHECK(j.at("model_type") == "llama");
  CHECK(j.at("vocab_size") == 64);  // 50 rounded up to a multiple of 16
  CHECK(j.at("hidden_size") == 32);
  CHECK(j.at("intermediate_size") == 40);
  CHECK(j.at("num_hidden_layers") == 2);
  CHECK(j.at("num_attention_heads") == 4);
  CHECK(j.at("num_key_value_heads") == 2);
  CHECK(j.at("rope_theta") == 10000.0);
  CHECK(j.at("rms_norm_eps") == 1e-5);
  CHECK(j.at("max_position_embeddings") == 32);
  CHECK(j.at("tie_word_embeddings") == false);
  CHECK(j.at("torch_dtype") == "bfloat16");
  CHECK(j.at("hidden_act") == "silu");
  CHECK(j.at("attention_bias") == false);
  CHECK(j.at("bos_token_id") == 1);
  CHECK(j.at("eos_token_id") == 2);
  // The byte tokenizer's ids for the 258-token demo vocabulary; LLM-jp-4 8B ships 99584 rows.
  auto const d = io::hf_config_json(models::demo);
  CHECK(d.at("bos_token_id") == 257);
  CHECK(d.at("eos_token_id") == 256);
  auto big = io::hf_config_json(models::llmjp4_8b);
  CHECK(big.at("vocab_size") == 99584);

  Scratch s("cfg");
  for (auto const& [name, cfgj] : {std::pair{"tiny_test", j}, std::pair{"demo", d}, std::pair{"llmjp4_8b", big}}) {
    spit(s.root / "config.json", cfgj.dump(2));
    auto const h = io::read_hf_config(s.root);
    CHECK(io::match_hf_config(h) == name);
  }
  // max_position_embeddings is a bound: LLM-jp-4 saved for 4096 (pretraining) is the 8192 configuration;
  // more than the configuration's max_seq_len, or none at all, is another model.
  for (std::int64_t const max_pos : {4096, 8192}) {
    big["max_position_embeddings"] = max_pos;
    spit(s.root / "config.json", big.dump(2));
    CHECK(io::match_hf_config(io::read_hf_config(s.root)) == "llmjp4_8b");
  }
  big["max_position_embeddings"] = 16384;
  spit(s.root / "config.json", big.dump(2));
  CHECK(error_of([&] { io::match_hf_config(io::read_hf_config(s.root)); })
            .find("max_position_embeddings expected 1..8192, got 16384") != std::string::npos);
}

TEST_CASE("hf config.json: newer transformers' rope_parameters are read, scaled RoPE and contradictions refused", "[hf]") {
  Scratch s("rope");
  auto j = io::hf_config_json(models::llmjp4_8b);
  j.erase("rope_theta");
  j.erase("rope_scaling");
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 500000.0}};
  spit(s.root / "config.json", j.dump(2));
  CHECK(io::read_hf_config(s.root).rope_theta == 500000.0);
  CHECK(io::match_hf_config(io::read_hf_config(s.root)) == "llmjp4_8b");
  j["rope_parameters"]["rope_theta"] = 10000.0;  // now it differs from the compiled-in config
  spit(s.root / "config.json", j.dump(2));
  CHECK(error_of([&] { io::match_hf_config(io::read_hf_config(s.root)); }).find("rope_theta expected 500000, got 10000") !=
        std::string::npos);
  j["rope_theta"] = 500000.0;  // both spellings, disagreeing
  spit(s.root / "config.json", j.dump(2));
  CHECK(error_of([&] { io::read_hf_config(s.root); }).find("contradicts rope_parameters.rope_theta") != std::string::npos);
  j.erase("rope_theta");
  j["rope_parameters"] = {{"rope_type", "llama3"}, {"rope_theta", 500000.0}, {"factor", 8.0}};
  spit(s.root / "config.json", j.dump(2));
  CHECK(error_of([&] { io::read_hf_config(s.root); }).find("rope_type 'llama3' is not supported") != std::string::npos);
}

TEST_CASE("hf export f32 -> import gives bitwise-equal fp32 weights and a loadable checkpoint", "[hf]") {
  Scratch s("f32");
  Tiny m;
  fs::path const ck = make_checkpoint(s.root / "run", m, 7);
  io::HfExportOptions opt;
  opt.dtype = DType::f32;
  auto const files = train::export_hf(s.root / "run", s.root / "hf", opt);  // run dir: newest checkpoint
  REQUIRE(files.size() == 3);
  CHECK(fs::exists(s.root / "hf" / "config.json"));
  CHECK(fs::exists(s.root / "hf" / "generation_config.json"));
  CHECK(!fs::exists(s.root / "hf" / "model.safetensors.index.json"));
  {
    io::SafetensorsFile const f(s.root / "hf" / "model.safetensors");
    CHECK(f.size() == Tiny::param_layout().size());
    for (auto const& e : f.entries()) CHECK(e.dtype == DType::f32);
  }
  auto const gen = nlohmann::json::parse(slurp(s.root / "hf" / "generation_config.json"));
  CHECK(gen.at("eos_token_id") == 2);

  fs::path const imported = train::import_hf(s.root / "hf", s.root / "imported");
  CHECK(imported == s.root / "imported" / "step_000000000");
  train::verify_checkpoint(imported);
  Arena<Cpu> a(Tiny::param_layout());
  optim::AdamW<Cpu> adam(Tiny::param_layout());
  std::string recipe;
  train::TrainState const st = train::load_checkpoint(imported, a, adam, &recipe);
  require_bitwise(a, m.params());
  CHECK(st.step == 0);
  CHECK(adam.step_count() == 0);
  for (auto const* arena : {&adam.exp_avg(), &adam.exp_avg_sq()})
    for (std::size_t i = 0; i < arena->layout().size(); ++i) {
      float const* p = arena->get<float>(i).data();
      for (std::size_t k = 0; k < arena->layout()[i].numel(); ++k) REQUIRE(p[k] == 0.0f);
    }
  // The stored recipe names the model and parses (its data prefix is a placeholder to replace).
  train::Recipe const r = train::parse_recipe(recipe, "imported", imported, false);
  CHECK(r.model == "tiny_test");
  CHECK(train::checkpoint_model_name(imported) == "tiny_test");
}

TEST_CASE("hf import pads a model with the real (unpadded) vocabulary as Megatron's converter does", "[hf]") {
  Scratch s("unpadded");
  Tiny m;
  make_checkpoint(s.root / "run", m, 11);
  io::HfExportOptions opt;
  opt.dtype = DType::f32;
  train::export_hf(s.root / "run", s.root / "hf", opt);
  // Rewrite the export as a Hugging Face model of the real vocabulary: 50 rows, vocab_size 50.
  std::int64_t const V = models::tiny_test.vocab_size, Vp = models::tiny_test.padded_vocab(), C = models::tiny_test.hidden;
  REQUIRE(V < Vp);
  auto tensors = io::named_tensors(m.params());
  for (auto& t : tensors)
    if (t.name == "model.embed_tokens.weight" || t.name == "lm_head.weight") t.view.shape = Shape{V, C};
  io::write_safetensors(s.root / "hf" / "model.safetensors", tensors);
  auto cfg = nlohmann::json::parse(slurp(s.root / "hf" / "config.json"));
  cfg["vocab_size"] = V;
  spit(s.root / "hf" / "config.json", cfg.dump(2));

  Arena<Cpu> const got = load_ckpt_params(train::import_hf(s.root / "hf", s.root / "imported"));
  ArenaLayout const layout = Tiny::param_layout();
  for (auto const& e : layout.entries()) {
    INFO(e.name);
    float const* a = got.get<float>(e.name).data();
    float const* b = m.params().get<float>(e.name).data();
    bool const vocab = e.name == "model.embed_tokens.weight" || e.name == "lm_head.weight";
    std::size_t const same = vocab ? static_cast<std::size_t>(V * C) : e.numel();
    REQUIRE(std::memcmp(a, b, same * sizeof(float)) == 0);  // the real rows, bitwise
    if (vocab)
      for (std::int64_t r = V; r < Vp; ++r) REQUIRE(std::memcmp(a + r * C, b + (V - 1) * C, C * sizeof(float)) == 0);
  }
  // Fewer rows than the real vocabulary, or more than the padded one, is a different model.
  for (std::int64_t bad : {V - 1, Vp + 1}) {
    cfg["vocab_size"] = bad;
    spit(s.root / "hf" / "config.json", cfg.dump(2));
    CHECK_THAT(error_of([&] { train::import_hf(s.root / "hf", s.root / "bad"); }),
               Catch::Contains("vocab_size expected 50..64, got " + std::to_string(bad)));
  }
}

TEST_CASE("hf export bf16 stores round-to-nearest-even of the weights, and import widens them exactly", "[hf]") {
  Scratch s("bf16");
  Tiny m;
  fs::path const ck = make_checkpoint(s.root / "run", m, 11);
  train::export_hf(ck, s.root / "hf");  // bf16 is the default
  auto const cfg = nlohmann::json::parse(slurp(s.root / "hf" / "config.json"));
  CHECK(cfg.at("torch_dtype") == "bfloat16");
  io::SafetensorsFile const f(s.root / "hf" / "model.safetensors");
  CHECK(require_rne_export(f, m.params()) > 1000);  // random weights: rounding really happened
  fs::path const imported = train::import_hf(s.root / "hf", s.root / "imported");
  require_rne_import(load_ckpt_params(imported), m.params());
}

TEST_CASE("hf sharded export: index and shards round trip bitwise", "[hf]") {
  Scratch s("shard");
  Tiny m;
  fs::path const ck = make_checkpoint(s.root / "run", m, 3);
  io::HfExportOptions opt;
  opt.dtype = DType::f32;
  opt.max_shard_bytes = 8192;  // embed / lm_head (64 x 32 x 4 bytes) fill a shard each
  auto const files = train::export_hf(ck, s.root / "hf", opt);
  auto const index = nlohmann::json::parse(slurp(s.root / "hf" / "model.safetensors.index.json"));
  auto const& wm = index.at("weight_map");
  CHECK(wm.size() == Tiny::param_layout().size());
  std::set<std::string> shards;
  for (auto const& [k, v] : wm.items()) shards.insert(v.get<std::string>());
  CHECK(shards.size() >= 3);
  CHECK(!fs::exists(s.root / "hf" / "model.safetensors"));
  CHECK(index.at("metadata").at("total_size") == 4 * models::tiny_test.num_params());
  for (auto const& sh : shards) CHECK(fs::file_size(s.root / "hf" / sh) <= 8192 + 4096);
  Arena<Cpu> const a = load_ckpt_params(train::import_hf(s.root / "hf", s.root / "imported"));
  require_bitwise(a, m.params());
}

TEST_CASE("hf import: a config matching nothing lists the closest configs' differing fields", "[hf]") {
  Scratch s("mismatch");
  Tiny m;
  io::HfExportOptions opt;
  opt.dtype = DType::f32;
  train::export_hf(make_checkpoint(s.root / "run", m, 1), s.root / "hf", opt);
  auto cfg = nlohmann::json::parse(slurp(s.root / "hf" / "config.json"));
  cfg["intermediate_size"] = 48;
  cfg["rope_theta"] = 500000.0;
  spit(s.root / "hf" / "config.json", cfg.dump(2));
  std::string const e = error_of([&] { train::import_hf(s.root / "hf", s.root / "out"); });
  INFO(e);
  CHECK(e.find("matches no compiled-in model configuration") != std::string::npos);
  CHECK(e.find("tiny_test (2 differing): intermediate_size expected 40, got 48; rope_theta expected 10000, got 500000") !=
        std::string::npos);
  // The next closest; bench_ref's max_position_embeddings 256 is no difference: 32 positions fit in it.
  CHECK(e.find("tiny_moe_test (4 differing): intermediate_size expected 24, got 48;") != std::string::npos);
  CHECK(e.find("bench_ref (6 differing): hidden_size expected 256, got 32;") != std::string::npos);
  CHECK(!fs::exists(s.root / "out" / "step_000000000"));
}

TEST_CASE("hf import / export: each bad input gives its specific error", "[hf]") {
  Scratch s("errors");
  Tiny m;
  fs::path const ck = make_checkpoint(s.root / "run", m, 5);
  io::HfExportOptions opt;
  opt.dtype = DType::f32;
  train::export_hf(ck, s.root / "good", opt);
  std::string const good_cfg = slurp(s.root / "good" / "config.json");
  std::string const good_st = slurp(s.root / "good" / "model.safetensors");
  int n = 0;
  // A fresh copy of the good export with one change applied; returns the import error.
  auto variant = [&](auto&& change) {
    fs::path const d = s.root / ("v" + std::to_string(n++));
    fs::create_directories(d);
    spit(d / "config.json", good_cfg);
    spit(d / "model.safetensors", good_st);
    change(d);
    return error_of([&] { train::import_hf(d, d / "ckpt"); });
  };
  auto has = [](std::string const& e, std::string const& what) {
    INFO(e);
    CHECK(e.find(what) != std::string::npos);
  };
  has(variant([](fs::path const& d) { fs::remove(d / "config.json"); }), "config.json' is missing");
  has(variant([](fs::path const& d) { spit(d / "config.json", "{\"hidden_size\": 32,"); }), "is not valid JSON");
  has(variant([&](fs::path const& d) {
        auto c = nlohmann::json::parse(good_cfg);
        c.erase("hidden_size");
        spit(d / "config.json", c.dump());
      }),
      "has no 'hidden_size'");
  has(variant([&](fs::path const& d) {
        auto c = nlohmann::json::parse(good_cfg);
        c["num_hidden_layers"] = "two";
        spit(d / "config.json", c.dump());
      }),
      "'num_hidden_layers' is not an integer");
  has(variant([&](fs::path const& d) {
        auto c = nlohmann::json::parse(good_cfg);
        c["tie_word_embeddings"] = true;
        spit(d / "config.json", c.dump());
      }),
      "tie_word_embeddings: true");
  has(variant([&](fs::path const& d) {
        auto c = nlohmann::json::parse(good_cfg);
        c["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
        spit(d / "config.json", c.dump());
      }),
      "rope_scaling");
  has(variant([](fs::path const& d) { fs::remove(d / "model.safetensors"); }), "holds neither model.safetensors");
  has(variant([&](fs::path const& d) { spit(d / "model.safetensors", good_st.substr(0, good_st.size() - 100)); }),
      "safetensors '");
  // A weights file lacking lm_head, one with a wrong shape, one with an extra tensor.
  auto rewrite = [&](fs::path const& d, auto&& edit) {
    io::SafetensorsFile const f(s.root / "good" / "model.safetensors");
    std::vector<io::NamedTensor> t;
    for (auto const& e : f.entries()) t.push_back({e.name, f.view(e)});
    edit(t);
    io::write_safetensors(d / "model.safetensors", t);
  };
  has(variant([&](fs::path const& d) {
        rewrite(d, [](auto& t) { std::erase_if(t, [](auto const& x) { return x.name == "lm_head.weight"; }); });
      }),
      "has no tensor 'lm_head.weight'");
  has(variant([&](fs::path const& d) {
        rewrite(d, [](auto& t) {
          for (auto& x : t)
            if (x.name == "model.norm.weight") x.view.shape = Shape{16};
        });
      }),
      "tensor 'model.norm.weight' is [16], expected [32]");
  static float extra[4] = {};
  has(variant([&](fs::path const& d) {
        rewrite(d, [](auto& t) { t.push_back({"model.layers.0.mlp.bias", AnyView{extra, DType::f32, Shape{4}, DeviceKind::cpu}}); });
      }),
      "holds tensor 'model.layers.0.mlp.bias' which a Llama model");
  // Export side: a corrupt checkpoint (CRC), an occupied output directory, a checkpoint without recipe model.
  has(error_of([&] { train::export_hf(ck, s.root / "good", opt); }), "already exists and is not an empty directory");
  {
    std::string st = slurp(ck / "model.safetensors");
    st[st.size() - 3] ^= 0x40;
    spit(ck / "model.safetensors", st);
  }
  has(error_of([&] { train::export_hf(ck, s.root / "bad_export", opt); }), "fails its checksum");
  CHECK(!fs::exists(s.root / "bad_export"));
  has(error_of([&] { train::export_hf(s.root / "nowhere", s.root / "x", opt); }), "does not exist");
}

TEST_CASE("hf: the model name is read from a recipe's top-level key only", "[hf]") {
  CHECK(train::recipe_model_name("model = \"tiny_test\"\n").value_or("") == "tiny_test");
  CHECK(train::recipe_model_name("# c\nmodel_path = \"x\"\n  model='demo'   # comment\r\n").value_or("") == "demo");
  CHECK(!train::recipe_model_name("seed = 1\n[[stages]]\nmodel = \"demo\"\n").has_value());
  CHECK(!train::recipe_model_name("seed = 1\n").has_value());
  CHECK(!train::recipe_model_name("model = demo\n").has_value());
}

// ---- Mixtral (MoE) ------------------------------------------------------------------------------

namespace {

/// The Mixtral parameter names and shapes of `c`, written from Hugging Face's naming (not from
/// nn::Transformer): embedding, per layer the attention as Llama, the router and each expert's
/// w1 (gate) / w3 (up) / w2 (down), final norm, LM head.
std::map<std::string, Shape> mixtral_names(models::TransformerConfig const& c) {
  std::int64_t const C = c.hidden, KV = c.num_query_groups * (c.hidden / c.num_heads), Fe = c.moe_ffn_hidden;
  std::int64_t const d = c.make_vocab_divisible_by, Vp = (c.vocab_size + d - 1) / d * d;
  std::map<std::string, Shape> m{{"model.embed_tokens.weight", Shape{Vp, C}},
                                 {"model.norm.weight", Shape{C}},
                                 {"lm_head.weight", Shape{Vp, C}}};
  for (int l = 0; l < c.num_layers; ++l) {
    std::string const p = "model.layers." + std::to_string(l) + ".";
    m[p + "input_layernorm.weight"] = Shape{C};
    m[p + "post_attention_layernorm.weight"] = Shape{C};
    m[p + "self_attn.q_proj.weight"] = Shape{C, C};
    m[p + "self_attn.k_proj.weight"] = Shape{KV, C};
    m[p + "self_attn.v_proj.weight"] = Shape{KV, C};
    m[p + "self_attn.o_proj.weight"] = Shape{C, C};
    m[p + "block_sparse_moe.gate.weight"] = Shape{c.num_experts, C};
    for (int e = 0; e < c.num_experts; ++e) {
      std::string const x = p + "block_sparse_moe.experts." + std::to_string(e) + ".";
      m[x + "w1.weight"] = Shape{Fe, C};
      m[x + "w3.weight"] = Shape{Fe, C};
      m[x + "w2.weight"] = Shape{C, Fe};
    }
  }
  return m;
}

}  // namespace

TEST_CASE("hf config.json: MixtralForCausalLM for MoE configs, with a transformers Mixtral's keys, matched back", "[hf]") {
  io::HfExportOptions opt;
  opt.dtype = DType::f32;
  auto const j = io::hf_config_json(models::tiny_moe_test, opt);
  CHECK(j.at("architectures") == nlohmann::json::array({"MixtralForCausalLM"}));
  CHECK(j.at("model_type") == "mixtral");
  CHECK(j.at("intermediate_size") == 24);  // one expert's width, not the dense ffn_hidden 40
  CHECK(j.at("num_local_experts") == 4);
  CHECK(j.at("num_experts_per_tok") == 2);
  CHECK(j.at("router_aux_loss_coef") == 1e-2);
  CHECK(j.at("output_router_logits") == false);
  CHECK(j.at("router_jitter_noise") == 0.0);
  CHECK(j.at("sliding_window").is_null());
  CHECK(j.at("vocab_size") == 64);
  CHECK(j.at("num_key_value_heads") == 2);
  CHECK(j.at("torch_dtype") == "float32");
  // Exactly the keys transformers writes for a Mixtral (e.g. mistralai/Mixtral-8x7B-v0.1's config.json,
  // plus initializer_range / router_jitter_noise of later versions); no Llama-only keys.
  std::set<std::string> keys;
  for (auto const& [k, v] : j.items()) keys.insert(k);
  CHECK(keys == std::set<std::string>{"architectures", "attention_dropout", "bos_token_id", "eos_token_id", "hidden_act",
                                      "hidden_size", "initializer_range", "intermediate_size", "max_position_embeddings",
                                      "model_type", "num_attention_heads", "num_experts_per_tok", "num_hidden_layers",
                                      "num_key_value_heads", "num_local_experts", "output_router_logits", "rms_norm_eps",
                                      "rope_theta", "router_aux_loss_coef", "router_jitter_noise", "sliding_window",
                                      "tie_word_embeddings", "torch_dtype", "use_cache", "vocab_size"});
  auto const big = io::hf_config_json(models::llmjp3_8x1_8b);
  CHECK(big.at("intermediate_size") == 7168);
  CHECK(big.at("num_local_experts") == 8);
  CHECK(big.at("num_experts_per_tok") == 2);
  CHECK(big.at("vocab_size") == 99584);
  CHECK(big.at("num_hidden_layers") == 24);

  Scratch s("mixcfg");
  for (auto const& [name, cfgj] : {std::pair{"tiny_moe_test", j}, std::pair{"llmjp3_8x1_8b", big}}) {
    spit(s.root / "config.json", cfgj.dump(2));
    auto const h = io::read_hf_config(s.root);
    CHECK(h.model_type == "mixtral");
    CHECK(h.num_local_experts == cfgj.at("num_local_experts"));
    CHECK(h.num_experts_per_tok == 2);
    CHECK(io::match_hf_config(h) == name);
  }
}

TEST_CASE("hf config.json: Llama and Mixtral configs never match each other, the message names the expert fields", "[hf]") {
  Scratch s("cross");
  // tiny_moe_test's shapes written as a Llama: matches nothing, tiny_moe_test closest by its experts.
  auto llama = io::hf_config_json(models::tiny_moe_test);
  llama["architectures"] = {"LlamaForCausalLM"};
  llama["model_type"] = "llama";
  for (char const* k : {"num_local_experts", "num_experts_per_tok", "router_aux_loss_coef", "output_router_logits",
                        "router_jitter_noise", "sliding_window"})
    llama.erase(k);
  spit(s.root / "config.json", llama.dump());
  std::string e = error_of([&] { io::match_hf_config(io::read_hf_config(s.root)); });
  INFO(e);
  CHECK(e.find("matches no compiled-in model configuration") != std::string::npos);
  CHECK(e.find("tiny_moe_test (2 differing): num_local_experts expected 4, got 0; num_experts_per_tok expected 2, got 0") !=
        std::string::npos);
  // tiny_test's shapes written as a Mixtral: tiny_test differs only in its (absent) experts.
  auto mix = io::hf_config_json(models::tiny_test);
  mix["architectures"] = {"MixtralForCausalLM"};
  mix["model_type"] = "mixtral";
  mix["num_local_experts"] = 4;
  mix["num_experts_per_tok"] = 2;
  spit(s.root / "config.json", mix.dump());
  e = error_of([&] { io::match_hf_config(io::read_hf_config(s.root)); });
  INFO(e);
  CHECK(e.find("tiny_test (2 differing): num_local_experts expected 0, got 4; num_experts_per_tok expected 0, got 2") !=
        std::string::npos);
  CHECK(e.find("tiny_moe_test (1 differing): intermediate_size expected 24, got 40") != std::string::npos);
  // The diff itself, both ways.
  io::HfConfig h = io::read_hf_config(s.root);
  auto const d = io::hf_config_diff(models::tiny_test, h);
  REQUIRE(d.size() == 2);
  CHECK(d[0].field == "num_local_experts");
  CHECK(io::hf_config_diff(models::tiny_moe_test, h).size() == 1);
}

TEST_CASE("hf export: a pre-softmax (unrenormalized) router has no Mixtral equivalent and is refused", "[hf]") {
  models::TransformerConfig c = models::tiny_moe_test;
  c.moe_pre_softmax = true;
  std::string const e = error_of([&] { io::hf_config_json(c); });
  INFO(e);
  CHECK(e.find("moe_pre_softmax") != std::string::npos);
  CHECK(e.find("Mixtral always renormalizes") != std::string::npos);
  CHECK_NOTHROW(io::hf_config_json(models::tiny_moe_test));
  models::TransformerConfig dense = models::tiny_test;
  dense.moe_pre_softmax = true;  // meaningless without experts: a dense export is unaffected
  CHECK_NOTHROW(io::hf_config_json(dense));
}

TEST_CASE("hf config.json: hostile values are input errors naming the key and the value", "[hf]") {
  Scratch s("hostilecfg");
  auto const good = io::hf_config_json(models::tiny_test);
  auto error_with = [&](auto&& change) -> std::string {
    auto c = good;
    change(c);
    spit(s.root / "config.json", c.dump());
    try {
      io::read_hf_config(s.root);
    } catch (kumiki::InputError const& e) {
      return e.what();
    }
    return "<no InputError>";
  };
  auto has = [](std::string const& e, std::string const& what) {
    INFO(e);
    CHECK(e.find(what) != std::string::npos);
  };
  has(error_with([](auto& c) { c["hidden_size"] = "64"; }), "'hidden_size' is not an integer (the string \"64\")");
  has(error_with([](auto& c) { c["vocab_size"] = 18446744073709551615ull; }),
      "'vocab_size' is too large (the number 18446744073709551615)");
  has(error_with([](auto& c) { c["tie_word_embeddings"] = 0; }), "'tie_word_embeddings' is not a boolean (the number 0)");
  has(error_with([](auto& c) { c["rms_norm_eps"] = {1}; }), "'rms_norm_eps' is not a number (an array)");
  has(error_with([](auto& c) { c["rope_scaling"] = {{"type", std::string(500, 'z')}}; }),
      "rope_scaling is an object (not null)");
  has(error_with([](auto& c) { c["rope_parameters"] = "default"; }), "rope_parameters is the string \"default\", not an object");
  has(error_with([](auto& c) { c["num_attention_heads"] = 0; }), "is not a positive multiple of num_attention_heads 0");
  has(error_with([](auto& c) {
        c["model_type"] = "mixtral";
        c["architectures"] = {"MixtralForCausalLM"};
        c["num_local_experts"] = 2;
        c["num_experts_per_tok"] = 1;
        c["sliding_window"] = "none";
      }),
      "'sliding_window' is not an integer (the string \"none\")");
  // Files no parser should accept differently: nested beyond reason, or a key given twice.
  spit(s.root / "config.json", "{\"model_type\": \"llama\", \"x\": " + std::string(80, '[') + std::string(80, ']') + "}");
  CHECK_THROWS_WITH(io::read_hf_config(s.root), Catch::Contains("nests deeper than 64 levels"));
  spit(s.root / "config.json", R"({"hidden_size": 64, "hidden_size": 128})");
  CHECK_THROWS_AS(io::read_hf_config(s.root), kumiki::InputError);
  CHECK_THROWS_WITH(io::read_hf_config(s.root), Catch::Contains("repeats the key \"hidden_size\""));
  spit(s.root / "config.json", "[1]");
  CHECK_THROWS_WITH(io::read_hf_config(s.root), Catch::Contains("is an array, not a JSON object"));
}

TEST_CASE("hf import: malformed Mixtral configs give their specific errors", "[hf]") {
  Scratch s("mixbad");
  auto const good = io::hf_config_json(models::tiny_moe_test);
  auto error_with = [&](auto&& change) {
    auto c = good;
    change(c);
    spit(s.root / "config.json", c.dump());
    return error_of([&] { io::read_hf_config(s.root); });
  };
  auto has = [](std::string const& e, std::string const& what) {
    INFO(e);
    CHECK(e.find(what) != std::string::npos);
  };
  has(error_with([](auto& c) { c["num_local_experts"] = 0; }), "num_local_experts 0 must be at least 1");
  has(error_with([](auto& c) { c["num_local_experts"] = -3; }), "num_local_experts -3 must be at least 1");
  has(error_with([](auto& c) { c["num_experts_per_tok"] = 0; }), "num_experts_per_tok 0 must be between 1 and num_local_experts 4");
  has(error_with([](auto& c) { c["num_experts_per_tok"] = 5; }), "num_experts_per_tok 5 must be between 1 and num_local_experts 4");
  has(error_with([](auto& c) { c.erase("num_local_experts"); }), "has no 'num_local_experts'");
  has(error_with([](auto& c) { c["num_experts_per_tok"] = 1.5; }), "'num_experts_per_tok' is not an integer");
  has(error_with([](auto& c) { c["sliding_window"] = 16; }), "sliding_window 16 is shorter than max_position_embeddings 32");
  has(error_with([](auto& c) { c["tie_word_embeddings"] = true; }), "tie_word_embeddings: true");
  has(error_with([](auto& c) { c["architectures"] = {"LlamaForCausalLM"}; }), "contradicts model_type 'mixtral'");
  has(error_with([](auto& c) {
        c["model_type"] = "qwen2_moe";
        c["architectures"] = {"Qwen2MoeForCausalLM"};
      }),
      "only Llama (LlamaForCausalLM) and Mixtral (MixtralForCausalLM) are supported");
  has(error_with([](auto& c) { c["model_type"] = "llama"; c["architectures"] = {"LlamaForCausalLM"}; }),
      "a Llama model with num_local_experts 4");
  // A sliding window covering the whole context changes nothing and is accepted.
  CHECK(error_with([](auto& c) { c["sliding_window"] = 32; }) == "<no error>");
}

TEST_CASE("hf Mixtral: export f32 -> import is bitwise with Mixtral tensor names, bf16 is round-to-nearest-even", "[hf]") {
  Scratch s("mixrt");
  TinyMoe m;
  fs::path const ck = make_checkpoint(s.root / "run", m, 13);
  io::HfExportOptions opt;
  opt.dtype = DType::f32;
  train::export_hf(ck, s.root / "hf32", opt);
  auto const cfg = nlohmann::json::parse(slurp(s.root / "hf32" / "config.json"));
  CHECK(cfg.at("architectures") == nlohmann::json::array({"MixtralForCausalLM"}));
  {
    io::SafetensorsFile const f(s.root / "hf32" / "model.safetensors");
    std::map<std::string, Shape> got;
    for (auto const& e : f.entries()) got[e.name] = e.shape;
    auto const want = mixtral_names(models::tiny_moe_test);
    CHECK(got.size() == want.size());
    CHECK(got == want);
    CHECK(static_cast<std::int64_t>(TinyMoe::param_layout().numel()) == models::tiny_moe_test.num_params());
  }
  fs::path const imported = train::import_hf(s.root / "hf32", s.root / "imported");
  CHECK(train::checkpoint_model_name(imported) == "tiny_moe_test");
  require_bitwise(load_ckpt_params(imported, TinyMoe::param_layout()), m.params());

  train::export_hf(ck, s.root / "hf16");
  io::SafetensorsFile const f(s.root / "hf16" / "model.safetensors");
  CHECK(require_rne_export(f, m.params()) > 1000);
  require_rne_import(load_ckpt_params(train::import_hf(s.root / "hf16", s.root / "imported16"), TinyMoe::param_layout()),
                     m.params());
}

TEST_CASE("hf Mixtral import: a missing expert or an extra tensor names the Mixtral model", "[hf]") {
  Scratch s("mixerr");
  TinyMoe m;
  io::HfExportOptions opt;
  opt.dtype = DType::f32;
  train::export_hf(make_checkpoint(s.root / "run", m, 2), s.root / "good", opt);
  auto variant = [&](std::string const& dir, auto&& edit) {
    fs::path const d = s.root / dir;
    fs::create_directories(d);
    fs::copy_file(s.root / "good" / "config.json", d / "config.json");
    io::SafetensorsFile const f(s.root / "good" / "model.safetensors");
    std::vector<io::NamedTensor> t;
    for (auto const& e : f.entries()) t.push_back({e.name, f.view(e)});
    edit(t);
    io::write_safetensors(d / "model.safetensors", t);
    return error_of([&] { train::import_hf(d, d / "ckpt"); });
  };
  std::string e = variant("missing", [](auto& t) {
    std::erase_if(t, [](auto const& x) { return x.name == "model.layers.1.block_sparse_moe.experts.3.w2.weight"; });
  });
  INFO(e);
  CHECK(e.find("has no tensor 'model.layers.1.block_sparse_moe.experts.3.w2.weight' (expected [32, 24])") !=
        std::string::npos);
  static float extra[32 * 24] = {};
  e = variant("extra", [](auto& t) {
    t.push_back({"model.layers.0.block_sparse_moe.experts.4.w1.weight", AnyView{extra, DType::f32, Shape{24, 32}, DeviceKind::cpu}});
  });
  INFO(e);
  CHECK(e.find("holds tensor 'model.layers.0.block_sparse_moe.experts.4.w1.weight' which a Mixtral model of configuration "
               "'tiny_moe_test' has no place for") != std::string::npos);
}

// ---- a program's own configuration list ---------------------------------------------------------

namespace {

/// A user's configuration: tiny_test narrowed, under a name of its own.
constexpr models::TransformerConfig my_tiny = [] {
  models::TransformerConfig c = models::tiny_test;
  c.name = "my_tiny";
  c.hidden = 16, c.num_heads = 2, c.num_query_groups = 1;
  return c;
}();
/// The same name with another MLP width: the configuration changed after checkpoints were written.
constexpr models::TransformerConfig my_tiny_wider = [] {
  models::TransformerConfig c = my_tiny;
  c.ffn_hidden = 48;
  return c;
}();
using Mine = models::ConfigList<my_tiny>;

}  // namespace

TEST_CASE("checkpoints record their configuration: every built-in one round-trips exactly, a damaged record is named",
          "[hf][configs]") {
  for (auto const name : models::BuiltinConfigs::names()) {
    models::TransformerConfig const c = models::BuiltinConfigs::find(name);
    INFO(name);
    CHECK(train::parse_config_record(train::config_record(c), "x") == c);
  }
  CHECK(train::config_record(models::tiny_test).starts_with(R"({"name":"tiny_test","vocab_size":50,"make_vocab_divisible_by":16,)"));
  std::string rec = train::config_record(models::tiny_test);
  rec.replace(rec.find("\"hidden\":32"), 11, "\"hidden\":3.5");
  CHECK(error_of([&] { train::parse_config_record(rec, "m.safetensors"); }) ==
        "'m.safetensors': the kumiki_config record lacks field 'hidden' or it has the wrong type");
  CHECK(error_of([&] { train::parse_config_record("{\"vocab_size\": 5}", "m.safetensors"); }) ==
        "'m.safetensors': the kumiki_config record has no model name");
}

TEST_CASE("a program's own configuration list: export and import by the list, each refusal names the differing field",
          "[hf][configs]") {
  Scratch s("mine");
  nn::Transformer<my_tiny, Cpu, float> m;
  m.init(11);
  optim::AdamW<Cpu> adam(m.params().layout());
  train::TrainState st;
  st.step = 3;
  fs::path const ck = train::save_checkpoint(s.root / "run", m.params(), adam, st,
                                             "model = \"my_tiny\"\nseq_len = 16\nglobal_batch = 2\nmicro_batch = 1\n", {},
                                             train::config_metadata(my_tiny));
  REQUIRE(train::checkpoint_config(ck).has_value());
  CHECK(*train::checkpoint_config(ck) == my_tiny);
  CHECK(!train::checkpoint_config(make_checkpoint(s.root / "old", *std::make_unique<Tiny>(), 1)).has_value());

  // kumiki's own list does not know 'my_tiny'; the program's list does.
  CHECK(error_of([&] { train::export_hf(ck, s.root / "no"); }) ==
        "checkpoint '" + ck.string() + "' holds model 'my_tiny', a configuration this program does not know (it knows " +
            models::BuiltinConfigs::names_text() +
            "); use a program whose configuration list includes 'my_tiny' (models::ConfigList, docs/api.md)");
  io::HfExportOptions opt;
  opt.dtype = DType::f32;
  train::export_hf<Mine>(s.root / "run", s.root / "hf", opt);
  CHECK(nlohmann::json::parse(slurp(s.root / "hf" / "config.json")).at("hidden_size") == 16);
  CHECK(error_of([&] { train::import_hf(s.root / "hf", s.root / "no"); }).find("matches no compiled-in model configuration") !=
        std::string::npos);
  fs::path const imported = train::import_hf<Mine>(s.root / "hf", s.root / "imported");
  CHECK(train::checkpoint_model_name(imported) == "my_tiny");
  CHECK(*train::checkpoint_config(imported) == my_tiny);
  require_bitwise(load_ckpt_params(imported, m.params().layout()), m.params());

  // Another configuration: the name and every differing field, checkpoint vs program.
  CHECK(error_of([&] { train::require_checkpoint_model(ck, models::tiny_test); }) ==
        "checkpoint '" + ck.string() + "' holds model 'my_tiny' but this program is compiled for configuration 'tiny_test'; "
        "they differ in hidden 16 vs 32, num_heads 2 vs 4, num_query_groups 1 vs 2; use a checkpoint of 'tiny_test' or a "
        "program whose configuration list includes 'my_tiny'");
  // The configuration changed under the same name: caught by the record, not by a tensor shape.
  std::string const changed = error_of([&] { train::export_hf<models::ConfigList<my_tiny_wider>>(ck, s.root / "no"); });
  CHECK(changed == "checkpoint '" + ck.string() + "' holds model 'my_tiny' as configured when it was written, and this "
                   "program's 'my_tiny' is another model; they differ in ffn_hidden 40 vs 48 (checkpoint vs program); the "
                   "configuration changed under the same name: restore it, or give the changed configuration a new name");
  CHECK(error_of([&] { train::read_checkpoint_model<models::ConfigList<my_tiny_wider>>(ck); }) == changed);
  CHECK(train::read_checkpoint_model<Mine>(s.root / "run").config_name == "my_tiny");
}
