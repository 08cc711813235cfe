// kumiki/ops/rmsnorm.hpp: RMSNorm forward and backward (Zhang & Sennrich 2019, as in Llama).
#pragma once

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

/// RMSNorm: y = x / sqrt(mean(x^2) + eps) * w over the last dimension; saves 1/rms per row.
/// Specializations: ops/cpu/rmsnorm.hpp (Cpu), ops/cuda/rmsnorm.cuh (Cuda).
/// \tparam Backend device tag (`Cpu`, `Cuda`)
template <class Backend>
struct RmsNorm {
  static_assert(always_false<Backend>,
                "kumiki: no RmsNorm op for this backend; include kumiki/ops/cpu/rmsnorm.hpp (Cpu) or the CUDA header");
};

}  // namespace ops
KUMIKI_NAMESPACE_END
