// tests/ops/gradcheck.hpp: central finite differences in double precision against analytic gradients.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <omp.h>

namespace kumiki_test {

struct GradError {
  double max_rel = 0.0;   // max_i |num_i - ana_i| / max_i max(|num_i|, |ana_i|)
  double norm_rel = 0.0;  // ||num - ana|| / ||num||
  std::int64_t checked = 0;
};

/// Perturbs up to `max_samples` entries of x (spread over the whole tensor) by +-h, evaluates `loss`,
/// and compares the central difference with the analytic gradient `g`. Prints the errors.
inline GradError gradcheck(std::string const& what, std::function<double()> const& loss, double* x,
                           double const* g, std::int64_t n, std::int64_t max_samples = 400, double h = 1e-5) {
  std::vector<std::int64_t> idx;
  if (n <= max_samples) {
    for (std::int64_t i = 0; i < n; ++i) idx.push_back(i);
  } else {
    std::mt19937_64 rng(static_cast<std::uint64_t>(n) * 7919u);
    std::uniform_int_distribution<std::int64_t> pick(0, n - 1);
    for (std::int64_t s = 0; s < max_samples; ++s) idx.push_back(pick(rng));
  }
  double max_diff = 0.0, max_mag = 0.0, diff2 = 0.0, num2 = 0.0;
  for (std::int64_t i : idx) {
    double const keep = x[i];
    x[i] = keep + h;
    double const lp = loss();
    x[i] = keep - h;
    double const lm = loss();
    x[i] = keep;
    double const num = (lp - lm) / (2.0 * h);
    max_diff = std::max(max_diff, std::abs(num - g[i]));
    max_mag = std::max({max_mag, std::abs(num), std::abs(g[i])});
    diff2 += (num - g[i]) * (num - g[i]);
    num2 += num * num;
  }
  GradError e;
  e.max_rel = max_mag > 0 ? max_diff / max_mag : max_diff;
  e.norm_rel = num2 > 0 ? std::sqrt(diff2 / num2) : std::sqrt(diff2);
  e.checked = static_cast<std::int64_t>(idx.size());
  std::printf("gradcheck %-48s %6lld entries  max rel %.3e  norm rel %.3e  (|grad| max %.3e)\n", what.c_str(),
              static_cast<long long>(e.checked), e.max_rel, e.norm_rel, max_mag);
  return e;
}

/// Runs a finite-difference check on one thread: the sizes are tiny, and thousands of loss
/// evaluations would otherwise pay an OpenMP fork/join each on a busy machine.
struct SingleThread {
  int saved;
  SingleThread() : saved(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~SingleThread() { omp_set_num_threads(saved); }
  SingleThread(SingleThread const&) = delete;
  SingleThread& operator=(SingleThread const&) = delete;
};

inline std::vector<double> random_vector(std::int64_t n, std::uint64_t seed, double scale = 1.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> d(0.0, scale);
  std::vector<double> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = d(rng);
  return v;
}

/// n token ids uniform in [0, vocab), reproducible from `seed`.
inline std::vector<std::int32_t> random_tokens(std::int64_t n, std::int32_t vocab, std::uint64_t seed) {
  std::mt19937 rng(static_cast<std::uint32_t>(seed));
  std::uniform_int_distribution<std::int32_t> d(0, vocab - 1);
  std::vector<std::int32_t> t(static_cast<std::size_t>(n));
  for (auto& x : t) x = d(rng);
  return t;
}

inline double dot(std::vector<double> const& a, std::vector<double> const& b) {
  double s = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace kumiki_test
