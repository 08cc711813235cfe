// Model configurations: LLM-jp-4 shapes and parameter counts computed independently here from the
// published table, derived quantities, and the runtime-name dispatch.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kumiki/cpu.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/models/configs.hpp"
#include "kumiki/nn/transformer.hpp"

using namespace kumiki;

namespace {
// Untied Llama with padded vocabulary, counted tensor by tensor from the HF checkpoint shapes.
double hf_llama_count(double vocab_padded, double h, double ffn, double layers, double heads, double kv_heads) {
  double const head = h / heads;
  double const per_layer = h /*input_layernorm*/ + h * h /*q*/ + 2 * (kv_heads * head) * h /*k, v*/ +
                           h * h /*o*/ + h /*post_attention_layernorm*/ + 3 * h * ffn /*gate, up, down*/;
  return vocab_padded * h /*embed_tokens*/ + layers * per_layer + h /*norm*/ + vocab_padded * h /*lm_head*/;
}
}  // namespace

TEST_CASE("LLM-jp-4 1.3B and 8B shapes and parameter counts", "[models]") {
  STATIC_REQUIRE(models::llmjp4_1_3b.padded_vocab() == 99584);  // 778 x 128
  STATIC_REQUIRE(models::llmjp4_8b.padded_vocab() == 99584);
  STATIC_REQUIRE(models::llmjp4_1_3b.head_dim() == 128);
  STATIC_REQUIRE(models::llmjp4_8b.head_dim() == 128);
  STATIC_REQUIRE(models::llmjp4_1_3b.kv_width() == 1024);
  STATIC_REQUIRE(models::llmjp4_8b.kv_width() == 1024);
  double const n13 = hf_llama_count(99584, 2048, 7168, 16, 16, 8);
  double const n8 = hf_llama_count(99584, 4096, 14336, 32, 32, 8);
  std::printf("llmjp4_1_3b: %lld params (independent count %.0f); llmjp4_8b: %lld (independent %.0f)\n",
              static_cast<long long>(models::llmjp4_1_3b.num_params()), n13,
              static_cast<long long>(models::llmjp4_8b.num_params()), n8);
  CHECK(static_cast<double>(models::llmjp4_1_3b.num_params()) == n13);
  CHECK(static_cast<double>(models::llmjp4_8b.num_params()) == n8);
  CHECK(n13 == Approx(1.31e9).epsilon(0.005));
  CHECK(n8 == Approx(7.8e9).epsilon(0.01));
  // The model's arena layout (names and shapes only, nothing allocated) agrees with the count.
  CHECK(static_cast<double>(nn::Transformer<models::llmjp4_1_3b>::param_layout().numel()) == n13);
  auto const layout8 = nn::Transformer<models::llmjp4_8b>::param_layout();
  CHECK(static_cast<double>(layout8.numel()) == n8);
  CHECK(layout8.size() == 1 + 32 * 9 + 2);
  CHECK(layout8.entry("model.layers.31.self_attn.k_proj.weight").shape == Shape{1024, 4096});
  CHECK(layout8.entry("model.layers.0.mlp.down_proj.weight").shape == Shape{4096, 14336});
  CHECK(layout8.entry("lm_head.weight").shape == Shape{99584, 4096});
  CHECK(layout8.entry("model.embed_tokens.weight").shape == Shape{99584, 4096});
}

TEST_CASE("model FLOPs per token follow Megatron's formula", "[models]") {
  auto const& c = models::llmjp4_1_3b;
  // 6 x (matmul weights incl. the padded output layer) + 6 x layers x hidden x seq (causal attention).
  double const matmul = 16.0 * (2048.0 * 2048 * 2 + 2 * 1024.0 * 2048 + 3 * 2048.0 * 7168) + 99584.0 * 2048;
  double const expect = 6 * matmul + 6 * 16.0 * 2048 * 4096;
  CHECK(c.flops_per_token(4096) == Approx(expect).epsilon(1e-15));
  CHECK(c.flops_per_token() == c.flops_per_token(c.max_seq_len));
  // Bytes: fp32 params and grads, two fp32 Adam moments; Megatron bf16 recipe 18 B / param.
  CHECK(c.param_bytes() == 4 * c.num_params());
  CHECK(c.grad_bytes() == 4 * c.num_params());
  CHECK(c.optimizer_bytes() == 8 * c.num_params());
  CHECK(c.megatron_bf16_bytes() == 18 * c.num_params());
}

