// kumiki/ops/cuda/residual.cuh: CUDA residual add and gradient accumulation: one elementwise kernel,
// 128-bit loads and stores where the pointers allow, a scalar kernel for the rest.
#pragma once

#include <algorithm>
#include <cstdint>

#include <cuda_runtime.h>

#include "kumiki/config.hpp"
#include "kumiki/core/bf16.hpp"
#include "kumiki/core/cuda/check.cuh"
#include "kumiki/core/device.hpp"
#include "kumiki/core/precision.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/ops/cuda/context.cuh"
#include "kumiki/ops/cuda/elementwise.cuh"
#include "kumiki/ops/residual.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {
namespace residual_kernels {

using elementwise_kernels::aligned;
using elementwise_kernels::grid_for;
using elementwise_kernels::max_blocks;
using elementwise_kernels::threads;
using elementwise_kernels::Vec;

/// out[i] = a[i] + b[i] for i in [first, first + V * count), V elements per thread and step, computed
/// in float and rounded once to T. out may be a or b (each element is read and written by one thread).
template <class T, int V>
__global__ void __launch_bounds__(threads)
    add_kernel(T const* a, T const* b, T* out, std::int64_t first, std::int64_t count) {
  using P = Vec<T, V>;
  P const* pa = reinterpret_cast<P const*>(a + first);
  P const* pb = reinterpret_cast<P const*>(b + first);
  P* po = reinterpret_cast<P*>(out + first);
  std::int64_t const stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < count; k += stride) {
    P const x = pa[k], y = pb[k];
    P z;
    KUMIKI_UNROLL
    for (int e = 0; e < V; ++e) z.v[e] = T(static_cast<float>(x.v[e]) + static_cast<float>(y.v[e]));
    po[k] = z;
  }
}

/// Launches out = a + b over n elements on `stream`: the 128-bit kernel over the largest multiple of
/// 16 bytes when all three pointers are 16-byte aligned, the scalar kernel over the rest (or all).
template <class T>
void add(cudaStream_t stream, T const* a, T const* b, T* out, std::int64_t n) {
  constexpr int V = static_cast<int>(16 / sizeof(T));
  std::int64_t done = 0;
  if (aligned(a, 16) && aligned(b, 16) && aligned(out, 16)) {
    std::int64_t const packs = n / V;
    if (packs > 0) {
      add_kernel<T, V><<<grid_for(packs), threads, 0, stream>>>(a, b, out, 0, packs);
      KUMIKI_CUDA_CHECK(cudaGetLastError());
    }
    done = packs * V;
  }
  if (done < n) {
    add_kernel<T, 1><<<grid_for(n - done), threads, 0, stream>>>(a, b, out, done, n - done);
    KUMIKI_CUDA_CHECK(cudaGetLastError());
  }
}

}  // namespace residual_kernels

template <>
struct Residual<Cuda> {
  /// out = a + b over n elements (out may be a or b, not a partial overlap), in float, rounded once
  /// to T. Grid-stride over 16-byte packs (256 threads, at most 2^15 blocks) plus a scalar tail.
  /// Deterministic: every element is written by one thread with one fixed formula.
  template <class T>
  static void forward(Ctx<Cuda>& ctx, T const* a, T const* b, T* out, std::int64_t n) {
    if (n > 0) residual_kernels::add(ctx.stream, a, b, out, n);
  }
  /// d_acc += d over n elements: forward(d_acc, d, d_acc), same kernel, same determinism argument.
  template <class T>
  static void accumulate(Ctx<Cuda>& ctx, T* d_acc, T const* d, std::int64_t n) {
    if (n > 0) residual_kernels::add(ctx.stream, static_cast<T const*>(d_acc), d, d_acc, n);
  }
};

static_assert(ResidualOp<Residual<Cuda>, Cuda, float> &&
              ResidualOp<Residual<Cuda>, Cuda, Precision<bf16, bf16, float, float, float>>);

}  // namespace ops
KUMIKI_NAMESPACE_END
