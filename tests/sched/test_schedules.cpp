// Learning-rate schedules at their boundary steps against values derived independently here.
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>

#include "kumiki/sched/schedule.hpp"

using namespace kumiki::sched;

namespace {

constexpr double kPi = 3.14159265358979323846;

// The expected values below are written out per segment (by hand where the number is simple, with
// std:: math otherwise); none of them calls the library.
constexpr double kMax = 1.0, kMin = 0.1, kInit = 0.01;
constexpr std::int64_t kW = 100, kD = 1100;

auto approx(double x) { return Approx(x).epsilon(1e-12).margin(1e-15); }

}  // namespace

// A static_assert proves the schedules evaluate in constant expressions (compile-time cos / sqrt /
// pow included), and pins exact values that need no rounding.
constexpr Cosine kCos{.max_lr = 3e-4, .min_lr = 3e-5, .init_lr = 0.0, .warmup = 2000, .decay_end = 100000};
static_assert(kCos.lr(0) == 0.0);
static_assert(kCos.lr(2000) == 3e-4);
static_assert(kCos.lr(100001) == 3e-5);
static_assert(kCos.lr(51000) > 1.65e-4 - 1e-12 && kCos.lr(51000) < 1.65e-4 + 1e-12);  // halfway: (max + min) / 2
constexpr Schedule kWsd = Wsd{.max_lr = 1.0, .min_lr = 0.0, .warmup = 10, .decay_end = 110, .wsd_decay = 100,
                              .wsd_style = DecayShape::minus_sqrt};
static_assert(kWsd.lr(35) > 0.5 - 1e-12 && kWsd.lr(35) < 0.5 + 1e-12);  // q = 1/4: 1 - sqrt(1/4)
constexpr Schedule kExp = Wsd{.max_lr = 1.0, .warmup = 0, .decay_end = 100, .wsd_decay = 100,
                              .wsd_style = DecayShape::exponential};
static_assert(kExp.lr(50) > 0.41421356237309504 - 1e-12 && kExp.lr(50) < 0.41421356237309504 + 1e-12);  // sqrt(2) - 1