TEST_CASE("small configurations", "[models]") {
  STATIC_REQUIRE(models::demo.padded_vocab() == 384);
  STATIC_REQUIRE(models::bench_ref.padded_vocab() == 8192);
  STATIC_REQUIRE(models::bench_ref.head_dim() == 64);
  STATIC_REQUIRE(models::tiny_test.padded_vocab() == 64);
  STATIC_REQUIRE(models::check_config<models::demo>());
  CHECK(models::demo.num_params() > 2'000'000);
  CHECK(models::demo.num_params() < 10'000'000);
}

TEST_CASE("runtime names dispatch to compile-time configurations", "[models]") {
  auto const names = models::config_names();
  REQUIRE(names.size() == 8);
  for (auto name : names) {
    std::int64_t const n = models::dispatch_config(name, [](auto tag) { return decltype(tag)::config.num_params(); });
    CHECK(n > 0);
  }
  CHECK(models::dispatch_config("llmjp4_8b", [](auto tag) { return decltype(tag)::config.num_layers; }) == 32);
  CHECK(models::dispatch_config("demo", [](auto tag) { return decltype(tag)::config == models::demo; }));
  std::string seen;
  models::dispatch_config("tiny_test", [&](auto tag) { seen = std::to_string(decltype(tag)::config.hidden); });
  CHECK(seen == "32");
  CHECK_THROWS_WITH(models::dispatch_config("llmjp4_70b", [](auto) { return 0; }),
                    Catch::Contains("unknown model configuration 'llmjp4_70b'") && Catch::Contains("llmjp4_1_3b"));
}

namespace {
// A user's own configuration: a quarter of demo, named.
constexpr models::TransformerConfig my_small{
    .name = "my_small", .vocab_size = 258, .make_vocab_divisible_by = 128, .hidden = 64, .ffn_hidden = 172,
    .num_layers = 2, .num_heads = 4, .num_query_groups = 2, .rope_base = 10000.0, .rms_eps = 1e-5, .max_seq_len = 128};
using MyConfigs = models::BuiltinConfigs::with<my_small>;
using OnlyMine = models::ConfigList<my_small>;
}  // namespace

TEST_CASE("a configuration list of one's own: names, lookup, dispatch, differences", "[models]") {
  static_assert(MyConfigs::size == models::BuiltinConfigs::size + 1);
  static_assert(MyConfigs::contains("my_small") && MyConfigs::contains("demo"));
  static_assert(!models::BuiltinConfigs::contains("my_small"));
  static_assert(models::demo.name.view() == "demo" && my_small.name.view() == "my_small");
  CHECK(MyConfigs::names().back() == "my_small");
  CHECK(OnlyMine::names_text() == "my_small");
  CHECK(MyConfigs::dispatch("my_small", [](auto tag) { return decltype(tag)::config.hidden; }) == 64);
  CHECK(MyConfigs::dispatch("demo", [](auto tag) { return decltype(tag)::config == models::demo; }));
  CHECK(MyConfigs::find("my_small") == my_small);
  CHECK_THROWS_AS(OnlyMine::find("demo"), InputError);
  CHECK_THROWS_WITH(OnlyMine::dispatch("demo", [](auto) { return 0; }),
                    Catch::Contains("unknown model configuration 'demo' (known: my_small)"));
  // The fields that differ, in declaration order, each with both values; the name is not a field.
  auto const d = models::config_differences(models::demo, my_small);
  CHECK(d == std::vector<std::string>{"hidden 256 vs 64", "ffn_hidden 688 vs 172", "num_layers 4 vs 2",
                                      "num_heads 8 vs 4", "num_query_groups 4 vs 2", "max_seq_len 256 vs 128"});
  constexpr models::TransformerConfig renamed = [] {
    auto c = models::demo;
    c.name = "demo_copy";
    return c;
  }();
  CHECK(models::config_differences(models::demo, renamed).empty());
  CHECK_FALSE(renamed == models::demo);  // a different name is a different configuration
  // A model of one's own configuration is an ordinary model.
  nn::Transformer<my_small, Cpu> m;
  m.init(1);
  std::vector<std::int32_t> tokens(16);
  for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<std::int32_t>(i * 7 % 258);
  double const loss = m.forward(tokens.data(), tokens.data(), 1, 16).loss;
  CHECK(loss == Approx(std::log(384.0)).margin(0.5));  // about uniform over the padded vocabulary at init
}
