// kumiki/sched/megatron.hpp: Megatron-LM's learning-rate styles (constant, linear, cosine, inverse-sqrt, WSD).
#pragma once

#include <cmath>
#include <cstdint>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/fp.hpp"
#include "kumiki/sched/common.hpp"
#include "kumiki/sched/detail/math.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace sched {

// Megatron-LM OptimizerParamScheduler.get_lr, with n = clock.count(step), W = warmup, D = decay_end:
//   W > 0 and n <= W : init_lr + (max_lr - init_lr) * n / W      (warmup is checked first)
//   constant         : max_lr                                     (min_lr never applies)
//   n > D            : min_lr
//   inverse-sqrt     : max(min_lr, max_lr * max(W, 1)**0.5 / max(n, 1)**0.5)   (pow, as Python's **)
//   otherwise        : min_lr + coeff * (max_lr - min_lr), r = (n - W) / (D - W)
//     linear 1 - r; cosine (1 + cos(pi r)) / 2; WSD: A = D - wsd_decay, coeff = 1 for n <= A,
//     else decay_coeff(wsd_style, (n - A) / wsd_decay).
// Flag mapping: max_lr --lr, min_lr --min-lr, init_lr --lr-warmup-init, warmup --lr-warmup-iters
// (or -samples), decay_end --lr-decay-iters (or -samples; defaults to the run length),
// wsd_decay --lr-wsd-decay-iters, wsd_style --lr-wsd-decay-style.
// Bit for bit: the operations, their order and their rounding are Megatron's Python ones (no fused
// multiply-add whatever the build flags: see kumiki::rounded), so a run resumed on another machine
// continues with the same learning rates, and `kumiki lr` equals Megatron's values exactly.
namespace detail {

enum class Style : std::uint8_t { constant, linear, cosine, inverse_sqrt, wsd };

struct MegatronParams {
  double max_lr, min_lr, init_lr;
  std::int64_t warmup, decay_end, wsd_decay;
  DecayShape wsd_style;
};

constexpr double megatron_lr(Style style, MegatronParams const& a, std::int64_t n) {
  if (a.warmup > 0 && n <= a.warmup)
    return a.init_lr + (a.max_lr - a.init_lr) * static_cast<double>(n) / static_cast<double>(a.warmup);
  if (style == Style::constant) return a.max_lr;
  if (n > a.decay_end) return a.min_lr;
  if (style == Style::inverse_sqrt) {
    double const w = static_cast<double>(a.warmup > 1 ? a.warmup : 1);
    double const s = static_cast<double>(n > 1 ? n : 1);
    double const lr = a.max_lr * pow_half(w) / pow_half(s);
    return lr > a.min_lr ? lr : a.min_lr;
  }
  double const r = static_cast<double>(n - a.warmup) / static_cast<double>(a.decay_end - a.warmup);
  double const delta = a.max_lr - a.min_lr;
  double coeff = 1.0;
  if (style == Style::linear) {
    coeff = 1.0 - r;
  } else if (style == Style::cosine) {
    coeff = 0.5 * (cos(pi * r) + 1.0);
  } else {  // WSD
    std::int64_t const anneal_start = a.decay_end - a.wsd_decay;
    if (n > anneal_start)
      coeff = decay_coeff(a.wsd_style, static_cast<double>(n - anneal_start) / static_cast<double>(a.wsd_decay));
  }
  return a.min_lr + rounded(coeff * delta);
}

/// Megatron's constructor assertions, as input errors naming the schedule and the recipe keys (the
/// `kumiki lr` flags are the same names in kebab case: lr_decay_iters is --lr-decay-iters).
inline void check_megatron(char const* what, MegatronParams const& a, Clock const& c, bool decays) {
  KUMIKI_REQUIRE(c.global_batch > 0, "lr schedule '", what, "': global_batch must be positive, got ", c.global_batch);
  KUMIKI_REQUIRE(std::isfinite(a.max_lr) && std::isfinite(a.min_lr) && std::isfinite(a.init_lr), "lr schedule '", what,
                 "': lr, min_lr and lr_warmup_init must be finite, got ", a.max_lr, ", ", a.min_lr, ", ", a.init_lr);
  KUMIKI_REQUIRE(a.warmup >= 0, "lr schedule '", what, "': ", length_key("lr_warmup", c), " must be >= 0, got ", a.warmup);
  KUMIKI_REQUIRE(a.init_lr >= 0.0 && a.init_lr <= a.max_lr, "lr schedule '", what,
                 "': need 0 <= lr_warmup_init <= lr, got lr_warmup_init ", a.init_lr, ", lr ", a.max_lr);
  if (!decays) return;
  KUMIKI_REQUIRE(a.min_lr >= 0.0 && a.min_lr <= a.max_lr, "lr schedule '", what, "': need 0 <= min_lr <= lr, got min_lr ",
                 a.min_lr, ", lr ", a.max_lr);
  KUMIKI_REQUIRE(a.decay_end > 0, "lr schedule '", what, "': ", length_key("lr_decay", c), " must be positive, got ", a.decay_end);
  KUMIKI_REQUIRE(a.warmup < a.decay_end, "lr schedule '", what, "': ", length_key("lr_warmup", c), " (", a.warmup,
                 ") must be below ", length_key("lr_decay", c), " (", a.decay_end, ")");
}

}  // namespace detail

