// Drop-Upcycling (moe/upcycle.hpp): plain upcycling keeps the model's function (logits of the MoE equal
// the dense model's), the re-initialized rows / columns are exactly round(r F) per expert, shared or
// separate per matrix, drawn from the dense matrix's statistics; routers are small uniforms; bad ratios
// and incompatible configuration pairs are refused; results do not depend on the thread count.
#include <catch2/catch.hpp>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "../ops/gradcheck.hpp"
#include "kumiki/cpu.hpp"
#include "kumiki/models/configs.hpp"
#include "kumiki/moe/upcycle.hpp"
#include "kumiki/nn/transformer.hpp"

using namespace kumiki;
using kumiki_test::random_tokens;

namespace {

// A small compatible pair: the MoE is the dense model with 4 experts of its MLP's width, top-2.
constexpr models::TransformerConfig dense_cfg{
    .vocab_size = 61, .make_vocab_divisible_by = 16, .hidden = 32, .ffn_hidden = 48, .num_layers = 2,
    .num_heads = 4, .num_query_groups = 2, .rope_base = 10000.0, .rms_eps = 1e-5, .max_seq_len = 16,
    .untie_embeddings = true, .z_loss = 0.0, .init_std = 0.1};
constexpr models::TransformerConfig moe_cfg = [] {
  models::TransformerConfig c = dense_cfg;
  c.num_experts = 4;
  c.moe_top_k = 2;
  c.moe_aux_loss_coeff = 1e-2;
  c.moe_z_loss_coeff = 1e-3;
  return c;
}();
static_assert(moe::check_upcycle_pair<dense_cfg, moe_cfg>());
static_assert(moe::check_upcycle_pair<models::demo, models::demo_moe>());

using Dense = nn::Transformer<dense_cfg>;
using Moe = nn::Transformer<moe_cfg>;
constexpr std::int64_t L = dense_cfg.num_layers, C = dense_cfg.hidden, F = dense_cfg.ffn_hidden, E = moe_cfg.num_experts;

std::string layer(std::int64_t l) { return "model.layers." + std::to_string(l) + "."; }
std::string expert(std::int64_t l, std::int64_t e, char const* w) {
  return layer(l) + "block_sparse_moe.experts." + std::to_string(e) + "." + w + ".weight";
}
float const* ptr(Arena<Cpu> const& a, std::string const& name) { return a.get<float>(name).data(); }

/// A dense model whose three FFN matrices have distinct, non-zero means and spreads (so drawing from
/// the wrong matrix's statistics, or from N(0, init_std), is visible) and whose norms are not all 1.
Arena<Cpu> const& dense_weights() {
  static Dense model = [] {
    Dense m;
    m.init(11);
    std::mt19937 rng(3);
    std::normal_distribution<float> n(0.0f, 1.0f);
    for (ArenaEntry const& e : m.params().layout().entries()) {
      float* p = m.params().get<float>(e.name).data();
      float scale = 1.0f, shift = 0.0f;
      if (e.shape.rank() == 1) {
        for (std::size_t i = 0; i < e.numel(); ++i) p[i] += 0.2f * n(rng);
        continue;
      }
      if (e.name.find("gate_proj") != std::string::npos) scale = 2.0f, shift = 0.1f;
      if (e.name.find("up_proj") != std::string::npos) scale = 0.5f, shift = -0.03f;
      if (e.name.find("down_proj") != std::string::npos) scale = 3.0f, shift = 0.1f;
      for (std::size_t i = 0; i < e.numel(); ++i) p[i] = shift + scale * p[i];
    }
    return m;
  }();
  return model.params();
}

std::string const ffn_names[3] = {"mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"};
char const* const w_names[3] = {"w1", "w3", "w2"};

/// Indices i of the intermediate dimension where matrix `m` (0: w1, 1: w3 rows of [F, C]; 2: w2
/// columns of [C, F]) differs in any bit from the dense one.
std::set<std::int64_t> changed(float const* got, float const* dense, int m) {
  std::set<std::int64_t> s;
  for (std::int64_t i = 0; i < F; ++i)
    for (std::int64_t c = 0; c < C; ++c) {
      std::int64_t const at = m < 2 ? i * C + c : c * F + i;
      if (std::memcmp(got + at, dense + at, sizeof(float)) != 0) s.insert(i);
    }
  return s;
}

void require_non_ffn_copied(Arena<Cpu> const& dense, Arena<Cpu> const& moe) {
  std::size_t copied = 0;
  for (ArenaEntry const& e : moe.layout().entries()) {
    if (e.name.find("block_sparse_moe") != std::string::npos) continue;
    REQUIRE(std::memcmp(ptr(moe, e.name), ptr(dense, e.name), e.bytes) == 0);
    ++copied;
  }
  CHECK(copied == 1 + 6 * L + 2);  // embedding, 6 per layer, final norm, LM head
}

Arena<Cpu> upcycle(moe::UpcycleOptions const& opt) {
  Arena<Cpu> out(Moe::param_layout());
  moe::drop_upcycle<dense_cfg, moe_cfg>(dense_weights(), out, opt);
  return out;
}

}  // namespace

