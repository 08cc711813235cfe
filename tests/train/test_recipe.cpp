// Recipes: a three-stage recipe parses into the expected stages and learning-rate plan; each kind of
// wrong recipe is rejected with an error naming the key and its line.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "kumiki/train/recipe.hpp"

namespace fs = std::filesystem;
using namespace kumiki::train;

namespace {

fs::path data_dir() {
  fs::path const d = fs::temp_directory_path() / "kumiki-test-recipe";
  fs::create_directories(d);
  for (char const* name : {"en", "ja", "hq", "en_val"})
    for (char const* ext : {".bin", ".idx"}) std::ofstream(d / (std::string(name) + ext)) << "x";
  return d;
}

std::string const good = R"(
model = "tiny_test"
seed = 7
seq_len = 32
global_batch = 8
micro_batch = 2

[optimizer]
weight_decay = 0.1
clip_grad = 1.0

[[stages]]
name = "english"
data = [1.0, "en"]
steps = 100
eval = [ { name = "en-val", prefix = "en_val" } ]
eval_interval = 50
checkpoint_interval = 25
[stages.lr]
style = "wsd"
max_lr = 1e-3
min_lr = 0.0
warmup = 10
decay_end = 1000
wsd_decay = 1
wsd_style = "minus_sqrt"

[[stages]]
name = "japanese"
data = [0.7, "ja", 0.3, "en"]
tokens = 12800
schedule = "continue"

[[stages]]
name = "anneal"
data = [1, "hq"]
steps = 20
schedule = "anneal"
decay_to = 0.0
seed = 42
)";

Recipe parse(std::string const& text) { return parse_recipe(text, "r.toml", data_dir()); }

std::string replace(std::string s, std::string const& from, std::string const& to) {
  auto const at = s.find(from);
  REQUIRE(at != std::string::npos);
  return s.replace(at, from.size(), to);
}

}  // namespace

TEST_CASE("a three-stage recipe parses and resolves its learning-rate plan", "[train][recipe]") {
  Recipe const r = parse(good);
  CHECK(r.model == "tiny_test");
  CHECK(r.accumulation_steps() == 4);
  REQUIRE(r.stages.size() == 3);
  CHECK(r.stages[0].steps == 100);
  CHECK(r.stages[1].steps == 50);  // 12800 tokens / (8 x 32)
  CHECK(r.stages[1].data.size() == 2);
  CHECK(r.stages[1].data[0].weight == 0.7);
  CHECK(r.stages[1].data[0].prefix == data_dir() / "ja");
  CHECK(r.stages[2].seed == 42);
  CHECK(r.stages[1].seed == 7);
  CHECK(r.total_steps() == 170);
  CHECK(r.stage_start(2) == 150);
  CHECK(r.stage_of(149) == 1);
  CHECK(r.stage_of(150) == 2);
  // Warmup (Megatron: init_lr + (max - init) * s / W), then the stable phase carried into stage 2.
  CHECK(r.lr(0) == 0.0);
  CHECK(std::abs(r.lr(5) - 5e-4) < 1e-15);
  CHECK(r.lr(10) == 1e-3);
  CHECK(r.lr(120) == 1e-3);
  // Anneal: from the lr reached at step 150 (1e-3) linearly to 0 over the 20 steps of the stage.
  CHECK(r.lr(150) == 1e-3);
  CHECK(std::abs(r.lr(160) - 0.5e-3) < 1e-15);
  CHECK(std::abs(r.lr(169) - 0.05e-3) < 1e-15);
}

TEST_CASE("a decay branch starts from the lr reached and follows its shape", "[train][recipe]") {
  std::string text = replace(good, "schedule = \"anneal\"", "schedule = \"branch\"\ndecay_shape = \"minus_sqrt\"\ndecay_steps = 16");
  Recipe const r = parse(text);
  CHECK(r.lr(150) == 1e-3);
  CHECK(std::abs(r.lr(154) - 1e-3 * (1 - std::sqrt(4.0 / 16))) < 1e-15);
  CHECK(r.lr(166) == 0.0);
}

