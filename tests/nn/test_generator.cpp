// Generation with a key/value cache: the cached logits equal a full forward of the whole prefix at
// every step (double), prompts of different lengths batched together equal each alone, greedy
// generation equals arg max over full recomputation token for token, and sampling is reproducible
// from its seed and follows the softmax.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kumiki/cpu.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/nn/generator.hpp"
#include "kumiki/nn/transformer.hpp"

using namespace kumiki;

namespace {
// 2 layers, 4 heads over 2 KV groups, vocabulary 37 padded to 48, 40 positions.
constexpr models::TransformerConfig gen_cfg{
    .vocab_size = 37, .make_vocab_divisible_by = 16, .hidden = 32, .ffn_hidden = 40, .num_layers = 2,
    .num_heads = 4, .num_query_groups = 2, .rope_base = 10000.0, .rms_eps = 1e-5, .max_seq_len = 40,
    .untie_embeddings = true, .z_loss = 0.0, .init_std = 0.2};

std::vector<std::int32_t> tokens_of(std::int64_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::int32_t> t(static_cast<std::size_t>(n));
  for (auto& x : t) x = static_cast<std::int32_t>(rng() % 37);
  return t;
}

/// The logits over the real vocabulary after the last token of `seq`, by a full forward.
template <class M>
std::vector<double> full_logits(M& m, std::vector<std::int32_t> const& seq) {
  std::int64_t const T = static_cast<std::int64_t>(seq.size()), Vp = gen_cfg.padded_vocab();
  std::vector<typename M::act_type> logits(static_cast<std::size_t>(T * Vp));
  m.forward(seq.data(), seq.data(), 1, T, {}, nullptr, logits.data());
  return {logits.begin() + (T - 1) * Vp, logits.begin() + (T - 1) * Vp + gen_cfg.vocab_size};
}

double max_diff(std::vector<double> const& a, std::vector<double> const& b) {
  REQUIRE(a.size() == b.size());
  double d = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}
}  // namespace

TEST_CASE("generator: cached logits equal a full forward of the prefix at every step (double)", "[nn][generate]") {
  nn::Transformer<gen_cfg, Cpu, double> m;
  m.init(11);
  nn::Generator gen(m, 3, 40);
  // Three prompts of different lengths prefilled in one call, then steps feeding some slots only and
  // a multi-token extension of one slot mid-way.
  std::vector<std::vector<std::int32_t>> seq{tokens_of(7, 1), tokens_of(1, 2), tokens_of(13, 3)};
  auto logits = gen.extend({{0, seq[0]}, {1, seq[1]}, {2, seq[2]}});
  double worst = 0;
  for (int s = 0; s < 3; ++s) worst = std::max(worst, max_diff(logits[static_cast<std::size_t>(s)], full_logits(m, seq[static_cast<std::size_t>(s)])));
  for (int step = 0; step < 12; ++step) {
    std::vector<nn::Generator<decltype(m)>::Feed> feeds;
    for (std::int64_t s = 0; s < 3; ++s) {
      if (step % 3 == s) continue;  // slot s sits this step out
      auto more = tokens_of(step == 5 && s == 1 ? 4 : 1, 100 + static_cast<std::uint64_t>(step * 3 + s));
      seq[static_cast<std::size_t>(s)].insert(seq[static_cast<std::size_t>(s)].end(), more.begin(), more.end());
      feeds.push_back({s, more});
    }
    logits = gen.extend(feeds);
    for (std::size_t j = 0; j < feeds.size(); ++j)
      worst = std::max(worst, max_diff(logits[j], full_logits(m, seq[static_cast<std::size_t>(feeds[j].slot)])));
  }
  INFO("largest |cached - full| logit difference: " << worst);
  CHECK(worst < 1e-12);
  CHECK(gen.length(2) == static_cast<std::int64_t>(seq[2].size()));
  // A reset slot starts again from position 0.
  gen.reset(1);
  CHECK(max_diff(gen.extend({{1, seq[0]}})[0], full_logits(m, seq[0])) < 1e-12);
}

