// kumiki/sched/toml.hpp: schedules to and from the recipe format (TOML tables), in Megatron's vocabulary,
// with strict key and type checks.
#pragma once

#include <cstdint>
#include <iterator>
#include <limits>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/toml.hpp"
#include "kumiki/core/toml_reader.hpp"
#include "kumiki/sched/schedule.hpp"
#include "kumiki/sched/weight_decay.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace sched {

// Format: one flat table (a stage's [stages.lr] in a recipe). The keys are Megatron-LM's flags in
// snake_case, and `kumiki lr` takes the same names as flags in kebab case (lr_decay_iters is
// --lr-decay-iters); values are Megatron's too.
//   lr_decay_style       "constant" | "linear" | "cosine" | "inverse-square-root" | "WSD" (Megatron's
//                        --lr-decay-style), or kumiki's "anneal"                          (required)
//   lr                   peak lr (--lr); for an anneal the lr it starts from              (required)
//   min_lr               the lr a decay ends at (--min-lr)                                (default 0)
//   lr_warmup_init       the lr warmup starts from (--lr-warmup-init)                     (default 0)
//   lr_warmup_iters      warmup length (--lr-warmup-iters)                                (default 0)
//   lr_decay_iters       where the decay ends (--lr-decay-iters)   (default: the run's or stage's length)
//   lr_wsd_decay_iters   WSD: the cooldown over the end of the decay (--lr-wsd-decay-iters) (required)
//   lr_wsd_decay_style   "exponential" | "linear" | "cosine" | "minus_sqrt" (--lr-wsd-decay-style;
//                        default exponential, as Megatron; an anneal's default is linear)
// Every length may be given in samples instead (lr_warmup_samples, lr_decay_samples, ...: Megatron's
// --lr-*-samples); the lengths of one table are all in iterations or all in samples, and samples
// count iterations x global_batch (the recipe's; a table on its own takes a `global_batch` key).
// An anneal (OLMo 2's stage 2) has no warmup: from `lr` it cools down with lr_wsd_decay_style to
// min_lr over the last lr_wsd_decay_iters (default: all) of lr_decay_iters.
// kumiki's compositions, beside the keys of the schedule they are built on:
//   branch_start_iters, branch_decay_iters, branch_min_lr (default 0), branch_decay_style (default
//     minus_sqrt): a decay branch (LLM-jp-4) leaving the schedule at branch_start_iters;
//   milestone_iters = [80000, 90000], milestone_factors = [0.316] (one factor for all, or one each):
//     the lr multiplied by the factors from those steps on (DeepSeek).
// Missing optional keys take the defaults above; unknown keys, keys that do not apply to the style,
// wrong types and unknown values are errors naming the key and its line, and the old names say the
// new ones. The weight-decay schedule (Megatron's --start-weight-decay, --end-weight-decay,
// --weight-decay-incr-style): start_weight_decay, end_weight_decay, weight_decay_incr_style
// ("constant" | "linear" | "cosine"), weight_decay_incr_iters (default: the run's length).

/// What a schedule table may leave to where it sits.
struct TableContext {
  std::optional<std::int64_t> global_batch;  ///< the recipe's: samples count iterations x this; the table may not set it
  std::optional<std::int64_t> train_iters;   ///< the run's (stage's) length: the default of lr_decay_iters
  bool flags = false;                        ///< the table holds `kumiki lr` options: messages name --flags
};

