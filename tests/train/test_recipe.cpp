// Recipes: a three-stage recipe parses into the expected stages and learning-rate plan; each kind of
// wrong recipe is rejected with an error naming the key and its line.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

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
lr_decay_style = "WSD"
lr = 1e-3
min_lr = 0.0
lr_warmup_iters = 10
lr_decay_iters = 1000
lr_wsd_decay_iters = 1
lr_wsd_decay_style = "minus_sqrt"

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
min_lr = 0.0
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
  std::string text = replace(good, "schedule = \"anneal\"", "schedule = \"branch\"\nlr_wsd_decay_style = \"minus_sqrt\"\nlr_decay_iters = 16");
  Recipe const r = parse(text);
  CHECK(r.lr(150) == 1e-3);
  CHECK(std::abs(r.lr(154) - 1e-3 * (1 - std::sqrt(4.0 / 16))) < 1e-15);
  CHECK(r.lr(166) == 0.0);
}

/// The message of the InputError that parsing `text` throws ("" when it parses).
std::string error_of(std::string const& text) {
  try {
    parse(text);
  } catch (kumiki::InputError const& e) {
    return e.what();
  }
  return "";
}

// One check per class of error, each with the whole message the user sees: the file, the key path
// and its line, and what to do; never a library source location.
TEST_CASE("wrong recipes are rejected naming the key and the line", "[train][recipe]") {
  std::string const dir = data_dir().string();
  struct Case {
    std::string text, message;
  };
  std::vector<Case> const cases{
      // unknown keys at every level, with the closest valid key; checked before missing keys
      {replace(good, "micro_batch = 2", "micro_bach = 2"), "recipe 'r.toml': unknown key 'micro_bach' (line 6): did you mean 'micro_batch'?"},
      {replace(good, "seed = 7", "seed = 7\nsead = 8"), "recipe 'r.toml': unknown key 'sead' (line 4): did you mean 'seed'?"},
      {replace(good, "steps = 100", "step = 100"), "recipe 'r.toml': unknown key 'stages[0].step' (line 15): did you mean 'steps'?"},
      {replace(good, "clip_grad = 1.0", "clip_gard = 1.0"),
       "recipe 'r.toml': unknown key 'optimizer.clip_gard' (line 10): did you mean 'clip_grad'?"},
      {replace(good, "lr_warmup_iters = 10", "lr_warmup_itres = 10"),
       "recipe 'r.toml': unknown key 'stages[0].lr.lr_warmup_itres' (line 23): did you mean 'lr_warmup_iters'?"},
      {replace(good, "prefix = \"en_val\"", "prefx = \"en_val\""),
       "recipe 'r.toml': unknown key 'stages[0].eval[0].prefx' (line 16): did you mean 'prefix'?"},
      {good + "\n[[oops]]\nx = 1\n",
       "recipe 'r.toml': unknown key 'oops' (line 42) (valid keys here: model, seed, seq_len, global_batch, micro_batch, "
       "peak_flops, data_cache, optimizer, parallel, spikes, stages)"},
      {replace(good, "[optimizer]", "[parallel]\nzero = 2\n\n[optimizer]"),
       "recipe 'r.toml': key 'parallel.zero' (line 9): must be 0 (every rank keeps the whole optimizer state) or 1 (ZeRO-1: "
       "each rank keeps its shard)"},
      {replace(good, "[optimizer]", "[parallel]\nzerro = 1\n\n[optimizer]"),
       "recipe 'r.toml': unknown key 'parallel.zerro' (line 9): did you mean 'zero'?"},
      // renamed keys and values say the new name
      {replace(good, "lr_decay_iters = 1000", "decay_end = 1000"),
       "recipe 'r.toml': key 'stages[0].lr.decay_end' (line 24): renamed: use 'lr_decay_iters' (Megatron's --lr-decay-iters; "
       "lr_decay_samples in samples)"},
      {replace(good, "min_lr = 0.0\nseed = 42", "decay_to = 0.0\nseed = 42"),
       "recipe 'r.toml': key 'stages[2].decay_to' (line 39): renamed: use 'min_lr' (the lr a branch or anneal ends at, as "
       "Megatron's --min-lr)"},
      {replace(good, "lr_decay_style = \"WSD\"", "lr_decay_style = \"wsd\""),
       "recipe 'r.toml': key 'stages[0].lr.lr_decay_style' (line 20): value \"wsd\" was renamed: use \"WSD\" (Megatron's "
       "--lr-decay-style)"},
      // wrong types
      {replace(good, "seq_len = 32", "seq_len = \"32\""), "recipe 'r.toml': key 'seq_len' (line 4): must be an integer, got a string"},
      {replace(good, "clip_grad = 1.0", "clip_grad = true"),
       "recipe 'r.toml': key 'optimizer.clip_grad' (line 10): must be a number, got a boolean"},
      {replace(good, "[optimizer]\nweight_decay = 0.1\nclip_grad = 1.0", "optimizer = 3"), "recipe 'r.toml': key 'optimizer' (line 8): must be a table, got an integer"},
      // missing keys
      {replace(good, "global_batch = 8\n", ""), "recipe 'r.toml': key 'global_batch' is missing"},
      {replace(good, "name = \"japanese\"\n", ""), "recipe 'r.toml': key 'stages[1].name' is missing (in the table at line 28)"},
      {replace(good, "tokens = 12800\n", ""),
       "recipe 'r.toml': key 'stages[1].steps' is missing (in the table at line 28): give the stage's length as 'steps' or as 'tokens'"},
      {replace(good, "tokens = 12800", "tokens = 12800\nsteps = 3"),
       "recipe 'r.toml': key 'stages[1].tokens' (line 31): give the stage's length as 'steps' or as 'tokens', not both ('steps' is "
       "at line 32)"},
      {replace(good, "lr_wsd_decay_iters = 1\n", ""),
       "recipe 'r.toml': key 'stages[0].lr.lr_wsd_decay_iters' is missing (in the table at line 19): the length of WSD's cooldown "
       "(Megatron's --lr-wsd-decay-iters)"},
      // bad enum values
      {replace(good, "schedule = \"continue\"", "schedule = \"sideways\""),
       "recipe 'r.toml': key 'stages[1].schedule' (line 32): unknown value \"sideways\" (expected \"new\", \"continue\", \"branch\" "
       "or \"anneal\")"},
      {replace(good, "model = \"tiny_test\"", "model = \"gpt5\""),
       "recipe 'r.toml': key 'model' (line 2): unknown model configuration 'gpt5' (known: " + [] {
         std::string n;
         for (auto name : kumiki::models::config_names()) n += (n.empty() ? "" : ", ") + std::string(name);
         return n;
       }() + ")"},
      // bad values
      {replace(good, "micro_batch = 2", "micro_batch = 3"),
       "recipe 'r.toml': key 'micro_batch' (line 6): global_batch 8 is not a multiple of micro_batch 3"},
      {replace(good, "data = [0.7, \"ja\"", "data = [0.0, \"ja\""),
       "recipe 'r.toml': key 'stages[1].data[0]' (line 30): blend weight must be > 0 (Megatron refuses weights <= 0), got 0.0 for dataset 'ja'; leave the dataset out instead"},
      {replace(good, "data = [0.7, \"ja\"", "data = [-1, \"ja\""), "recipe 'r.toml': key 'stages[1].data[0]' (line 30): blend weight must be > 0 (Megatron refuses weights <= 0), got -1 for dataset 'ja'; leave the dataset out instead"},
      {replace(good, "data = [1, \"hq\"]", "data = [1, \"missing\"]"),
       "recipe 'r.toml': key 'stages[2].data[1]' (line 36): dataset file '" + dir + "/missing.bin' does not exist"},
      {replace(good, "data = [1, \"hq\"]", "data = [1, \"hq\", 2]"),
       "recipe 'r.toml': key 'stages[2].data' (line 36): must hold weight, prefix pairs: [w1, \"prefix1\", w2, \"prefix2\", ...], or prefixes alone"},
      {replace(good, "seq_len = 32", "seq_len = 100000"),
       "recipe 'r.toml': key 'seq_len' (line 4): is 100000, above the model's max_seq_len " +
           std::to_string(kumiki::models::dispatch_config("tiny_test", [](auto tag) { return decltype(tag)::config.max_seq_len; }))},
      {replace(good, "name = \"japanese\"", "name = \"english\""),
       "recipe 'r.toml': key 'stages[1].name' (line 29): stage name 'english' is used twice"},
      {replace(good, "lr_warmup_iters = 10", "lr_warmup_iters = 1000"),
       "recipe 'r.toml': key 'stages[0].lr' (line 19): lr schedule 'WSD': lr_warmup_iters (1000) must be below lr_decay_iters (1000)"},
      {replace(good, "min_lr = 0.0\nlr_warmup_iters", "min_lr = 0.01\nlr_warmup_iters"),
       "recipe 'r.toml': key 'stages[0].lr' (line 19): lr schedule 'WSD': need 0 <= min_lr <= lr, got min_lr 0.01, lr 0.001"},
      {replace(good, "min_lr = 0.0\nseed = 42", "min_lr = -1.0\nseed = 42"),
       "recipe 'r.toml': key 'stages[2].min_lr' (line 39): must be a finite number >= 0"},
      {replace(good, "schedule = \"continue\"", "schedule = \"continue\"\nmin_lr = 0.1"),
       "recipe 'r.toml': key 'stages[1].min_lr' (line 33): applies to a stage with schedule = \"branch\" or \"anneal\" (a new "
       "schedule takes it in its lr table)"},
      {replace(good, "global_batch = 8", "global_batch = 99999999"),
       "recipe 'r.toml': key 'global_batch' (line 5): is 99999999, above kumiki's limit 16777216"},
      {replace(good, "steps = 100", "steps = 100000000000"),
       "recipe 'r.toml': key 'stages[0].steps' (line 15): the recipe's stages add up to more than kumiki's limit of 68719476736 steps"},
      {replace(good, "lr_wsd_decay_iters = 1\n", "lr_wsd_decay_iters = 1\nglobal_batch = 8\n"),
       "recipe 'r.toml': key 'stages[0].lr.global_batch' (line 26): not in an lr table: lengths in samples count the "
       "recipe's global_batch"},
      // syntax errors come from the TOML reader, with line and column
      {"model = \"tiny_test\"\nseq_len = [", "recipe 'r.toml' line 2, column 11: the array is not closed ']'"},
  };
  for (auto const& c : cases) {
    INFO(c.text);
    std::string const got = error_of(c.text);
    CHECK(got == c.message);
    CHECK(got.find(".hpp") == std::string::npos);
    CHECK(got.find("include/kumiki") == std::string::npos);
  }
}

