// Spike handling's pieces (train/spikes.hpp): the statistics against hand-computed values, the
// window's rules (OLMo-core's minimum history, outliers kept out by the caller, the bound), the
// recipe keys with their defaults, inheritance and errors, the checkpointed state and the log
// truncation of a run with rollbacks. tests/train/spikes_test.py runs all of it end to end.
#include <catch2/catch.hpp>

#include <cmath>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>

#include "kumiki/train/checkpoint.hpp"
#include "kumiki/train/recipe.hpp"
#include "kumiki/train/spikes.hpp"
#include "kumiki/train/trainer.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using namespace kumiki::train;
using Catch::Contains;

TEST_CASE("spike statistics are the mean, the unbiased std and the z-score", "[train][spikes]") {
  // 1, 2, 3, 4: mean 2.5, sample variance (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5 / 3.
  std::deque<double> const v{1, 2, 3, 4};
  SpikeStat const s = spike_stat(v, 10.0);
  CHECK(s.mean == 2.5);
  CHECK(s.std == std::sqrt(5.0 / 3.0));
  CHECK(s.z == (10.0 - 2.5) / std::sqrt(5.0 / 3.0));
  std::deque<double> const flat{2, 2, 2};
  CHECK(spike_stat(flat, 2.0).z == 0.0);
  CHECK(spike_stat(flat, 2.5).z == std::numeric_limits<double>::infinity());
  CHECK(spike_stat(flat, 1.5).z == -std::numeric_limits<double>::infinity());
}

TEST_CASE("the window judges after min_history and flags upward outliers only", "[train][spikes]") {
  SpikePolicy p;
  p.window = 4;
  p.min_history = 3;  // two earlier steps
  p.sigma = 2.0;
  SpikeWindow w;
  CHECK_FALSE(w.judge(1.0, 1.0, p).judged);
  w.push(1.0, 1.0, p.window);
  CHECK_FALSE(w.judge(1.0, 1.0, p).judged);  // one earlier step: not yet
  w.push(1.2, 1.0, p.window);
  SpikeJudgement j = w.judge(1.1, 1.0, p);
  REQUIRE(j.judged);
  CHECK_FALSE(j.outlier());
  // Losses 1.0, 1.2: mean 1.1, std sqrt(0.02); 2 sigma above is 1.1 + 0.2828...
  CHECK(w.judge(1.38, 1.0, p).kind() == "");
  CHECK(w.judge(1.39, 1.0, p).kind() == "loss");
  CHECK(w.judge(-100.0, 1.0, p).kind() == "");        // far below: never an outlier
  CHECK(w.judge(1.1, 1.5, p).kind() == "grad_norm");  // the norm history is flat: any rise is out
  CHECK(w.judge(5.0, 1.5, p).kind() == "loss+grad_norm");
  // The window keeps the last `window` finite pairs, oldest first.
  for (double x : {3.0, 4.0, 5.0, 6.0}) w.push(x, x, p.window);
  w.push(std::nan(""), 1.0, p.window);
  w.push(1.0, std::numeric_limits<double>::infinity(), p.window);
  CHECK(w.losses() == std::deque<double>{3.0, 4.0, 5.0, 6.0});
  p.detect = false;
  CHECK_FALSE(w.judge(1e9, 1e9, p).judged);
}

TEST_CASE("the spike state round-trips through state.json, and old checkpoints read as fresh", "[train][spikes]") {
  TrainState s;
  s.step = 40;
  s.stage = "s1";
  s.spikes.window.push(2.5, 0.75, 8);
  s.spikes.window.push(0.1 + 0.2, 1.0 / 3.0, 8);  // values that need all 17 digits
  s.spikes.consecutive = 2;
  s.spikes.outliers_total = 3;
  s.spikes.rollbacks = 1;
  s.spikes.data_skip_batches = 5;
  s.spikes.lr_factor = 0.25;
  s.spikes.lr_factor_until = 44;
  TrainState const back = parse_train_state(to_json(s).dump(2), "state.json");
  CHECK(back.spikes.window.losses() == s.spikes.window.losses());
  CHECK(back.spikes.window.grad_norms() == s.spikes.window.grad_norms());
  CHECK(back.spikes.to_json() == s.spikes.to_json());
  CHECK(back.spikes.lr(1.0, 43) == 0.25);
  CHECK(back.spikes.lr(1.0, 44) == 1.0);

  auto j = to_json(s);
  j.erase("spikes");
  TrainState const old = parse_train_state(j.dump(), "state.json");
  CHECK(old.spikes.window.size() == 0);
  CHECK(old.spikes.rollbacks == 0);
  CHECK(old.spikes.lr_factor == 1.0);

  auto bad = to_json(s);
  bad["spikes"]["lr_factor"] = 2.0;
  CHECK_THROWS_WITH(parse_train_state(bad.dump(), "state.json"), Contains("\"spikes.lr_factor\" is 2"));
  bad = to_json(s);
  bad["spikes"]["window"]["loss"].push_back(1.0);
  CHECK_THROWS_WITH(parse_train_state(bad.dump(), "state.json"), Contains("holds 3 losses but 2 gradient norms"));
  bad = to_json(s);
  bad["spikes"]["window"]["grad_norm"][0] = "x";
  CHECK_THROWS_WITH(parse_train_state(bad.dump(), "state.json"), Contains("expected finite numbers"));
  bad = to_json(s);
  bad["spikes"]["consecutive_outliers"] = 41;
  CHECK_THROWS_WITH(parse_train_state(bad.dump(), "state.json"), Contains("exceed the 40 steps"));
}

