// Tiled Eigen GEMM and linear layers: values against a naive triple loop, bitwise independence of
// the thread count, and finite-difference gradients.
#include <catch2/catch.hpp>
#include <omp.h>

#include <cstring>
#include <vector>

#include "gradcheck.hpp"
#include "cpu_ctx.hpp"
#include "kumiki/ops/cpu/gemm.hpp"
#include "kumiki/ops/cpu/linear.hpp"

using namespace kumiki;

using kumiki_test::ctx;  // tests/cpu_ctx.hpp
using kumiki_test::random_vector;

namespace {
// C = alpha op(A) op(B) + beta C, written out by definition.
void naive_gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha, double const* a,
                std::int64_t lda, double const* b, std::int64_t ldb, double beta, double* c, std::int64_t ldc) {
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      double s = 0.0;
      for (std::int64_t p = 0; p < k; ++p) s += (ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
      c[i * ldc + j] = alpha * s + beta * c[i * ldc + j];
    }
}
}  // namespace

TEST_CASE("gemm matches the definition for every transpose combination and leading dimension", "[ops][gemm]") {
  std::int64_t const m = 150, n = 70, k = 90, pad = 3;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      std::int64_t const lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
      auto a = random_vector((ta ? k : m) * lda, 1), b = random_vector((tb ? n : k) * ldb, 2);
      auto c = random_vector(m * ldc, 3);
      auto expect = c;
      naive_gemm(ta, tb, m, n, k, 0.5, a.data(), lda, b.data(), ldb, 2.0, expect.data(), ldc);
      ops::cpu::gemm<double>(ta, tb, m, n, k, 0.5, a.data(), lda, b.data(), ldb, 2.0, c.data(), ldc);
      double err = 0.0;
      for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t j = 0; j < n; ++j) err = std::max(err, std::abs(c[i * ldc + j] - expect[i * ldc + j]));
      INFO("trans_a " << ta << " trans_b " << tb);
      CHECK(err < 1e-11);
    }
}

TEST_CASE("gemm results are bitwise identical with 1 and 2 threads", "[ops][gemm]") {
  // k = 1000 exceeds Eigen's multi-threaded depth block (320): Eigen's own threading would change
  // the summation order here, the fixed tile grid does not.
  std::int64_t const m = 700, n = 300, k = 1000;
  std::vector<float> a(m * k), b(n * k);
  auto ad = random_vector(m * k, 4), bd = random_vector(n * k, 5);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(ad[i]);
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>(bd[i]);
  int const saved = omp_get_max_threads();
  std::vector<float> c1(m * n), c2(m * n);
  omp_set_num_threads(1);
  ops::cpu::gemm<float>(false, true, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c1.data(), n);
  omp_set_num_threads(2);
  ops::cpu::gemm<float>(false, true, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c2.data(), n);
  omp_set_num_threads(saved);
  CHECK(std::memcmp(c1.data(), c2.data(), c1.size() * sizeof(float)) == 0);
}

TEST_CASE("linear forward, input and weight gradients against finite differences", "[ops][linear][grad]") {
  kumiki_test::SingleThread const one;
  std::int64_t const N = 37, in = 23, out = 19;
  auto x = random_vector(N * in, 10), w = random_vector(out * in, 11), r = random_vector(N * out, 12);
  std::vector<double> y(N * out);
  auto loss = [&] {
    ops::Linear<Cpu>::forward(ctx, x.data(), w.data(), y.data(), N, in, out);
    return kumiki_test::dot(y, r);
  };
  loss();
  for (std::int64_t i = 0; i < N; ++i)
    for (std::int64_t o = 0; o < out; ++o) {
      double s = 0.0;
      for (std::int64_t j = 0; j < in; ++j) s += x[i * in + j] * w[o * in + j];
      REQUIRE(y[i * out + o] == Approx(s).margin(1e-12));
    }
  std::vector<double> dx(N * in), dw(out * in, 0.0);
  ops::Linear<Cpu>::backward_input(ctx, r.data(), w.data(), dx.data(), N, in, out);
  ops::Linear<Cpu>::backward_weight(ctx, r.data(), x.data(), dw.data(), N, in, out);
  CHECK(kumiki_test::gradcheck("linear d_x", loss, x.data(), dx.data(), N * in).max_rel <= 1e-6);
  CHECK(kumiki_test::gradcheck("linear d_w", loss, w.data(), dw.data(), out * in).max_rel <= 1e-6);
  // backward_weight accumulates (gradient accumulation across micro-batches).
  std::vector<double> dw2 = dw;
  ops::Linear<Cpu>::backward_weight(ctx, r.data(), x.data(), dw2.data(), N, in, out);
  for (std::size_t i = 0; i < dw.size(); ++i) REQUIRE(dw2[i] == Approx(2 * dw[i]).margin(1e-12));
}
