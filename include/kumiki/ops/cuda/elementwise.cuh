// kumiki/ops/cuda/elementwise.cuh: what the CUDA elementwise ops (residual, SwiGLU, RoPE) share: the
// block size, the grid of a grid-stride launch, 128-bit element packs and the alignment test that
// decides whether a launch may use them.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kumiki/config.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops::elementwise_kernels {

inline constexpr int threads = 256;
/// Grid-stride kernels never launch more blocks than this (about 60 waves of an H100 / H200).
inline constexpr std::int64_t max_blocks = std::int64_t{1} << 15;

/// V consecutive elements of T, moved by one load or store (V = 16 / sizeof(T): 128 bits).
template <class T, int V>
struct alignas(sizeof(T) * V) Vec {
  T v[V];
};

/// Blocks for `work` items of one thread each, at most max_blocks (the kernels stride over the rest).
inline unsigned grid_for(std::int64_t work) {
  return static_cast<unsigned>(std::clamp<std::int64_t>((work + threads - 1) / threads, 1, max_blocks));
}

inline bool aligned(void const* p, std::size_t bytes) { return reinterpret_cast<std::uintptr_t>(p) % bytes == 0; }

}  // namespace ops::elementwise_kernels
KUMIKI_NAMESPACE_END