TEST_CASE("a stage's lr table defaults its decay end to the stage's length", "[train][recipe]") {
  // A cosine stage without lr_decay_iters decays over its own 100 steps (Megatron: over --train-iters).
  std::string const text = replace(replace(replace(good, "lr_decay_style = \"WSD\"", "lr_decay_style = \"cosine\""),
                                           "lr_decay_iters = 1000\nlr_wsd_decay_iters = 1\nlr_wsd_decay_style = \"minus_sqrt\"\n", ""),
                                   "min_lr = 0.0\nlr_warmup_iters", "min_lr = 1e-4\nlr_warmup_iters");
  Recipe const r = parse(text);
  auto const* c = r.stages[0].lr.get_if<kumiki::sched::Cosine>();
  REQUIRE(c != nullptr);
  CHECK(c->decay_end == 100);
  CHECK(r.lr(55) == Approx(1e-4 + 0.5 * (1e-3 - 1e-4)));  // halfway through the decay: cos(pi / 2) = 0
  CHECK(r.lr(100) == Approx(1e-4));
  CHECK(r.lr(101) == 1e-4);
  // Lengths in samples count the recipe's global batch (8 sequences per step).
  Recipe const s = parse(replace(text, "lr_warmup_iters = 10", "lr_warmup_samples = 80"));
  auto const* cs = s.stages[0].lr.get_if<kumiki::sched::Cosine>();
  REQUIRE(cs != nullptr);
  CHECK(cs->clock == kumiki::sched::Clock{kumiki::sched::Unit::samples, 8});
  CHECK(cs->decay_end == 800);
  CHECK(s.lr(5) == Approx(5e-4));  // warmup: 40 of 80 samples
  CHECK(s.lr(55) == Approx(r.lr(55)));
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
  rejects(replace(good, "data = [0.7, \"ja\"", "data = [0.0, \"ja\""), "got 0.0 for dataset 'ja'");
  rejects(replace(good, "data = [0.7, \"ja\"", "data = [nan, \"ja\""), "got nan for dataset 'ja'");
  rejects(replace(good, "data = [1, \"hq\"]", "data = [1, \"hq\"]\nsplit = \"98,x\""), "key 'stages[2].split' (line 37)");
  rejects(replace(good, "data = [1, \"hq\"]", "data = [1, \"hq\"]\nsplit = \"0,0,0\""), "stages[2].split");
  rejects(replace(good, "data = [1, \"hq\"]", "data = [\"hq\", 1]"), "must be a weight (number), got a string");
}