namespace detail {

enum class LrStyle : std::uint8_t { constant, linear, cosine, inverse_square_root, wsd, anneal };

inline std::optional<LrStyle> parse_lr_style(std::string_view s) {
  if (s == "constant") return LrStyle::constant;
  if (s == "linear") return LrStyle::linear;
  if (s == "cosine") return LrStyle::cosine;
  if (s == "inverse-square-root") return LrStyle::inverse_square_root;
  if (s == "WSD") return LrStyle::wsd;
  if (s == "anneal") return LrStyle::anneal;
  return std::nullopt;
}

constexpr char const* lr_styles = "\"constant\", \"linear\", \"cosine\", \"inverse-square-root\", \"WSD\" or \"anneal\"";
constexpr char const* decay_shapes = "\"exponential\", \"linear\", \"cosine\" or \"minus_sqrt\"";

/// The lengths of a schedule table: each is KEY_iters or KEY_samples.
constexpr std::string_view length_bases[] = {"lr_warmup", "lr_decay", "lr_wsd_decay", "branch_start", "branch_decay", "milestone"};

inline std::vector<std::string_view> schedule_keys(bool with_global_batch) {
  std::vector<std::string_view> k{"lr_decay_style", "lr", "min_lr", "lr_warmup_init", "lr_warmup_iters", "lr_warmup_samples",
                                  "lr_decay_iters", "lr_decay_samples", "lr_wsd_decay_iters", "lr_wsd_decay_samples",
                                  "lr_wsd_decay_style", "branch_start_iters", "branch_start_samples", "branch_decay_iters",
                                  "branch_decay_samples", "branch_min_lr", "branch_decay_style", "milestone_iters",
                                  "milestone_samples", "milestone_factors"};
  if (with_global_batch) k.push_back("global_batch");
  return k;
}

inline constexpr RenamedKey schedule_renamed[] = {
    {"style", "lr_decay_style", "Megatron's --lr-decay-style"},
    {"max_lr", "lr", "Megatron's --lr"},
    {"init_lr", "lr_warmup_init", "Megatron's --lr-warmup-init"},
    {"warmup", "lr_warmup_iters", "Megatron's --lr-warmup-iters; lr_warmup_samples in samples"},
    {"decay_end", "lr_decay_iters", "Megatron's --lr-decay-iters; lr_decay_samples in samples"},
    {"wsd_decay", "lr_wsd_decay_iters", "Megatron's --lr-wsd-decay-iters; lr_wsd_decay_samples in samples"},
    {"wsd_style", "lr_wsd_decay_style", "Megatron's --lr-wsd-decay-style"},
    {"unit", "", "renamed: give every length as KEY_iters or as KEY_samples (Megatron's --lr-decay-iters / --lr-decay-samples, ...)"},
    {"from_lr", "lr", "the lr an anneal starts from"},
    {"to_lr", "min_lr", "the lr an anneal ends at; a branch's is branch_min_lr"},
    {"start", "", "renamed: an anneal ends at lr_decay_iters, a branch starts at branch_start_iters"},
    {"steps", "", "renamed: an anneal cools down over lr_wsd_decay_iters, a branch over branch_decay_iters"},
    {"shape", "", "renamed: an anneal's shape is lr_wsd_decay_style, a branch's branch_decay_style"},
    {"base", "", "renamed: write the base schedule's keys in this table, beside branch_* or milestone_* keys"},
    {"milestones", "", "renamed: use milestone_iters = [steps...] and milestone_factors = [factors...]"},
    {"lr_warmup_fraction", "", "not supported: give lr_warmup_iters (Megatron's --lr-warmup-iters)"},
};

inline constexpr RenamedKey lr_style_renamed[] = {
    {"inverse_sqrt", "inverse-square-root", "Megatron's --lr-decay-style"},
    {"inverse-sqrt", "inverse-square-root", "Megatron's --lr-decay-style"},
    {"wsd", "WSD", "Megatron's --lr-decay-style"},
    {"branch", "", "is no longer a style: a decay branch is branch_start_iters and branch_decay_iters beside the schedule's keys"},
    {"steps", "", "is no longer a style: a step schedule is milestone_iters and milestone_factors beside the schedule's keys"},
};
inline constexpr RenamedKey shape_renamed[] = {{"1-sqrt", "minus_sqrt", "Megatron's --lr-wsd-decay-style"}};

/// The `kumiki lr` flag of a key (without the leading dashes): lr_decay_iters -> lr-decay-iters.
inline std::string flag(std::string key) {
  for (char& c : key)
    if (c == '_') c = '-';
  return key;
}

/// Reads the table's lengths in one unit: iterations unless a KEY_samples key is present.
class Lengths {
 public:
  explicit Lengths(TomlReader const& r) : r_(r) {
    std::string_view iters_key, samples_key;
    for (auto const& [k, v] : r.table()) {
      for (auto base : length_bases) {
        if (k == std::string(base) + "_iters" && iters_key.empty()) iters_key = k;
        if (k == std::string(base) + "_samples" && samples_key.empty()) samples_key = k;
      }
    }
    if (!iters_key.empty() && !samples_key.empty())
      r.fail(samples_key, "the lengths of one schedule are all in iterations or all in samples, but '" + std::string(iters_key) +
                              "'" + TomlReader::where(*r.find(iters_key)) + " is in iterations");
    unit_ = samples_key.empty() ? Unit::iterations : Unit::samples;
  }
  Unit unit() const { return unit_; }
  std::string key(std::string_view base) const { return length_key(base, Clock{unit_, 1}); }
  /// The length `base` in the table's unit, if present (an integer).
  std::optional<std::int64_t> get(std::string_view base) const {
    std::optional<std::int64_t> v;
    r_.read(key(base), v);
    return v;
  }
  bool contains_key(std::string_view base) const { return r_.contains(key(base)); }
  /// Fails when a length `base` is present (in either unit).
  void refuse(std::string_view base, std::string const& why) const {
    for (char const* unit : {"_iters", "_samples"}) {
      std::string const k = std::string(base) + unit;
      r_.refuse({k}, why);
    }
  }

