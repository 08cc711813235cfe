// kumiki/ops/linear.hpp: bias-free linear layers y = x W^T with W in Hugging Face [out, in] layout, forward and backward.
#pragma once

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

/// Linear: y (N, out) = x (N, in) W^T, d_x = d_y W, d_W += d_y^T x.
/// Specializations: ops/cpu/linear.hpp (Cpu), ops/cuda/linear.cuh (Cuda).
/// \tparam Backend device tag (`Cpu`, `Cuda`)
template <class Backend>
struct Linear {
  static_assert(always_false<Backend>,
                "kumiki: no Linear op for this backend; include kumiki/ops/cpu/linear.hpp (Cpu) or the CUDA header");
};

}  // namespace ops
KUMIKI_NAMESPACE_END