namespace {
// A configuration of one's own (the demo's vocabulary, a smaller body), named as recipes say it.
constexpr kumiki::models::TransformerConfig my_tiny{
    .name = "my_tiny", .vocab_size = 50, .make_vocab_divisible_by = 16, .hidden = 16, .ffn_hidden = 40,
    .num_layers = 2, .num_heads = 2, .num_query_groups = 1, .max_seq_len = 64};
using MyConfigs = kumiki::models::BuiltinConfigs::with<my_tiny>;
}  // namespace

TEST_CASE("recipes name configurations of the program's own list, and a trainer's configuration must match", "[train][recipe]") {
  std::string const mine = replace(good, "model = \"tiny_test\"", "model = \"my_tiny\"");
  // The built-in list does not know a user's configuration; the user's list does.
  CHECK_THROWS_WITH(parse(mine), Catch::Contains("unknown model configuration 'my_tiny' (known: llmjp4_1_3b"));
  Recipe const r = parse_recipe<MyConfigs>(mine, "r.toml", data_dir());
  CHECK(r.model == "my_tiny");
  CHECK_NOTHROW(require_recipe_model<my_tiny>(r));
  // A recipe for tiny_test given to a program compiled for my_tiny: refused, saying which fields differ.
  Recipe const t = parse(good);
  CHECK_THROWS_AS(require_recipe_model<my_tiny>(t), kumiki::InputError);
  CHECK_THROWS_WITH(require_recipe_model<my_tiny>(t),
                    Catch::Contains("recipe 'r.toml' trains model 'tiny_test' but this program is compiled for configuration "
                                    "'my_tiny'; they differ in hidden 32 vs 16, num_heads 4 vs 2, num_query_groups 2 vs 1, "
                                    "max_seq_len 32 vs 64; set model = \"my_tiny\" in the recipe"));
  CHECK_NOTHROW(require_recipe_model<kumiki::models::tiny_test>(t));
}
