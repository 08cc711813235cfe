// Whole MoE transformers: Mixtral parameter layout and counts, Megatron init, gradients of the
// training objective (LM loss + load-balancing + router z-loss) against finite differences in
// double, and bitwise determinism across threads and activation recomputation.
#include <catch2/catch.hpp>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../ops/gradcheck.hpp"
#include "kumiki/cpu.hpp"
#include "kumiki/core/philox.hpp"
#include "kumiki/models/configs.hpp"
#include "kumiki/nn/transformer.hpp"
#include "moe_test_util.hpp"

using namespace kumiki;
using kumiki_test::random_tokens;

namespace {
constexpr models::TransformerConfig grad_cfg{
    .vocab_size = 29, .make_vocab_divisible_by = 16, .hidden = 16, .ffn_hidden = 24, .num_layers = 2,
    .num_heads = 4, .num_query_groups = 2, .rope_base = 10000.0, .rms_eps = 1e-5, .max_seq_len = 16,
    .untie_embeddings = true, .z_loss = 1e-2, .init_std = 0.3, .num_experts = 4, .moe_top_k = 2,
    .moe_ffn_hidden = 12, .moe_aux_loss_coeff = 0.1, .moe_z_loss_coeff = 0.01};

constexpr models::TransformerConfig det_cfg{
    .vocab_size = 300, .make_vocab_divisible_by = 128, .hidden = 64, .ffn_hidden = 160, .num_layers = 2,
    .num_heads = 4, .num_query_groups = 2, .rope_base = 10000.0, .rms_eps = 1e-5, .max_seq_len = 128,
    .untie_embeddings = true, .z_loss = 1e-4, .init_std = 0.1, .num_experts = 8, .moe_top_k = 2,
    .moe_ffn_hidden = 48, .moe_aux_loss_coeff = 1e-2, .moe_z_loss_coeff = 1e-3};

}  // namespace