 private:
  TomlReader const& r_;
  Unit unit_ = Unit::iterations;
};

inline BaseSchedule read_base(TomlReader& r, Lengths const& len, Clock const& clock, std::optional<std::int64_t> run_length) {
  if (!r.contains("lr_decay_style"))
    r.missing("lr_decay_style", std::string("the schedule's style: ") + lr_styles + " (Megatron's --lr-decay-style)");
  LrStyle style = LrStyle::constant;
  r.read_enum(std::string_view("lr_decay_style"), style, parse_lr_style, lr_styles, lr_style_renamed);
  std::string const style_text = *r.find("lr_decay_style")->as_string();
  std::string const for_style = "does not apply to lr_decay_style \"" + style_text + "\"";
  if (!r.contains("lr")) r.missing("lr", "the peak learning rate (Megatron's --lr)");

  double lr = 0, min_lr = 0, init_lr = 0;
  r.read_finite("lr", lr);
  r.read_finite("min_lr", min_lr);
  r.read_finite("lr_warmup_init", init_lr);
  std::int64_t const warmup = len.get("lr_warmup").value_or(0);
  auto decay_end = [&]() -> std::int64_t {
    if (auto d = len.get("lr_decay")) return *d;
    if (run_length) return *run_length;
    r.missing(len.key("lr_decay"), "where the decay ends (Megatron's --" + flag(len.key("lr_decay")) + ")");
  };
  DecayShape shape = style == LrStyle::anneal ? DecayShape::linear : DecayShape::exponential;
  if (style == LrStyle::wsd || style == LrStyle::anneal) {
    r.read_enum(std::string_view("lr_wsd_decay_style"), shape, parse_decay_shape, decay_shapes, shape_renamed);
  } else {
    len.refuse("lr_wsd_decay", for_style + " (only to \"WSD\" and \"anneal\")");
    r.refuse({"lr_wsd_decay_style"}, for_style + " (only to \"WSD\" and \"anneal\")");
  }
  switch (style) {
    case LrStyle::constant:
      r.refuse({"min_lr"}, for_style + ": a constant schedule does not decay");
      len.refuse("lr_decay", for_style + ": a constant schedule does not decay");
      return Constant{lr, init_lr, warmup, clock};
    case LrStyle::linear: return Linear{lr, min_lr, init_lr, warmup, decay_end(), clock};
    case LrStyle::cosine: return Cosine{lr, min_lr, init_lr, warmup, decay_end(), clock};
    case LrStyle::inverse_square_root: return InverseSqrt{lr, min_lr, init_lr, warmup, decay_end(), clock};
    case LrStyle::wsd: {
      auto const cooldown = len.get("lr_wsd_decay");
      if (!cooldown)
        r.missing(len.key("lr_wsd_decay"), "the length of WSD's cooldown (Megatron's --" + flag(len.key("lr_wsd_decay")) + ")");
      return Wsd{lr, min_lr, init_lr, warmup, decay_end(), *cooldown, shape, clock};
    }
    case LrStyle::anneal: {
      r.refuse({"lr_warmup_init"}, for_style + ": an anneal has no warmup");
      len.refuse("lr_warmup", for_style + ": an anneal has no warmup");
      std::int64_t const end = decay_end();
      std::int64_t const cooldown = len.get("lr_wsd_decay").value_or(end);
      if (cooldown <= 0) r.fail(len.contains_key("lr_wsd_decay") ? len.key("lr_wsd_decay") : len.key("lr_decay"),
                                "must be positive, got " + std::to_string(cooldown));
      if (cooldown > end)
        r.fail(len.key("lr_wsd_decay"), "the cooldown (" + std::to_string(cooldown) + ") cannot be longer than " +
                                            len.key("lr_decay") + " (" + std::to_string(end) + ")");
      return Anneal{lr, min_lr, end - cooldown, cooldown, shape, clock};
    }
  }
  return {};
}

inline Schedule read_schedule(TomlReader& r, TableContext const& ctx) {
  if (ctx.flags) r.name_keys_as_flags();
  std::vector<RenamedKey> renamed(std::begin(schedule_renamed), std::end(schedule_renamed));
  if (ctx.global_batch)
    renamed.push_back({"global_batch", "", "not in an lr table: lengths in samples count the recipe's global_batch"});
  r.allow(schedule_keys(!ctx.global_batch.has_value()), renamed);
  Lengths const len(r);
  Clock clock{len.unit(), 1};
  if (ctx.global_batch) {
    clock.global_batch = *ctx.global_batch;
  } else if (r.contains("global_batch")) {
    if (len.unit() != Unit::samples) r.fail("global_batch", "applies only to lengths in samples (KEY_samples)");
    r.read("global_batch", clock.global_batch);
    if (clock.global_batch <= 0) r.fail("global_batch", "must be positive, got " + std::to_string(clock.global_batch));
  } else if (len.unit() == Unit::samples) {
    r.missing("global_batch", "lengths in samples need the samples per iteration");
  }
  // The run length in the table's unit: the default end of the decay (Megatron: --train-iters).
  std::optional<std::int64_t> run_length = ctx.train_iters;
  if (run_length && clock.unit == Unit::samples) {
    if (*run_length > std::numeric_limits<std::int64_t>::max() / clock.global_batch)
      r.fail("global_batch", "the run length in samples is beyond the 64-bit range");
    *run_length *= clock.global_batch;
  }
  BaseSchedule const base = read_base(r, len, clock, run_length);

  bool const branch = len.get("branch_start") || len.get("branch_decay") || r.contains("branch_min_lr") ||
                      r.contains("branch_decay_style");
  bool const steps = len.contains_key("milestone") || r.contains("milestone_factors");
  if (branch && steps)
    r.fail(r.contains("milestone_factors") ? "milestone_factors" : len.key("milestone"),
           "a schedule takes a decay branch (branch_*) or milestones (milestone_*), not both");
  if (branch) {
    Branch b{base, 0, 0, 0.0, DecayShape::minus_sqrt, clock};
    auto const start = len.get("branch_start");
    auto const length = len.get("branch_decay");
    if (!start) r.missing(len.key("branch_start"), "where the decay branch leaves the schedule");
    if (!length) r.missing(len.key("branch_decay"), "the length of the decay branch");
    b.start = *start;
    b.steps = *length;
    r.read_finite("branch_min_lr", b.to_lr);
    r.read_enum(std::string_view("branch_decay_style"), b.shape, parse_decay_shape, decay_shapes, shape_renamed);
    return b;
  }
  if (steps) {
    Steps m{base, {}, 0, clock};
    std::string const key = len.key("milestone");
    toml::Array const* at = r.array(key);
    toml::Array const* factors = r.array("milestone_factors");
    if (at == nullptr) r.missing(key, "the steps at which the lr is multiplied by milestone_factors");
    if (factors == nullptr) r.missing("milestone_factors", "the factor (or one per milestone) of " + key);
    if (factors->size() != 1 && factors->size() != at->size())
      r.fail("milestone_factors", "needs one factor for all milestones or one per milestone (" + std::to_string(at->size()) +
                                      "), got " + std::to_string(factors->size()));
    for (std::size_t i = 0; i < at->size(); ++i) {
      toml::Value const& s = (*at)[i];
      toml::Value const& f = (*factors)[factors->size() == 1 ? 0 : i];
      std::string const si = key + "[" + std::to_string(i) + "]";
      std::string const fi = "milestone_factors[" + std::to_string(factors->size() == 1 ? 0 : i) + "]";
      if (s.as_integer() == nullptr) r.fail(si, &s, std::string("must be an integer, got ") + TomlReader::type_name(s));
      double factor = 0;
      if (auto const* d = f.as_float()) factor = *d;
      else if (auto const* n = f.as_integer()) factor = static_cast<double>(*n);
      else r.fail(fi, &f, std::string("must be a number, got ") + TomlReader::type_name(f));
      if (i >= Steps::max_milestones)
        r.fail(key, "at most " + std::to_string(Steps::max_milestones) + " milestones, got " + std::to_string(at->size()));
      m.add(*s.as_integer(), factor);
    }
    return m;
  }
  return Schedule(base);
}

inline void write_lengths(toml::Table& t, Clock const& c, std::string_view base, std::int64_t v) {
  t.insert_or_assign(length_key(base, c), v);
}

inline void write_base(toml::Table& t, BaseSchedule const& b) {
  std::visit(
      [&](auto const& s) {
        using S = std::remove_cvref_t<decltype(s)>;
        t.insert_or_assign("lr_decay_style", std::string(style_name<S>));
        if constexpr (std::is_same_v<S, Anneal>) {
          t.insert_or_assign("lr", s.from_lr);
          t.insert_or_assign("min_lr", s.to_lr);
          write_lengths(t, s.clock, "lr_decay", s.start + s.steps);
          write_lengths(t, s.clock, "lr_wsd_decay", s.steps);
          t.insert_or_assign("lr_wsd_decay_style", std::string(decay_shape_name(s.shape)));
        } else {
          t.insert_or_assign("lr", s.max_lr);
          if constexpr (!std::is_same_v<S, Constant>) t.insert_or_assign("min_lr", s.min_lr);
          t.insert_or_assign("lr_warmup_init", s.init_lr);
          write_lengths(t, s.clock, "lr_warmup", s.warmup);
          if constexpr (!std::is_same_v<S, Constant>) write_lengths(t, s.clock, "lr_decay", s.decay_end);
          if constexpr (std::is_same_v<S, Wsd>) {
            write_lengths(t, s.clock, "lr_wsd_decay", s.wsd_decay);
            t.insert_or_assign("lr_wsd_decay_style", std::string(decay_shape_name(s.wsd_style)));
          }
        }
        if (s.clock.unit == Unit::samples) t.insert_or_assign("global_batch", s.clock.global_batch);
      },
      b.v);
}

inline Clock clock_of(BaseSchedule const& b) {
  return std::visit([](auto const& s) { return s.clock; }, b.v);
}

}  // namespace detail

