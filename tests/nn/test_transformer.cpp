// The dense transformer: whole-model gradients vs finite differences (double), Megatron init from
// Philox, bitwise determinism across thread counts and activation recomputation, gradient
// accumulation, and input validation.
#include <catch2/catch.hpp>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <random>
#include <type_traits>
#include <vector>

#include "../ops/gradcheck.hpp"
#include "kumiki/cpu.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/precision.hpp"
#include "kumiki/data/batch.hpp"
#include "kumiki/models/configs.hpp"
#include "kumiki/nn/transformer.hpp"

using namespace kumiki;
using kumiki_test::random_tokens;

namespace {
// 2 layers, GQA (4 heads over 2 groups), padded vocab, z-loss on: every path of the model.
constexpr models::TransformerConfig grad_cfg{
    .vocab_size = 29, .make_vocab_divisible_by = 16, .hidden = 16, .ffn_hidden = 24, .num_layers = 2,
    .num_heads = 4, .num_query_groups = 2, .rope_base = 10000.0, .rms_eps = 1e-5, .max_seq_len = 16,
    .untie_embeddings = true, .z_loss = 1e-2, .init_std = 0.3};

// Larger than a GEMM tile and an attention tile, so threads split real work.
constexpr models::TransformerConfig det_cfg{
    .vocab_size = 300, .make_vocab_divisible_by = 128, .hidden = 64, .ffn_hidden = 160, .num_layers = 2,
    .num_heads = 4, .num_query_groups = 2, .rope_base = 10000.0, .rms_eps = 1e-5, .max_seq_len = 128,
    .untie_embeddings = true, .z_loss = 1e-4, .init_std = 0.1};

// The precision policy: a scalar means that type for every buffer; the CPU computes in uniform float
// or double only; a GPU's mixed policy names each buffer's type.
using Mixed = Precision<bf16, bf16, float, float, float>;
static_assert(std::is_same_v<nn::Transformer<grad_cfg>::precision, Precision<float>>);
static_assert(std::is_same_v<nn::Transformer<grad_cfg, Cpu, double>::precision, Precision<double>>);
static_assert(std::is_same_v<nn::Transformer<grad_cfg, Cpu, Precision<double>>::stat_type, double>);
static_assert(std::is_same_v<precision_t<Mixed>::grad, float> && std::is_same_v<precision_t<Mixed>::act, bf16> &&
              !Mixed::uniform && Precision<float>::uniform);
static_assert(supports_precision_v<Cpu, Precision<float>> && supports_precision_v<Cpu, Precision<double>>);
static_assert(!supports_precision_v<Cpu, Mixed> && !supports_precision_v<Cpu, Precision<bf16>> &&
              !supports_precision_v<Cpu, Precision<float, float, double>>);
}  // namespace

TEST_CASE("2-layer GQA model gradients match finite differences in double", "[nn][grad]") {
  kumiki_test::SingleThread const one;
  nn::Transformer<grad_cfg, Cpu, double> m;
  m.init(7);
  std::int64_t const B = 2, T = 12;
  auto tokens = random_tokens(B * T, 29, 1), targets = random_tokens(B * T, 29, 2);
  targets[5] = -100;  // ignored
  std::vector<double> mask(B * T, 1.0);
  mask[9] = 0.5;
  for (bool reset : {false, true}) {
    nn::StepOptions opt;
    if (reset) {  // document-causal attention with EOD = token 0
      opt.reset_attention_mask = true;
      opt.eod_token = 0;
      tokens[4] = 0;
      tokens[T + 8] = 0;
    }
    m.zero_grad();
    double const l0 = m.forward_backward(tokens.data(), targets.data(), B, T, opt, mask.data());
    auto loss = [&] { return m.forward(tokens.data(), targets.data(), B, T, opt, mask.data()).loss; };
    CHECK(loss() == l0);
    auto const& layout = m.params().layout();
    double worst = 0.0;
    for (std::size_t i = 0; i < layout.size(); ++i) {
      auto p = m.params().get<double>(i);
      auto g = m.grads().get<double>(i);
      auto const e = kumiki_test::gradcheck(layout[i].name + (reset ? " (reset mask)" : ""), loss, p.data(), g.data(),
                                            p.numel(), 32);
      worst = std::max(worst, e.max_rel);
    }
    std::printf("model gradcheck%s: worst max rel error %.3e\n", reset ? " (reset attention mask)" : "", worst);
    CHECK(worst <= 1e-6);
  }
}

