// kumiki/ops/cuda/swiglu.cuh: CUDA SwiGLU h = silu(gate) * up and its backward over strided rows,
// one elementwise kernel each (128-bit loads and stores when every row start is 16-byte aligned).
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
#include "kumiki/ops/swiglu.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {
namespace swiglu_kernels {

using elementwise_kernels::aligned;
using elementwise_kernels::grid_for;
using elementwise_kernels::max_blocks;
using elementwise_kernels::threads;
using elementwise_kernels::Vec;

/// h[r, j] = gate[r, j] / (1 + exp(-gate[r, j])) * up[r, j] (the CPU's formula) in float, rounded once.
/// Work item k = (row r, pack p) of n * packs, packs = f / V; element offsets r * ld + p * V.
template <class T, int V>
__global__ void __launch_bounds__(threads)
    forward_kernel(T const* gate, T const* up, std::int64_t ld_in, T* h, std::int64_t ld_h, std::int64_t n,
                   std::int64_t packs) {
  using P = Vec<T, V>;
  std::int64_t const total = n * packs;
  std::int64_t const stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < total; k += stride) {
    std::int64_t const r = k / packs, j = (k - r * packs) * V;
    P const g = *reinterpret_cast<P const*>(gate + r * ld_in + j);
    P const u = *reinterpret_cast<P const*>(up + r * ld_in + j);
    P out;
    KUMIKI_UNROLL
    for (int e = 0; e < V; ++e) {
      float const gf = static_cast<float>(g.v[e]);
      out.v[e] = T(gf / (1.0f + expf(-gf)) * static_cast<float>(u.v[e]));
    }
    *reinterpret_cast<P*>(h + r * ld_h + j) = out;
  }
}

/// With s = sigmoid(g): d_gate = d_h * u * s * (1 + g * (1 - s)), d_up = d_h * g * s, in float.
/// Same work items as forward_kernel.
template <class T, int V>
__global__ void __launch_bounds__(threads)
    backward_kernel(T const* d_h, std::int64_t ld_h, T const* gate, T const* up, std::int64_t ld_in, T* d_gate,
                    T* d_up, std::int64_t ld_d, std::int64_t n, std::int64_t packs) {
  using P = Vec<T, V>;
  std::int64_t const total = n * packs;
  std::int64_t const stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < total; k += stride) {
    std::int64_t const r = k / packs, j = (k - r * packs) * V;
    P const g = *reinterpret_cast<P const*>(gate + r * ld_in + j);
    P const u = *reinterpret_cast<P const*>(up + r * ld_in + j);
    P const dh = *reinterpret_cast<P const*>(d_h + r * ld_h + j);
    P dg, du;
    KUMIKI_UNROLL
    for (int e = 0; e < V; ++e) {
      float const gf = static_cast<float>(g.v[e]), uf = static_cast<float>(u.v[e]), df = static_cast<float>(dh.v[e]);
      float const s = 1.0f / (1.0f + expf(-gf));
      dg.v[e] = T(df * uf * s * (1.0f + gf * (1.0f - s)));
      du.v[e] = T(df * gf * s);
    }
    *reinterpret_cast<P*>(d_gate + r * ld_d + j) = dg;
    *reinterpret_cast<P*>(d_up + r * ld_d + j) = du;
  }
}

/// The pack width for rows of f elements at strides `lds` from row-0 pointers `ptrs`: 16 / sizeof(T)
/// when f, every stride and every pointer allow 16-byte accesses, else 1.
template <class T, std::size_t P, std::size_t L>
int pack_width(std::int64_t f, void const* const (&ptrs)[P], std::int64_t const (&lds)[L]) {
  constexpr int V = static_cast<int>(16 / sizeof(T));
  bool ok = f % V == 0;
  for (void const* p : ptrs) ok = ok && aligned(p, 16);
  for (std::int64_t ld : lds) ok = ok && ld % V == 0;
  return ok ? V : 1;
}

}  // namespace swiglu_kernels

template <>
struct SwiGlu<Cuda> {
  /// h (n, f) = silu(gate) * up; gate and up rows have stride ld_in (they may be the two halves of one
  /// fused (n, 2f) projection), h rows stride ld_h. Computed in float from T inputs, rounded once.
  /// Grid-stride over (row, pack) items, 256 threads, at most 2^15 blocks; packs are 16 bytes when f,
  /// ld_in, ld_h and the pointers allow, single elements otherwise. Deterministic: every output element
  /// is written by one thread with one fixed formula.
  template <class T>
  static void forward(Ctx<Cuda>& ctx, T const* gate, T const* up, std::int64_t ld_in, T* h, std::int64_t ld_h,
                      std::int64_t n, std::int64_t f) {
    if (n <= 0 || f <= 0) return;
    namespace sk = swiglu_kernels;
    constexpr int V = static_cast<int>(16 / sizeof(T));
    if (sk::pack_width<T>(f, {gate, up, h}, {ld_in, ld_h}) == V)
      sk::forward_kernel<T, V>
          <<<sk::grid_for(n * (f / V)), sk::threads, 0, ctx.stream>>>(gate, up, ld_in, h, ld_h, n, f / V);
    else
      sk::forward_kernel<T, 1><<<sk::grid_for(n * f), sk::threads, 0, ctx.stream>>>(gate, up, ld_in, h, ld_h, n, f);
    KUMIKI_CUDA_CHECK(cudaGetLastError());
  }

  /// With s = sigmoid(gate): d_up = d_h * gate * s, d_gate = d_h * up * s * (1 + gate * (1 - s)).
  /// d_gate / d_up rows stride ld_d; they must not alias the inputs. Same launch shape and determinism
  /// argument as forward (one thread writes d_gate and d_up of its elements).
  template <class T>
  static void backward(Ctx<Cuda>& ctx, T const* d_h, std::int64_t ld_h, T const* gate, T const* up, std::int64_t ld_in,
                       T* d_gate, T* d_up, std::int64_t ld_d, std::int64_t n, std::int64_t f) {
    if (n <= 0 || f <= 0) return;
    namespace sk = swiglu_kernels;
    constexpr int V = static_cast<int>(16 / sizeof(T));
    if (sk::pack_width<T>(f, {d_h, gate, up, d_gate, d_up}, {ld_h, ld_in, ld_d}) == V)
      sk::backward_kernel<T, V><<<sk::grid_for(n * (f / V)), sk::threads, 0, ctx.stream>>>(
          d_h, ld_h, gate, up, ld_in, d_gate, d_up, ld_d, n, f / V);
    else
      sk::backward_kernel<T, 1><<<sk::grid_for(n * f), sk::threads, 0, ctx.stream>>>(
          d_h, ld_h, gate, up, ld_in, d_gate, d_up, ld_d, n, f);
    KUMIKI_CUDA_CHECK(cudaGetLastError());
  }
};

static_assert(SwiGluOp<SwiGlu<Cuda>, Cuda, float> &&
              SwiGluOp<SwiGlu<Cuda>, Cuda, Precision<bf16, bf16, float, float, float>>);

}  // namespace ops
KUMIKI_NAMESPACE_END
