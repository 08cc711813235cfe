// kumiki/sched/common.hpp: what every schedule shares: step units (iterations or samples) and the anneal shapes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "kumiki/config.hpp"
#include "kumiki/sched/detail/math.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace sched {

/// What a schedule's step quantities (warmup, decay end, ...) count. Megatron counts consumed
/// samples internally (iterations x global batch); `--lr-warmup-iters` and `--lr-warmup-samples`
/// are the two spellings of one quantity.
enum class Unit : std::uint8_t { iterations, samples };

/// Converts the trainer's iteration number into the unit a schedule's quantities are given in.
/// Every schedule's `lr(step)` takes `step` = optimizer steps completed so far (Megatron's scheduler
/// state: the first update uses lr(0)); `clock.count(step)` is what is compared with warmup etc.
struct Clock {
  Unit unit = Unit::iterations;
  std::int64_t global_batch = 1;  ///< samples per iteration; used when unit == samples

  constexpr std::int64_t count(std::int64_t step) const { return unit == Unit::samples ? step * global_batch : step; }
  friend constexpr bool operator==(Clock const&, Clock const&) = default;
};

/// The recipe key of a length counted by `c` (Megatron's flag names in snake_case; `kumiki lr` takes
/// them in kebab case): length_key("lr_decay", c) is "lr_decay_iters", or "lr_decay_samples".
inline std::string length_key(std::string_view base, Clock const& c) {
  return std::string(base) + (c.unit == Unit::samples ? "_samples" : "_iters");
}

/// Shape of a cooldown from a start value to a target over a fraction q in [0, 1] of its length
/// (Megatron-LM `--lr-wsd-decay-style`; coeff(0) = 1, coeff(1) = 0 for every style).
enum class DecayShape : std::uint8_t { linear, cosine, exponential, minus_sqrt };

/// Megatron-LM WSD anneal coefficients: linear 1 - q; cosine (1 + cos(pi q)) / 2;
/// exponential 2 * 0.5^q - 1; minus_sqrt 1 - sqrt(q).
constexpr double decay_coeff(DecayShape shape, double q) {
  switch (shape) {
    case DecayShape::linear: return 1.0 - q;
    case DecayShape::cosine: return 0.5 * (detail::cos(detail::pi * q) + 1.0);
    case DecayShape::exponential: return (2.0 * detail::half_pow(q)) - 1.0;
    case DecayShape::minus_sqrt: return 1.0 - detail::sqrt(q);
  }
  return 0.0;
}

constexpr std::string_view unit_name(Unit u) { return u == Unit::samples ? "samples" : "iterations"; }
constexpr std::optional<Unit> parse_unit(std::string_view s) {
  if (s == "iterations" || s == "iters") return Unit::iterations;
  if (s == "samples") return Unit::samples;
  return std::nullopt;
}

constexpr std::string_view decay_shape_name(DecayShape d) {
  switch (d) {
    case DecayShape::linear: return "linear";
    case DecayShape::cosine: return "cosine";
    case DecayShape::exponential: return "exponential";
    case DecayShape::minus_sqrt: return "minus_sqrt";
  }
  return "?";
}
constexpr std::optional<DecayShape> parse_decay_shape(std::string_view s) {
  if (s == "linear") return DecayShape::linear;
  if (s == "cosine") return DecayShape::cosine;
  if (s == "exponential") return DecayShape::exponential;
  if (s == "minus_sqrt") return DecayShape::minus_sqrt;
  return std::nullopt;
}

}  // namespace sched
KUMIKI_NAMESPACE_END
