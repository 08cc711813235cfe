// kumiki/train/recipe.hpp: multi-stage training recipes (TOML): model, batch, optimizer and an
// ordered list of stages, each with its data blend, length, schedule rule, eval sets and checkpoints.
// A wrong recipe is rejected before any work, with an error naming the key and its line.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/toml.hpp"
#include "kumiki/core/toml_reader.hpp"
#include "kumiki/data/blended_dataset.hpp"
#include "kumiki/models/configs.hpp"
#include "kumiki/sched/anneal.hpp"
#include "kumiki/sched/common.hpp"
#include "kumiki/sched/schedule.hpp"
#include "kumiki/sched/toml.hpp"
#include "kumiki/train/spikes.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace train {

/// A held-out set evaluated at the stage's eval interval and at its end.
struct EvalSet {
  std::string name;
  std::string prefix;
  std::string split;  ///< empty: the whole file (held-out files); else Megatron --split, its valid part
};

/// How a stage's learning rate follows the previous stage.
enum class ScheduleRule : std::uint8_t {
  fresh,       ///< a new schedule (the stage's `lr` table), its clock starting at the stage's first step
  continued,   ///< the previous stage's schedule goes on, same clock (English -> Japanese on one WSD)
  branch,      ///< WSD decay branch: from the lr reached at the stage start, cool down to `decay_to`
  anneal,      ///< OLMo 2 mid-training: from the current lr linearly to `decay_to`, no warmup
};

inline std::optional<ScheduleRule> parse_schedule_rule(std::string_view s) {
  if (s == "new") return ScheduleRule::fresh;
  if (s == "continue") return ScheduleRule::continued;
  if (s == "branch") return ScheduleRule::branch;
  if (s == "anneal") return ScheduleRule::anneal;
  return std::nullopt;
}
inline std::string_view schedule_rule_name(ScheduleRule r) {
  switch (r) {
    case ScheduleRule::fresh: return "new";
    case ScheduleRule::continued: return "continue";
    case ScheduleRule::branch: return "branch";
    case ScheduleRule::anneal: return "anneal";
  }
  return "?";
}

struct StageRecipe {
  std::string name;
  std::vector<data::BlendEntry> data;    ///< Megatron --data-path: (weight, prefix of .bin/.idx) pairs or prefixes
  std::string split = data::megatron_default_split;  ///< Megatron --split; the stage trains on the train part
  std::int64_t steps = 0;                 ///< resolved: `steps`, or ceil(tokens / (global_batch x seq_len))
  std::optional<std::int64_t> tokens;     ///< as written, when the stage was given in tokens
  ScheduleRule rule = ScheduleRule::fresh;
  sched::Schedule lr{};                   ///< for rule fresh
  double decay_to = 0.0;                  ///< for branch / anneal: the recipe's min_lr
  std::int64_t decay_steps = 0;           ///< for branch / anneal: lr_decay_iters; 0 means the stage length
  sched::DecayShape decay_shape = sched::DecayShape::minus_sqrt;  ///< for branch / anneal: lr_wsd_decay_style
  std::int64_t seq_len = 0;               ///< resolved: the stage's or the recipe's
  bool reset_optimizer = false;           ///< zero AdamW's moments and step count at the stage start
  std::uint64_t seed = 0;                 ///< resolved data-order seed: the stage's or the recipe's
  /// OLMo 2 / LLM-jp mid-training: the stage runs once per seed (its data order) from the same start,
  /// and the runs' final states are souped (uniform f32 average) before the run goes on. Empty: once.
  std::vector<std::uint64_t> seeds;
  std::vector<EvalSet> eval;
  std::int64_t eval_interval = 0;         ///< steps; 0: only at the end of the stage
  std::int64_t eval_batches = 4;          ///< micro-batches per eval set
  std::int64_t checkpoint_interval = 0;   ///< steps; 0: only at the end of the stage
  std::int64_t keep_checkpoints = 3;      ///< newest N kept under DIR/checkpoints, and stage ends (0: keep all)
  SpikePolicy spikes;                     ///< resolved: the recipe's [spikes], then the stage's own keys
};

struct OptimizerRecipe {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;
  double clip_grad = 1.0;                 ///< global L2 norm; 0 disables clipping
  std::int64_t max_nonfinite = 3;         ///< stop after this many non-finite steps in a row
};