/// The schedule as a flat TOML table (format above); `schedule_from_toml` reads it back to an equal
/// value. A branch or step schedule must count in the same unit as its base (one table, one unit).
inline toml::Table to_toml(Schedule const& s) {
  toml::Table t;
  if (auto const* b = s.get_if<Branch>()) {
    KUMIKI_CHECK(detail::clock_of(b->base) == b->clock, "to_toml: a branch and its base schedule count in different units");
    detail::write_base(t, b->base);
    detail::write_lengths(t, b->clock, "branch_start", b->start);
    detail::write_lengths(t, b->clock, "branch_decay", b->steps);
    t.insert_or_assign("branch_min_lr", b->to_lr);
    t.insert_or_assign("branch_decay_style", std::string(decay_shape_name(b->shape)));
    return t;
  }
  if (auto const* m = s.get_if<Steps>()) {
    KUMIKI_CHECK(detail::clock_of(m->base) == m->clock, "to_toml: a step schedule and its base count in different units");
    detail::write_base(t, m->base);
    toml::Array at, factors;
    for (std::size_t i = 0; i < m->count && i < Steps::max_milestones; ++i) {
      at.emplace_back(m->milestones[i].step);
      factors.emplace_back(m->milestones[i].factor);
    }
    t.insert_or_assign(length_key("milestone", m->clock), std::move(at));
    t.insert_or_assign("milestone_factors", std::move(factors));
    return t;
  }
  std::visit(
      [&](auto const& leaf) {
        if constexpr (std::is_constructible_v<BaseSchedule::Variant, decltype(leaf)>) detail::write_base(t, BaseSchedule(leaf));
      },
      s.v);
  return t;
}

