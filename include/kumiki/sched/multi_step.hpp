// kumiki/sched/multi_step.hpp: a schedule scaled by constant factors from given steps on (DeepSeek's step schedule).
#pragma once

#include <array>
#include <cstddef>
#include <cmath>
#include <cstdint>
#include <string>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/sched/common.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace sched {

/// From clock count `step` on (inclusive), the lr is multiplied by `factor`.
struct Milestone {
  std::int64_t step = 0;
  double factor = 1.0;
  friend constexpr bool operator==(Milestone const&, Milestone const&) = default;
};

/// `base.lr(s)` times the factor of every milestone already reached. Composes with any schedule;
/// DeepSeek LLM uses a constant lr after warmup with x0.316 at 80% and again at 90% of training.
/// \tparam Base any schedule with `constexpr double lr(std::int64_t) const`
template <class Base>
struct MultiStep {
  static constexpr std::size_t max_milestones = 8;

  Base base{};
  std::array<Milestone, max_milestones> milestones{};
  std::size_t count = 0;  ///< milestones in use, in increasing step order
  Clock clock{};

  constexpr double lr(std::int64_t step) const {
    std::int64_t const n = clock.count(step);
    double lr = base.lr(step);
    for (std::size_t i = 0; i < count; ++i)
      if (n >= milestones[i].step) lr *= milestones[i].factor;
    return lr;
  }
  constexpr MultiStep& add(std::int64_t step, double factor) {
    if (count < max_milestones) milestones[count] = Milestone{step, factor};
    ++count;  // validate() reports an overflow
    return *this;
  }
  // In a recipe: milestone_iters = [steps...] and milestone_factors = [factors...] beside the base
  // schedule's keys.
  void validate() const {
    if constexpr (requires { base.validate(); }) base.validate();
    std::string const key = length_key("milestone", clock);
    KUMIKI_REQUIRE(count <= max_milestones, "lr schedule 'steps': at most ", max_milestones, " milestones (", key, "), got ", count);
    for (std::size_t i = 0; i < count; ++i) {
      KUMIKI_REQUIRE(milestones[i].step >= 0, "lr schedule 'steps': ", key, "[", i, "] must be >= 0, got ", milestones[i].step);
      KUMIKI_REQUIRE(milestones[i].factor >= 0.0 && std::isfinite(milestones[i].factor), "lr schedule 'steps': milestone_factors[", i,
                     "] must be finite and >= 0, got ", milestones[i].factor);
      KUMIKI_REQUIRE(i == 0 || milestones[i - 1].step <= milestones[i].step, "lr schedule 'steps': ", key,
                     " must be in increasing order, got ", milestones[i - 1].step, " before ", milestones[i].step);
    }
    KUMIKI_REQUIRE(clock.global_batch > 0, "lr schedule 'steps': global_batch must be positive, got ", clock.global_batch);
  }
  friend constexpr bool operator==(MultiStep const&, MultiStep const&) = default;
};

/// DeepSeek LLM's schedule over `total` steps: `base` (typically Constant with warmup), then x`factor`
/// at 80% and again at 90% of `total` (0.316^2 ~ max/10 at the end).
template <class Base>
constexpr MultiStep<Base> deepseek_steps(Base base, std::int64_t total, double factor = 0.316, Clock clock = {}) {
  MultiStep<Base> m{base, {}, 0, clock};
  m.add(total * 8 / 10, factor).add(total * 9 / 10, factor);
  return m;
}

}  // namespace sched
KUMIKI_NAMESPACE_END