/// How the data-parallel ranks of a launched run share the work (`[parallel]`).
struct ParallelRecipe {
  /// ZeRO stage: 0, every rank keeps the whole AdamW state and all-reduces the gradients; 1 (ZeRO-1),
  /// each rank keeps the AdamW moments of its 1/ranks of the parameters: gradients reduce-scattered,
  /// its part updated, the parameters all-gathered. One process trains the same either way.
  std::int64_t zero = 0;
};

/// The learning rate of stage i as (schedule, offset): lr(global step s) = schedule.lr(s - offset).
struct LrSegment {
  sched::Schedule schedule;
  std::int64_t offset = 0;
  double lr(std::int64_t global_step) const { return schedule.lr(global_step - offset); }
};

struct Recipe {
  std::string source;          ///< file the recipe came from (for messages)
  std::string text;            ///< the recipe as written; stored in checkpoints
  std::string model;           ///< the configuration's name (TransformerConfig::name) in the list the recipe was parsed against
  std::uint64_t seed = 1234;
  std::int64_t seq_len = 0;
  std::int64_t global_batch = 0;   ///< sequences per optimizer step
  std::int64_t micro_batch = 0;    ///< sequences per forward/backward
  double peak_flops = 0;           ///< for MFU; 0: the trainer measures nothing against a peak
  std::string data_cache;          ///< index cache directory (default: OUT/data-cache)
  OptimizerRecipe optimizer;
  ParallelRecipe parallel;
  std::vector<StageRecipe> stages;
  std::vector<LrSegment> lr_segments;  ///< resolved, one per stage

  std::int64_t accumulation_steps() const { return global_batch / micro_batch; }
  std::int64_t total_steps() const {
    std::int64_t n = 0;
    for (auto const& s : stages) n += s.steps;
    return n;
  }
  /// Global step at which stage i starts.
  std::int64_t stage_start(std::size_t i) const {
    std::int64_t n = 0;
    for (std::size_t k = 0; k < i; ++k) n += stages[k].steps;
    return n;
  }
  /// The stage that global step s belongs to (the last stage for s past the end).
  std::size_t stage_of(std::int64_t s) const {
    std::int64_t n = 0;
    for (std::size_t k = 0; k < stages.size(); ++k) {
      n += stages[k].steps;
      if (s < n) return k;
    }
    return stages.size() - 1;
  }
  double lr(std::int64_t global_step) const { return lr_segments[stage_of(global_step)].lr(global_step); }
};