TEST_CASE("generator: logits after every continuation token equal a full forward (scoring)", "[nn][generate]") {
  nn::Transformer<gen_cfg, Cpu, double> m;
  m.init(12);
  nn::Generator gen(m, 2, 40);
  // Slot 0 gets a context and later a 5-token continuation scored row by row; slot 1 a whole sequence
  // with logits after each of its last 6 tokens, beside it in the same call.
  auto ctx = tokens_of(9, 21), cont = tokens_of(5, 22), whole = tokens_of(17, 23);
  (void)gen.extend({{0, ctx}});
  auto const out = gen.extend({{0, cont, 5}, {1, whole, 6}});
  REQUIRE(out[0].size() == 5 * 37);
  REQUIRE(out[1].size() == 6 * 37);
  std::vector<std::int32_t> seq0 = ctx;
  double worst = 0;
  for (std::int64_t r = 0; r < 5; ++r) {
    seq0.push_back(cont[static_cast<std::size_t>(r)]);
    std::vector<double> row(out[0].begin() + r * 37, out[0].begin() + (r + 1) * 37);
    worst = std::max(worst, max_diff(row, full_logits(m, seq0)));
  }
  for (std::int64_t r = 0; r < 6; ++r) {
    std::vector<std::int32_t> prefix(whole.begin(), whole.end() - (5 - r));
    std::vector<double> row(out[1].begin() + r * 37, out[1].begin() + (r + 1) * 37);
    worst = std::max(worst, max_diff(row, full_logits(m, prefix)));
  }
  INFO("largest |cached - full| logit difference: " << worst);
  CHECK(worst < 1e-12);
  CHECK_THROWS_WITH(gen.extend({{0, {1, 2}, 3}}), Catch::Contains("asks for logits after its last 3 tokens but is fed 2"));
}

TEST_CASE("generator: greedy generation equals arg max over full recomputation, batched or alone", "[nn][generate]") {
  nn::Transformer<gen_cfg, Cpu, double> m;  // double: no near-tie of two logits can flip an arg max
  m.init(5);
  std::vector<std::vector<std::int32_t>> prompts{tokens_of(3, 7), tokens_of(9, 8), tokens_of(1, 9)};
  nn::GenerateOptions o;
  o.max_new_tokens = 20;
  nn::Generator gen(m, 3, 40);
  auto const out = gen.generate(prompts, o);
  for (std::size_t p = 0; p < prompts.size(); ++p) {
    std::vector<std::int32_t> seq = prompts[p], want;
    for (int i = 0; i < 20; ++i) {
      auto const l = full_logits(m, seq);
      auto const t = static_cast<std::int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
      want.push_back(t);
      seq.push_back(t);
    }
    CHECK(out[p] == want);
    nn::Generator one(m, 1, 40);  // each prompt alone, and more prompts than slots, give the same
    CHECK(one.generate({prompts[p]}, o)[0] == want);
  }
  nn::Generator small(m, 2, 40);
  CHECK(small.generate(prompts, o) == out);
  // eos ends a sequence after it; on_token can stop one; the cache bounds the length.
  o.eos = out[1][4];
  auto const eos_out = gen.generate(prompts, o);
  CHECK(eos_out[1].size() == static_cast<std::size_t>(std::find(out[1].begin(), out[1].end(), o.eos) - out[1].begin() + 1));
  o.eos = -1;
  auto const stopped = gen.generate(prompts, o, [](std::size_t p, std::int32_t) { return p != 0; });
  CHECK(stopped[0].size() == 1);
  CHECK(stopped[2] == out[2]);
  nn::Generator tight(m, 3, 12);
  auto const bounded = tight.generate(prompts, o);
  CHECK(bounded[1].size() == 12 - 9 + 1);  // the last token is sampled from a full cache, not fed
}

