// kumiki/sched/toml.hpp: schedules to and from the recipe format (TOML tables), with strict key and type checks.
#pragma once

#include <cstdint>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <toml++/toml.h>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/toml_reader.hpp"
#include "kumiki/sched/schedule.hpp"
#include "kumiki/sched/weight_decay.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace sched {

// Format (one table, e.g. [train.lr] in a recipe). Every schedule has `style`; the keys per style:
//   constant      max_lr, init_lr, warmup
//   linear/cosine/inverse_sqrt  max_lr, min_lr, init_lr, warmup, decay_end
//   wsd           the above + wsd_decay, wsd_style ("linear" | "cosine" | "exponential" | "minus_sqrt")
//   anneal        from_lr, to_lr, start, steps, shape
//   branch        start, steps, to_lr, shape, base = { a non-composed schedule }
//   steps         base = { ... }, milestones = [ { step = 80000, factor = 0.316 }, ... ]
// and, for all, the optional `unit` ("iterations" | "samples") and `global_batch`. Missing keys take
// the struct defaults; unknown keys, wrong types and unknown names are errors naming the key.
// The weight-decay schedule: style ("constant" | "linear" | "cosine"), start_wd, end_wd,
// incr_steps, unit, global_batch.

namespace detail {

using kumiki::TomlReader;  // strict reading with key paths and line numbers (core/toml_reader.hpp)

inline void read_clock(TomlReader& r, Clock& c) {
  r.read_enum(std::string_view("unit"), c.unit, parse_unit, "\"iterations\" or \"samples\"");
  r.read(std::string_view("global_batch"), c.global_batch);
}

inline void write_clock(toml::table& t, Clock const& c) {
  if (c.unit != Unit::iterations) t.insert("unit", std::string(unit_name(c.unit)));
  if (c.global_batch != 1) t.insert("global_batch", c.global_batch);
}

inline toml::table write_leaf(BaseSchedule const& b) {
  toml::table t;
  t.insert("style", std::string(b.name()));
  std::visit(
      [&](auto const& s) {
        using S = std::remove_cvref_t<decltype(s)>;
        if constexpr (std::is_same_v<S, Anneal>) {
          t.insert("from_lr", s.from_lr);
          t.insert("to_lr", s.to_lr);
          t.insert("start", s.start);
          t.insert("steps", s.steps);
          t.insert("shape", std::string(decay_shape_name(s.shape)));
        } else {
          t.insert("max_lr", s.max_lr);
          if constexpr (!std::is_same_v<S, Constant>) t.insert("min_lr", s.min_lr);
          t.insert("init_lr", s.init_lr);
          t.insert("warmup", s.warmup);
          if constexpr (!std::is_same_v<S, Constant>) t.insert("decay_end", s.decay_end);
          if constexpr (std::is_same_v<S, Wsd>) {
            t.insert("wsd_decay", s.wsd_decay);
            t.insert("wsd_style", std::string(decay_shape_name(s.wsd_style)));
          }
        }
        write_clock(t, s.clock);
      },
      b.v);
  return t;
}

inline BaseSchedule read_leaf(TomlReader& r, std::string const& style) {
  constexpr char const* shapes = "\"linear\", \"cosine\", \"exponential\" or \"minus_sqrt\"";
  auto megatron = [&](auto s) {
    using S = decltype(s);
    r.read("max_lr", s.max_lr);
    if constexpr (!std::is_same_v<S, Constant>) r.read("min_lr", s.min_lr);
    r.read("init_lr", s.init_lr);
    r.read("warmup", s.warmup);
    if constexpr (!std::is_same_v<S, Constant>) r.read("decay_end", s.decay_end);
    if constexpr (std::is_same_v<S, Wsd>) {
      r.read("wsd_decay", s.wsd_decay);
      r.read_enum(std::string_view("wsd_style"), s.wsd_style, parse_decay_shape, shapes);
    }
    detail::read_clock(r, s.clock);
    return BaseSchedule(s);
  };
  if (style == "constant") return megatron(Constant{});
  if (style == "linear") return megatron(Linear{});
  if (style == "cosine") return megatron(Cosine{});
  if (style == "inverse_sqrt" || style == "inverse-sqrt") return megatron(InverseSqrt{});
  if (style == "wsd") return megatron(Wsd{});
  if (style == "anneal") {
    Anneal a;
    r.read("from_lr", a.from_lr);
    r.read("to_lr", a.to_lr);
    r.read("start", a.start);
    r.read("steps", a.steps);
    r.read_enum(std::string_view("shape"), a.shape, parse_decay_shape, shapes);
    detail::read_clock(r, a.clock);
    return a;
  }
  KUMIKI_FAIL("recipe key '", r.key_path("style"), "': unknown schedule \"", style,
              "\" (expected constant, linear, cosine, inverse_sqrt, wsd, anneal, branch or steps)");
}

}  // namespace detail