namespace detail {

// Bounds that keep every count of the recipe (steps x global batch x sequence length, a schedule's
// samples) inside 64 bits: far beyond any real run (LLM-jp-4: 2.9M steps of 1024 sequences).
inline constexpr std::int64_t max_global_batch = std::int64_t{1} << 24;
inline constexpr std::int64_t max_total_steps = std::int64_t{1} << 36;

inline std::int64_t positive(TomlReader& r, std::string_view key, std::int64_t v) {
  if (v <= 0) r.fail(key, "must be positive, got " + std::to_string(v));
  return v;
}

/// `data = [w1, "prefix1", w2, "prefix2", ...]`, Megatron's --data-path order, or `["prefix1", ...]`:
/// Megatron's weightless form (blended in proportion to size; one prefix is used as is).
inline std::vector<data::BlendEntry> read_blend(TomlReader& r, std::string_view key, std::filesystem::path const& base,
                                          bool check_files) {
  auto const* arr = r.array(key);
  if (arr == nullptr) r.missing(key, "a list of weight, prefix pairs, or prefixes alone");
  bool weightless = !arr->empty();
  for (std::size_t i = 0; i < arr->size(); ++i) weightless = weightless && (*arr)[i].as_string() != nullptr;
  if (arr->empty() || (!weightless && arr->size() % 2 != 0))
    r.fail(key, "must hold weight, prefix pairs: [w1, \"prefix1\", w2, \"prefix2\", ...], or prefixes alone");
  std::size_t const stride = weightless ? 1 : 2;
  std::vector<data::BlendEntry> out;
  for (std::size_t i = 0; i < arr->size(); i += stride) {
    std::size_t const pi = i + stride - 1;  // the prefix's position
    toml::Value const& p = (*arr)[pi];
    std::optional<double> weight;
    if (!weightless) {
      toml::Value const& w = (*arr)[i];
      std::string const at = std::string(key) + "[" + std::to_string(i) + "]";
      if (auto const* f = w.as_float()) weight = *f;
      else if (auto const* n = w.as_integer()) weight = static_cast<double>(*n);
      else r.fail(at, &w, std::string("must be a weight (number), got ") + TomlReader::type_name(w));
      if (!(*weight > 0) || !std::isfinite(*weight))
        r.fail(at, &w, "blend weight must be > 0 (Megatron refuses weights <= 0), got " + toml::write(w) + " for dataset " +
                           (p.as_string() ? "'" + *p.as_string() + "'" : std::string("?")) + "; leave the dataset out instead");
    }
    auto const* s = p.as_string();
    if (s == nullptr) r.fail(std::string(key) + "[" + std::to_string(pi) + "]", &p, "must be a dataset prefix (string)");
    std::filesystem::path prefix = *s;
    if (prefix.is_relative()) prefix = base / prefix;
    if (check_files)
      for (char const* ext : {".bin", ".idx"})
        if (!std::filesystem::is_regular_file(prefix.string() + ext))
          r.fail(std::string(key) + "[" + std::to_string(pi) + "]", &p,
                 "dataset file '" + prefix.string() + ext + "' does not exist");
    out.push_back({weight, prefix});
  }
  return out;
}

/// Reads a Megatron --split string at `key` (kept as written) and checks it.
inline void read_split(TomlReader& r, std::string_view key, std::string& out) {
  r.read(key, out);
  try {
    (void)data::parse_split(out, "split");
  } catch (InputError const& e) {
    r.fail(key, r.table().get(key), e.what());
  }
}

inline std::vector<LrSegment> resolve_lr(Recipe const& r) {
  std::vector<LrSegment> seg;
  for (std::size_t i = 0; i < r.stages.size(); ++i) {
    StageRecipe const& s = r.stages[i];
    std::int64_t const start = r.stage_start(i);
    switch (s.rule) {
      case ScheduleRule::fresh: seg.push_back({s.lr, start}); break;
      case ScheduleRule::continued: seg.push_back(seg.back()); break;
      case ScheduleRule::branch:
      case ScheduleRule::anneal: {
        double const from = seg.back().lr(start);
        std::int64_t const n = s.decay_steps > 0 ? s.decay_steps : s.steps;
        sched::DecayShape const shape = s.rule == ScheduleRule::anneal ? sched::DecayShape::linear : s.decay_shape;
        seg.push_back({sched::Anneal{from, s.decay_to, 0, n, shape, {}}, start});
        break;
      }
    }
  }
  return seg;
}

/// The keys of each table of a recipe, and the names earlier kumiki versions read.
inline std::vector<std::string_view> const recipe_keys{"model", "seed", "seq_len", "global_batch", "micro_batch",
                                                       "peak_flops", "data_cache", "optimizer", "parallel", "spikes", "stages"};
inline std::vector<std::string_view> const parallel_keys{"zero"};
inline std::vector<std::string_view> const optimizer_keys{"beta1", "beta2", "eps", "weight_decay", "clip_grad", "max_nonfinite"};
inline std::vector<std::string_view> const stage_keys{
    "name", "data", "steps", "tokens", "seq_len", "schedule", "lr", "min_lr", "lr_decay_iters", "lr_wsd_decay_style",
    "reset_optimizer", "seed", "eval", "eval_interval", "eval_batches", "checkpoint_interval", "keep_checkpoints", "split", "spikes", "seeds"};
inline std::vector<std::string_view> const spike_keys{"detect", "window", "sigma", "min_history", "skip", "max_consecutive",
                                                      "loss_ceiling", "rollback", "rollback_skip_batches",
                                                      "rollback_lr_factor", "rollback_lr_steps", "max_rollbacks"};
inline std::vector<std::string_view> const eval_keys{"name", "prefix", "split"};
inline constexpr RenamedKey stage_renamed[] = {
    {"decay_to", "min_lr", "the lr a branch or anneal ends at, as Megatron's --min-lr"},
    {"decay_steps", "lr_decay_iters", "the length of a branch or anneal, as Megatron's --lr-decay-iters"},
    {"decay_shape", "lr_wsd_decay_style", "the shape of a branch or anneal, as Megatron's --lr-wsd-decay-style"},
};

/// Reads a spikes table (`[spikes]` or `[stages.spikes]`) over `p`: a key that is absent keeps p's
/// value. `min_history_given` records whether some table set min_history (else it follows the window).
inline void read_spikes(TomlReader& r, SpikePolicy& p, bool& min_history_given) {
  r.allow(spike_keys);
  r.read("detect", p.detect);
  r.read("window", p.window);
  r.read_finite("sigma", p.sigma);
  if (r.contains("min_history")) {
    r.read("min_history", p.min_history);
    min_history_given = true;
    if (p.min_history < 3) r.fail("min_history", "must be >= 3 (two earlier steps give the first standard deviation)");
  }
  r.read("skip", p.skip);
  r.read("max_consecutive", p.max_consecutive);
  r.read_finite("loss_ceiling", p.loss_ceiling);
  r.read("rollback", p.rollback);
  r.read("rollback_skip_batches", p.rollback_skip_batches);
  r.read_finite("rollback_lr_factor", p.rollback_lr_factor);
  r.read("rollback_lr_steps", p.rollback_lr_steps);
  r.read("max_rollbacks", p.max_rollbacks);
  if (p.window < 2) r.fail("window", "must be >= 2 steps, got " + std::to_string(p.window));
  if (!(p.sigma > 0)) r.fail("sigma", "must be > 0 (standard deviations above the mean)");
  if (p.max_consecutive < 0) r.fail("max_consecutive", "must be >= 0 (0: the first skipped outlier rolls back or stops)");
  if (p.loss_ceiling < 0) r.fail("loss_ceiling", "must be >= 0 (0: no ceiling)");
  if (p.rollback_skip_batches < 0)
    r.fail("rollback_skip_batches", "must be >= 0 (batches skipped beyond those the abandoned steps read)");
  if (!(p.rollback_lr_factor > 0 && p.rollback_lr_factor <= 1)) r.fail("rollback_lr_factor", "must be in (0, 1]");
  if (p.rollback_lr_steps < 0) r.fail("rollback_lr_steps", "must be >= 0");
  if (p.max_rollbacks < 0) r.fail("max_rollbacks", "must be >= 0");
}

}  // namespace detail