TEST_CASE("MoE configs: Mixtral names, exact parameter and active-parameter counts", "[moe][models]") {
  // LLM-jp-3 8x1.8B, counted here independently of the config's formulas.
  constexpr auto c = models::llmjp3_8x1_8b;
  std::int64_t const emb = 99584LL * 2048, attn = 4LL * 2048 * 2048, expert = 3LL * 2048 * 7168, router = 8LL * 2048;
  std::int64_t const total = 2 * emb + 24 * (2 * 2048 + attn + router + 8 * expert) + 2048;
  std::int64_t const active = 2 * emb + 24 * (2 * 2048 + attn + router + 2 * expert) + 2048;
  CHECK(c.num_params() == total);
  CHECK(c.active_params() == active);
  CHECK(total == 9'266'759'680);  // "9.27B total"
  CHECK(active == 2'924'972'032);  // "2.92B active"
  // MFU counts the router and the two experts a token uses, not all eight.
  CHECK(c.flops_per_token(4096) ==
        6.0 * double(24 * (attn + router + 2 * expert) + emb) + 6.0 * 24 * 2048 * 4096);

  auto const layout = nn::Transformer<models::tiny_moe_test>::param_layout();
  CHECK(std::int64_t(layout.numel()) == models::tiny_moe_test.num_params());
  CHECK(layout.entry("model.layers.1.block_sparse_moe.gate.weight").shape == Shape{4, 32});
  CHECK(layout.entry("model.layers.1.block_sparse_moe.experts.3.w1.weight").shape == Shape{24, 32});
  CHECK(layout.entry("model.layers.1.block_sparse_moe.experts.3.w3.weight").shape == Shape{24, 32});
  CHECK(layout.entry("model.layers.1.block_sparse_moe.experts.3.w2.weight").shape == Shape{32, 24});
  CHECK_FALSE(layout.contains("model.layers.0.mlp.gate_proj.weight"));
  // A dense config keeps the Llama names.
  CHECK(nn::Transformer<models::tiny_test>::param_layout().contains("model.layers.0.mlp.gate_proj.weight"));
}

TEST_CASE("MoE init: router and w1 / w3 N(0, std), w2 scaled by 1 / sqrt(2 L), Philox streams", "[moe][init]") {
  nn::Transformer<det_cfg> m;
  m.init(77);
  auto const& layout = m.params().layout();
  double const std_out = det_cfg.init_std / std::sqrt(2.0 * det_cfg.num_layers);
  int seen_router = 0, seen_w2 = 0;
  for (std::size_t i = 0; i < layout.size(); ++i) {
    auto const& e = layout[i];
    if (e.name.find("block_sparse_moe") == std::string::npos) continue;
    bool const down = e.name.ends_with(".w2.weight");
    seen_router += e.name.ends_with("gate.weight");
    seen_w2 += down;
    float const sd = static_cast<float>(down ? std_out : det_cfg.init_std);
    auto v = m.params().get<float>(i);
    PhiloxStream const s{77, i};
    for (std::int64_t j : {std::int64_t{0}, v.numel() - 1}) REQUIRE(v.data()[j] == sd * s.normal(j));
  }
  CHECK(seen_router == 2);
  CHECK(seen_w2 == 16);
}

TEST_CASE("2-layer MoE model: gradients of the objective match finite differences in double", "[moe][grad]") {
  kumiki_test::SingleThread const one;
  nn::Transformer<grad_cfg, Cpu, double> m;
  m.init(7);
  std::int64_t const B = 2, T = 12;
  auto tokens = random_tokens(B * T, 29, 1), targets = random_tokens(B * T, 29, 2);
  targets[5] = -100;
  nn::StepOptions opt;
  m.zero_grad();
  nn::LossResult const r = m.forward_backward(tokens.data(), targets.data(), B, T, opt);
  CHECK(r.moe_aux > 0.0);
  CHECK(r.moe_z > 0.0);
  CHECK(r.objective() == r.loss + r.moe_aux + r.moe_z);
  for (int l = 0; l < 2; ++l) {
    auto const logits = m.activations().get<double>("block." + std::to_string(l) + ".moe.logits");
    double const gap = kumiki_test::min_topk_gap(logits.data(), B * T, 4, 2);
    INFO("layer " << l << " smallest top-k gap " << gap);
    REQUIRE(gap > 1e-3);
  }
  auto objective = [&] { return m.forward(tokens.data(), targets.data(), B, T, opt).objective(); };
  CHECK(objective() == r.objective());
  auto const& layout = m.params().layout();
  double worst = 0.0;
  for (std::size_t i = 0; i < layout.size(); ++i) {
    auto p = m.params().get<double>(i);
    auto g = m.grads().get<double>(i);
    auto const e = kumiki_test::gradcheck(layout[i].name, objective, p.data(), g.data(), p.numel(), 24);
    worst = std::max(worst, e.max_rel);
  }
  std::printf("MoE model gradcheck: worst max rel error %.3e (aux %.4f, z %.4f)\n", worst, r.moe_aux, r.moe_z);
  CHECK(worst <= 1e-6);
}

TEST_CASE("MoE model: bitwise identical for 1 and 2 threads, with and without recomputation", "[moe][determinism]") {
  std::int64_t const B = 2, T = 100;
  auto tokens = random_tokens(B * T, 300, 3), targets = random_tokens(B * T, 300, 4);
  struct Run {
    nn::LossResult r;
    std::vector<std::byte> grads;
  };
  auto run = [&](int threads, bool recompute) {
    int const saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    nn::Transformer<det_cfg> m;
    m.init(99);
    nn::StepOptions opt;
    opt.recompute = recompute;
    nn::LossResult const r = m.forward_backward(tokens.data(), targets.data(), B, T, opt);
    omp_set_num_threads(saved);
    return Run{r, std::vector<std::byte>(m.grads().data(), m.grads().data() + m.grads().total_bytes())};
  };
  Run const base = run(1, false);
  for (auto [threads, recompute] : {std::pair{2, false}, std::pair{1, true}, std::pair{2, true}}) {
    Run const x = run(threads, recompute);
    INFO("threads " << threads << " recompute " << recompute);
    CHECK(x.r.loss == base.r.loss);
    CHECK(x.r.moe_aux == base.r.moe_aux);  // recomputation must not count router losses twice
    CHECK(x.r.moe_z == base.r.moe_z);
    CHECK(std::memcmp(x.grads.data(), base.grads.data(), x.grads.size()) == 0);
  }
  std::printf("MoE determinism: loss %.9f aux %.9f z %.9f\n", base.r.loss, base.r.moe_aux, base.r.moe_z);
}

TEST_CASE("MoE model: router and expert gradients accumulate exactly over half-weighted micro-batches", "[moe]") {
  std::int64_t const B = 2, T = 32;
  auto tokens = random_tokens(B * T, 300, 5), targets = random_tokens(B * T, 300, 6);
  nn::Transformer<det_cfg> m;
  m.init(5);
  m.forward_backward(tokens.data(), targets.data(), B, T, {});
  std::vector<std::byte> const once(m.grads().data(), m.grads().data() + m.grads().total_bytes());
  m.zero_grad();
  nn::StepOptions opt;
  opt.grad_scale = 0.5;
  m.forward_backward(tokens.data(), targets.data(), B, T, opt);
  m.forward_backward(tokens.data(), targets.data(), B, T, opt);
  // Every matrix but the embedding: its rows, like the norm weights, sum per-token terms straight
  // into the gradient, so two half-sized calls round differently.
  int compared = 0;
  for (auto const& e : m.grads().layout().entries()) {
    if (e.shape.rank() != 2 || e.name == "model.embed_tokens.weight") continue;
    INFO(e.name);
    CHECK(std::memcmp(once.data() + e.offset, m.grads().data() + e.offset, e.bytes) == 0);
    ++compared;
  }
  CHECK(compared == 2 * (4 + 1 + 3 * 8) + 1);
}
