// Global-norm clipping with Megatron's coefficient, double accumulation, and the non-finite policy.
#include <catch2/catch.hpp>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "cpu_ctx.hpp"
#include "kumiki/cpu.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/philox.hpp"
#include "kumiki/optim/adamw.hpp"
#include "kumiki/optim/clip.hpp"

using namespace kumiki;

using kumiki_test::ctx;  // tests/cpu_ctx.hpp
using optim::StepVerdict;

namespace {
ArenaLayout two_tensors() {
  ArenaLayout L;
  L.add("a", DType::f32, Shape{2});
  L.add("b", DType::f32, Shape{1, 1});
  return L;
}
}  // namespace

TEST_CASE("clip: norm over all tensors and Megatron's coefficient", "[optim][clip]") {
  Arena<Cpu> g(two_tensors());
  g.get<float>("a")(0) = 3.0f;
  g.get<float>("a")(1) = 4.0f;
  g.get<float>("b")(0, 0) = 12.0f;  // sqrt(9 + 16 + 144) = 13
  auto const r = optim::clip_grad_norm(ctx, g, 1.0);
  CHECK(r.finite);
  CHECK(r.norm == 13.0);
  double const coeff = 1.0 / (13.0 + 1e-6);
  CHECK(r.coeff == Approx(coeff).epsilon(1e-15));
  CHECK(r.clipped());
  CHECK(g.get<float>("a")(0) == static_cast<float>(3.0f * static_cast<float>(coeff)));
  CHECK(g.get<float>("b")(0, 0) == static_cast<float>(12.0f * static_cast<float>(coeff)));
  CHECK(optim::global_grad_norm(ctx, g) == Approx(13.0 * coeff).epsilon(1e-6));  // just under max_norm
}

TEST_CASE("clip: below the threshold the gradients are untouched", "[optim][clip]") {
  Arena<Cpu> g(two_tensors());
  g.get<float>("a")(0) = 0.3f;
  g.get<float>("a")(1) = -0.4f;
  auto const r = optim::clip_grad_norm(ctx, g, 1.0);
  CHECK(r.norm == Approx(0.5).epsilon(1e-7));
  CHECK(r.coeff == 1.0);
  CHECK_FALSE(r.clipped());
  CHECK(g.get<float>("a")(0) == 0.3f);
  CHECK(g.get<float>("a")(1) == -0.4f);
  // Norm exactly max_norm: coeff = 1 / (1 + 1e-6) < 1, so Megatron still scales (by a hair).
  g.get<float>("a")(0) = 0.6f;
  g.get<float>("a")(1) = 0.8f;
  auto const edge = optim::clip_grad_norm(ctx, g, std::sqrt(0.6 * 0.6 + 0.8 * 0.8 + 0.0));
  CHECK(edge.clipped());
}

TEST_CASE("clip: squares are summed in double", "[optim][clip]") {
  // One 1.0 and 2^22 copies of 2^-12: float accumulation of the squares (2^-24 each) onto 1.0 would
  // lose every one of them; the exact sum of squares is 1 + 2^22 * 2^-24 = 1.25.
  ArenaLayout L;
  L.add("big", DType::f32, Shape{1});
  L.add("small", DType::f32, Shape{1 << 22});
  Arena<Cpu> g(L);
  g.get<float>("big")(0) = 1.0f;
  for (float& x : g.get<float>("small")) x = 1.0f / 4096.0f;
  CHECK(optim::global_grad_norm(ctx, g) == Approx(std::sqrt(1.25)).epsilon(1e-12));
}

TEST_CASE("clip: a non-finite norm leaves the gradients alone and says so", "[optim][clip]") {
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()}) {
    Arena<Cpu> g(two_tensors());
    g.get<float>("a")(0) = 100.0f;
    g.get<float>("b")(0, 0) = bad;
    auto const r = optim::clip_grad_norm(ctx, g, 1.0);
    CHECK_FALSE(r.finite);
    CHECK_FALSE(std::isfinite(r.norm));
    CHECK(r.coeff == 1.0);
    CHECK(g.get<float>("a")(0) == 100.0f);
  }
  // Finite values whose squares overflow float still give a finite double norm.
  Arena<Cpu> g(two_tensors());
  g.get<float>("a")(0) = 3e30f;
  auto const r = optim::clip_grad_norm(ctx, g, 1.0);
  CHECK(r.finite);
  CHECK(r.norm == Approx(3e30).epsilon(1e-7));
}