TEST_CASE("Megatron init from Philox: per-tensor streams, scaled output projections, unit norms", "[nn][init]") {
  nn::Transformer<det_cfg> m;
  m.init(1234);
  auto const& layout = m.params().layout();
  double const std_out = det_cfg.init_std / std::sqrt(2.0 * det_cfg.num_layers);
  for (std::size_t i = 0; i < layout.size(); ++i) {
    auto const& e = layout[i];
    auto v = m.params().get<float>(i);
    PhiloxStream const s{1234, i};  // stream id = arena index
    if (e.shape.rank() == 1) {
      for (float x : v) REQUIRE(x == 1.0f);
      continue;
    }
    bool const out = e.name.find("o_proj") != std::string::npos || e.name.find("down_proj") != std::string::npos;
    float const sd = static_cast<float>(out ? std_out : det_cfg.init_std);
    for (std::int64_t j : {std::int64_t{0}, std::int64_t{1}, v.numel() - 1}) REQUIRE(v.data()[j] == sd * s.normal(j));
    double ss = 0.0;
    for (float x : v) ss += double(x) * x;
    CHECK(std::sqrt(ss / v.numel()) == Approx(sd).epsilon(0.1));
  }
  // Thread-count independent.
  int const saved = omp_get_max_threads();
  omp_set_num_threads(1);
  nn::Transformer<det_cfg> m1;
  m1.init(1234);
  omp_set_num_threads(saved);
  CHECK(std::memcmp(m.params().data(), m1.params().data(), m.params().total_bytes()) == 0);
}

TEST_CASE("same seed: bitwise identical loss and gradients for 1 and 2 threads, with and without (light) recomputation",
          "[nn][determinism]") {
  std::int64_t const B = 3, T = 100;  // T = 100: two attention tiles, the last partial
  auto tokens = random_tokens(B * T, 300, 3), targets = random_tokens(B * T, 300, 4);
  struct Run {
    double loss;
    std::vector<std::byte> grads;
    std::size_t activation_bytes;
  };
  auto run = [&](int threads, bool recompute, bool light = false) {
    int const saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    nn::Transformer<det_cfg> m;
    m.init(99);
    nn::StepOptions opt;
    opt.recompute = recompute;
    opt.light_recompute = light;
    opt.loss_chunk = 128;  // three LM-head chunks
    double const loss = m.forward_backward(tokens.data(), targets.data(), B, T, opt);
    omp_set_num_threads(saved);
    return Run{loss, std::vector<std::byte>(m.grads().data(), m.grads().data() + m.grads().total_bytes()),
               m.activations().total_bytes()};
  };
  Run const base = run(1, false);
  for (auto [threads, recompute] : {std::pair{2, false}, std::pair{1, true}, std::pair{2, true}}) {
    Run const r = run(threads, recompute);
    INFO("threads " << threads << " recompute " << recompute);
    CHECK(r.loss == base.loss);  // exact
    CHECK(std::memcmp(r.grads.data(), base.grads.data(), r.grads.size()) == 0);
    if (recompute) CHECK(r.activation_bytes < base.activation_bytes);  // one block's activations kept, not L
  }
  // Light recomputation: ln1 and the SwiGLU output of each layer rewritten in the scratch during the
  // backward, the same bits; L x (N x C + N x F) floats fewer kept (layer-sized slots, 64-byte aligned).
  for (int threads : {1, 2}) {
    Run const r = run(threads, false, true);
    INFO("threads " << threads << " light recompute");
    CHECK(r.loss == base.loss);
    CHECK(std::memcmp(r.grads.data(), base.grads.data(), r.grads.size()) == 0);
    std::size_t const saved = static_cast<std::size_t>(det_cfg.num_layers * B * T * (det_cfg.hidden + det_cfg.ffn_hidden)) *
                              sizeof(float);
    CHECK(base.activation_bytes - r.activation_bytes >= saved);
    CHECK(base.activation_bytes - r.activation_bytes < saved + 4 * 64 * static_cast<std::size_t>(det_cfg.num_layers));
  }
  // Both: recompute wins (one block's activations kept, ln1 and h among them).
  CHECK(run(1, true, true).grads == run(1, true).grads);
  std::printf("determinism: loss %.9f identical for threads {1,2} x recompute {off,on}\n", base.loss);
}

TEST_CASE("gradients accumulate across calls (gradient accumulation)", "[nn]") {
  std::int64_t const B = 2, T = 32;
  auto tokens = random_tokens(B * T, 300, 5), targets = random_tokens(B * T, 300, 6);
  nn::Transformer<det_cfg> m;
  m.init(5);
  nn::StepOptions opt;
  m.forward_backward(tokens.data(), targets.data(), B, T, opt);
  std::vector<float> once(m.grads().get<float>("lm_head.weight").begin(), m.grads().get<float>("lm_head.weight").end());
  std::vector<float> q_once(m.grads().get<float>("model.layers.0.self_attn.q_proj.weight").begin(),
                            m.grads().get<float>("model.layers.0.self_attn.q_proj.weight").end());
  m.zero_grad();
  opt.grad_scale = 0.5;  // two half-weighted micro-batches == one full one (scaling by 2^-1 is exact)
  m.forward_backward(tokens.data(), targets.data(), B, T, opt);
  m.forward_backward(tokens.data(), targets.data(), B, T, opt);
  auto twice = m.grads().get<float>("lm_head.weight");
  auto q_twice = m.grads().get<float>("model.layers.0.self_attn.q_proj.weight");
  for (std::size_t i = 0; i < once.size(); ++i) REQUIRE(twice.data()[i] == once[i]);
  for (std::size_t i = 0; i < q_once.size(); ++i) REQUIRE(q_twice.data()[i] == q_once[i]);
}

