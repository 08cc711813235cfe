// Fused LM head + cross-entropy: loss against a direct softmax over the whole padded vocabulary (as
// Megatron-LM and Hugging Face compute it), ignore index, loss mask, z-loss, chunking, and gradients
// vs finite differences.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "gradcheck.hpp"
#include "cpu_ctx.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/ops/cpu/lm_head_loss.hpp"

using namespace kumiki;

using kumiki_test::ctx;  // tests/cpu_ctx.hpp
using kumiki_test::gradcheck;
using kumiki_test::random_vector;

namespace {
// sum_i m_i (lse_i - z_i[t_i] + zc lse_i^2) / sum_i m_i with the softmax over the first V ids.
double direct_loss(std::vector<double> const& x, std::vector<double> const& w, std::vector<std::int32_t> const& t,
                   std::vector<double> const& mask, std::int64_t N, std::int64_t C, std::int64_t V, double zc) {
  double num = 0.0, den = 0.0;
  for (std::int64_t i = 0; i < N; ++i) {
    if (t[i] < 0) continue;
    std::vector<double> z(V);
    double mx = -1e300;
    for (std::int64_t v = 0; v < V; ++v) {
      double s = 0.0;
      for (std::int64_t c = 0; c < C; ++c) s += x[i * C + c] * w[v * C + c];
      z[v] = s;
      mx = std::max(mx, s);
    }
    double sum = 0.0;
    for (double zv : z) sum += std::exp(zv - mx);
    double const lse = mx + std::log(sum);
    num += mask[i] * (lse - z[t[i]] + zc * lse * lse);
    den += mask[i];
  }
  return num / den;
}
}  // namespace

TEST_CASE("fused LM head loss: value, masking, z-loss, chunking and gradients", "[ops][loss][grad]") {
  kumiki_test::SingleThread const one;
  std::int64_t const N = 10, C = 12, V = 21, Vp = 32;
  auto x = random_vector(N * C, 31), w = random_vector(Vp * C, 32, 0.7);
  // Make padded rows large, so that leaving them out of the softmax would change the loss visibly.
  for (std::int64_t v = V; v < Vp; ++v)
    for (std::int64_t c = 0; c < C; ++c) w[v * C + c] = 2.0 * x[c];
  std::vector<std::int32_t> t{3, 20, -100, 0, 7, 7, 19, -100, 1, 11};
  std::vector<double> mask{1, 1, 1, 0.5, 1, 0, 2, 1, 1, 1};
  ops::LmHeadLossArgs a;
  a.tokens = N, a.hidden = C, a.vocab = V, a.padded_vocab = Vp, a.chunk = 4, a.z_loss = 1e-2;
  std::vector<double> scratch(ops::LmHeadLoss<Cpu>::scratch_elems(a)), logits(N * Vp);
  auto loss = [&] {
    return ops::LmHeadLoss<Cpu>::run<double>(ctx, a, x.data(), w.data(), t.data(), mask.data(), nullptr, nullptr, nullptr,
                                             scratch.data())
        .loss;
  };
  double const expect = direct_loss(x, w, t, mask, N, C, Vp, a.z_loss);
  double const masked = direct_loss(x, w, t, mask, N, C, V, a.z_loss);  // what a real-vocabulary softmax gives
  REQUIRE(std::abs(expect - masked) > 0.1);                              // the check below can tell them apart
  CHECK(loss() == Approx(expect).epsilon(1e-12));
  std::printf("lm head loss %.12f, direct %.12f\n", loss(), expect);

  std::vector<double> dx(N * C), dw(Vp * C, 0.0);
  a.grad_scale = 1.0;
  auto const res = ops::LmHeadLoss<Cpu>::run<double>(ctx, a, x.data(), w.data(), t.data(), mask.data(), dx.data(),
                                                     dw.data(), logits.data(), scratch.data());
  CHECK(res.loss == Approx(expect).epsilon(1e-12));
  CHECK(res.weight == Approx(1 + 1 + 0.5 + 1 + 0 + 2 + 1 + 1));
  CHECK(res.z > 0.0);
  double pad_grad = 0.0;  // padded ids are pushed down like any wrong id
  for (std::int64_t v = V; v < Vp; ++v)
    for (std::int64_t c = 0; c < C; ++c) pad_grad += std::abs(dw[v * C + c]);
  CHECK(pad_grad > 1e-3);
  for (std::int64_t c = 0; c < C; ++c) REQUIRE(dx[2 * C + c] == 0.0);   // ignored target: no gradient
  double l0 = 0.0;  // raw logits include the padded columns
  for (std::int64_t c = 0; c < C; ++c) l0 += x[c] * w[(Vp - 1) * C + c];
  CHECK(logits[Vp - 1] == Approx(l0).epsilon(1e-12));
  CHECK(gradcheck("lm head loss d_x", loss, x.data(), dx.data(), N * C).max_rel <= 1e-6);
  CHECK(gradcheck("lm head loss d_w", loss, w.data(), dw.data(), Vp * C).max_rel <= 1e-6);

  // The chunk size changes nothing but the schedule.
  a.chunk = 3;
  CHECK(loss() == Approx(expect).epsilon(1e-12));

  std::vector<std::int32_t> bad = t;
  bad[0] = static_cast<std::int32_t>(V);  // a padded id is not a valid target
  CHECK_THROWS_AS(ops::LmHeadLoss<Cpu>::run<double>(ctx, a, x.data(), w.data(), bad.data(), nullptr, nullptr, nullptr,
                                                    nullptr, scratch.data()),
                  kumiki::Error);
}
