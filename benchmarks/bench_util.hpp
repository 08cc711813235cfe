// Helpers shared by the CPU model benchmarks.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace kumiki_bench {

/// n token ids uniform in [0, vocab), from a fixed seed.
inline std::vector<std::int32_t> random_tokens(std::int64_t n, std::int64_t vocab, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<std::int32_t> d(0, static_cast<std::int32_t>(vocab) - 1);
  std::vector<std::int32_t> t(static_cast<std::size_t>(n));
  for (auto& x : t) x = d(rng);
  return t;
}

}  // namespace kumiki_bench