TEST_CASE("wrong recipes are rejected naming the key and the line", "[train][recipe]") {
  auto rejects = [](std::string const& text, std::string const& expected) {
    CHECK_THROWS_WITH(parse(text), Catch::Contains(expected));
  };
  rejects(replace(good, "seed = 7", "seed = 7\nsead = 8"), "recipe key 'sead' (line 4): unknown key");
  rejects(replace(good, "micro_batch = 2", "micro_batch = 3"),
          "recipe key 'micro_batch' (line 6): global_batch 8 is not a multiple of micro_batch 3");
  rejects(replace(good, "seq_len = 32", "seq_len = \"32\""), "recipe key 'seq_len' (line 4): must be an integer, got a string");
  rejects(replace(good, "model = \"tiny_test\"", "model = \"gpt5\""), "recipe key 'model' (line 2): unknown model configuration 'gpt5'");
  rejects(replace(good, "data = [0.7, \"ja\"", "data = [0.0, \"ja\""), "recipe key 'stages[1].data[0]' (line 30): blend weight must be > 0");
  rejects(replace(good, "data = [0.7, \"ja\"", "data = [-1, \"ja\""), "blend weight must be > 0");
  rejects(replace(good, "data = [1, \"hq\"]", "data = [1, \"missing\"]"), "stages[2].data[1]' (line 36): dataset file");
  rejects(replace(good, "data = [1, \"hq\"]", "data = [1, \"hq\", 2]"), "must hold weight, prefix pairs");
  rejects(replace(good, "wsd_style = \"minus_sqrt\"", "wsd_style = \"minus_sqrt\"\nfoo = 1"), "stages[0].lr.foo");
  rejects(replace(good, "tokens = 12800", "tokens = 12800\nsteps = 3"), "give exactly one of 'steps' or 'tokens'");
  rejects(replace(good, "schedule = \"continue\"", "schedule = \"sideways\""), "unknown value \"sideways\"");
  rejects(good + "\n[[oops]]\nx = 1\n", "recipe key 'oops' (line 42): unknown key");
  rejects(replace(good, "seq_len = 32", "seq_len = 100000"), "above the model's max_seq_len");
  rejects(replace(good, "clip_grad = 1.0", "clip_grad = true"), "recipe key 'optimizer.clip_grad' (line 10): must be a number, got a boolean");
  rejects("model = \"tiny_test\"\nseq_len = [", "line 2: TOML syntax error");
  rejects(replace(good, "name = \"japanese\"", "name = \"english\""), "stage name 'english' is used twice");
}

TEST_CASE("the first stage must start a schedule", "[train][recipe]") {
  std::string text = replace(good, "checkpoint_interval = 25", "checkpoint_interval = 25\nschedule = \"continue\"");
  CHECK_THROWS_WITH(parse(text), Catch::Contains("the first stage has no schedule to continue"));
}

TEST_CASE("a stage's split and weightless data follow Megatron's --split and --data-path", "[train][recipe]") {
  Recipe const r = parse(good);
  CHECK(r.stages[0].split == "969,30,1");  // Megatron's default: stages train on the train part
  CHECK(r.stages[0].eval[0].split.empty());  // eval sets read whole files unless given a split
  std::string text = replace(good, "data = [0.7, \"ja\", 0.3, \"en\"]",
                             "data = [\"ja\", \"en\"]\nsplit = \"98,2\"\neval = [{ name = \"v\", prefix = \"en_val\", split = \"9,1\" }]");
  Recipe const w = parse(text);
  REQUIRE(w.stages[1].data.size() == 2);
  CHECK(!w.stages[1].data[0].weight.has_value());
  CHECK(w.stages[1].data[1].prefix == data_dir() / "en");
  CHECK(w.stages[1].split == "98,2");
  REQUIRE(w.stages[1].eval.size() == 1);
  CHECK(w.stages[1].eval[0].split == "9,1");
  CHECK(parse(replace(good, "data = [1, \"hq\"]", "data = [\"hq\"]")).stages[2].data.size() == 1);
  auto rejects = [](std::string const& t, std::string const& expected) {
    CHECK_THROWS_WITH(parse(t), Catch::Contains(expected));
  };
  rejects(replace(good, "data = [0.7, \"ja\"", "data = [0.0, \"ja\""), "got 0 for dataset 'ja'");
  rejects(replace(good, "data = [0.7, \"ja\"", "data = [nan, \"ja\""), "got nan for dataset 'ja'");
  rejects(replace(good, "data = [1, \"hq\"]", "data = [1, \"hq\"]\nsplit = \"98,x\""), "recipe key 'stages[2].split' (line 37)");
  rejects(replace(good, "data = [1, \"hq\"]", "data = [1, \"hq\"]\nsplit = \"0,0,0\""), "stages[2].split");
  rejects(replace(good, "data = [1, \"hq\"]", "data = [\"hq\", 1]"), "must be a weight (number), got a string");
}
