// kumiki/ops/residual.hpp: residual additions (the backward of a residual add is the identity).
#pragma once

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

/// Residual add: out = a + b elementwise.
/// Specializations: ops/cpu/residual.hpp (Cpu), ops/cuda/residual.cuh (Cuda).
/// \tparam Backend device tag (`Cpu`, `Cuda`)
template <class Backend>
struct Residual {
  static_assert(always_false<Backend>,
                "kumiki: no Residual op for this backend; include kumiki/ops/cpu/residual.hpp (Cpu) or the CUDA header");
};

}  // namespace ops
KUMIKI_NAMESPACE_END