TEST_CASE("constant: warmup from init_lr, then max_lr for ever", "[sched]") {
  Constant const s{.max_lr = kMax, .init_lr = kInit, .warmup = kW};
  CHECK(s.lr(0) == kInit);
  CHECK(s.lr(kW - 1) == approx(0.01 + 0.99 * 0.99));
  CHECK(s.lr(kW) == kMax);
  CHECK(s.lr(kW + 1) == kMax);
  CHECK(s.lr(kD) == kMax);
  CHECK(s.lr(kD + 1) == kMax);
  CHECK(s.lr(1'000'000'000) == kMax);  // min_lr never applies to constant (Megatron)
  Constant const no_warmup{.max_lr = 2e-4};
  CHECK(no_warmup.lr(0) == 2e-4);
}

TEST_CASE("linear: boundaries", "[sched]") {
  Linear const s{.max_lr = kMax, .min_lr = kMin, .init_lr = kInit, .warmup = kW, .decay_end = kD};
  CHECK(s.lr(0) == kInit);
  CHECK(s.lr(kW - 1) == approx(0.9901));  // 0.01 + 0.99 * 99/100
  CHECK(s.lr(kW) == kMax);                // the warmup branch includes s == W
  CHECK(s.lr(kW + 1) == approx(0.9991));  // 0.1 + 0.9 * (1 - 1/1000)
  CHECK(s.lr(600) == approx(0.55));       // halfway
  CHECK(s.lr(kD - 1) == approx(0.1009));
  CHECK(s.lr(kD) == approx(kMin));
  CHECK(s.lr(kD + 1) == kMin);
  CHECK(s.lr(10 * kD) == kMin);
}

TEST_CASE("cosine: boundaries", "[sched]") {
  Cosine const s{.max_lr = kMax, .min_lr = kMin, .init_lr = kInit, .warmup = kW, .decay_end = kD};
  auto expected = [](std::int64_t step) {  // half a cosine period from max (r = 0) to min (r = 1)
    double const angle = kPi * static_cast<double>(step - 100) / 1000.0;
    return 0.1 + 0.45 * (1.0 + std::cos(angle));
  };
  CHECK(s.lr(0) == kInit);
  CHECK(s.lr(kW - 1) == approx(0.9901));
  CHECK(s.lr(kW) == kMax);
  CHECK(s.lr(kW + 1) == approx(expected(kW + 1)));
  CHECK(s.lr(kW + 1) < kMax);
  CHECK(s.lr(600) == approx(0.55));
  CHECK(s.lr(350) == approx(0.1 + 0.45 * (1.0 + std::sqrt(0.5))));  // r = 1/4
  CHECK(s.lr(kD - 1) == approx(expected(kD - 1)));
  CHECK(s.lr(kD) == approx(kMin));
  CHECK(s.lr(kD + 1) == kMin);
}

TEST_CASE("inverse_sqrt: boundaries, min_lr floor and the decay_end cut", "[sched]") {
  InverseSqrt const s{.max_lr = kMax, .min_lr = 0.2, .init_lr = kInit, .warmup = kW, .decay_end = 100000};
  CHECK(s.lr(0) == kInit);
  CHECK(s.lr(kW - 1) == approx(0.9901));
  CHECK(s.lr(kW) == kMax);
  CHECK(s.lr(kW + 1) == approx(std::sqrt(100.0 / 101.0)));
  CHECK(s.lr(400) == approx(0.5));
  CHECK(s.lr(1600) == approx(0.25));
  CHECK(s.lr(2500) == approx(0.2));  // 1 * sqrt(100 / 2500) = 0.2
  CHECK(s.lr(3600) == 0.2);          // 1/6 < 0.2: floored
  CHECK(s.lr(100000) == 0.2);
  CHECK(s.lr(100001) == 0.2);
  // Without warmup Megatron uses max(W, 1) and max(n, 1): lr(0) = lr(1) = max_lr.
  InverseSqrt const cold{.max_lr = 1.0, .min_lr = 0.0, .decay_end = 1000};
  CHECK(cold.lr(0) == 1.0);
  CHECK(cold.lr(1) == 1.0);
  CHECK(cold.lr(4) == approx(0.5));
  CHECK(cold.lr(1000) == approx(1.0 / std::sqrt(1000.0)));
  CHECK(cold.lr(1001) == 0.0);  // n > D returns min_lr before the inverse-sqrt branch
}

TEST_CASE("wsd: every decay style at warmup, stable, anneal start and decay end", "[sched]") {
  constexpr std::int64_t wsd_decay = 200, anneal_start = kD - wsd_decay;  // 900
  double const q1 = 1.0 / 200.0;                                          // first anneal step
  struct Case {
    DecayShape shape;
    double at_first;  // coeff at q = 1/200
    double at_half;   // coeff at q = 1/2
  };
  std::array<Case, 4> const cases{{
      {DecayShape::linear, 1.0 - q1, 0.5},
      {DecayShape::cosine, (1.0 + std::cos(kPi * q1)) / 2.0, 0.5},
      {DecayShape::exponential, 2.0 * std::exp2(-q1) - 1.0, std::sqrt(2.0) - 1.0},  // 2 / sqrt(2) - 1
      {DecayShape::minus_sqrt, 1.0 - std::sqrt(q1), 1.0 - std::sqrt(0.5)},
  }};
  for (auto const& c : cases) {
    INFO("style " << decay_shape_name(c.shape));
    Wsd const s{.max_lr = kMax, .min_lr = kMin, .init_lr = kInit, .warmup = kW, .decay_end = kD,
                .wsd_decay = wsd_decay, .wsd_style = c.shape};
    CHECK(s.anneal_start() == anneal_start);
    CHECK(s.lr(0) == kInit);
    CHECK(s.lr(kW - 1) == approx(0.9901));
    CHECK(s.lr(kW) == kMax);
    CHECK(s.lr(kW + 1) == kMax);  // stable
    CHECK(s.lr(anneal_start) == kMax);
    CHECK(s.lr(anneal_start + 1) == approx(0.1 + 0.9 * c.at_first));
    CHECK(s.lr(anneal_start + 1) < kMax);
    CHECK(s.lr(anneal_start + 100) == approx(0.1 + 0.9 * c.at_half));
    CHECK(s.lr(kD) == approx(kMin));
    CHECK(s.lr(kD + 1) == kMin);
  }
}

TEST_CASE("wsd 'stable only' (wsd_decay 1) stays at max_lr until the decay end", "[sched]") {
  Wsd const s{.max_lr = 3e-4, .min_lr = 0.0, .warmup = 2000, .decay_end = 4'000'000, .wsd_decay = 1,
              .wsd_style = DecayShape::minus_sqrt};
  CHECK(s.lr(2'900'000) == 3e-4);
  CHECK(s.lr(3'999'999) == 3e-4);
  CHECK(s.lr(4'000'000) == 0.0);
}

TEST_CASE("samples unit: counts are iterations x global batch", "[sched]") {
  Clock const clock{Unit::samples, 8};
  // The same schedule given in samples (x8) equals the iteration one at every iteration.
  Wsd const it{.max_lr = kMax, .min_lr = kMin, .init_lr = kInit, .warmup = kW, .decay_end = kD, .wsd_decay = 200,
               .wsd_style = DecayShape::cosine};
  Wsd const sa{.max_lr = kMax, .min_lr = kMin, .init_lr = kInit, .warmup = 8 * kW, .decay_end = 8 * kD,
               .wsd_decay = 8 * 200, .wsd_style = DecayShape::cosine, .clock = clock};
  for (std::int64_t step : {0, 1, 99, 100, 101, 899, 900, 901, 1000, 1099, 1100, 1101})
    CHECK(sa.lr(step) == approx(it.lr(step)));
  // A warmup that ends between iterations: 804 samples; iteration 100 has consumed 800.
  Linear const mid{.max_lr = 1.0, .min_lr = 0.0, .warmup = 804, .decay_end = 8804, .clock = clock};
  CHECK(mid.lr(100) == approx(800.0 / 804.0));
  CHECK(mid.lr(101) == approx(1.0 - 4.0 / 8000.0));  // 808 samples: 4 past the warmup of a 8000-sample decay
}

TEST_CASE("decay branch: LLM-jp-4's branch equals Megatron WSD restarted with decay_end = S + N", "[sched]") {
  // The run: WSD stable only. The branch at 0.9M: minus_sqrt over 100k iterations to 0.
  Wsd const stable{.max_lr = 3e-4, .min_lr = 3e-5, .warmup = 2000, .decay_end = 10'000'000, .wsd_decay = 1,
                   .wsd_style = DecayShape::minus_sqrt};
  Branch const branch{.base = stable, .start = 900'000, .steps = 100'000, .to_lr = 0.0, .shape = DecayShape::minus_sqrt};
  // What LLM-jp launches in Megatron for that branch (min lr 0, decay iterations 100k, 1.0M total).
  Wsd const megatron{.max_lr = 3e-4, .min_lr = 0.0, .warmup = 2000, .decay_end = 1'000'000, .wsd_decay = 100'000,
                     .wsd_style = DecayShape::minus_sqrt};
  for (std::int64_t step : {0, 1999, 2000, 2001, 500'000, 899'999, 900'000, 900'001, 925'000, 999'999, 1'000'000, 1'000'001})
    CHECK(branch.lr(step) == approx(megatron.lr(step)));
  CHECK(branch.lr(925'000) == approx(1.5e-4));  // 3e-4 * (1 - sqrt(1/4))
  CHECK(branch.lr(1'000'001) == 0.0);
}

TEST_CASE("decay branch off a cosine mid-decay starts from the cosine's lr there", "[sched]") {
  Cosine const base{.max_lr = 1.0, .min_lr = 0.0, .warmup = 0, .decay_end = 1000};
  Branch const b{.base = base, .start = 500, .steps = 400, .to_lr = 0.0, .shape = DecayShape::linear};
  double const at_start = 0.5;  // (1 + cos(pi / 2)) / 2
  CHECK(b.lr(499) == approx((1.0 + std::cos(kPi * 0.499)) / 2.0));
  CHECK(b.lr(500) == approx(at_start));
  CHECK(b.lr(501) == approx(at_start * (1.0 - 1.0 / 400.0)));
  CHECK(b.lr(700) == approx(0.25));
  CHECK(b.lr(900) == 0.0);
  CHECK(b.lr(901) == 0.0);
}

TEST_CASE("linear anneal (OLMo 2 stage 2): from the current lr to 0, no warmup", "[sched]") {
  Anneal const a = linear_anneal(6e-5, 1000);
  CHECK(a.lr(0) == 6e-5);
  CHECK(a.lr(1) == approx(6e-5 * 0.999));
  CHECK(a.lr(500) == approx(3e-5));
  CHECK(a.lr(999) == approx(6e-8));
  CHECK(a.lr(1000) == 0.0);
  CHECK(a.lr(1001) == 0.0);
  Anneal const late{.from_lr = 1.0, .to_lr = 0.5, .start = 10, .steps = 10, .shape = DecayShape::linear};
  CHECK(late.lr(10) == 1.0);
  CHECK(late.lr(15) == approx(0.75));
  CHECK(late.lr(20) == 0.5);
}

TEST_CASE("multi-step (DeepSeek): x0.316 at 80% and again at 90%", "[sched]") {
  Steps const s = deepseek_steps(BaseSchedule(Constant{.max_lr = 4.2e-4, .warmup = 2000}), 100'000);
  CHECK(s.lr(0) == 0.0);
  CHECK(s.lr(1999) == approx(4.2e-4 * 1999.0 / 2000.0));
  CHECK(s.lr(2000) == 4.2e-4);
  CHECK(s.lr(79'999) == 4.2e-4);
  CHECK(s.lr(80'000) == approx(4.2e-4 * 0.316));
  CHECK(s.lr(89'999) == approx(4.2e-4 * 0.316));
  CHECK(s.lr(90'000) == approx(4.2e-4 * 0.099856));
  CHECK(s.lr(100'001) == approx(4.2e-4 * 0.099856));
}

TEST_CASE("weight-decay increment: constant, linear, cosine (Megatron start_wd -> end_wd)", "[sched]") {
  WeightDecaySchedule const c{};
  CHECK(c.wd(0) == 0.1);
  CHECK(c.wd(123456) == 0.1);
  WeightDecaySchedule const lin{.start_wd = 0.01, .end_wd = 0.1, .incr_steps = 1000, .style = WdIncrement::linear};
  CHECK(lin.wd(0) == 0.01);
  CHECK(lin.wd(1) == approx(0.01 + 0.09 / 1000.0));
  CHECK(lin.wd(500) == approx(0.055));
  CHECK(lin.wd(1000) == approx(0.1));
  CHECK(lin.wd(1001) == 0.1);
  WeightDecaySchedule const cosine{.start_wd = 0.01, .end_wd = 0.1, .incr_steps = 1000, .style = WdIncrement::cosine};
  CHECK(cosine.wd(0) == approx(0.01));
  CHECK(cosine.wd(250) == approx(0.01 + 0.09 * (1.0 - std::sqrt(0.5)) / 2.0));  // rises slowly first
  CHECK(cosine.wd(500) == approx(0.055));
  CHECK(cosine.wd(1000) == approx(0.1));
  CHECK(cosine.wd(1001) == 0.1);
}

TEST_CASE("compile-time and run-time evaluation agree", "[sched]") {
  constexpr std::array<Schedule, 6> schedules{
      Cosine{.max_lr = 3e-4, .min_lr = 3e-5, .warmup = 2000, .decay_end = 100000},
      Wsd{.max_lr = 3e-4, .warmup = 2000, .decay_end = 100000, .wsd_decay = 20000, .wsd_style = DecayShape::cosine},
      Wsd{.max_lr = 3e-4, .warmup = 2000, .decay_end = 100000, .wsd_decay = 20000, .wsd_style = DecayShape::exponential},
      Wsd{.max_lr = 3e-4, .warmup = 2000, .decay_end = 100000, .wsd_decay = 20000, .wsd_style = DecayShape::minus_sqrt},
      InverseSqrt{.max_lr = 3e-4, .min_lr = 1e-6, .warmup = 2000, .decay_end = 100000},
      Branch{.base = Cosine{.max_lr = 1.0, .decay_end = 1000}, .start = 300, .steps = 500, .shape = DecayShape::cosine},
  };
  constexpr std::array<std::int64_t, 8> steps{1, 2001, 50000, 80001, 85000, 99999, 350, 700};
  constexpr auto table = [&] {
    std::array<double, schedules.size() * steps.size()> t{};
    for (std::size_t i = 0; i < schedules.size(); ++i)
      for (std::size_t j = 0; j < steps.size(); ++j) t[i * steps.size() + j] = schedules[i].lr(steps[j]);
    return t;
  }();
  for (std::size_t i = 0; i < schedules.size(); ++i)
    for (std::size_t j = 0; j < steps.size(); ++j) {
      INFO(schedules[i].name() << " at " << steps[j]);
      CHECK(table[i * steps.size() + j] == Approx(schedules[i].lr(steps[j])).epsilon(1e-13).margin(1e-18));
    }
}

TEST_CASE("invalid schedules are input errors naming the recipe key and the value", "[sched]") {
  // The recipe keys (and, in kebab case, the `kumiki lr` flags) of the fields, in the schedule's unit.
  CHECK_THROWS_AS((Cosine{.max_lr = 1e-3, .warmup = 1000, .decay_end = 1000}.validate()), kumiki::InputError);
  CHECK_THROWS_WITH((Cosine{.max_lr = 1e-3, .warmup = 1000, .decay_end = 1000}.validate()),
                    "lr schedule 'cosine': lr_warmup_iters (1000) must be below lr_decay_iters (1000)");
  CHECK_THROWS_WITH((Cosine{.max_lr = 1e-3, .warmup = 1000, .decay_end = 1000, .clock = {Unit::samples, 4}}.validate()),
                    "lr schedule 'cosine': lr_warmup_samples (1000) must be below lr_decay_samples (1000)");
  CHECK_THROWS_WITH((Linear{.max_lr = 1e-3, .min_lr = 2e-3, .decay_end = 10}.validate()),
                    "lr schedule 'linear': need 0 <= min_lr <= lr, got min_lr 0.002, lr 0.001");
  CHECK_THROWS_WITH((Constant{.max_lr = 1e-3, .init_lr = 2e-3}.validate()),
                    "lr schedule 'constant': need 0 <= lr_warmup_init <= lr, got lr_warmup_init 0.002, lr 0.001");
  CHECK_THROWS_WITH((Wsd{.max_lr = 1e-3, .decay_end = 10}.validate()), "lr schedule 'WSD': lr_wsd_decay_iters must be positive, got 0");
  CHECK_THROWS_WITH((InverseSqrt{.max_lr = 1e-3}.validate()), "lr schedule 'inverse-square-root': lr_decay_iters must be positive, got 0");
  CHECK_THROWS_WITH((Anneal{.from_lr = 1.0}.validate()),
                    "lr schedule 'anneal': lr_wsd_decay_iters (the cooldown length) must be positive, got 0");
  CHECK_THROWS_WITH((Branch{.base = Constant{.max_lr = 1.0}, .start = std::numeric_limits<std::int64_t>::max(), .steps = 2}.validate()),
                    "lr schedule 'branch': branch_start_iters + branch_decay_iters is beyond the 64-bit range");
  CHECK_THROWS_WITH((WeightDecaySchedule{.start_wd = 0.0, .end_wd = 0.1}.validate()),
                    "weight-decay schedule: weight_decay_incr_style constant needs start_weight_decay == end_weight_decay, got 0 and 0.1");
  CHECK_NOTHROW((Wsd{.max_lr = 1e-3, .warmup = 10, .decay_end = 100, .wsd_decay = 20}.validate()));
}