/// Reads a schedule table; `path` is its key path ("stages[0].lr"), `line` where it is, for
/// messages. The result is validated (Megatron's assertions): every error is a kumiki::InputError
/// naming the key ("key 'stages[0].lr.lr_decay_iters' (line 22): ...").
inline Schedule schedule_from_toml(toml::Table const& t, std::string const& path = "lr", TableContext const& ctx = {},
                                   int line = 0) {
  TomlReader r(t, path, line);
  Schedule out = detail::read_schedule(r, ctx);
  try {
    out.validate();
  } catch (InputError const& e) {
    if (ctx.flags) throw;
    std::string const at = line > 0 ? " (line " + std::to_string(line) + ")" : "";
    throw InputError("key '" + path + "'" + at + ": " + e.what(), e.where());
  }
  return out;
}

/// The weight-decay schedule as a TOML table (format above).
inline toml::Table to_toml(WeightDecaySchedule const& w) {
  toml::Table t;
  t.insert_or_assign("weight_decay_incr_style", std::string(wd_increment_name(w.style)));
  t.insert_or_assign("start_weight_decay", w.start_wd);
  t.insert_or_assign("end_weight_decay", w.end_wd);
  detail::write_lengths(t, w.clock, "weight_decay_incr", w.incr_steps);
  if (w.clock.unit == Unit::samples) t.insert_or_assign("global_batch", w.clock.global_batch);
  return t;
}

