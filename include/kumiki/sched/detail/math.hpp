// kumiki/sched/detail/math.hpp: sqrt, cos and 2^x usable in constant expressions (schedules are constexpr).
#pragma once

#include <cmath>
#include <limits>
#include <type_traits>

#include "kumiki/config.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace sched::detail {

// At run time these call the C library (the same functions Python's math module calls, so run-time
// schedule values follow Megatron's Python arithmetic); during constant evaluation, where <cmath> is
// not constexpr in C++20, they use the series below, accurate to a few ulp on the ranges schedules use.

inline constexpr double pi = 3.141592653589793238462643383279502884;

constexpr double cx_sqrt(double x) {
  if (!(x > 0.0)) return x == 0.0 ? 0.0 : std::numeric_limits<double>::quiet_NaN();  // negative or NaN
  if (x == std::numeric_limits<double>::infinity()) return x;
  // Scale into [1, 4) by powers of four, Newton-iterate, scale back by the matching power of two.
  double scale = 1.0;
  while (x >= 4.0) {
    x *= 0.25;
    scale *= 2.0;
  }
  while (x < 1.0) {
    x *= 4.0;
    scale *= 0.5;
  }
  double r = 0.5 * (1.0 + x);
  for (int i = 0; i < 8; ++i) r = 0.5 * (r + x / r);
  return r * scale;
}

/// cos(x) for |x| <= 2 pi by its Taylor series (terms shrink below 1e-17 by k = 30).
constexpr double cx_cos(double x) {
  while (x > pi) x -= 2.0 * pi;
  while (x < -pi) x += 2.0 * pi;
  double const x2 = x * x;
  double term = 1.0, sum = 1.0;
  for (int k = 1; k <= 30; ++k) {
    term *= -x2 / static_cast<double>((2 * k - 1) * (2 * k));
    sum += term;
  }
  return sum;
}

/// 2^y by the exponential series of y ln 2 (|y| small in schedules: 0.5^q with q in [0, 1]).
constexpr double cx_exp2(double y) {
  double const z = y * 0.693147180559945309417232121458176568;
  double term = 1.0, sum = 1.0;
  for (int k = 1; k <= 40; ++k) {
    term *= z / static_cast<double>(k);
    sum += term;
  }
  return sum;
}

constexpr double sqrt(double x) {
  if (std::is_constant_evaluated()) return cx_sqrt(x);
  return std::sqrt(x);
}
constexpr double cos(double x) {
  if (std::is_constant_evaluated()) return cx_cos(x);
  return std::cos(x);
}
/// x ** 0.5 as Python computes it (C pow, which may differ from the correctly rounded sqrt in the
/// last bit): Megatron's inverse-square-root style. GCC turns pow(x, 0.5) into sqrt only under
/// -funsafe-math-optimizations, which kumiki never uses.
constexpr double pow_half(double x) {
  if (std::is_constant_evaluated()) return cx_sqrt(x);
  return std::pow(x, 0.5);
}
/// 0.5^q, as Megatron's math.pow(0.5, q).
constexpr double half_pow(double q) {
  if (std::is_constant_evaluated()) return cx_exp2(-q);
  return std::pow(0.5, q);
}

}  // namespace sched::detail
KUMIKI_NAMESPACE_END
