// kumiki/data/normalize.hpp: Megatron's weight normalization, bit for bit: w / numpy.sum(w), with
// numpy's pairwise float64 summation (blend weights and --split shares go through it).
#pragma once

#include <cstddef>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace data {

/// numpy.sum of a contiguous float64 array (numpy's pairwise_sum, the add-reduce loop of
/// numpy/core/src/umath): below 8 elements a plain left-to-right loop; up to 128 elements eight
/// accumulators r[j] += a[i + j] stepping by 8, combined ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)),
/// then the rest added left to right; above 128 the two halves (split at n / 2 rounded down to a
/// multiple of 8) summed recursively. The reduction starts from add's identity 0.0, so the result is
/// 0.0 + pairwise(a). From 8 weights on this differs from Python's sum(): ten weights of 0.1 sum to
/// exactly 1.0 here, to 0.9999999999999999 left to right, and Megatron's requests follow numpy.
inline double numpy_pairwise_sum(double const* a, std::size_t n) {
  constexpr std::size_t block = 128;  // numpy's PW_BLOCKSIZE
  if (n < 8) {
    double res = 0.0;
    for (std::size_t i = 0; i < n; ++i) res += a[i];
    return res;
  }
  if (n <= block) {
    double r[8];
    for (std::size_t j = 0; j < 8; ++j) r[j] = a[j];
    std::size_t i = 8;
    for (; i < n - n % 8; i += 8)
      for (std::size_t j = 0; j < 8; ++j) r[j] += a[i + j];
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  std::size_t n2 = n / 2;
  n2 -= n2 % 8;
  return numpy_pairwise_sum(a, n2) + numpy_pairwise_sum(a + n2, n - n2);
}

inline double numpy_sum(std::vector<double> const& a) { return 0.0 + numpy_pairwise_sum(a.data(), a.size()); }

/// Megatron's utils.normalize: each weight divided by numpy.sum of all of them. Callers check the
/// weights first (positive, finite), so a non-positive sum here is a bug.
inline std::vector<double> normalize_weights(std::vector<double> const& weights) {
  double const sum = numpy_sum(weights);
  KUMIKI_CHECK(sum > 0, "weights sum to ", sum);
  std::vector<double> out;
  out.reserve(weights.size());
  for (double w : weights) out.push_back(w / sum);
  return out;
}

}  // namespace data
KUMIKI_NAMESPACE_END
