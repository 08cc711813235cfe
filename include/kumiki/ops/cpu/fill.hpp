// kumiki/ops/cpu/fill.hpp: CPU parameter fills (Philox normals addressed by index, constants).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/core/philox.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/ops/fill.hpp"

KUMIKI_NAMESPACE_BEGIN
inline namespace KUMIKI_CPU_ISA {  // host loops the compiler vectorizes per instruction set (config.hpp)
/// Fills `n` floats with mean + std * N(0,1) from `s`, element j taking sample `first + j`.
/// Host loop; OpenMP-parallel over elements and therefore thread-count independent.
inline void philox_fill_normal(float* out, std::size_t n, PhiloxStream s, float mean, float std,
                               std::uint64_t first = 0) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (std::int64_t j = 0; j < static_cast<std::int64_t>(n); ++j)
    out[j] = mean + std * s.normal(first + static_cast<std::uint64_t>(j));
}

/// Fills `n` floats with uniform samples in (lo, hi).
inline void philox_fill_uniform(float* out, std::size_t n, PhiloxStream s, float lo, float hi,
                                std::uint64_t first = 0) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (std::int64_t j = 0; j < static_cast<std::int64_t>(n); ++j)
    out[j] = lo + (hi - lo) * s.uniform(first + static_cast<std::uint64_t>(j));
}
}  // namespace KUMIKI_CPU_ISA


namespace ops {

template <>
struct Fill<Cpu> {
  /// p[j] = mean + std * N_j with N_j the j-th normal of Philox stream (seed, stream): the same values
  /// for any thread count and on any backend. One fused multiply-add in float (std::fma; the CUDA
  /// fill uses __fmaf_rn), so the value does not depend on whether the compiler contracts.
  template <class T>
  static void normal(Ctx<Cpu>& /*ctx*/, T* p, std::int64_t n, std::uint64_t seed, std::uint64_t stream, double mean, double std) {
    PhiloxStream const s{seed, stream};
#pragma omp parallel for schedule(static)
    for (std::int64_t j = 0; j < n; ++j)
      p[j] = static_cast<T>(std::fma(static_cast<float>(std), s.normal(static_cast<std::uint64_t>(j)), static_cast<float>(mean)));
  }
  /// Zeroes n bytes in 1 MiB pieces shared by the threads (gradient arenas are tens of MiB to GiB).
  static void zero_bytes(Ctx<Cpu>& /*ctx*/, void* p, std::size_t n) {
    constexpr std::size_t piece = std::size_t{1} << 20;
    auto* b = static_cast<unsigned char*>(p);
    std::int64_t const pieces = static_cast<std::int64_t>((n + piece - 1) / piece);
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < pieces; ++i) {
      std::size_t const first = static_cast<std::size_t>(i) * piece;
      std::memset(b + first, 0, std::min(piece, n - first));
    }
  }
  template <class T>
  static void constant(Ctx<Cpu>& /*ctx*/, T* p, std::int64_t n, T value) {
#pragma omp parallel for schedule(static)
    for (std::int64_t j = 0; j < n; ++j) p[j] = value;
  }
};

static_assert(FillOp<Fill<Cpu>, Cpu, float> && FillOp<Fill<Cpu>, Cpu, double>);

}  // namespace ops
KUMIKI_NAMESPACE_END
