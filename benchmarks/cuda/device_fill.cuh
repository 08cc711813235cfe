// Device-side random fills for the CUDA benchmarks and gpu_ceilings: Philox uniforms in (lo, hi),
// written by a grid-stride kernel (random data, since zeros make GEMMs run faster than real ones).
#pragma once

#include <cstdint>

#include "kumiki/core/philox.hpp"

namespace kumiki_bench {

template <class T>
__global__ void fill_uniform(T* p, std::int64_t n, std::uint64_t stream, float lo, float hi) {
  kumiki::PhiloxStream const s{0x62656e6368, stream};
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    p[i] = T(lo + (hi - lo) * s.uniform(static_cast<std::uint64_t>(i)));
}

}  // namespace kumiki_bench
