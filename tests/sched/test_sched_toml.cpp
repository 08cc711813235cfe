// Schedules round-trip through the recipe format (TOML, Megatron's vocabulary); bad tables are input
// errors naming the key, its line and what to write instead.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "kumiki/core/toml.hpp"
#include "kumiki/sched/toml.hpp"

using namespace kumiki::sched;
namespace toml = kumiki::toml;

namespace {

// Serialize to text and parse again: the trip a recipe file makes.
Schedule through_text(Schedule const& s) { return schedule_from_toml(toml::parse(toml::write(to_toml(s)))); }

Schedule parse(std::string_view text, TableContext const& ctx = {}) { return schedule_from_toml(toml::parse(text), "lr", ctx); }

TableContext run_of(std::int64_t iters) {
  TableContext c;
  c.train_iters = iters;
  return c;
}

/// The message of the InputError that parsing `text` throws ("" when it throws none).
std::string error_of(std::string_view text, TableContext const& ctx = {}) {
  try {
    parse(text, ctx);
  } catch (kumiki::InputError const& e) {
    return e.what();
  }
  return "";
}

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
      Anneal{.from_lr = 1e-3, .to_lr = 1e-5, .start = 40, .steps = 60, .shape = DecayShape::cosine},
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

TEST_CASE("a recipe table in Megatron's names reads into the schedule it describes", "[sched][toml]") {
  Schedule const s = parse(R"(
    lr_decay_style = "WSD"
    lr = 3e-4
    min_lr = 0
    lr_warmup_iters = 2000
    lr_decay_iters = 1000000
    lr_wsd_decay_iters = 100000
    lr_wsd_decay_style = "minus_sqrt"
  )");
  auto const* w = s.get_if<Wsd>();
  REQUIRE(w != nullptr);
  CHECK(w->max_lr == 3e-4);
  CHECK(w->min_lr == 0.0);  // an integer is accepted for a number
  CHECK(w->warmup == 2000);
  CHECK(w->decay_end == 1000000);
  CHECK(w->wsd_decay == 100000);
  CHECK(w->wsd_style == DecayShape::minus_sqrt);
  CHECK(w->init_lr == 0.0);  // absent keys keep the defaults
  CHECK(w->clock == Clock{});

  // Megatron's default cooldown shape is exponential; inverse-square-root is Megatron's spelling.
  CHECK(parse("lr_decay_style = 'WSD'\nlr = 1.0\nlr_decay_iters = 10\nlr_wsd_decay_iters = 2").get_if<Wsd>()->wsd_style ==
        DecayShape::exponential);
  CHECK(parse("lr_decay_style = 'inverse-square-root'\nlr = 1.0\nlr_decay_iters = 10").get_if<InverseSqrt>() != nullptr);
}

TEST_CASE("the decay length defaults to the run's (stage's) length", "[sched][toml]") {
  for (char const* style : {"linear", "cosine"}) {
    Schedule const s = parse(std::string("lr_decay_style = '") + style + "'\nlr = 1e-3\nlr_warmup_iters = 10", run_of(500));
    CHECK(s == (std::string(style) == "linear" ? Schedule(Linear{1e-3, 0.0, 0.0, 10, 500}) : Schedule(Cosine{1e-3, 0.0, 0.0, 10, 500})));
  }
  CHECK(parse("lr_decay_style = 'WSD'\nlr = 1e-3\nlr_wsd_decay_iters = 50", run_of(500)) ==
        Schedule(Wsd{1e-3, 0.0, 0.0, 0, 500, 50, DecayShape::exponential}));
  // In samples: the run's iterations times the global batch.
  TableContext ctx = run_of(500);
  ctx.global_batch = 8;
  CHECK(parse("lr_decay_style = 'cosine'\nlr = 1e-3\nlr_warmup_samples = 80", ctx) ==
        Schedule(Cosine{1e-3, 0.0, 0.0, 80, 4000, {Unit::samples, 8}}));
  // An anneal cools down over all of it unless told lr_wsd_decay_iters.
  CHECK(parse("lr_decay_style = 'anneal'\nlr = 1e-3", run_of(500)) == Schedule(Anneal{1e-3, 0.0, 0, 500, DecayShape::linear}));
  CHECK(parse("lr_decay_style = 'anneal'\nlr = 1e-3\nlr_wsd_decay_iters = 100", run_of(500)) ==
        Schedule(Anneal{1e-3, 0.0, 400, 100, DecayShape::linear}));
  // Without a run length the key is required.
  CHECK(error_of("lr_decay_style = 'cosine'\nlr = 1e-3") ==
        "key 'lr.lr_decay_iters' is missing: where the decay ends (Megatron's --lr-decay-iters)");
}

TEST_CASE("decay branches and milestones are keys beside their base schedule's", "[sched][toml]") {
  Schedule const b = parse(R"(
    lr_decay_style = "WSD"
    lr = 3e-4
    lr_warmup_iters = 20
    lr_decay_iters = 10000000
    lr_wsd_decay_iters = 1
    branch_start_iters = 60
    branch_decay_iters = 30
  )");
  CHECK(b == Schedule(Branch{Wsd{3e-4, 0.0, 0.0, 20, 10'000'000, 1, DecayShape::exponential}, 60, 30, 0.0, DecayShape::minus_sqrt}));
  Schedule const m = parse("lr_decay_style = 'constant'\nlr = 1e-3\nmilestone_iters = [80, 90]\nmilestone_factors = [0.5]");
  auto const* st = m.get_if<Steps>();
  REQUIRE(st != nullptr);
  REQUIRE(st->count == 2);
  CHECK(st->milestones[0] == Milestone{80, 0.5});
  CHECK(st->milestones[1] == Milestone{90, 0.5});
  CHECK(m.lr(95) == 1e-3 * 0.5 * 0.5);
}

TEST_CASE("weight-decay schedule round-trips in Megatron's names", "[sched][toml]") {
  WeightDecaySchedule const w{.start_wd = 0.01, .end_wd = 0.1, .incr_steps = 5000, .style = WdIncrement::cosine};
  CHECK(from_toml<WeightDecaySchedule>(toml::parse(toml::write(to_toml(w)))) == w);
  WeightDecaySchedule const r = wd_schedule_from_toml(
      toml::parse("weight_decay_incr_style = 'linear'\nstart_weight_decay = 0.0\nend_weight_decay = 0.1"), "weight_decay", run_of(300));
  CHECK(r == WeightDecaySchedule{0.0, 0.1, 300, WdIncrement::linear, {}});
  CHECK_THROWS_WITH(wd_schedule_from_toml(toml::parse("style = 'linear'")),
                    "key 'weight_decay.style' (line 1): renamed: use 'weight_decay_incr_style' (Megatron's --weight-decay-incr-style)");
}

// One case per class of error, each with the full message a user sees (after "recipe 'F': ").
TEST_CASE("bad schedule tables say which key, where, and what to write", "[sched][toml]") {
  std::string const cosine = "lr_decay_style = 'cosine'\nlr = 1e-3\nlr_decay_iters = 10\n";
  struct Case {
    std::string text, message;
  };
  std::vector<Case> const cases{
      // unknown key: the closest valid key (also through an old name close to the misspelling)
      {cosine + "lr_warmup_iter = 3", "unknown key 'lr.lr_warmup_iter' (line 4): did you mean 'lr_warmup_iters'?"},
      {cosine + "warmpu = 3", "unknown key 'lr.warmpu' (line 4): did you mean 'lr_warmup_iters'?"},
      {cosine + "gamma = 3",
       "unknown key 'lr.gamma' (line 4) (valid keys here: lr_decay_style, lr, min_lr, lr_warmup_init, lr_warmup_iters, "
       "lr_warmup_samples, lr_decay_iters, lr_decay_samples, lr_wsd_decay_iters, lr_wsd_decay_samples, lr_wsd_decay_style, "
       "branch_start_iters, branch_start_samples, branch_decay_iters, branch_decay_samples, branch_min_lr, branch_decay_style, "
       "milestone_iters, milestone_samples, milestone_factors, global_batch)"},
      // unknown keys come before missing ones
      {"lr_decay_stlye = 'cosine'", "unknown key 'lr.lr_decay_stlye' (line 1): did you mean 'lr_decay_style'?"},
      // renamed keys and values
      {"style = 'cosine'", "key 'lr.style' (line 1): renamed: use 'lr_decay_style' (Megatron's --lr-decay-style)"},
      {"lr_decay_style = 'cosine'\nmax_lr = 1e-3", "key 'lr.max_lr' (line 2): renamed: use 'lr' (Megatron's --lr)"},
      {cosine + "decay_end = 10",
       "key 'lr.decay_end' (line 4): renamed: use 'lr_decay_iters' (Megatron's --lr-decay-iters; lr_decay_samples in samples)"},
      {cosine + "wsd_style = 'cosine'", "key 'lr.wsd_style' (line 4): renamed: use 'lr_wsd_decay_style' (Megatron's --lr-wsd-decay-style)"},
      {"lr_decay_style = 'inverse_sqrt'\nlr = 1.0",
       "key 'lr.lr_decay_style' (line 1): value \"inverse_sqrt\" was renamed: use \"inverse-square-root\" (Megatron's --lr-decay-style)"},
      {"lr_decay_style = 'wsd'\nlr = 1.0",
       "key 'lr.lr_decay_style' (line 1): value \"wsd\" was renamed: use \"WSD\" (Megatron's --lr-decay-style)"},
      {"lr_decay_style = 'branch'\nlr = 1.0",
       "key 'lr.lr_decay_style' (line 1): value \"branch\" is no longer a style: a decay branch is branch_start_iters and "
       "branch_decay_iters beside the schedule's keys"},
      {cosine + "unit = 'samples'",
       "key 'lr.unit' (line 4): renamed: give every length as KEY_iters or as KEY_samples (Megatron's --lr-decay-iters / "
       "--lr-decay-samples, ...)"},
      // wrong type
      {"lr_decay_style = 'cosine'\nlr = '1e-3'\nlr_decay_iters = 10", "key 'lr.lr' (line 2): must be a number, got a string"},
      {"lr_decay_style = 'cosine'\nlr = 1e-3\nlr_decay_iters = 10.5", "key 'lr.lr_decay_iters' (line 3): must be an integer, got a float"},
      {"lr_decay_style = 3", "key 'lr.lr_decay_style' (line 1): must be a string, got an integer"},
      // missing key
      {"lr = 1e-3",
       "key 'lr.lr_decay_style' is missing: the schedule's style: \"constant\", \"linear\", \"cosine\", \"inverse-square-root\", "
       "\"WSD\" or \"anneal\" (Megatron's --lr-decay-style)"},
      {"lr_decay_style = 'cosine'", "key 'lr.lr' is missing: the peak learning rate (Megatron's --lr)"},
      {"lr_decay_style = 'WSD'\nlr = 1.0\nlr_decay_iters = 10",
       "key 'lr.lr_wsd_decay_iters' is missing: the length of WSD's cooldown (Megatron's --lr-wsd-decay-iters)"},
      // bad enum value
      {"lr_decay_style = 'warmup_stable'\nlr = 1.0",
       "key 'lr.lr_decay_style' (line 1): unknown value \"warmup_stable\" (expected \"constant\", \"linear\", \"cosine\", "
       "\"inverse-square-root\", \"WSD\" or \"anneal\")"},
      {"lr_decay_style = 'WSD'\nlr = 1.0\nlr_decay_iters = 10\nlr_wsd_decay_iters = 2\nlr_wsd_decay_style = 'sqrt'",
       "key 'lr.lr_wsd_decay_style' (line 5): unknown value \"sqrt\" (expected \"exponential\", \"linear\", \"cosine\" or \"minus_sqrt\")"},
      // keys that do not apply, mixed units
      {"lr_decay_style = 'constant'\nlr = 1.0\nmin_lr = 0.1",
       "key 'lr.min_lr' (line 3): does not apply to lr_decay_style \"constant\": a constant schedule does not decay"},
      {cosine + "lr_wsd_decay_iters = 3",
       "key 'lr.lr_wsd_decay_iters' (line 4): does not apply to lr_decay_style \"cosine\" (only to \"WSD\" and \"anneal\")"},
      {cosine + "lr_warmup_samples = 3",
       "key 'lr.lr_warmup_samples' (line 4): the lengths of one schedule are all in iterations or all in samples, but "
       "'lr_decay_iters' (line 3) is in iterations"},
      {"lr_decay_style = 'cosine'\nlr = 1.0\nlr_decay_samples = 10",
       "key 'lr.global_batch' is missing: lengths in samples need the samples per iteration"},
      // bad values (Megatron's assertions), naming the keys and the values
      {"lr_decay_style = 'cosine'\nlr = 1e-3\nlr_warmup_iters = 10\nlr_decay_iters = 10",
       "key 'lr': lr schedule 'cosine': lr_warmup_iters (10) must be below lr_decay_iters (10)"},
      {"lr_decay_style = 'linear'\nlr = 1e-3\nmin_lr = 2e-3\nlr_decay_iters = 10",
       "key 'lr': lr schedule 'linear': need 0 <= min_lr <= lr, got min_lr 0.002, lr 0.001"},
      {"lr_decay_style = 'cosine'\nlr = 1e-3\nlr_decay_iters = 0", "key 'lr': lr schedule 'cosine': lr_decay_iters must be positive, got 0"},
      {"lr_decay_style = 'WSD'\nlr = 1e-3\nlr_decay_iters = 10\nlr_wsd_decay_iters = 0",
       "key 'lr': lr schedule 'WSD': lr_wsd_decay_iters must be positive, got 0"},
      {"lr_decay_style = 'constant'\nlr = 1e-3\nlr_warmup_init = 2e-3",
       "key 'lr': lr schedule 'constant': need 0 <= lr_warmup_init <= lr, got lr_warmup_init 0.002, lr 0.001"},
      {"lr_decay_style = 'cosine'\nlr = nan\nlr_decay_iters = 10", "key 'lr.lr' (line 2): must be a finite number, got nan"},
      {"lr_decay_style = 'anneal'\nlr = 1e-3\nlr_decay_iters = 10\nlr_wsd_decay_iters = 20",
       "key 'lr.lr_wsd_decay_iters' (line 4): the cooldown (20) cannot be longer than lr_decay_iters (10)"},
      {cosine + "branch_start_iters = 5", "key 'lr.branch_decay_iters' is missing: the length of the decay branch"},
      {cosine + "branch_start_iters = -5\nbranch_decay_iters = 3",
       "key 'lr': lr schedule 'branch': branch_start_iters must be >= 0, got -5"},
      {"lr_decay_style = 'constant'\nlr = 1.0\nmilestone_iters = [9, 5]\nmilestone_factors = [0.5]",
       "key 'lr': lr schedule 'steps': milestone_iters must be in increasing order, got 9 before 5"},
      {"lr_decay_style = 'constant'\nlr = 1.0\nmilestone_iters = [9]",
       "key 'lr.milestone_factors' is missing: the factor (or one per milestone) of milestone_iters"},
  };
  for (auto const& c : cases) {
    INFO(c.text);
    std::string const got = error_of(c.text);
    CHECK(got == c.message);
    CHECK(got.find(".hpp") == std::string::npos);
  }
}

TEST_CASE("a table of command-line options names the flags", "[sched][toml]") {
  TableContext ctx = run_of(100);
  ctx.flags = true;
  auto const message = [&](std::string_view text) {
    try {
      schedule_from_toml(toml::parse(text), "", ctx);
    } catch (kumiki::InputError const& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(message("lr_decay_style = 'cosine'") == "--lr is missing: the peak learning rate (Megatron's --lr)");
  CHECK(message("lr_decay_style = 'WSD'\nlr = 1.0") ==
        "--lr-wsd-decay-iters is missing: the length of WSD's cooldown (Megatron's --lr-wsd-decay-iters)");
  CHECK(message("lr_decay_style = 'cosine'\nlr = 1.0\nlr_warmup_iters = 200") ==
        "lr schedule 'cosine': lr_warmup_iters (200) must be below lr_decay_iters (100)");
}

TEST_CASE("schedule_differences lists the keys a resumed run would change", "[sched][toml]") {
  Wsd const stable{.max_lr = 3e-4, .warmup = 2000, .decay_end = 1'000'000, .wsd_decay = 100'000};
  Schedule const saved = stable;
  CHECK(schedule_differences(saved, saved).empty());
  Schedule const changed = Wsd{.max_lr = 3e-4, .warmup = 1000, .decay_end = 1'000'000, .wsd_decay = 100'000,
                               .wsd_style = DecayShape::minus_sqrt};
  auto const d = schedule_differences(saved, changed);
  REQUIRE(d.size() == 2);
  CHECK(d[0] == "lr_warmup_iters: 2000 -> 1000");
  CHECK(d[1] == "lr_wsd_decay_style: \"exponential\" -> \"minus_sqrt\"");
  Schedule const branch = Branch{.base = stable, .start = 900'000, .steps = 100'000};
  auto const db = schedule_differences(saved, branch);
  CHECK(std::find(db.begin(), db.end(), "branch_start_iters: (absent) -> 900000") != db.end());
  CHECK(std::find(db.begin(), db.end(), "branch_decay_iters: (absent) -> 100000") != db.end());
}