namespace {

fs::path spike_data_dir() {
  fs::path const d = fs::temp_directory_path() / "kumiki-test-spikes";
  fs::create_directories(d);
  for (char const* ext : {".bin", ".idx"}) std::ofstream(d / (std::string("en") + ext)) << "x";
  return d;
}

std::string recipe(std::string const& spikes, std::string const& stage_spikes, std::string const& interval = "5") {
  return R"(model = "tiny_test"
seq_len = 16
global_batch = 4
micro_batch = 2
)" + spikes + R"(
[[stages]]
name = "a"
data = ["en"]
steps = 20
checkpoint_interval = )" + interval + R"(
[stages.lr]
lr_decay_style = "constant"
lr = 1e-3
)" + stage_spikes + R"(
[[stages]]
name = "b"
data = ["en"]
steps = 20
checkpoint_interval = 5
schedule = "continue"
)";
}

Recipe parse_spike_recipe(std::string const& text) { return parse_recipe(text, "r.toml", spike_data_dir()); }

}  // namespace

TEST_CASE("recipe spike keys: defaults, the recipe's table, a stage's own keys", "[train][spikes][recipe]") {
  Recipe const d = parse_spike_recipe(recipe("", ""));
  SpikePolicy const& p = d.stages[0].spikes;
  CHECK(p.detect);
  CHECK(p.skip);
  CHECK(p.window == 128);
  CHECK(p.sigma == 6.0);
  CHECK(p.min_history == 64);  // OLMo-core: max(2, W / 2)
  CHECK(p.max_consecutive == 8);
  CHECK_FALSE(p.rollback);

  Recipe const r = parse_spike_recipe(recipe("[spikes]\nwindow = 32\nrollback = true\n", "[stages.spikes]\nsigma = 4\nmin_history = 10\n"));
  CHECK(r.stages[0].spikes.window == 32);
  CHECK(r.stages[0].spikes.sigma == 4.0);
  CHECK(r.stages[0].spikes.min_history == 10);
  CHECK(r.stages[0].spikes.rollback);
  CHECK(r.stages[1].spikes.sigma == 6.0);         // stage b: only the recipe's table
  CHECK(r.stages[1].spikes.min_history == 16);    // follows its window, 32 / 2
  CHECK(r.stages[1].spikes.rollback);
}

