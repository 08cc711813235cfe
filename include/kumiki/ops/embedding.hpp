// kumiki/ops/embedding.hpp: token embedding lookup (forward) and scatter-add (backward).
#pragma once

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

/// Token embedding: out[i] = table[tokens[i]]; backward scatter-adds rows into the table gradient.
/// Specializations: ops/cpu/embedding.hpp (Cpu), ops/cuda/embedding.cuh (Cuda).
/// \tparam Backend device tag (`Cpu`, `Cuda`)
template <class Backend>
struct Embedding {
  static_assert(always_false<Backend>,
                "kumiki: no Embedding op for this backend; include kumiki/ops/cpu/embedding.hpp (Cpu) or the CUDA header");
};

}  // namespace ops
KUMIKI_NAMESPACE_END