TEST_CASE("upcycle r = 0: experts are the dense FFN bit for bit and the MoE computes the dense model's logits",
          "[moe][upcycle]") {
  Arena<Cpu> const& dense = dense_weights();
  Moe moe;
  moe::drop_upcycle<dense_cfg, moe_cfg>(dense, moe.params(), {.ratio = 0.0, .seed = 1});
  require_non_ffn_copied(dense, moe.params());
  for (std::int64_t l = 0; l < L; ++l)
    for (std::int64_t e = 0; e < E; ++e)
      for (int m = 0; m < 3; ++m)
        REQUIRE(std::memcmp(ptr(moe.params(), expert(l, e, w_names[m])), ptr(dense, layer(l) + ffn_names[m]),
                            sizeof(float) * F * C) == 0);

  // Same function: every token's k renormalized routing weights sum to 1 and every expert is the
  // dense MLP, so only the rounding of sum_j w_j * y (about 1 ulp) separates the two models.
  Dense d;
  std::memcpy(d.params().data(), dense.data(), dense.total_bytes());
  constexpr std::int64_t B = 2, T = 16, Vp = dense_cfg.padded_vocab();
  auto const tokens = random_tokens(B * T, dense_cfg.vocab_size, 5), targets = random_tokens(B * T, dense_cfg.vocab_size, 6);
  std::vector<float> ld(B * T * Vp), lm(B * T * Vp);
  auto const rd = d.forward(tokens.data(), targets.data(), B, T, {}, nullptr, ld.data());
  auto const rm = moe.forward(tokens.data(), targets.data(), B, T, {}, nullptr, lm.data());
  double max_diff = 0.0, max_abs = 0.0;
  for (std::size_t i = 0; i < ld.size(); ++i) {
    max_diff = std::max(max_diff, double(std::abs(ld[i] - lm[i])));
    max_abs = std::max(max_abs, double(std::abs(ld[i])));
  }
  INFO("max |logit diff| " << max_diff << " of max |logit| " << max_abs << "; loss " << rd.loss << " vs " << rm.loss);
  REQUIRE(max_abs > 0.5);  // the logits are not trivially small
  CHECK(max_diff <= 2e-6 * max_abs);
  CHECK(std::abs(rd.loss - rm.loss) <= 1e-6 * rd.loss);

  // The comparison is sensitive: with half of every expert redrawn the logits move far more.
  Moe moe_half;
  moe::drop_upcycle<dense_cfg, moe_cfg>(dense, moe_half.params(), {.ratio = 0.5, .seed = 1});
  moe_half.forward(tokens.data(), targets.data(), B, T, {}, nullptr, lm.data());
  double half_diff = 0.0;
  for (std::size_t i = 0; i < ld.size(); ++i) half_diff = std::max(half_diff, double(std::abs(ld[i] - lm[i])));
  CHECK(half_diff > 1e-2 * max_abs);
}

