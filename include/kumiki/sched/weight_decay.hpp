// kumiki/sched/weight_decay.hpp: Megatron's weight-decay increment schedule (start_wd -> end_wd).
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string_view>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/fp.hpp"
#include "kumiki/sched/common.hpp"
#include "kumiki/sched/detail/math.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace sched {

/// Megatron `--weight-decay-incr-style`.
enum class WdIncrement : std::uint8_t { constant, linear, cosine };

constexpr std::string_view wd_increment_name(WdIncrement s) {
  return s == WdIncrement::constant ? "constant" : s == WdIncrement::linear ? "linear" : "cosine";
}
constexpr std::optional<WdIncrement> parse_wd_increment(std::string_view s) {
  if (s == "constant") return WdIncrement::constant;
  if (s == "linear") return WdIncrement::linear;
  if (s == "cosine") return WdIncrement::cosine;
  return std::nullopt;
}

/// Megatron-LM OptimizerParamScheduler.get_wd, with n = clock.count(step), I = incr_steps (Megatron
/// uses the whole run: train_iters x global batch): n > I -> end_wd; constant -> end_wd (start must
/// equal end); else r = n / I, coeff = r (linear) or (1 + cos(pi (1 - r))) / 2 (cosine),
/// wd = start_wd + coeff * (end_wd - start_wd). The default is LLM-jp's constant 0.1.
struct WeightDecaySchedule {
  double start_wd = 0.1;
  double end_wd = 0.1;
  std::int64_t incr_steps = 0;
  WdIncrement style = WdIncrement::constant;
  Clock clock{};

  constexpr double wd(std::int64_t step) const {
    std::int64_t const n = clock.count(step);
    if (n > incr_steps) return end_wd;
    if (style == WdIncrement::constant) return end_wd;
    double const r = static_cast<double>(n) / static_cast<double>(incr_steps);
    double const coeff = style == WdIncrement::linear ? r : 0.5 * (detail::cos(detail::pi * (1.0 - r)) + 1.0);
    return start_wd + rounded(coeff * (end_wd - start_wd));  // never fused (core/fp.hpp)
  }
  // In a recipe: start_weight_decay, end_weight_decay, weight_decay_incr_style (Megatron's flags) and
  // weight_decay_incr_iters (incr_steps; Megatron uses the run length).
  void validate() const {
    KUMIKI_REQUIRE(start_wd >= 0.0 && end_wd >= start_wd && std::isfinite(end_wd),
                   "weight-decay schedule: need 0 <= start_weight_decay <= end_weight_decay, got ", start_wd, " and ", end_wd);
    KUMIKI_REQUIRE(style != WdIncrement::constant || start_wd == end_wd,
                   "weight-decay schedule: weight_decay_incr_style constant needs start_weight_decay == end_weight_decay, got ",
                   start_wd, " and ", end_wd);
    KUMIKI_REQUIRE(style == WdIncrement::constant || incr_steps > 0, "weight-decay schedule: ",
                   length_key("weight_decay_incr", clock), " must be positive, got ", incr_steps);
    KUMIKI_REQUIRE(clock.global_batch > 0, "weight-decay schedule: global_batch must be positive, got ", clock.global_batch);
  }
  friend constexpr bool operator==(WeightDecaySchedule const&, WeightDecaySchedule const&) = default;
};

}  // namespace sched
KUMIKI_NAMESPACE_END