/// The schedule as a TOML table (format above); `schedule_from_toml` reads it back to an equal value.
inline toml::table to_toml(Schedule const& s) {
  if (auto const* b = s.get_if<Branch>()) {
    toml::table t;
    t.insert("style", "branch");
    t.insert("start", b->start);
    t.insert("steps", b->steps);
    t.insert("to_lr", b->to_lr);
    t.insert("shape", std::string(decay_shape_name(b->shape)));
    detail::write_clock(t, b->clock);
    t.insert("base", detail::write_leaf(b->base));
    return t;
  }
  if (auto const* m = s.get_if<Steps>()) {
    toml::table t;
    t.insert("style", "steps");
    toml::array ms;
    for (std::size_t i = 0; i < m->count && i < Steps::max_milestones; ++i)
      ms.push_back(toml::table{{"step", m->milestones[i].step}, {"factor", m->milestones[i].factor}});
    t.insert("milestones", std::move(ms));
    detail::write_clock(t, m->clock);
    t.insert("base", detail::write_leaf(m->base));
    return t;
  }
  return std::visit(
      [](auto const& leaf) -> toml::table {
        if constexpr (std::is_constructible_v<BaseSchedule::Variant, decltype(leaf)>) return detail::write_leaf(BaseSchedule(leaf));
        else return {};
      },
      s.v);
}

/// Reads a schedule table; `path` prefixes key names in error messages (e.g. "train.lr").
/// The result is validated (Megatron's assertions) before it is returned.
inline Schedule schedule_from_toml(toml::table const& t, std::string const& path = "lr") {
  detail::TomlReader r(t, path);
  std::string const style = r.read_string("style", true);
  Schedule out;
  if (style == "branch") {
    Branch b;
    r.read("start", b.start);
    r.read("steps", b.steps);
    r.read("to_lr", b.to_lr);
    r.read_enum(std::string_view("shape"), b.shape, parse_decay_shape, "\"linear\", \"cosine\", \"exponential\" or \"minus_sqrt\"");
    detail::read_clock(r, b.clock);
    detail::TomlReader rb(r.sub_table("base"), r.key_path("base"));
    b.base = detail::read_leaf(rb, rb.read_string("style", true));
    rb.finish();
    out = b;
  } else if (style == "steps") {
    Steps m;
    detail::read_clock(r, m.clock);
    detail::TomlReader rb(r.sub_table("base"), r.key_path("base"));
    m.base = detail::read_leaf(rb, rb.read_string("style", true));
    rb.finish();
    if (auto const* n = r.find("milestones")) {
      auto const* arr = n->as_array();
      if (arr == nullptr) r.wrong_type("milestones", "an array of { step, factor } tables", *n);
      for (std::size_t i = 0; i < arr->size(); ++i) {
        std::string const where = r.key_path("milestones") + "[" + std::to_string(i) + "]";
        auto const* mt = arr->get(i)->as_table();
        KUMIKI_CHECK(mt != nullptr, "recipe key '", where, "' must be a table { step = ..., factor = ... }");
        detail::TomlReader rm(*mt, where);
        Milestone ms;
        KUMIKI_CHECK(mt->contains("step") && mt->contains("factor"), "recipe key '", where, "' needs both step and factor");
        rm.read("step", ms.step);
        rm.read("factor", ms.factor);
        rm.finish();
        m.add(ms.step, ms.factor);
      }
    }
    out = m;
  } else {
    out = std::visit([](auto const& leaf) { return Schedule(leaf); }, detail::read_leaf(r, style).v);
  }
  r.finish();
  out.validate();
  return out;
}

inline toml::table to_toml(WeightDecaySchedule const& w) {
  toml::table t;
  t.insert("style", std::string(wd_increment_name(w.style)));
  t.insert("start_wd", w.start_wd);
  t.insert("end_wd", w.end_wd);
  t.insert("incr_steps", w.incr_steps);
  detail::write_clock(t, w.clock);
  return t;
}

inline WeightDecaySchedule wd_schedule_from_toml(toml::table const& t, std::string const& path = "weight_decay") {
  detail::TomlReader r(t, path);
  WeightDecaySchedule w;
  r.read_enum(std::string_view("style"), w.style, parse_wd_increment, "\"constant\", \"linear\" or \"cosine\"");
  r.read("start_wd", w.start_wd);
  r.read("end_wd", w.end_wd);
  r.read("incr_steps", w.incr_steps);
  detail::read_clock(r, w.clock);
  r.finish();
  w.validate();
  return w;
}

namespace detail {
inline void table_differences(toml::table const& a, toml::table const& b, std::string const& prefix,
                              std::vector<std::string>& out) {
  std::set<std::string> keys;
  for (auto const& [k, v] : a) keys.insert(std::string(k.str()));
  for (auto const& [k, v] : b) keys.insert(std::string(k.str()));
  for (auto const& k : keys) {
    toml::node const* x = a.get(k);
    toml::node const* y = b.get(k);
    std::string const path = prefix.empty() ? k : prefix + "." + k;
    if (x && y && x->is_table() && y->is_table()) {
      table_differences(*x->as_table(), *y->as_table(), path, out);
      continue;
    }
    auto text = [](toml::node const* n) {
      if (n == nullptr) return std::string("(absent)");
      std::ostringstream os;
      n->visit([&](auto const& v) { os << v; });
      return os.str();
    };
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
T from_toml(toml::table const& t) {
  if constexpr (std::is_same_v<T, Schedule>) return schedule_from_toml(t);
  else if constexpr (std::is_same_v<T, WeightDecaySchedule>) return wd_schedule_from_toml(t);
  else static_assert(always_false<T>, "kumiki: from_toml knows Schedule and WeightDecaySchedule");
}

}  // namespace sched
KUMIKI_NAMESPACE_END
