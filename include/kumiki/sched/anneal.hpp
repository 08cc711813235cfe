// kumiki/sched/anneal.hpp: cooldowns from a given lr to a target (OLMo 2 mid-training) and decay branches off any schedule.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/fp.hpp"
#include "kumiki/sched/common.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace sched {

/// `from_lr` until `start`, then a `shape` cooldown reaching `to_lr` at `start + steps`, then `to_lr`.
/// With start 0 and shape linear this is OLMo 2's stage-2 schedule: begin at the lr stage 1 ended
/// with, no warmup, decay linearly to 0. The cooldown coefficients are Megatron's WSD ones.
struct Anneal {
  double from_lr = 0.0;
  double to_lr = 0.0;
  std::int64_t start = 0;  ///< in clock units
  std::int64_t steps = 0;  ///< cooldown length N in clock units
  DecayShape shape = DecayShape::linear;
  Clock clock{};

  constexpr double lr(std::int64_t step) const {
    std::int64_t const n = clock.count(step);
    if (n <= start) return from_lr;
    if (n >= start + steps) return to_lr;
    double const q = static_cast<double>(n - start) / static_cast<double>(steps);
    return to_lr + rounded(decay_coeff(shape, q) * (from_lr - to_lr));  // never fused (core/fp.hpp)
  }
  // In a recipe an anneal is lr (from_lr), min_lr (to_lr), lr_decay_iters (start + steps: where it
  // ends) and lr_wsd_decay_iters (steps: the cooldown over the end of it), as for WSD.
  void validate() const {
    KUMIKI_REQUIRE(steps > 0, "lr schedule 'anneal': ", length_key("lr_wsd_decay", clock), " (the cooldown length) must be positive, got ",
                   steps);
    KUMIKI_REQUIRE(start >= 0, "lr schedule 'anneal': the cooldown cannot start before 0: ", length_key("lr_wsd_decay", clock), " (",
                   steps, ") must not exceed ", length_key("lr_decay", clock), " (", start + steps, ")");
    KUMIKI_REQUIRE(steps <= std::numeric_limits<std::int64_t>::max() - start, "lr schedule 'anneal': ",
                   length_key("lr_decay", clock), " is beyond the 64-bit range");
    KUMIKI_REQUIRE(from_lr >= 0.0 && to_lr >= 0.0 && std::isfinite(from_lr) && std::isfinite(to_lr),
                   "lr schedule 'anneal': lr and min_lr must be finite and >= 0, got lr ", from_lr, ", min_lr ", to_lr);
    KUMIKI_REQUIRE(clock.global_batch > 0, "lr schedule 'anneal': global_batch must be positive, got ", clock.global_batch);
  }
  friend constexpr bool operator==(Anneal const&, Anneal const&) = default;
};

/// OLMo 2 mid-training: from the current lr straight down to `to_lr` over `steps` (no warmup).
constexpr Anneal linear_anneal(double current_lr, std::int64_t steps, double to_lr = 0.0, Clock clock = {}) {
  return Anneal{current_lr, to_lr, 0, steps, DecayShape::linear, clock};
}

/// A decay branch: follows `base` up to `start`, then cools down from base.lr(start) to `to_lr`
/// over `steps` (LLM-jp-4 branches its WSD stable phase at 0.9M / 1.9M / 2.9M iterations with
/// minus_sqrt over 100k iterations to 0). `start` and `steps` count in `clock` units, like `base`.
/// \tparam Base any schedule with `constexpr double lr(std::int64_t) const`
template <class Base>
struct DecayBranch {
  Base base{};
  std::int64_t start = 0;
  std::int64_t steps = 0;
  double to_lr = 0.0;
  DecayShape shape = DecayShape::minus_sqrt;
  Clock clock{};

  /// The cooldown part as a stand-alone schedule (its start lr is the base's lr at the branch point).
  constexpr Anneal anneal() const {
    // The branch point is given in clock units; the base is asked at the iteration that reaches it.
    std::int64_t const start_step = clock.unit == Unit::samples ? start / clock.global_batch : start;
    return Anneal{base.lr(start_step), to_lr, start, steps, shape, clock};
  }
  constexpr double lr(std::int64_t step) const {
    if (clock.count(step) <= start) return base.lr(step);
    return anneal().lr(step);
  }
  // In a recipe: branch_start_iters (start), branch_decay_iters (steps), branch_min_lr (to_lr),
  // branch_decay_style (shape) beside the base schedule's keys.
  void validate() const {
    if constexpr (requires { base.validate(); }) base.validate();
    KUMIKI_REQUIRE(steps > 0, "lr schedule 'branch': ", length_key("branch_decay", clock), " must be positive, got ", steps);
    KUMIKI_REQUIRE(start >= 0, "lr schedule 'branch': ", length_key("branch_start", clock), " must be >= 0, got ", start);
    KUMIKI_REQUIRE(steps <= std::numeric_limits<std::int64_t>::max() - start, "lr schedule 'branch': ",
                   length_key("branch_start", clock), " + ", length_key("branch_decay", clock), " is beyond the 64-bit range");
    KUMIKI_REQUIRE(to_lr >= 0.0 && std::isfinite(to_lr), "lr schedule 'branch': branch_min_lr must be finite and >= 0, got ", to_lr);
    KUMIKI_REQUIRE(clock.global_batch > 0, "lr schedule 'branch': global_batch must be positive, got ", clock.global_batch);
    KUMIKI_REQUIRE(clock.unit == Unit::iterations || start % clock.global_batch == 0, "lr schedule 'branch': ",
                   length_key("branch_start", clock), " (", start, ") must be a whole number of iterations of ",
                   clock.global_batch, " samples");
  }
  friend constexpr bool operator==(DecayBranch const&, DecayBranch const&) = default;
};

}  // namespace sched
KUMIKI_NAMESPACE_END