// The data-parallel overlap's contract (dist::OverlappingCommunicator): when the backward reports
// `from`, every gradient in [from, end) of the arena already holds its final value, and the reports
// go from the final norm's offset down to 0, once after the head, each block and the embedding.
TEST_CASE("grads_ready reports only gradients the backward has finished, from the end down to 0", "[nn]") {
  std::int64_t const B = 2, T = 16;
  auto tokens = random_tokens(B * T, 300, 7), targets = random_tokens(B * T, 300, 8);
  nn::Transformer<det_cfg> m;
  m.init(9);
  nn::StepOptions opt;
  opt.defer_loss = true;  // nothing is ever pending on the CPU
  std::vector<std::size_t> froms;
  std::vector<std::vector<std::byte>> snapshots;
  opt.grads_ready = [&](std::size_t from) {
    froms.push_back(from);
    snapshots.emplace_back(m.grads().data(), m.grads().data() + m.grads().total_bytes());
  };
  nn::LossResult r = m.forward_backward(tokens.data(), targets.data(), B, T, opt);
  CHECK_FALSE(r.pending);
  std::vector<nn::LossResult> one{r};
  m.settle_losses(one);  // no pending result: a no-op
  CHECK(one[0].loss == r.loss);
  auto const& entries = m.grads().layout().entries();
  std::size_t const per_layer = (entries.size() - 3) / static_cast<std::size_t>(det_cfg.num_layers);
  REQUIRE(froms.size() == static_cast<std::size_t>(det_cfg.num_layers) + 2);
  CHECK(froms.front() == entries[entries.size() - 2].offset);  // the final norm, below the LM head
  CHECK(froms.back() == 0);
  for (std::size_t k = 1; k < froms.size(); ++k) CHECK(froms[k] < froms[k - 1]);
  for (std::size_t k = 0; k + 2 < froms.size(); ++k)  // after block L-1-k: its first tensor
    CHECK(froms[k + 1] == entries[1 + (static_cast<std::size_t>(det_cfg.num_layers) - 1 - k) * per_layer].offset);
  std::byte const* final_grads = m.grads().data();
  std::size_t const total = m.grads().total_bytes();
  for (std::size_t k = 0; k < froms.size(); ++k) {
    CHECK(std::memcmp(snapshots[k].data() + froms[k], final_grads + froms[k], total - froms[k]) == 0);
    // and the report is tight: something just below `from` was still to be written
    if (froms[k] > 0) CHECK(std::memcmp(snapshots[k].data(), final_grads, froms[k]) != 0);
  }
}

TEST_CASE("forward returns HF-style logits and rejects bad input", "[nn]") {
  nn::Transformer<models::tiny_test> m;
  m.init(1);
  std::int64_t const B = 1, T = 8;
  auto tokens = random_tokens(B * T, 50, 7), targets = random_tokens(B * T, 50, 8);
  std::vector<float> logits(B * T * models::tiny_test.padded_vocab());
  auto const r = m.forward(tokens.data(), targets.data(), B, T, {}, nullptr, logits.data());
  // Loss from the returned logits, softmax over all 64 padded ids (Megatron-LM, Hugging Face).
  double sum = 0.0;
  for (std::int64_t i = 0; i < B * T; ++i) {
    float const* z = logits.data() + i * 64;
    double mx = -1e30, s = 0.0;
    for (int v = 0; v < 64; ++v) mx = std::max<double>(mx, z[v]);
    for (int v = 0; v < 64; ++v) s += std::exp(z[v] - mx);
    sum += mx + std::log(s) - z[targets[i]];
  }
  CHECK(r.loss == Approx(sum / (B * T)).epsilon(1e-5));
  CHECK(r.loss == Approx(std::log(64.0)).epsilon(0.05));  // init std 0.02: nearly uniform over 64 ids
  // Token ids are checked where a batch is made: a padded id is not a token.
  tokens[3] = 50;
  CHECK_THROWS_AS(data::check_token_ids(tokens, models::tiny_test.vocab_size, "the test batch"), InputError);
  CHECK_THROWS_WITH(data::check_token_ids(tokens, models::tiny_test.vocab_size, "the test batch"),
                    Catch::Contains("token id 50 at position 3 of the test batch is outside the vocabulary"));
  // The CPU embedding still refuses to read outside its table (an internal invariant, not validation).
  tokens[3] = 64;
  CHECK_THROWS_WITH(m.forward(tokens.data(), targets.data(), B, T), Catch::Contains("outside the embedding table"));
  tokens[3] = 1;
  std::vector<std::int32_t> long_tokens(40, 1);
  CHECK_THROWS_WITH(m.forward(long_tokens.data(), long_tokens.data(), 1, 40), Catch::Contains("max_seq_len"));
  nn::StepOptions opt;
  opt.reset_attention_mask = true;
  CHECK_THROWS_WITH(m.forward(tokens.data(), targets.data(), B, T, opt), Catch::Contains("eod_token"));
}
