// Elementwise and row ops (embedding, RMSNorm, RoPE, SwiGLU, residual): forward values against the
// formulas written out here, backward against central finite differences in double.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "gradcheck.hpp"
#include "cpu_ctx.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/ops/cpu/embedding.hpp"
#include "kumiki/ops/cpu/fill.hpp"
#include "kumiki/ops/cpu/residual.hpp"
#include "kumiki/ops/cpu/rmsnorm.hpp"
#include "kumiki/ops/cpu/rope.hpp"
#include "kumiki/ops/cpu/swiglu.hpp"

using namespace kumiki;

using kumiki_test::ctx;  // tests/cpu_ctx.hpp
using kumiki_test::dot;
using kumiki_test::gradcheck;
using kumiki_test::random_vector;

TEST_CASE("embedding gathers rows and scatter-adds repeated tokens", "[ops][embedding][grad]") {
  kumiki_test::SingleThread const one;
  std::int64_t const V = 11, C = 70, N = 9;  // C > 64: two column blocks in the backward
  std::vector<std::int32_t> tok{3, 0, 10, 3, 7, 3, 1, 0, 9};
  auto table = random_vector(V * C, 1), r = random_vector(N * C, 2);
  std::vector<double> out(N * C);
  auto loss = [&] {
    ops::Embedding<Cpu>::forward(ctx, tok.data(), table.data(), out.data(), N, C, V);
    return dot(out, r);
  };
  loss();
  for (std::int64_t i = 0; i < N; ++i)
    for (std::int64_t j = 0; j < C; ++j) REQUIRE(out[i * C + j] == table[tok[i] * C + j]);
  std::vector<double> d_table(V * C, 0.0);
  ops::Embedding<Cpu>::backward(ctx, tok.data(), r.data(), d_table.data(), N, C);
  CHECK(gradcheck("embedding d_table", loss, table.data(), d_table.data(), V * C).max_rel <= 1e-6);
  std::vector<std::int32_t> bad{0, 11};
  CHECK_THROWS_AS(ops::Embedding<Cpu>::forward(ctx, bad.data(), table.data(), out.data(), 2, C, V), kumiki::Error);
}

TEST_CASE("RMSNorm forward matches the formula, d_x and d_w match finite differences", "[ops][rmsnorm][grad]") {
  kumiki_test::SingleThread const one;
  std::int64_t const N = 13, C = 80;
  double const eps = 1e-5;
  auto x = random_vector(N * C, 3), w = random_vector(C, 4, 0.5), r = random_vector(N * C, 5);
  for (auto& v : w) v += 1.0;
  std::vector<double> y(N * C), rstd(N);
  auto loss = [&] {
    ops::RmsNorm<Cpu>::forward(ctx, x.data(), w.data(), y.data(), rstd.data(), N, C, eps);
    return dot(y, r);
  };
  loss();
  for (std::int64_t i = 0; i < N; ++i) {
    double ms = 0.0;
    for (std::int64_t j = 0; j < C; ++j) ms += x[i * C + j] * x[i * C + j];
    double const s = 1.0 / std::sqrt(ms / C + eps);
    for (std::int64_t j = 0; j < C; ++j) REQUIRE(y[i * C + j] == Approx(x[i * C + j] * s * w[j]).epsilon(1e-13));
  }
  std::vector<double> dx(N * C, 0.0), dw(C, 0.0);
  ops::RmsNorm<Cpu>::backward(ctx, r.data(), x.data(), w.data(), rstd.data(), dx.data(), dw.data(), N, C, false);
  CHECK(gradcheck("rmsnorm d_x", loss, x.data(), dx.data(), N * C).max_rel <= 1e-6);
  CHECK(gradcheck("rmsnorm d_w", loss, w.data(), dw.data(), C).max_rel <= 1e-6);
  // accumulate = true adds into an existing (residual-stream) gradient.
  std::vector<double> acc(N * C, 1.0), dw2(C, 0.0);
  ops::RmsNorm<Cpu>::backward(ctx, r.data(), x.data(), w.data(), rstd.data(), acc.data(), dw2.data(), N, C, true);
  for (std::int64_t i = 0; i < N * C; ++i) REQUIRE(acc[i] == Approx(1.0 + dx[i]).epsilon(1e-13));
}

