// kumiki/ops/swiglu.hpp: the SwiGLU activation h = silu(gate) * up and its backward.
#pragma once

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

/// SwiGLU: h = silu(gate) * up elementwise, silu(g) = g * sigmoid(g).
/// Specializations: ops/cpu/swiglu.hpp (Cpu), ops/cuda/swiglu.cuh (Cuda).
/// \tparam Backend device tag (`Cpu`, `Cuda`)
template <class Backend>
struct SwiGlu {
  static_assert(always_false<Backend>,
                "kumiki: no SwiGlu op for this backend; include kumiki/ops/cpu/swiglu.hpp (Cpu) or the CUDA header");
};

}  // namespace ops
KUMIKI_NAMESPACE_END
