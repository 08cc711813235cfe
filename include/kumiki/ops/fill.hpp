// kumiki/ops/fill.hpp: parameter initialization: Philox normal samples and constants, thread-count independent.
#pragma once

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

/// Parameter fills: normal(seed, stream) from Philox, addressed by element index; constants.
/// Specializations: ops/cpu/fill.hpp (Cpu), ops/cuda/fill.cuh (Cuda).
/// \tparam Backend device tag (`Cpu`, `Cuda`)
template <class Backend>
struct Fill {
  static_assert(always_false<Backend>,
                "kumiki: no Fill op for this backend; include kumiki/ops/cpu/fill.hpp (Cpu) or the CUDA header");
};

}  // namespace ops
KUMIKI_NAMESPACE_END
