// kumiki/sched/schedule.hpp: `Schedule`, one value holding any learning-rate schedule (what a trainer and a recipe hold).
#pragma once

#include <concepts>
#include <cstdint>
#include <string_view>
#include <type_traits>
#include <variant>

#include "kumiki/config.hpp"
#include "kumiki/sched/anneal.hpp"
#include "kumiki/sched/common.hpp"
#include "kumiki/sched/megatron.hpp"
#include "kumiki/sched/multi_step.hpp"
#include "kumiki/sched/weight_decay.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace sched {

/// A learning-rate schedule: anything with a constant-evaluable lr(step).
template <class S>
concept LrSchedule = requires(S const& s, std::int64_t step) {
  { s.lr(step) } -> std::same_as<double>;
};

/// The name of each schedule type: for the Megatron styles their `lr_decay_style` value (Megatron's
/// --lr-decay-style), for the composed ones what `kumiki lr` labels them with.
template <class S> inline constexpr std::string_view style_name = "?";
template <> inline constexpr std::string_view style_name<Constant> = "constant";
template <> inline constexpr std::string_view style_name<Linear> = "linear";
template <> inline constexpr std::string_view style_name<Cosine> = "cosine";
template <> inline constexpr std::string_view style_name<InverseSqrt> = "inverse-square-root";
template <> inline constexpr std::string_view style_name<Wsd> = "WSD";
template <> inline constexpr std::string_view style_name<Anneal> = "anneal";

/// A schedule that is not composed of others: what a branch or a step schedule is built on.
struct BaseSchedule {
  using Variant = std::variant<Constant, Linear, Cosine, InverseSqrt, Wsd, Anneal>;
  Variant v{};

  constexpr BaseSchedule() = default;
  template <class S>
    requires std::is_constructible_v<Variant, S> && (!std::is_same_v<std::remove_cvref_t<S>, BaseSchedule>)
  constexpr BaseSchedule(S&& s) : v(static_cast<S&&>(s)) {}

  constexpr double lr(std::int64_t step) const {
    return std::visit([step](auto const& s) { return s.lr(step); }, v);
  }
  void validate() const {
    std::visit([](auto const& s) { s.validate(); }, v);
  }
  constexpr std::string_view name() const {
    return std::visit([](auto const& s) { return style_name<std::remove_cvref_t<decltype(s)>>; }, v);
  }
  friend constexpr bool operator==(BaseSchedule const&, BaseSchedule const&) = default;
};

using Branch = DecayBranch<BaseSchedule>;
using Steps = MultiStep<BaseSchedule>;
template <> inline constexpr std::string_view style_name<Branch> = "branch";
template <> inline constexpr std::string_view style_name<Steps> = "steps";

/// Any learning-rate schedule kumiki knows, as one value type. Constant-evaluable:
///   constexpr Schedule s = Cosine{.max_lr = 3e-4, .min_lr = 3e-5, .warmup = 2000, .decay_end = 100000};
///   static_assert(s.lr(2000) == 3e-4);
/// `lr(step)` takes the number of optimizer steps completed (the first update uses lr(0)).
struct Schedule {
  using Variant = std::variant<Constant, Linear, Cosine, InverseSqrt, Wsd, Anneal, Branch, Steps>;
  Variant v{};

  constexpr Schedule() = default;
  template <class S>
    requires std::is_constructible_v<Variant, S> && (!std::is_same_v<std::remove_cvref_t<S>, Schedule>)
  constexpr Schedule(S&& s) : v(static_cast<S&&>(s)) {}
  /// A non-composed schedule held as its own alternative.
  constexpr Schedule(BaseSchedule const& b) : v(std::visit([](auto const& s) -> Variant { return s; }, b.v)) {}

  constexpr double lr(std::int64_t step) const {
    return std::visit([step](auto const& s) { return s.lr(step); }, v);
  }
  /// Throws kumiki::InputError naming the schedule and the recipe key when the parameters are
  /// inconsistent (Megatron's constructor assertions, plus branch / milestone checks).
  void validate() const {
    std::visit([](auto const& s) { s.validate(); }, v);
  }
  constexpr std::string_view name() const {
    return std::visit([](auto const& s) { return style_name<std::remove_cvref_t<decltype(s)>>; }, v);
  }
  template <class S>
  constexpr S const* get_if() const {
    return std::get_if<S>(&v);
  }
  friend constexpr bool operator==(Schedule const&, Schedule const&) = default;
};

static_assert(LrSchedule<Constant> && LrSchedule<Linear> && LrSchedule<Cosine> && LrSchedule<InverseSqrt> &&
              LrSchedule<Wsd> && LrSchedule<Anneal> && LrSchedule<Branch> && LrSchedule<Steps> && LrSchedule<Schedule>);

}  // namespace sched
KUMIKI_NAMESPACE_END