TEST_CASE("generator: sampling is reproducible from its seed and follows the softmax", "[nn][generate]") {
  std::vector<double> const logits{1.0, 2.0, 0.5, 2.0, -1.0};
  nn::SamplingOptions o;
  CHECK(nn::sample_token(logits, o, 0, 0) == 1);  // greedy: the lowest id among equal maxima
  o.temperature = 0.7;
  std::vector<double> p(logits.size());
  double z = 0;
  for (std::size_t i = 0; i < p.size(); ++i) z += p[i] = std::exp(logits[i] / 0.7);
  std::vector<int> count(logits.size(), 0);
  int const n = 20000;
  for (int i = 0; i < n; ++i) ++count[static_cast<std::size_t>(nn::sample_token(logits, o, 3, static_cast<std::uint64_t>(i)))];
  for (std::size_t i = 0; i < p.size(); ++i) {
    double const want = p[i] / z, se = std::sqrt(want * (1 - want) / n);
    INFO("token " << i << ": " << count[i] << " of " << n << ", expected p = " << want);
    CHECK(std::abs(count[i] / double(n) - want) < 5 * se + 1e-9);
  }
  // The same (seed, stream, step) draws the same token; top_k = 1 is greedy; top_k = 2 keeps ids 1, 3;
  // top_p 0.5 keeps the single most likely token here (p = 0.38 + 0.38 > 0.5 needs two).
  for (std::uint64_t s = 0; s < 50; ++s) CHECK(nn::sample_token(logits, o, 9, s) == nn::sample_token(logits, o, 9, s));
  o.top_k = 1;
  for (std::uint64_t s = 0; s < 50; ++s) CHECK(nn::sample_token(logits, o, 9, s) == 1);
  o.top_k = 2;
  for (std::uint64_t s = 0; s < 200; ++s) {
    auto const t = nn::sample_token(logits, o, 9, s);
    CHECK((t == 1 || t == 3));
  }
  o.top_k = 0, o.top_p = 0.3;
  for (std::uint64_t s = 0; s < 50; ++s) CHECK(nn::sample_token(logits, o, 9, s) == 1);
  o.top_p = 0.5;
  for (std::uint64_t s = 0; s < 200; ++s) {
    auto const t = nn::sample_token(logits, o, 9, s);
    CHECK((t == 1 || t == 3));
  }
  // A different seed gives a different sequence of draws.
  nn::SamplingOptions a{1.0, 0, 1.0, 1}, b{1.0, 0, 1.0, 2};
  int same = 0;
  for (std::uint64_t s = 0; s < 100; ++s) same += nn::sample_token(logits, a, 0, s) == nn::sample_token(logits, b, 0, s);
  CHECK(same < 80);
}

TEST_CASE("generator: bad input is refused in the caller's terms", "[nn][generate]") {
  nn::Transformer<gen_cfg, Cpu, float> m;
  m.init(1);
  CHECK_THROWS_WITH((nn::Generator(m, 1, 41)), Catch::Contains("must lie in [1, the model's max_seq_len 40]"));
  nn::Generator gen(m, 2, 8);
  CHECK_THROWS_WITH(gen.extend({{0, tokens_of(9, 1)}}), Catch::Contains("more than the generator's max_len 8"));
  CHECK_THROWS_WITH(gen.extend({{0, {1, 37}}}), Catch::Contains("token id 37 is outside the vocabulary"));
  CHECK_THROWS_WITH(gen.extend({{2, {1}}}), Catch::Contains("slot 2 outside [0, 2)"));
  CHECK_THROWS_WITH(gen.extend({{0, {1}}, {0, {2}}}), Catch::Contains("slot 0 is fed twice"));
  CHECK_THROWS_WITH(gen.generate({{}}, {}), Catch::Contains("prompt 0 is empty"));
}