inline WeightDecaySchedule wd_schedule_from_toml(toml::Table const& t, std::string const& path = "weight_decay",
                                                 TableContext const& ctx = {}, int line = 0) {
  static constexpr RenamedKey renamed[] = {
      {"style", "weight_decay_incr_style", "Megatron's --weight-decay-incr-style"},
      {"start_wd", "start_weight_decay", "Megatron's --start-weight-decay"},
      {"end_wd", "end_weight_decay", "Megatron's --end-weight-decay"},
      {"incr_steps", "weight_decay_incr_iters", "weight_decay_incr_samples in samples"},
      {"unit", "", "renamed: give the length as weight_decay_incr_iters or weight_decay_incr_samples"},
  };
  TomlReader r(t, path, line);
  if (ctx.flags) r.name_keys_as_flags();
  std::vector<std::string_view> keys{"weight_decay_incr_style", "start_weight_decay", "end_weight_decay",
                                     "weight_decay_incr_iters", "weight_decay_incr_samples"};
  if (!ctx.global_batch) keys.push_back("global_batch");
  r.allow(keys, renamed);
  if (r.contains("weight_decay_incr_iters") && r.contains("weight_decay_incr_samples"))
    r.fail("weight_decay_incr_samples", "give weight_decay_incr_iters or weight_decay_incr_samples, not both");
  WeightDecaySchedule w;
  w.clock.unit = r.contains("weight_decay_incr_samples") ? Unit::samples : Unit::iterations;
  if (ctx.global_batch) w.clock.global_batch = *ctx.global_batch;
  else if (w.clock.unit == Unit::samples && !r.contains("global_batch"))
    r.missing("global_batch", "lengths in samples need the samples per iteration");
  else if (w.clock.unit != Unit::samples && r.contains("global_batch"))
    r.fail("global_batch", "applies only to lengths in samples (weight_decay_incr_samples)");
  else r.read("global_batch", w.clock.global_batch);
  r.read_enum(std::string_view("weight_decay_incr_style"), w.style, parse_wd_increment, "\"constant\", \"linear\" or \"cosine\"");
  r.read_finite("start_weight_decay", w.start_wd);
  r.read_finite("end_weight_decay", w.end_wd);
  std::string const incr = length_key("weight_decay_incr", w.clock);
  if (r.contains(incr)) r.read(incr, w.incr_steps);
  else if (ctx.train_iters) w.incr_steps = *ctx.train_iters;  // Megatron: the whole run
  try {
    w.validate();
  } catch (InputError const& e) {
    if (ctx.flags) throw;
    throw InputError("key '" + path + "'" + (line > 0 ? " (line " + std::to_string(line) + ")" : "") + ": " + e.what(), e.where());
  }
  return w;
}

