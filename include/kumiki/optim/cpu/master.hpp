// kumiki/optim/cpu/master.hpp: fp32 master weights to and from their two 16-bit halves on the host
// (optim/master.hpp), element by element (OpenMP; each element independent, so any thread count gives
// the same bits).
#pragma once

#include <cstdint>

#include "kumiki/config.hpp"
#include "kumiki/core/bf16.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/optim/master.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace optim {

template <>
struct MasterSplit<Cpu> {
  static void split(ops::Ctx<Cpu>& /*ctx*/, float const* x, bf16* hi, std::uint16_t* lo, std::int64_t n) {
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) {
      MasterHalves const h = split_master(x[i]);
      hi[i] = bf16::from_bits(h.hi);
      if (lo != nullptr) lo[i] = h.lo;
    }
  }
  static void join(ops::Ctx<Cpu>& /*ctx*/, bf16 const* hi, std::uint16_t const* lo, float* x, std::int64_t n) {
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) x[i] = join_master(hi[i].bits, lo[i]);
  }
};

}  // namespace optim
KUMIKI_NAMESPACE_END
