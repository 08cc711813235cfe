// Flash-style causal GQA attention: forward against a naive full-matrix reference (repeated K/V,
// explicit mask) and backward against finite differences, with and without the document mask.
#include <catch2/catch.hpp>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "gradcheck.hpp"
#include "cpu_ctx.hpp"
#include "kumiki/ops/cpu/attention.hpp"

using namespace kumiki;

using kumiki_test::ctx;  // tests/cpu_ctx.hpp
using kumiki_test::gradcheck;
using kumiki_test::random_vector;

namespace {
struct Case {
  std::int64_t B = 2, T = 70, H = 4, G = 2, hd = 8;  // T = 70: two key/query tiles, the last partial
  std::int64_t C() const { return H * hd; }
  std::int64_t QKV() const { return C() + 2 * G * hd; }
  ops::AttentionShape shape() const { return {B, T, H, G, hd, QKV(), QKV(), QKV(), C()}; }
};

// o[b,t,h] = sum_j softmax_j(q.k_j * scale) v_j over j <= t in the same document; K/V head = h / (H/G).
std::vector<double> naive_attention(Case const& c, std::vector<double> const& qkv, std::int32_t const* ds,
                                    std::vector<double>* lse) {
  std::vector<double> o(c.B * c.T * c.C());
  double const scale = 1.0 / std::sqrt(static_cast<double>(c.hd));
  for (std::int64_t b = 0; b < c.B; ++b)
    for (std::int64_t h = 0; h < c.H; ++h)
      for (std::int64_t t = 0; t < c.T; ++t) {
        std::int64_t const g = h / (c.H / c.G);
        std::vector<double> s(c.T, -std::numeric_limits<double>::infinity());
        double mx = -1e300;
        for (std::int64_t j = 0; j <= t; ++j) {
          if (ds && ds[b * c.T + j] != ds[b * c.T + t]) continue;
          double d = 0.0;
          for (std::int64_t e = 0; e < c.hd; ++e)
            d += qkv[(b * c.T + t) * c.QKV() + h * c.hd + e] * qkv[(b * c.T + j) * c.QKV() + c.C() + g * c.hd + e];
          s[j] = d * scale;
          mx = std::max(mx, s[j]);
        }
        double sum = 0.0;
        for (std::int64_t j = 0; j <= t; ++j) sum += std::exp(s[j] - mx);
        if (lse) (*lse)[(b * c.H + h) * c.T + t] = mx + std::log(sum);
        for (std::int64_t e = 0; e < c.hd; ++e) {
          double acc = 0.0;
          for (std::int64_t j = 0; j <= t; ++j)
            acc += std::exp(s[j] - mx) / sum * qkv[(b * c.T + j) * c.QKV() + c.C() + c.G * c.hd + g * c.hd + e];
          o[(b * c.T + t) * c.C() + h * c.hd + e] = acc;
        }
      }
  return o;
}

void run_case(Case const& c, std::int32_t const* ds, char const* label) {
  kumiki_test::SingleThread const one;
  auto qkv = random_vector(c.B * c.T * c.QKV(), 21, 1.5);
  auto r = random_vector(c.B * c.T * c.C(), 22);
  std::vector<double> o(c.B * c.T * c.C()), lse(c.B * c.H * c.T);
  double const scale = 1.0 / std::sqrt(static_cast<double>(c.hd));
  auto fwd = [&] {
    ops::Attention<Cpu>::forward(ctx, c.shape(), qkv.data(), qkv.data() + c.C(), qkv.data() + c.C() + c.G * c.hd, o.data(),
                                 lse.data(), ds, scale);
  };
  auto loss = [&] {
    fwd();
    return kumiki_test::dot(o, r);
  };
  fwd();
  std::vector<double> lse_ref(lse.size());
  auto const o_ref = naive_attention(c, qkv, ds, &lse_ref);
  double err = 0.0, lse_err = 0.0;
  for (std::size_t i = 0; i < o.size(); ++i) err = std::max(err, std::abs(o[i] - o_ref[i]));
  for (std::size_t i = 0; i < lse.size(); ++i) lse_err = std::max(lse_err, std::abs(lse[i] - lse_ref[i]));
  std::printf("attention %s forward vs naive: max abs err %.3e, lse %.3e\n", label, err, lse_err);
  CHECK(err < 1e-12);
  CHECK(lse_err < 1e-12);

  std::vector<double> d_qkv(qkv.size(), 7.0);  // garbage that the backward must overwrite
  ops::Attention<Cpu>::backward(ctx, c.shape(), qkv.data(), qkv.data() + c.C(), qkv.data() + c.C() + c.G * c.hd, o.data(),
                                r.data(), lse.data(), d_qkv.data(), d_qkv.data() + c.C(),
                                d_qkv.data() + c.C() + c.G * c.hd, ds, scale);
  // The padding-free fused layout: every column of qkv is q, k or v, so one check covers all three.
  CHECK(gradcheck(std::string("attention d_q|d_k|d_v ") + label, loss, qkv.data(), d_qkv.data(),
                  static_cast<std::int64_t>(qkv.size()), 800)
            .max_rel <= 1e-6);
}
}  // namespace