TEST_CASE("upcycle r = 0.5, shared index sets: round(r F) rows of w1, w3 and columns of w2, the same set, per expert",
          "[moe][upcycle]") {
  Arena<Cpu> const& dense = dense_weights();
  moe::UpcycleOptions const opt{.ratio = 0.5, .seed = 7, .shared_index_set = true};
  Arena<Cpu> const up = upcycle(opt);
  require_non_ffn_copied(dense, up);
  std::int64_t const k = std::llround(0.5 * F);
  REQUIRE(moe::reinit_count(0.5, F) == k);
  for (std::int64_t l = 0; l < L; ++l) {
    std::vector<std::set<std::int64_t>> per_expert;
    // Re-initialized values of all experts of this layer, per matrix, against the dense matrix's statistics.
    for (int m = 0; m < 3; ++m) {
      float const* src = ptr(dense, layer(l) + ffn_names[m]);
      double sum = 0.0, ss = 0.0;
      for (std::int64_t i = 0; i < F * C; ++i) sum += src[i];
      double const dmean = sum / double(F * C);
      for (std::int64_t i = 0; i < F * C; ++i) ss += (src[i] - dmean) * (src[i] - dmean);
      double const dstd = std::sqrt(ss / double(F * C - 1));
      std::vector<double> vals;
      for (std::int64_t e = 0; e < E; ++e) {
        float const* w = ptr(up, expert(l, e, w_names[m]));
        std::set<std::int64_t> const s = changed(w, src, m);
        REQUIRE(std::int64_t(s.size()) == k);
        if (m == 0)
          per_expert.push_back(s);
        else
          REQUIRE(s == per_expert[std::size_t(e)]);  // one set for w1, w3 and w2
        auto const drawn = moe::reinit_index_set(opt.seed, l, e, moe::ExpertMatrix::shared, F, k);
        CHECK(s == std::set<std::int64_t>(drawn.begin(), drawn.end()));
        for (std::int64_t i : s)
          for (std::int64_t c = 0; c < C; ++c) vals.push_back(w[m < 2 ? i * C + c : c * F + i]);
      }
      // n = E k C = 3072 draws from N(dmean, dstd): the sample mean's standard error is dstd / sqrt(n)
      // (1.8% of dstd) and the sample std's about dstd / sqrt(2 n) (1.3%); allow 5 standard errors.
      double vs = 0.0, vss = 0.0;
      for (double v : vals) vs += v;
      double const mean = vs / double(vals.size());
      for (double v : vals) vss += (v - mean) * (v - mean);
      double const sd = std::sqrt(vss / double(vals.size() - 1));
      double const n = double(vals.size());
      INFO("layer " << l << " matrix " << w_names[m] << ": re-initialized mean " << mean << " std " << sd
                    << ", dense mean " << dmean << " std " << dstd << " (n " << n << ")");
      CHECK(std::abs(mean - dmean) < 5.0 * dstd / std::sqrt(n));
      CHECK(std::abs(sd - dstd) < 5.0 * dstd / std::sqrt(2.0 * n));
      CHECK(std::abs(dmean) > 10.0 * dstd / std::sqrt(n));  // the means are really not 0 (the test can see them)
    }
    for (std::int64_t a = 0; a < E; ++a)
      for (std::int64_t b = a + 1; b < E; ++b) CHECK(per_expert[std::size_t(a)] != per_expert[std::size_t(b)]);

    // Router: U(-a, a), a = 0.02 sqrt(3); only bounds are checked on these 128 values (demo: statistics).
    float const* r = ptr(up, layer(l) + "block_sparse_moe.gate.weight");
    float const a = static_cast<float>(0.02 * std::sqrt(3.0));
    bool nonzero = false;
    for (std::int64_t i = 0; i < E * C; ++i) {
      REQUIRE(std::abs(r[i]) <= a);
      nonzero = nonzero || r[i] != 0.0f;
    }
    CHECK(nonzero);
  }
}

