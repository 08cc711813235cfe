// kumiki/ops/rope.hpp: rotary position embedding, rotate-half convention (Hugging Face Llama, Megatron default).
#pragma once

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

/// RoPE on (B, T, heads, head_dim) rows: cos/sin tables, in-place rotation and its transpose.
/// Specializations: ops/cpu/rope.hpp (Cpu), ops/cuda/rope.cuh (Cuda).
/// \tparam Backend device tag (`Cpu`, `Cuda`)
template <class Backend>
struct Rope {
  static_assert(always_false<Backend>,
                "kumiki: no Rope op for this backend; include kumiki/ops/cpu/rope.hpp (Cpu) or the CUDA header");
};

}  // namespace ops
KUMIKI_NAMESPACE_END