/// Parses and validates a recipe. Relative dataset prefixes resolve against `base_dir` (the recipe's
/// directory); with `check_files` every prefix.bin / prefix.idx must exist. Every error is a
/// kumiki::InputError naming the file, the key and its line: "recipe 'r.toml': key 'seq_len' (line 4):
/// must be an integer, got a string". `model` must name a configuration of `Configs` (a program of
/// one's own passes its list: models/configs.hpp).
template <class Configs = models::BuiltinConfigs>
Recipe parse_recipe(std::string_view text, std::string const& source, std::filesystem::path const& base_dir,
                    bool check_files = true) {
  toml::Table const doc = toml::parse(text, source);  // syntax errors: "recipe 'F' line N, column C: ..."
  Recipe r;
  r.source = source;
  r.text = std::string(text);
  try {
    TomlReader top(doc, "");
    top.allow(detail::recipe_keys);
    r.model = top.read_string("model", true);
    if (!Configs::contains(r.model))
      top.fail("model", "unknown model configuration '" + r.model + "' (known: " + Configs::names_text() + ")");
    std::int64_t const max_seq = Configs::find(r.model).max_seq_len;
    std::int64_t seed = 1234;
    top.read("seed", seed);
    if (seed < 0) top.fail("seed", "must be >= 0");
    r.seed = static_cast<std::uint64_t>(seed);
    r.seq_len = top.require<std::int64_t>("seq_len");
    r.global_batch = top.require<std::int64_t>("global_batch");
    r.micro_batch = top.require<std::int64_t>("micro_batch");
    detail::positive(top, "seq_len", r.seq_len);
    detail::positive(top, "global_batch", r.global_batch);
    detail::positive(top, "micro_batch", r.micro_batch);
    if (r.seq_len > max_seq)
      top.fail("seq_len", "is " + std::to_string(r.seq_len) + ", above the model's max_seq_len " + std::to_string(max_seq));
    if (r.global_batch > detail::max_global_batch)
      top.fail("global_batch", "is " + std::to_string(r.global_batch) + ", above kumiki's limit " + std::to_string(detail::max_global_batch));
    if (r.global_batch % r.micro_batch != 0)
      top.fail("micro_batch",
               "global_batch " + std::to_string(r.global_batch) + " is not a multiple of micro_batch " + std::to_string(r.micro_batch));
    top.read("peak_flops", r.peak_flops);
    if (!(r.peak_flops >= 0) || !std::isfinite(r.peak_flops)) top.fail("peak_flops", "must be a finite number >= 0");
    top.read("data_cache", r.data_cache);

    if (toml::Value const* ov = top.table_value("optimizer")) {
      TomlReader o(*ov, "optimizer");
      o.allow(detail::optimizer_keys);
      auto& opt = r.optimizer;
      o.read("beta1", opt.beta1);
      o.read("beta2", opt.beta2);
      o.read("eps", opt.eps);
      o.read("weight_decay", opt.weight_decay);
      o.read("clip_grad", opt.clip_grad);
      o.read("max_nonfinite", opt.max_nonfinite);
      if (!(opt.beta1 >= 0 && opt.beta1 < 1)) o.fail("beta1", "must be in [0, 1)");
      if (!(opt.beta2 >= 0 && opt.beta2 < 1)) o.fail("beta2", "must be in [0, 1)");
      if (!(opt.eps > 0) || !std::isfinite(opt.eps)) o.fail("eps", "must be a finite number > 0");
      if (!(opt.weight_decay >= 0) || !std::isfinite(opt.weight_decay)) o.fail("weight_decay", "must be a finite number >= 0");
      if (!(opt.clip_grad >= 0) || !std::isfinite(opt.clip_grad)) o.fail("clip_grad", "must be a finite number >= 0 (0: no clipping)");
      detail::positive(o, "max_nonfinite", opt.max_nonfinite);
    }

    if (toml::Value const* pv = top.table_value("parallel")) {
      TomlReader pr(*pv, "parallel");
      pr.allow(detail::parallel_keys);
      pr.read("zero", r.parallel.zero);
      if (r.parallel.zero != 0 && r.parallel.zero != 1)
        pr.fail("zero", "must be 0 (every rank keeps the whole optimizer state) or 1 (ZeRO-1: each rank keeps its shard)");
    }

    SpikePolicy run_spikes;  // the recipe's [spikes]: every stage starts from it
    bool run_min_history = false;
    if (toml::Value const* sv = top.table_value("spikes")) {
      TomlReader sr(*sv, "spikes");
      detail::read_spikes(sr, run_spikes, run_min_history);
    }

    auto const* stages = top.array("stages");
    if (stages == nullptr || stages->empty()) top.fail("stages", "needs at least one [[stages]] table");
    for (std::size_t i = 0; i < stages->size(); ++i) {
      std::string const path = "stages[" + std::to_string(i) + "]";
      toml::Value const& tv = (*stages)[i];
      if (!tv.is_table()) top.fail(path, &tv, "must be a table ([[stages]])");
      toml::Table const& t = *tv.as_table();
      TomlReader s(tv, path);
      s.allow(detail::stage_keys, detail::stage_renamed);
      StageRecipe st;
      st.name = s.read_string("name", true);
      for (auto const& prev : r.stages)
        if (prev.name == st.name) s.fail("name", "stage name '" + st.name + "' is used twice");
      st.data = detail::read_blend(s, "data", base_dir, check_files);
      detail::read_split(s, "split", st.split);
      st.seq_len = r.seq_len;
      s.read("seq_len", st.seq_len);
      detail::positive(s, "seq_len", st.seq_len);
      if (st.seq_len > max_seq)
        s.fail("seq_len", "is " + std::to_string(st.seq_len) + ", above the model's max_seq_len " + std::to_string(max_seq));
      bool const has_steps = t.contains("steps"), has_tokens = t.contains("tokens");
      if (!has_steps && !has_tokens) s.missing("steps", "give the stage's length as 'steps' or as 'tokens'");
      if (has_steps && has_tokens)
        s.fail("tokens", "give the stage's length as 'steps' or as 'tokens', not both ('steps' is at line " +
                             std::to_string(t.get("steps")->line()) + ")");
      if (has_steps) {
        s.read("steps", st.steps);
        detail::positive(s, "steps", st.steps);
      } else {
        std::int64_t tokens = 0;
        s.read("tokens", tokens);
        detail::positive(s, "tokens", tokens);
        st.tokens = tokens;
        std::int64_t const per_step = r.global_batch * st.seq_len;
        st.steps = tokens / per_step + (tokens % per_step != 0 ? 1 : 0);
      }
      if (st.steps > detail::max_total_steps - r.total_steps())
        s.fail(has_steps ? "steps" : "tokens", "the recipe's stages add up to more than kumiki's limit of " +
                                                   std::to_string(detail::max_total_steps) + " steps");
      std::string rule = "new";
      s.read("schedule", rule);
      auto const parsed = parse_schedule_rule(rule);
      if (!parsed) s.fail("schedule", "unknown value \"" + rule + "\" (expected \"new\", \"continue\", \"branch\" or \"anneal\")");
      st.rule = *parsed;
      if (i == 0 && st.rule != ScheduleRule::fresh)
        s.fail("schedule", "the first stage has no schedule to " + rule + "; use \"new\"");
      if (st.rule == ScheduleRule::fresh) {
        toml::Value const* lr = s.table_value("lr");
        if (lr == nullptr) s.missing("lr", "the stage's schedule table [stages.lr], required with schedule = \"new\"");
        sched::TableContext ctx;
        ctx.global_batch = r.global_batch;  // lengths in samples count this recipe's sequences
        ctx.train_iters = st.steps;         // lr_decay_iters defaults to the stage's length
        st.lr = sched::schedule_from_toml(*lr->as_table(), path + ".lr", ctx, lr->line());
      } else if (t.contains("lr")) {
        s.fail("lr", "only a stage with schedule = \"new\" takes an lr table");
      }
      if (st.rule == ScheduleRule::branch || st.rule == ScheduleRule::anneal) {
        st.decay_shape = st.rule == ScheduleRule::anneal ? sched::DecayShape::linear : sched::DecayShape::minus_sqrt;
        s.read("min_lr", st.decay_to);
        s.read("lr_decay_iters", st.decay_steps);
        s.read_enum("lr_wsd_decay_style", st.decay_shape, sched::parse_decay_shape,
                    "\"exponential\", \"linear\", \"cosine\" or \"minus_sqrt\"", sched::detail::shape_renamed);
        if (!(st.decay_to >= 0) || !std::isfinite(st.decay_to)) s.fail("min_lr", "must be a finite number >= 0");
        if (st.decay_steps < 0) s.fail("lr_decay_iters", "must be >= 0 (0: the stage length)");
      } else {
        s.refuse({"min_lr", "lr_decay_iters", "lr_wsd_decay_style"},
                 "applies to a stage with schedule = \"branch\" or \"anneal\" (a new schedule takes it in its lr table)");
      }
      s.read("reset_optimizer", st.reset_optimizer);
      std::int64_t stage_seed = static_cast<std::int64_t>(r.seed);
      s.read("seed", stage_seed);
      if (stage_seed < 0) s.fail("seed", "must be >= 0");
      st.seed = static_cast<std::uint64_t>(stage_seed);
      if (auto const* seeds = s.array("seeds")) {
        if (t.contains("seed")) s.fail("seeds", "give the stage's data order as 'seed' or its runs as 'seeds', not both");
        if (seeds->size() < 2) s.fail("seeds", "lists the seeds of the stage's runs to soup: at least two, e.g. [42, 666, 42069]");
        for (std::size_t k = 0; k < seeds->size(); ++k) {
          auto const* v = (*seeds)[k].as_integer();
          if (v == nullptr || *v < 0) s.fail("seeds", &(*seeds)[k], "must hold integers >= 0");
          for (auto prev : st.seeds)
            if (prev == static_cast<std::uint64_t>(*v)) s.fail("seeds", &(*seeds)[k], "lists seed " + std::to_string(*v) + " twice");
          st.seeds.push_back(static_cast<std::uint64_t>(*v));
        }
      }
      if (auto const* ev = s.array("eval")) {
        for (std::size_t k = 0; k < ev->size(); ++k) {
          std::string const epath = path + ".eval[" + std::to_string(k) + "]";
          toml::Value const& etv = (*ev)[k];
          if (!etv.is_table()) s.fail("eval[" + std::to_string(k) + "]", &etv, "must be a table { name, prefix }");
          TomlReader e(etv, epath);
          e.allow(detail::eval_keys);
          EvalSet set;
          set.name = e.read_string("name", true);
          std::filesystem::path prefix = e.read_string("prefix", true);
          if (prefix.is_relative()) prefix = base_dir / prefix;
          if (check_files)
            for (char const* ext : {".bin", ".idx"})
              if (!std::filesystem::is_regular_file(prefix.string() + ext))
                e.fail("prefix", "dataset file '" + prefix.string() + ext + "' does not exist");
          set.prefix = prefix.string();
          if (e.table().contains("split")) detail::read_split(e, "split", set.split);
          st.eval.push_back(std::move(set));
        }
      }
      s.read("eval_interval", st.eval_interval);
      s.read("eval_batches", st.eval_batches);
      s.read("checkpoint_interval", st.checkpoint_interval);
      s.read("keep_checkpoints", st.keep_checkpoints);
      if (st.eval_interval < 0) s.fail("eval_interval", "must be >= 0");
      detail::positive(s, "eval_batches", st.eval_batches);
      if (st.checkpoint_interval < 0) s.fail("checkpoint_interval", "must be >= 0");
      if (st.keep_checkpoints < 0) s.fail("keep_checkpoints", "must be >= 0");
      st.spikes = run_spikes;
      bool min_history = run_min_history;
      if (toml::Value const* sv = s.table_value("spikes")) {
        TomlReader sr(*sv, path + ".spikes");
        detail::read_spikes(sr, st.spikes, min_history);
      }
      SpikePolicy& sp = st.spikes;
      if (!min_history) sp.min_history = SpikePolicy::default_min_history(sp.window);
      auto const spikes_fail = [&](std::string const& what) {
        if (s.contains("spikes")) s.fail("spikes", what);
        if (toml::Value const* sv = top.find("spikes")) top.fail("spikes", sv, what + " (for stage '" + st.name + "')");
        s.fail("name", what);
      };
      if (sp.min_history > sp.window + 1)
        spikes_fail("min_history " + std::to_string(sp.min_history) + " is more than window + 1 = " +
                    std::to_string(sp.window + 1) + ": the window never holds that much history");
      if (sp.rollback && st.checkpoint_interval == 0)
        spikes_fail("rollback = true needs checkpoint_interval > 0 in stage '" + st.name +
                    "': a rollback reloads the newest checkpoint before the trouble");
      if (sp.rollback && sp.max_rollbacks == 0) spikes_fail("rollback = true with max_rollbacks = 0 never rolls back");
      r.stages.push_back(std::move(st));
    }
    r.lr_segments = detail::resolve_lr(r);
  } catch (InputError const& e) {
    throw InputError("recipe '" + source + "': " + e.what(), e.where());
  }
  return r;
}