TEST_CASE("NonFiniteGuard: skip, and stop after K in a row", "[optim][clip]") {
  double const nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  optim::NonFiniteGuard guard(3);
  CHECK(guard.check(1.0, 1) == StepVerdict::apply);
  CHECK(guard.check(nan, 2) == StepVerdict::skip);
  CHECK(guard.check(inf, 3) == StepVerdict::skip);
  CHECK(guard.consecutive() == 2);
  CHECK(guard.check(0.5, 4) == StepVerdict::apply);  // a finite step resets the run
  CHECK(guard.consecutive() == 0);
  CHECK(guard.check(nan, 5) == StepVerdict::skip);
  CHECK(guard.check(nan, 6) == StepVerdict::skip);
  CHECK(guard.check(nan, 7) == StepVerdict::stop);
  CHECK(guard.skipped_iterations() == std::vector<std::int64_t>{2, 3, 5, 6, 7});

  optim::NonFiniteGuard forever;  // K = 0: never stop
  for (int i = 0; i < 100; ++i) REQUIRE(forever.check(nan, i) == StepVerdict::skip);
  CHECK(forever.total_skipped() == 100);
}

TEST_CASE("a skipped step leaves parameters and optimizer state as they were", "[optim][clip]") {
  ArenaLayout L;
  L.add("w", DType::f32, Shape{4, 4});
  Arena<Cpu> p(L), g(L);
  for (float& x : p.get<float>("w")) x = 1.0f;
  optim::AdamW<Cpu> opt(L);
  optim::NonFiniteGuard guard(2);
  std::vector<float> grads_per_step{0.5f, std::numeric_limits<float>::quiet_NaN(), 0.25f};
  std::vector<StepVerdict> verdicts;
  for (std::size_t it = 0; it < grads_per_step.size(); ++it) {
    for (float& x : g.get<float>("w")) x = grads_per_step[it];
    auto const clip = optim::clip_grad_norm(ctx, g, 1.0);
    verdicts.push_back(guard.check(clip.norm, static_cast<std::int64_t>(it)));
    if (verdicts.back() == StepVerdict::apply) opt.step(ctx, p, g, 1e-3f);
    if (it == 1) CHECK(p.get<float>("w")(0, 0) < 1.0f);
  }
  CHECK(verdicts == std::vector<StepVerdict>{StepVerdict::apply, StepVerdict::skip, StepVerdict::apply});
  CHECK(opt.step_count() == 2);  // bias correction counts applied updates only
  CHECK(guard.skipped_iterations() == std::vector<std::int64_t>{1});
}

TEST_CASE("clip: the norm does not depend on the thread count", "[optim][clip]") {
  ArenaLayout L;
  L.add("x", DType::f32, Shape{100003});
  L.add("y", DType::f32, Shape{7, 5001});
  Arena<Cpu> g(L);
  for (std::size_t i = 0; i < L.size(); ++i) {
    auto v = g.get<float>(i);
    philox_fill_normal(v.data(), static_cast<std::size_t>(v.numel()), {77, i}, 0.0f, 1.0f);
  }
  int const saved = omp_get_max_threads();
  omp_set_num_threads(1);
  double const one = optim::global_grad_norm(ctx, g);
  omp_set_num_threads(3);
  double const three = optim::global_grad_norm(ctx, g);
  omp_set_num_threads(saved);
  CHECK(one == three);
  // And it is the norm: compare with a plain long-double sum.
  long double ref = 0.0L;
  for (std::size_t i = 0; i < L.size(); ++i)
    for (float x : g.get<float>(i)) ref += static_cast<long double>(x) * static_cast<long double>(x);
  CHECK(one == Approx(static_cast<double>(std::sqrt(ref))).epsilon(1e-13));
}