TEST_CASE("causal GQA attention: forward vs naive, backward vs finite differences", "[ops][attention][grad]") {
  run_case(Case{}, nullptr, "causal");
}

TEST_CASE("document-causal attention (reset attention mask at EOD)", "[ops][attention][grad]") {
  Case const c;
  std::vector<std::int32_t> tokens(c.B * c.T, 5), ds(c.B * c.T);
  for (std::int64_t t : {3, 40, 66}) tokens[t] = 0;      // sequence 0: EOD at 3, 40, 66
  for (std::int64_t t : {64, 69}) tokens[c.T + t] = 0;   // sequence 1: EOD right at a tile edge
  ops::Attention<Cpu>::document_starts(ctx, tokens.data(), c.B, c.T, 0, ds.data());
  CHECK(ds[0] == 0);
  CHECK(ds[3] == 0);
  CHECK(ds[4] == 4);
  CHECK(ds[41] == 41);
  CHECK(ds[c.T + 65] == 65);
  run_case(c, ds.data(), "doc-mask");
}

TEST_CASE("attention is bitwise identical with 1 and 2 threads", "[ops][attention]") {
  std::int64_t const B = 2, T = 150, H = 4, G = 2, hd = 32, C = H * hd, QKV = C + 2 * G * hd;
  ops::AttentionShape const s{B, T, H, G, hd, QKV, QKV, QKV, C};
  auto qd = random_vector(B * T * QKV, 3), rd = random_vector(B * T * C, 4);
  std::vector<float> qkv(qd.begin(), qd.end()), r(rd.begin(), rd.end());
  auto run = [&](int threads, std::vector<float>& o, std::vector<float>& d) {
    omp_set_num_threads(threads);
    std::vector<float> lse(B * H * T);
    o.assign(B * T * C, 0.f);
    d.assign(qkv.size(), 0.f);
    ops::Attention<Cpu>::forward(ctx, s, qkv.data(), qkv.data() + C, qkv.data() + C + G * hd, o.data(), lse.data(), nullptr,
                                 0.17f);
    ops::Attention<Cpu>::backward(ctx, s, qkv.data(), qkv.data() + C, qkv.data() + C + G * hd, o.data(), r.data(),
                                  lse.data(), d.data(), d.data() + C, d.data() + C + G * hd, nullptr, 0.17f);
  };
  int const saved = omp_get_max_threads();
  std::vector<float> o1, d1, o2, d2;
  run(1, o1, d1);
  run(2, o2, d2);
  omp_set_num_threads(saved);
  CHECK(std::memcmp(o1.data(), o2.data(), o1.size() * 4) == 0);
  CHECK(std::memcmp(d1.data(), d2.data(), d1.size() * 4) == 0);
}
