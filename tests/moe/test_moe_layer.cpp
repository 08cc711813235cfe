// The MoE layer on its own: the dispatch plan, forward against a naive per-token reference, the
// router losses' values, gradients of inputs and weights against finite differences in double
// (renormalized and pre-softmax routing, fused and separate w1 / w3), and thread-count independence.
#include <catch2/catch.hpp>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "../ops/gradcheck.hpp"
#include "cpu_ctx.hpp"
#include "kumiki/cpu.hpp"
#include "kumiki/models/transformer_config.hpp"
#include "kumiki/moe/moe_layer.hpp"
#include "moe_test_util.hpp"

using namespace kumiki;

using kumiki_test::ctx;  // tests/cpu_ctx.hpp
using kumiki_test::MoeBuffers;

namespace {
constexpr models::TransformerConfig layer_cfg{
    .vocab_size = 10, .make_vocab_divisible_by = 16, .hidden = 12, .ffn_hidden = 20, .num_layers = 1,
    .num_heads = 2, .num_query_groups = 1, .rope_base = 10000.0, .rms_eps = 1e-5, .max_seq_len = 16,
    .untie_embeddings = true, .z_loss = 0.0, .init_std = 0.02, .num_experts = 5, .moe_top_k = 2,
    .moe_ffn_hidden = 7, .moe_aux_loss_coeff = 0.05, .moe_z_loss_coeff = 0.01};
constexpr models::TransformerConfig pre_cfg = [] {
  auto c = layer_cfg;
  c.moe_pre_softmax = true;
  c.moe_top_k = 3;
  return c;
}();
// Big enough that GEMMs and token loops split over threads.
constexpr models::TransformerConfig big_cfg = [] {
  auto c = layer_cfg;
  c.hidden = 96, c.moe_ffn_hidden = 80, c.num_experts = 8, c.moe_top_k = 2;
  return c;
}();

template <class Vec>
void fill_random(Vec& v, std::uint64_t seed, double scale) {
  using T = typename Vec::value_type;
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> d(0.0, scale);
  for (auto& x : v) x = static_cast<T>(d(rng));
}

/// loss = <d_out, moe(x)> + aux + z for the finite differences; backward fills b.grads and d_x.
template <auto Cfg>
struct LayerCase {
  using Layer = moe::MoeLayer<Cfg, Cpu, double>;
  MoeBuffers<Cfg, double> b;
  kumiki_test::AVec<double> x, d_out, out, d_x;
  LayerCase(std::int64_t N, std::int64_t gap, std::uint64_t seed) : b(N, gap) {
    x.resize(static_cast<std::size_t>(N * Cfg.hidden));
    d_out.resize(x.size()), out.resize(x.size()), d_x.resize(x.size());
    fill_random(b.weights, seed, 0.5);
    fill_random(x, seed + 1, 1.0);
    fill_random(d_out, seed + 2, 1.0);
  }
  double loss() {
    moe::RouterLosses const r = Layer::forward(ctx, b.view(b.weights), b.acts(), x.data(), b.N, out.data());
    double s = r.aux + r.z;
    for (std::size_t i = 0; i < out.size(); ++i) s += d_out[i] * out[i];
    return s;
  }
  void backward() {
    std::fill(b.grads.begin(), b.grads.end(), 0.0);
    loss();
    Layer::backward(ctx, b.view(b.weights), b.view(b.grads), b.acts(), b.scratch(), x.data(), b.N, d_out.data(), d_x.data(), 1.0);
  }
};
}  // namespace

TEST_CASE("dispatch plan: a stable counting sort of the assignments by expert", "[moe]") {
  // 5 tokens, top-2, 4 experts.
  std::vector<std::int32_t> const idx{2, 0, 0, 3, 2, 1, 0, 2, 3, 0};
  std::vector<std::int64_t> off(5);
  std::vector<std::int32_t> row_token(10), token_row(10);
  moe::Dispatch<Cpu>::plan(ctx, idx.data(), 5, 2, 4, off.data(), row_token.data(), token_row.data());
  CHECK(off == std::vector<std::int64_t>{0, 4, 5, 8, 10});
  CHECK(row_token == std::vector<std::int32_t>{0, 1, 3, 4, 2, 0, 2, 3, 1, 4});
  for (std::int64_t t = 0; t < 5; ++t)
    for (std::int64_t j = 0; j < 2; ++j) {
      std::int32_t const row = token_row[t * 2 + j];
      CHECK(row_token[row] == t);
      CHECK(row >= off[idx[t * 2 + j]]);
      CHECK(row < off[idx[t * 2 + j] + 1]);
    }
  std::vector<std::int32_t> bad{0, 4};
  CHECK_THROWS_WITH(moe::Dispatch<Cpu>::plan(ctx, bad.data(), 1, 2, 4, off.data(), row_token.data(), token_row.data()),
                    Catch::Contains("expert index 4"));
}