/// Warmup, then `max_lr` forever.
struct Constant {
  double max_lr = 0.0;
  double init_lr = 0.0;
  std::int64_t warmup = 0;
  Clock clock{};

  constexpr double lr(std::int64_t step) const {
    return detail::megatron_lr(detail::Style::constant, {max_lr, 0.0, init_lr, warmup, 0, 0, DecayShape::linear},
                               clock.count(step));
  }
  void validate() const {
    KUMIKI_REQUIRE(max_lr >= 0.0, "lr schedule 'constant': lr must be >= 0, got ", max_lr);
    detail::check_megatron("constant", {max_lr, 0.0, init_lr, warmup, 0, 0, DecayShape::linear}, clock, false);
  }
  friend constexpr bool operator==(Constant const&, Constant const&) = default;
};

/// Warmup, then linear decay from `max_lr` at W to `min_lr` at `decay_end`, then `min_lr`.
struct Linear {
  double max_lr = 0.0;
  double min_lr = 0.0;
  double init_lr = 0.0;
  std::int64_t warmup = 0;
  std::int64_t decay_end = 0;
  Clock clock{};

  constexpr double lr(std::int64_t step) const {
    return detail::megatron_lr(detail::Style::linear, {max_lr, min_lr, init_lr, warmup, decay_end, 0, DecayShape::linear},
                               clock.count(step));
  }
  void validate() const {
    detail::check_megatron("linear", {max_lr, min_lr, init_lr, warmup, decay_end, 0, DecayShape::linear}, clock, true);
  }
  friend constexpr bool operator==(Linear const&, Linear const&) = default;
};

/// Warmup, then half-cosine decay from `max_lr` at W to `min_lr` at `decay_end`, then `min_lr`.
struct Cosine {
  double max_lr = 0.0;
  double min_lr = 0.0;
  double init_lr = 0.0;
  std::int64_t warmup = 0;
  std::int64_t decay_end = 0;
  Clock clock{};

  constexpr double lr(std::int64_t step) const {
    return detail::megatron_lr(detail::Style::cosine, {max_lr, min_lr, init_lr, warmup, decay_end, 0, DecayShape::linear},
                               clock.count(step));
  }
  void validate() const {
    detail::check_megatron("cosine", {max_lr, min_lr, init_lr, warmup, decay_end, 0, DecayShape::linear}, clock, true);
  }
  friend constexpr bool operator==(Cosine const&, Cosine const&) = default;
};

/// Warmup, then max_lr * sqrt(W / n) floored at `min_lr`; beyond `decay_end` exactly `min_lr`
/// (Megatron checks n > D before the inverse-sqrt branch).
struct InverseSqrt {
  double max_lr = 0.0;
  double min_lr = 0.0;
  double init_lr = 0.0;
  std::int64_t warmup = 0;
  std::int64_t decay_end = 0;
  Clock clock{};

  constexpr double lr(std::int64_t step) const {
    return detail::megatron_lr(detail::Style::inverse_sqrt,
                               {max_lr, min_lr, init_lr, warmup, decay_end, 0, DecayShape::linear}, clock.count(step));
  }
  void validate() const {
    detail::check_megatron("inverse-square-root", {max_lr, min_lr, init_lr, warmup, decay_end, 0, DecayShape::linear}, clock, true);
  }
  friend constexpr bool operator==(InverseSqrt const&, InverseSqrt const&) = default;
};

/// Warmup-stable-decay: warmup, `max_lr` until A = decay_end - wsd_decay, then a `wsd_style`
/// cooldown to `min_lr` at `decay_end`, then `min_lr`. LLM-jp-4's long "stable only" run is
/// wsd_decay = 1 with decay_end beyond the run. Megatron's default wsd_style is exponential.
struct Wsd {
  double max_lr = 0.0;
  double min_lr = 0.0;
  double init_lr = 0.0;
  std::int64_t warmup = 0;
  std::int64_t decay_end = 0;
  std::int64_t wsd_decay = 0;
  DecayShape wsd_style = DecayShape::exponential;
  Clock clock{};

  constexpr std::int64_t anneal_start() const { return decay_end - wsd_decay; }
  constexpr double lr(std::int64_t step) const {
    return detail::megatron_lr(detail::Style::wsd, {max_lr, min_lr, init_lr, warmup, decay_end, wsd_decay, wsd_style},
                               clock.count(step));
  }
  void validate() const {
    detail::check_megatron("WSD", {max_lr, min_lr, init_lr, warmup, decay_end, wsd_decay, wsd_style}, clock, true);
    KUMIKI_REQUIRE(wsd_decay > 0, "lr schedule 'WSD': ", length_key("lr_wsd_decay", clock), " must be positive, got ", wsd_decay);
  }
  friend constexpr bool operator==(Wsd const&, Wsd const&) = default;
};

}  // namespace sched
KUMIKI_NAMESPACE_END