/// A recipe's `model` must be the configuration Cfg that a trainer (or any tool) is compiled for, by
/// name: a trainer compiled for one configuration never trains, logs or labels checkpoints as another.
/// When the recipe names a built-in configuration the message says which fields differ.
template <models::TransformerConfig Cfg>
void require_recipe_model(Recipe const& r) {
  static_assert(!Cfg.name.empty(), "kumiki: the configuration needs a name (.name = \"...\"): recipes and checkpoints "
                                   "name the model they train");
  if (r.model == Cfg.name.view()) return;
  std::string const why =
      models::BuiltinConfigs::contains(r.model)
          ? models::differences_text(models::BuiltinConfigs::find(r.model), Cfg,
                                     "; they have the same shapes, but a checkpoint names one model")
          : std::string();
  KUMIKI_FAIL("recipe '", r.source, "' trains model '", r.model, "' but this program is compiled for configuration '",
              Cfg.name.view(), "'", why, "; set model = \"", Cfg.name.view(), "\" in the recipe or use the program built for '",
              r.model, "'");
}

/// Reads and parses a recipe file.
template <class Configs = models::BuiltinConfigs>
Recipe load_recipe(std::filesystem::path const& path, bool check_files = true) {
  std::ifstream in(path);
  KUMIKI_REQUIRE(in.good(), "cannot open recipe '", path.string(), "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_recipe<Configs>(ss.str(), path.string(), path.parent_path(), check_files);
}

}  // namespace train
KUMIKI_NAMESPACE_END