TEST_CASE("upcycle r = 0.5, separate index sets: each matrix of an expert draws its own subset", "[moe][upcycle]") {
  Arena<Cpu> const& dense = dense_weights();
  Arena<Cpu> const up = upcycle({.ratio = 0.5, .seed = 7, .shared_index_set = false});
  require_non_ffn_copied(dense, up);
  for (std::int64_t l = 0; l < L; ++l)
    for (std::int64_t e = 0; e < E; ++e) {
      std::set<std::int64_t> s[3];
      for (int m = 0; m < 3; ++m) {
        s[m] = changed(ptr(up, expert(l, e, w_names[m])), ptr(dense, layer(l) + ffn_names[m]), m);
        CHECK(s[m].size() == 24);
      }
      CHECK(s[0] != s[1]);
      CHECK(s[0] != s[2]);
      CHECK(s[1] != s[2]);
    }
}

TEST_CASE("upcycle r = 1 redraws every row and ratios outside 0..1 are refused", "[moe][upcycle]") {
  Arena<Cpu> const& dense = dense_weights();
  Arena<Cpu> const up = upcycle({.ratio = 1.0, .seed = 3});
  for (std::int64_t l = 0; l < L; ++l)
    for (std::int64_t e = 0; e < E; ++e)
      for (int m = 0; m < 3; ++m)
        CHECK(changed(ptr(up, expert(l, e, w_names[m])), ptr(dense, layer(l) + ffn_names[m]), m).size() == std::size_t(F));
  // round(r F) with halves away from zero: 0.25 * 48 = 12, 0.3 * 48 = 14.4 -> 14, 1/96 * 48 = 0.5 -> 1.
  CHECK(moe::reinit_count(0.25, 48) == 12);
  CHECK(moe::reinit_count(0.3, 48) == 14);
  CHECK(moe::reinit_count(1.0 / 96.0, 48) == 1);
  Arena<Cpu> out(Moe::param_layout());
  for (double bad : {1.5, -0.1, std::numeric_limits<double>::quiet_NaN()})
    CHECK_THROWS_WITH((moe::drop_upcycle<dense_cfg, moe_cfg>(dense, out, {.ratio = bad})),
                      Catch::Contains("is outside [0, 1]"));
  CHECK_THROWS_WITH((moe::drop_upcycle<dense_cfg, moe_cfg>(dense, out, {.ratio = 0.5, .router_std = -1.0})),
                    Catch::Contains("router std"));
}

