// kumiki/ops/cpu/fill.hpp: CPU parameter fills (Philox normals addressed by index, constants).
#pragma once

#include <cstdint>

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/core/philox.hpp"
#include "kumiki/ops/fill.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

template <>
struct Fill<Cpu> {
  /// p[j] = mean + std * N_j with N_j the j-th normal of Philox stream (seed, stream): the same values
  /// for any thread count and on any backend.
  template <class T>
  static void normal(T* p, std::int64_t n, std::uint64_t seed, std::uint64_t stream, double mean, double std) {
    PhiloxStream const s{seed, stream};
#pragma omp parallel for schedule(static)
    for (std::int64_t j = 0; j < n; ++j)
      p[j] = static_cast<T>(static_cast<float>(mean) + static_cast<float>(std) * s.normal(static_cast<std::uint64_t>(j)));
  }
  template <class T>
  static void constant(T* p, std::int64_t n, T value) {
#pragma omp parallel for schedule(static)
    for (std::int64_t j = 0; j < n; ++j) p[j] = value;
  }
};

}  // namespace ops
KUMIKI_NAMESPACE_END