TEST_CASE("RoPE is Hugging Face's rotate-half and its backward is the transpose", "[ops][rope][grad]") {
  kumiki_test::SingleThread const one;
  std::int64_t const B = 2, T = 9, heads = 3, hd = 8, ld = heads * hd + 5;  // padded rows as in fused qkv
  double const base = 10000.0;
  std::vector<double> cs(T * hd / 2), sn(T * hd / 2);
  ops::Rope<Cpu>::tables(ctx, cs.data(), sn.data(), T, hd, base);
  auto x = random_vector(B * T * ld, 6), r = random_vector(B * T * ld, 7);
  std::vector<double> y;
  auto loss = [&] {
    y = x;
    ops::Rope<Cpu>::apply(ctx, y.data(), B, T, heads, hd, ld, cs.data(), sn.data(), false);
    double s = 0.0;  // only the rotated part of each row counts
    for (std::int64_t bt = 0; bt < B * T; ++bt)
      for (std::int64_t j = 0; j < heads * hd; ++j) s += y[bt * ld + j] * r[bt * ld + j];
    return s;
  };
  loss();
  // HF: inv_freq_i = base^(-2i/d); emb = cat(freqs, freqs); out = x * cos(emb) + rotate_half(x) * sin(emb),
  // rotate_half(x) = cat(-x2, x1).
  for (std::int64_t bt = 0; bt < B * T; ++bt) {
    std::int64_t const t = bt % T;
    for (std::int64_t h = 0; h < heads; ++h)
      for (std::int64_t j = 0; j < hd; ++j) {
        double const ang = t * std::pow(base, -2.0 * (j % (hd / 2)) / hd);
        double const* xh = &x[bt * ld + h * hd];
        double const rot = j < hd / 2 ? -xh[j + hd / 2] : xh[j - hd / 2];
        REQUIRE(y[bt * ld + h * hd + j] == Approx(xh[j] * std::cos(ang) + rot * std::sin(ang)).margin(1e-13));
      }
  }
  std::vector<double> dx(B * T * ld, 0.0);
  for (std::int64_t bt = 0; bt < B * T; ++bt)
    for (std::int64_t j = 0; j < heads * hd; ++j) dx[bt * ld + j] = r[bt * ld + j];
  ops::Rope<Cpu>::apply(ctx, dx.data(), B, T, heads, hd, ld, cs.data(), sn.data(), true);
  CHECK(gradcheck("rope d_x", loss, x.data(), dx.data(), B * T * ld).max_rel <= 1e-6);
}

TEST_CASE("SwiGLU forward and backward", "[ops][swiglu][grad]") {
  kumiki_test::SingleThread const one;
  std::int64_t const N = 7, F = 33;
  auto gu = random_vector(N * 2 * F, 8, 2.0), r = random_vector(N * F, 9);
  std::vector<double> h(N * F);
  auto loss = [&] {
    ops::SwiGlu<Cpu>::forward(ctx, gu.data(), gu.data() + F, 2 * F, h.data(), F, N, F);
    return dot(h, r);
  };
  loss();
  for (std::int64_t i = 0; i < N; ++i)
    for (std::int64_t j = 0; j < F; ++j) {
      double const g = gu[i * 2 * F + j], u = gu[i * 2 * F + F + j];
      REQUIRE(h[i * F + j] == Approx(g / (1.0 + std::exp(-g)) * u).epsilon(1e-13));
    }
  std::vector<double> d_gu(N * 2 * F);
  ops::SwiGlu<Cpu>::backward(ctx, r.data(), F, gu.data(), gu.data() + F, 2 * F, d_gu.data(), d_gu.data() + F, 2 * F, N, F);
  CHECK(gradcheck("swiglu d_gate|d_up", loss, gu.data(), d_gu.data(), N * 2 * F).max_rel <= 1e-6);
}

TEST_CASE("residual add and accumulate", "[ops][residual]") {
  auto a = random_vector(100, 10), b = random_vector(100, 11);
  std::vector<double> out(100);
  ops::Residual<Cpu>::forward(ctx, a.data(), b.data(), out.data(), 100);
  for (int i = 0; i < 100; ++i) REQUIRE(out[i] == a[i] + b[i]);
  ops::Residual<Cpu>::accumulate(ctx, out.data(), a.data(), 100);
  for (int i = 0; i < 100; ++i) REQUIRE(out[i] == (a[i] + b[i]) + a[i]);
}

TEST_CASE("Philox fill is addressed by index and independent of the thread count", "[ops][fill]") {
  std::vector<float> p(100000);
  ops::Fill<Cpu>::normal(ctx, p.data(), static_cast<std::int64_t>(p.size()), 42, 7, 0.0, 0.02);
  PhiloxStream const s{42, 7};
  for (std::size_t j : {std::size_t{0}, std::size_t{1}, std::size_t{99999}}) REQUIRE(p[j] == 0.02f * s.normal(j));
  double m = 0.0, v = 0.0;
  for (float x : p) m += x;
  m /= p.size();
  for (float x : p) v += (x - m) * (x - m);
  CHECK(std::sqrt(v / p.size()) == Approx(0.02).epsilon(0.02));
}