TEST_CASE("upcycle by configuration name: demo -> demo_moe as the template, incompatible pairs name the field",
          "[moe][upcycle]") {
  nn::Transformer<models::demo> demo;
  demo.init(21);
  Arena<Cpu> by_name(nn::Transformer<models::demo_moe>::param_layout()),
      by_type(nn::Transformer<models::demo_moe>::param_layout());
  moe::drop_upcycle("demo", demo.params(), "demo_moe", by_name, {.ratio = 0.5, .seed = 9});
  moe::drop_upcycle<models::demo, models::demo_moe>(demo.params(), by_type, {.ratio = 0.5, .seed = 9});
  REQUIRE(std::memcmp(by_name.data(), by_type.data(), by_name.total_bytes()) == 0);

  // Router statistics on demo_moe's 4 layers x 4 experts x 256 = 4096 values of U(-a, a): the mean's
  // standard error is 0.02 / sqrt(4096) = 3.1e-4; the sample std's relative standard error for a
  // uniform (kurtosis 1.8) is sqrt(0.8 / (4 n)) = 0.7%; allow 5 standard errors.
  std::vector<double> r;
  for (std::int64_t l = 0; l < models::demo.num_layers; ++l) {
    auto const g = by_name.get<float>(layer(l) + "block_sparse_moe.gate.weight");
    r.insert(r.end(), g.data(), g.data() + g.numel());
  }
  double s = 0.0, ss = 0.0, amax = 0.0;
  for (double v : r) s += v, amax = std::max(amax, std::abs(v));
  double const mean = s / double(r.size());
  for (double v : r) ss += (v - mean) * (v - mean);
  double const sd = std::sqrt(ss / double(r.size() - 1));
  INFO("router: mean " << mean << " std " << sd << " max |w| " << amax << " of a = " << 0.02 * std::sqrt(3.0));
  CHECK(std::abs(mean) < 5 * 3.1e-4);
  CHECK(std::abs(sd - 0.02) < 5 * 0.007 * 0.02);
  CHECK(amax <= static_cast<float>(0.02 * std::sqrt(3.0)));
  CHECK(amax > 0.95 * 0.02 * std::sqrt(3.0));  // the range is used, not a narrower one

  Arena<Cpu> tiny(nn::Transformer<models::tiny_test>::param_layout()), tiny_moe(nn::Transformer<models::tiny_moe_test>::param_layout());
  CHECK_THROWS_WITH(moe::drop_upcycle("tiny_test", tiny, "tiny_moe_test", tiny_moe),
                    Catch::Contains("cannot upcycle 'tiny_test' into 'tiny_moe_test'") &&
                        Catch::Contains("expert width: MoE expert_ffn() 24") &&
                        Catch::Contains("dense ffn_hidden 40"));
  CHECK_THROWS_WITH(moe::drop_upcycle("demo", demo.params(), "tiny_moe_test", tiny_moe),
                    Catch::Contains("hidden: dense 256, MoE 32") && Catch::Contains("num_layers: dense 4, MoE 2") &&
                        Catch::Contains("vocab_size: dense 258, MoE 50"));
  CHECK_THROWS_WITH(moe::drop_upcycle("demo_moe", by_name, "demo_moe", by_type),
                    Catch::Contains("the dense model has 4 experts"));
  CHECK_THROWS_WITH(moe::drop_upcycle("demo", demo.params(), "demo", tiny), Catch::Contains("the MoE model has none"));
  CHECK_THROWS_WITH(moe::drop_upcycle("demo", demo.params(), "no_such_model", tiny), Catch::Contains("unknown model configuration"));
  CHECK(moe::upcycle_mismatches(models::demo, models::demo_moe).empty());
  CHECK(moe::upcycle_mismatches(models::tiny_test, models::tiny_moe_test).size() == 1);
  // Arenas that do not match the named configurations are refused too.
  CHECK_THROWS_WITH(moe::drop_upcycle("tiny_test", tiny, "demo_moe", by_name),
                    Catch::Contains("hidden: dense 32, MoE 256"));
  CHECK_THROWS_WITH((moe::drop_upcycle<models::demo, models::demo_moe>(demo.params(), tiny_moe)), Catch::Contains("tensors"));
}

TEST_CASE("upcycle is bitwise the same for 1 and 2 threads and another seed gives other weights", "[moe][upcycle]") {
  nn::Transformer<models::demo> demo;
  demo.init(4);
  auto const run = [&](int threads, std::uint64_t seed, bool shared) {
    int const saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    Arena<Cpu> out(nn::Transformer<models::demo_moe>::param_layout());
    moe::drop_upcycle<models::demo, models::demo_moe>(demo.params(), out, {.ratio = 0.5, .seed = seed, .shared_index_set = shared});
    omp_set_num_threads(saved);
    return out;
  };
  for (bool shared : {true, false}) {
    Arena<Cpu> const a = run(1, 17, shared), b = run(2, 17, shared), c = run(2, 18, shared);
    CHECK(std::memcmp(a.data(), b.data(), a.total_bytes()) == 0);
    for (std::string const n : {"model.layers.2.block_sparse_moe.gate.weight", "model.layers.2.block_sparse_moe.experts.1.w1.weight",
                                "model.layers.2.block_sparse_moe.experts.1.w2.weight"})
      CHECK(std::memcmp(ptr(a, n), ptr(c, n), a.layout().entry(n).bytes) != 0);
    // Non-FFN tensors do not depend on the seed.
    CHECK(std::memcmp(ptr(a, "lm_head.weight"), ptr(c, "lm_head.weight"), a.layout().entry("lm_head.weight").bytes) == 0);
  }
}