namespace detail {
inline void table_differences(toml::Table const& a, toml::Table const& b, std::string const& prefix,
                              std::vector<std::string>& out) {
  std::set<std::string> keys;
  for (auto const& [k, v] : a) keys.insert(k);
  for (auto const& [k, v] : b) keys.insert(k);
  for (auto const& k : keys) {
    toml::Value const* x = a.get(k);
    toml::Value const* y = b.get(k);
    std::string const path = prefix.empty() ? k : prefix + "." + k;
    if (x && y && x->is_table() && y->is_table()) {
      table_differences(*x->as_table(), *y->as_table(), path, out);
      continue;
    }
    auto text = [](toml::Value const* n) { return n == nullptr ? std::string("(absent)") : toml::write(*n); };
    std::string const tx = text(x), ty = text(y);
    if (tx != ty) out.push_back(path + ": " + tx + " -> " + ty);
  }
}
}  // namespace detail

/// The recipe keys in which two schedules differ, as "key: old -> new" (empty when equal). Megatron
/// refuses to resume when the scheduler arguments differ from the checkpoint's unless told which
/// wins; a trainer can report these lines and require an explicit override.
inline std::vector<std::string> schedule_differences(Schedule const& saved, Schedule const& requested) {
  std::vector<std::string> out;
  detail::table_differences(to_toml(saved), to_toml(requested), "", out);
  return out;
}

/// from_toml<Schedule>(t) / from_toml<WeightDecaySchedule>(t): the readers above by result type.
template <class T>
T from_toml(toml::Table const& t, TableContext const& ctx = {}) {
  if constexpr (std::is_same_v<T, Schedule>) return schedule_from_toml(t, "lr", ctx);
  else if constexpr (std::is_same_v<T, WeightDecaySchedule>) return wd_schedule_from_toml(t, "weight_decay", ctx);
  else static_assert(always_false<T>, "kumiki: from_toml knows Schedule and WeightDecaySchedule");
}

}  // namespace sched
KUMIKI_NAMESPACE_END
