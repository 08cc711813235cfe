// Schedules round-trip through the recipe format (TOML); bad recipes are errors naming the key.
#include <catch2/catch.hpp>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include <toml++/toml.h>

#include "kumiki/sched/toml.hpp"

using namespace kumiki::sched;
using Catch::Matchers::Contains;

namespace {

// Serialize to text and parse again: the trip a recipe file makes.
Schedule through_text(Schedule const& s) {
  std::ostringstream out;
  out << to_toml(s);
  return schedule_from_toml(toml::parse(out.str()));
}

Schedule parse(std::string_view text) { return schedule_from_toml(toml::parse(text)); }

}  // namespace

TEST_CASE("every schedule kind round-trips through TOML text", "[sched][toml]") {
  std::vector<Schedule> const all{
      Constant{.max_lr = 3e-5, .init_lr = 1e-7, .warmup = 7},
      Linear{.max_lr = 1.0 / 3.0, .min_lr = 1e-9, .warmup = 10, .decay_end = 20},
      Cosine{.max_lr = 3e-4, .min_lr = 3e-5, .warmup = 2000, .decay_end = 100000, .clock = {Unit::samples, 512}},
      InverseSqrt{.max_lr = 1e-3, .min_lr = 0.0, .warmup = 4000, .decay_end = 1 << 30},
      Wsd{.max_lr = 3e-4, .min_lr = 0.0, .warmup = 2000, .decay_end = 1'000'000, .wsd_decay = 100'000,
          .wsd_style = DecayShape::minus_sqrt},
      linear_anneal(3e-5, 12000),
      Branch{.base = Wsd{.max_lr = 3e-4, .warmup = 2000, .decay_end = 9'000'000, .wsd_decay = 1},
             .start = 1'900'000, .steps = 100'000, .to_lr = 0.0, .shape = DecayShape::minus_sqrt},
      deepseek_steps(BaseSchedule(Constant{.max_lr = 4.2e-4, .warmup = 2000}), 100'000),
  };
  for (auto const& s : all) {
    INFO(s.name() << "\n" << to_toml(s));
    Schedule const back = through_text(s);
    CHECK(back == s);
    CHECK(back.lr(12345) == s.lr(12345));
  }
}

TEST_CASE("a recipe table reads into the schedule it describes", "[sched][toml]") {
  Schedule const s = parse(R"(
    style = "wsd"
    max_lr = 3e-4
    min_lr = 0
    warmup = 2000
    decay_end = 1000000
    wsd_decay = 100000
    wsd_style = "minus_sqrt"
    unit = "iterations"
  )");
  auto const* w = s.get_if<Wsd>();
  REQUIRE(w != nullptr);
  CHECK(w->max_lr == 3e-4);
  CHECK(w->min_lr == 0.0);  // an integer is accepted for a number
  CHECK(w->warmup == 2000);
  CHECK(w->wsd_style == DecayShape::minus_sqrt);
  CHECK(w->init_lr == 0.0);  // absent keys keep the defaults
}

TEST_CASE("weight-decay schedule round-trips", "[sched][toml]") {
  WeightDecaySchedule const w{.start_wd = 0.01, .end_wd = 0.1, .incr_steps = 5000, .style = WdIncrement::cosine};
  std::ostringstream out;
  out << to_toml(w);
  CHECK(from_toml<WeightDecaySchedule>(toml::parse(out.str())) == w);
}

TEST_CASE("bad recipes name the offending key", "[sched][toml]") {
  CHECK_THROWS_WITH(parse("style = 'cosine'\nmax_lr = 1e-3\ndecay_end = 10\nwarmpu = 3"), Contains("'lr.warmpu'"));
  CHECK_THROWS_WITH(parse("style = 'cosine'\nmax_lr = '1e-3'\ndecay_end = 10"), Contains("'lr.max_lr' (line 2): must be a number"));
  CHECK_THROWS_WITH(parse("style = 'cosine'\nmax_lr = 1e-3\ndecay_end = 10.5"), Contains("'lr.decay_end' (line 3): must be an integer"));
  CHECK_THROWS_WITH(parse("style = 'warmup_stable'\nmax_lr = 1e-3"), Contains("unknown schedule"));
  CHECK_THROWS_WITH(parse("max_lr = 1e-3"), Contains("'lr.style'") && Contains("is missing"));
  CHECK_THROWS_WITH(parse("style = 'wsd'\nmax_lr = 1e-3\ndecay_end = 10\nwsd_decay = 2\nwsd_style = 'sqrt'"),
                    Contains("'lr.wsd_style'"));
  CHECK_THROWS_WITH(parse("style = 'cosine'\nmax_lr = 1e-3\ndecay_end = 10\nunit = 'tokens'"), Contains("'lr.unit'"));
  CHECK_THROWS_WITH(parse("style = 'branch'\nstart = 10\nsteps = 5\n[base]\nstyle = 'constant'\nmax_lr = 1.0\nmin_lr = 0.1"),
                    Contains("'lr.base.min_lr'"));  // constant has no min_lr
  CHECK_THROWS_WITH(parse("style = 'branch'\nstart = 10\nsteps = 5"), Contains("'lr.base'") && Contains("is missing"));
  CHECK_THROWS_WITH(parse("style = 'steps'\nmilestones = [{ step = 10, factor = 0.5, gamma = 1 }]\n[base]\nstyle = 'constant'"),
                    Contains("'lr.milestones[0].gamma'"));
  CHECK_THROWS_WITH(parse("style = 'cosine'\nmax_lr = 1e-3\nwarmup = 10\ndecay_end = 10"), Contains("decay_end"));  // validated
  CHECK_THROWS_WITH(wd_schedule_from_toml(toml::parse("style = 'linear'\nstart_wd = 0.0\nend_wd = 0.1\nincr = 3")),
                    Contains("'weight_decay.incr'"));
}

TEST_CASE("schedule_differences lists the keys a resumed run would change", "[sched][toml]") {
  Wsd const stable{.max_lr = 3e-4, .warmup = 2000, .decay_end = 1'000'000, .wsd_decay = 100'000};
  Schedule const saved = stable;
  CHECK(schedule_differences(saved, saved).empty());
  Schedule const changed = Wsd{.max_lr = 3e-4, .warmup = 1000, .decay_end = 1'000'000, .wsd_decay = 100'000,
                               .wsd_style = DecayShape::minus_sqrt};
  auto const d = schedule_differences(saved, changed);
  REQUIRE(d.size() == 2);
  CHECK(d[0] == "warmup: 2000 -> 1000");
  CHECK(d[1] == "wsd_style: 'exponential' -> 'minus_sqrt'");
  Schedule const branch = Branch{.base = stable, .start = 900'000, .steps = 100'000};
  auto const db = schedule_differences(saved, branch);
  CHECK(std::find(db.begin(), db.end(), "style: 'wsd' -> 'branch'") != db.end());
  CHECK(std::find(db.begin(), db.end(), "start: (absent) -> 900000") != db.end());
}