TEST_CASE("MoE layer forward equals a naive per-token reference, router losses included", "[moe]") {
  auto check = [](auto& c, char const* what) {
    double aux = 0, z = 0;
    std::vector<double> const ref = kumiki_test::naive_moe(c.b, c.x, &aux, &z);
    moe::RouterLosses const r = std::remove_reference_t<decltype(c)>::Layer::forward(ctx, c.b.view(c.b.weights), c.b.acts(),
                                                                                     c.x.data(), c.b.N, c.out.data());
    double worst = 0.0;
    for (std::size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::abs(ref[i] - c.out[i]));
    INFO(what);
    CHECK(worst < 1e-12);
    CHECK(r.aux == Approx(aux).epsilon(1e-12));
    CHECK(r.z == Approx(z).epsilon(1e-12));
    CHECK(r.aux > 0.0);
    CHECK(r.z > 0.0);
  };
  LayerCase<layer_cfg> post(23, 0, 11);
  check(post, "renormalized top-2");
  LayerCase<pre_cfg> pre(23, 5, 12);
  check(pre, "pre-softmax top-3, separate w1/w3");
}

TEST_CASE("router losses: a uniform router gives aux = coeff and z = coeff * log(E)^2", "[moe]") {
  LayerCase<layer_cfg> c(40, 0, 3);
  std::fill(c.b.router(), c.b.router() + layer_cfg.num_experts * layer_cfg.hidden, 0.0);
  using Layer = moe::MoeLayer<layer_cfg, Cpu, double>;
  moe::RouterLosses const r = Layer::forward(ctx, c.b.view(c.b.weights), c.b.acts(), c.x.data(), c.b.N, c.out.data());
  // All probabilities 1/E; every tie goes to the lower index, so experts 0 and 1 take every token.
  CHECK(c.b.counts == std::vector<std::int64_t>{40, 40, 0, 0, 0});
  CHECK(r.aux == Approx(layer_cfg.moe_aux_loss_coeff).epsilon(1e-14));
  CHECK(r.z == Approx(layer_cfg.moe_z_loss_coeff * std::pow(std::log(5.0), 2)).epsilon(1e-14));
  for (std::int64_t t = 0; t < 40; ++t) CHECK(c.b.topk_w[t * 2] == 0.5);
}

TEST_CASE("MoE layer gradients match finite differences in double", "[moe][grad]") {
  kumiki_test::SingleThread const one;
  auto run = [](auto& c, char const* what) {
    c.backward();
    double const gap =
        kumiki_test::min_topk_gap(c.b.logits.data(), c.b.N, decltype(c.b)::E, decltype(c.b)::K);
    INFO(what << ": smallest top-k logit gap " << gap);
    REQUIRE(gap > 1e-3);  // no selection can flip under a 1e-5 perturbation
    auto loss = [&] { return c.loss(); };
    double worst = 0.0;
    auto const ex = kumiki_test::gradcheck(std::string(what) + " d_x", loss, c.x.data(), c.d_x.data(),
                                           static_cast<std::int64_t>(c.x.size()), 120);
    worst = std::max(worst, ex.max_rel);
    auto const ew = kumiki_test::gradcheck(std::string(what) + " d_weights", loss, c.b.weights.data(), c.b.grads.data(),
                                           static_cast<std::int64_t>(c.b.weights.size()), 400);
    worst = std::max(worst, ew.max_rel);
    auto const er = kumiki_test::gradcheck(std::string(what) + " d_router", loss, c.b.router(), c.b.grads.data(),
                                           decltype(c.b)::E * decltype(c.b)::C, 400);
    worst = std::max(worst, er.max_rel);
    std::printf("moe layer gradcheck (%s): worst max rel error %.3e\n", what, worst);
    CHECK(worst <= 1e-6);
  };
  LayerCase<layer_cfg> post(19, 0, 21);
  run(post, "renormalized top-2, fused w1|w3");
  LayerCase<pre_cfg> pre(19, 3, 22);
  run(pre, "pre-softmax top-3, separate w1/w3");
}

TEST_CASE("MoE layer: bitwise identical results for 1 and 2 threads", "[moe][determinism]") {
  using Layer = moe::MoeLayer<big_cfg, Cpu, float>;
  auto run = [](int threads) {
    int const saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    MoeBuffers<big_cfg, float> b(300);
    fill_random(b.weights, 5, 0.1);
    kumiki_test::AVec<float> x(300 * big_cfg.hidden), d_out(x.size()), out(x.size()), d_x(x.size());
    fill_random(x, 6, 1.0);
    fill_random(d_out, 7, 1.0);
    Layer::forward(ctx, b.view(b.weights), b.acts(), x.data(), 300, out.data());
    Layer::backward(ctx, b.view(b.weights), b.view(b.grads), b.acts(), b.scratch(), x.data(), 300, d_out.data(), d_x.data(), 0.5);
    omp_set_num_threads(saved);
    out.insert(out.end(), d_x.begin(), d_x.end());
    out.insert(out.end(), b.grads.begin(), b.grads.end());
    return out;
  };
  // Several runs: buffers land at different addresses each time.
  auto const a = run(1), b = run(2), c = run(2), d = run(1);
  CHECK(std::memcmp(a.data(), c.data(), a.size() * sizeof(float)) == 0);
  CHECK(std::memcmp(a.data(), d.data(), a.size() * sizeof(float)) == 0);
  REQUIRE(a.size() == b.size());
  std::size_t first = a.size(), count = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) first = std::min(first, i), ++count;
  INFO("first differing value " << first << " of " << a.size() << ", " << count << " differ");
  CHECK(count == 0);
}