TEST_CASE("wrong spike keys are rejected naming the key and the line", "[train][spikes][recipe]") {
  struct Case {
    std::string spikes, stage_spikes, interval, message;
  };
  std::vector<Case> const cases{
      {"[spikes]\nsigam = 3\n", "", "5", "recipe 'r.toml': unknown key 'spikes.sigam' (line 6): did you mean 'sigma'?"},
      {"[spikes]\nwindow = 1\n", "", "5", "key 'spikes.window' (line 6): must be >= 2 steps, got 1"},
      {"[spikes]\nsigma = 0\n", "", "5", "key 'spikes.sigma' (line 6): must be > 0"},
      {"", "[stages.spikes]\nmin_history = 2\n", "5", "key 'stages[0].spikes.min_history' (line 15): must be >= 3"},
      {"", "[stages.spikes]\nwindow = 8\nmin_history = 12\n", "5",
       "key 'stages[0].spikes' (line 14): min_history 12 is more than window + 1 = 9"},
      {"[spikes]\nrollback = true\n", "", "0",
       "key 'spikes' (line 5): rollback = true needs checkpoint_interval > 0 in stage 'a': a rollback reloads the newest "
       "checkpoint before the trouble (for stage 'a')"},
      {"", "[stages.spikes]\nrollback_lr_factor = 1.5\n", "5", "key 'stages[0].spikes.rollback_lr_factor' (line 15): must be in (0, 1]"},
      {"", "[stages.spikes]\nmax_consecutive = -1\n", "5", "key 'stages[0].spikes.max_consecutive' (line 15): must be >= 0"},
      {"", "[stages.spikes]\nskip = 1\n", "5", "key 'stages[0].spikes.skip' (line 15): must be a boolean, got an integer"},
      {"spikes = 3\n", "", "5", "key 'spikes' (line 5): must be a table, got an integer"},
  };
  for (auto const& c : cases) {
    INFO(c.spikes << c.stage_spikes);
    CHECK_THROWS_WITH(parse_spike_recipe(recipe(c.spikes, c.stage_spikes, c.interval)), Contains(c.message));
  }
}

TEST_CASE("resuming after a rollback keeps the abandoned branch and drops what followed the checkpoint",
          "[train][spikes][checkpoint]") {
  fs::path const dir = kumiki_test::fresh_dir("kumiki-test-rollback-log");
  // Branch 0 ran steps 0..6 and rolled back after step 6 to step 4; branch 1 went on from step 4.
  std::string const lines =
      "{\"type\":\"step\",\"step\":3}\n"
      "{\"type\":\"step\",\"step\":4}\n"
      "{\"type\":\"eval\",\"step\":5}\n"
      "{\"type\":\"step\",\"step\":5}\n"
      "{\"type\":\"step\",\"step\":6}\n"
      "{\"type\":\"rollback\",\"step\":6,\"to_step\":4,\"rollbacks\":0}\n"
      "{\"type\":\"step\",\"step\":4,\"rollbacks\":1}\n"
      "{\"type\":\"step\",\"step\":5,\"rollbacks\":1}\n"
      "{\"type\":\"eval\",\"step\":6,\"rollbacks\":1}\n"
      "{\"type\":\"step\",\"step\":6,\"rollbacks\":1}\n";
  auto const kept = [&](std::int64_t step, std::int64_t rollbacks) {
    std::ofstream(dir / "log.jsonl") << lines;
    kumiki::train::detail::truncate_log(dir / "log.jsonl", step, rollbacks);
    std::vector<std::string> out;
    for (auto const& j : read_jsonl((dir / "log.jsonl").string()))
      out.push_back(j["type"].get<std::string>() + std::to_string(j["step"].get<int>()) + "/" +
                    std::to_string(j.value("rollbacks", 0)));
    return out;
  };
  // From a checkpoint of branch 1 at step 6: all of branch 0, branch 1 up to its eval at step 6.
  CHECK(kept(6, 1) == std::vector<std::string>{"step3/0", "step4/0", "eval5/0", "step5/0", "step6/0", "rollback6/0",
                                               "step4/1", "step5/1", "eval6/1"});
  // From checkpoint 4 of branch 0 (killed inside the rollback): the run replays branch 0 from step 4.
  CHECK(kept(4, 0) == std::vector<std::string>{"step3/0"});
}

TEST_CASE("the spike test hook parses FIRST[-LAST]:FACTOR", "[train][spikes]") {
  auto const h = parse_spike_injection("30-33:20", "KUMIKI_SPIKE_AT");
  CHECK((h.first == 30 && h.last == 33 && h.factor == 20.0));
  CHECK(parse_spike_injection("7:0.5", "X").covers(7));
  CHECK_FALSE(parse_spike_injection("7:0.5", "X").covers(8));
  CHECK_THROWS_WITH(parse_spike_injection("7", "KUMIKI_SPIKE_AT"), Contains("expected FIRST[-LAST]:FACTOR"));
  CHECK_THROWS_WITH(parse_spike_injection("9-7:2", "KUMIKI_SPIKE_AT"), Contains("needs 0 <= FIRST <= LAST"));
  CHECK_THROWS_WITH(parse_spike_injection("a:2", "KUMIKI_SPIKE_AT"), Contains("expected FIRST[-LAST]:FACTOR"));
  CHECK_THROWS_WITH(parse_spike_injection("1:2x", "KUMIKI_SPIKE_AT"), Contains("trailing characters"));
}
