// kumiki/ops/cuda/rope.cuh: CUDA rotary position embedding (rotate-half, as ops/cpu/rope.hpp): the
// cos / sin tables, computed in double as the CPU computes them, and the in-place rotation of strided
// (B, T, heads, head_dim) rows and its transpose.
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
#include "kumiki/ops/rope.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {
namespace rope_kernels {

using elementwise_kernels::aligned;
using elementwise_kernels::grid_for;
using elementwise_kernels::max_blocks;
using elementwise_kernels::threads;
using elementwise_kernels::Vec;

/// cos_t / sin_t (seq, half) with angle(t, i) = t * base^(-2i / head_dim): Rope<Cpu>::tables' exact
/// expression order, in double, rounded once to S. One thread per table entry.
template <class S>
__global__ void __launch_bounds__(threads)
    tables_kernel(S* cos_t, S* sin_t, std::int64_t seq, std::int64_t half, std::int64_t head_dim, double base) {
  std::int64_t const total = seq * half;
  std::int64_t const stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < total; k += stride) {
    std::int64_t const t = k / half, i = k - t * half;
    double const inv_freq = pow(base, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
    double const a = static_cast<double>(t) * inv_freq;
    cos_t[k] = static_cast<S>(cos(a));
    sin_t[k] = static_cast<S>(sin(a));
  }
}

/// Rotates V consecutive pairs (x1[i], x2[i] = x1[i + half]) of one head of one token in place:
/// forward [a c - b s, b c + a s], inverse the same with -s; float arithmetic, one rounding to T.
/// Work item k = ((token bt, head h), pack p) of batch * seq * heads * (half / V); the token's position is
/// bt % seq, its row starts at x + bt * ld.
template <class T, class S, int V>
__global__ void __launch_bounds__(threads)
    apply_kernel(T* x, std::int64_t tokens, std::int64_t seq, std::int64_t heads, std::int64_t head_dim,
                 std::int64_t ld, S const* cos_t, S const* sin_t, float sign) {
  using PT = Vec<T, V>;
  using PS = Vec<S, V>;
  std::int64_t const half = head_dim / 2, packs = half / V;
  std::int64_t const total = tokens * heads * packs;
  std::int64_t const stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < total; k += stride) {
    std::int64_t const row = k / packs, i = (k - row * packs) * V;  // row = bt * heads + h
    std::int64_t const bt = row / heads, h = row - bt * heads, t = bt % seq;
    T* x1 = x + bt * ld + h * head_dim + i;
    T* x2 = x1 + half;
    PT const a = *reinterpret_cast<PT const*>(x1), b = *reinterpret_cast<PT const*>(x2);
    PS const c = *reinterpret_cast<PS const*>(cos_t + t * half + i);
    PS const s = *reinterpret_cast<PS const*>(sin_t + t * half + i);
    PT y1, y2;
    KUMIKI_UNROLL
    for (int e = 0; e < V; ++e) {
      float const af = static_cast<float>(a.v[e]), bf = static_cast<float>(b.v[e]);
      float const cf = static_cast<float>(c.v[e]), sf = sign * static_cast<float>(s.v[e]);
      y1.v[e] = T(af * cf - bf * sf);
      y2.v[e] = T(bf * cf + af * sf);
    }
    *reinterpret_cast<PT*>(x1) = y1;
    *reinterpret_cast<PT*>(x2) = y2;
  }
}

}  // namespace rope_kernels

template <>
struct Rope<Cuda> {
  /// cos / sin tables (seq, head_dim / 2): angle(t, i) = t * base^(-2i / head_dim), evaluated in double
  /// (the CPU's expression) and rounded once to S. CUDA's double pow / cos / sin are within 1-2 ulp of
  /// the host's, so an entry may differ from Rope<Cpu>'s by one ulp of S where the double lies next to
  /// a rounding boundary. One thread per entry, grid-stride (256 threads, at most 2^15 blocks);
  /// deterministic: each entry is one thread's fixed computation.
  template <class S>
  static void tables(Ctx<Cuda>& ctx, S* cos_t, S* sin_t, std::int64_t seq, std::int64_t head_dim, double base) {
    std::int64_t const half = head_dim / 2;
    if (seq <= 0 || half <= 0) return;
    rope_kernels::tables_kernel<S><<<rope_kernels::grid_for(seq * half), rope_kernels::threads, 0, ctx.stream>>>(
        cos_t, sin_t, seq, half, head_dim, base);
    KUMIKI_CUDA_CHECK(cudaGetLastError());
  }

  /// In-place rotation of x laid out (B, T, heads, head_dim) with row stride ld per token (q and k
  /// inside one fused qkv buffer); position = t. With x = [x1, x2] halves: forward [x1 cos - x2 sin,
  /// x2 cos + x1 sin]; inverse = true applies the transpose [d1 cos + d2 sin, d2 cos - d1 sin]. T
  /// activations, S (float) tables, float arithmetic. One thread per (token, head, pack of V pairs),
  /// grid-stride; V = 16 / sizeof(T) when half, ld and the pointers allow 16-byte accesses of x (and
  /// the matching V * sizeof(S) of the tables), else 1. Deterministic: each element of x is read and
  /// written by one thread (its pair's), with one fixed formula.
  template <class T, class S>
  static void apply(Ctx<Cuda>& ctx, T* x, std::int64_t batch, std::int64_t seq, std::int64_t heads,
                    std::int64_t head_dim, std::int64_t ld, S const* cos_t, S const* sin_t, bool inverse) {
    namespace rk = rope_kernels;
    std::int64_t const half = head_dim / 2, tokens = batch * seq;
    if (tokens <= 0 || heads <= 0 || half <= 0) return;
    float const sign = inverse ? -1.0f : 1.0f;
    constexpr int V = static_cast<int>(16 / sizeof(T));
    bool const packed = half % V == 0 && head_dim % V == 0 && ld % V == 0 && rk::aligned(x, 16) &&
                        rk::aligned(cos_t, V * sizeof(S)) && rk::aligned(sin_t, V * sizeof(S));
    if (packed)
      rk::apply_kernel<T, S, V><<<rk::grid_for(tokens * heads * (half / V)), rk::threads, 0, ctx.stream>>>(
          x, tokens, seq, heads, head_dim, ld, cos_t, sin_t, sign);
    else
      rk::apply_kernel<T, S, 1><<<rk::grid_for(tokens * heads * half), rk::threads, 0, ctx.stream>>>(
          x, tokens, seq, heads, head_dim, ld, cos_t, sin_t, sign);
    KUMIKI_CUDA_CHECK(cudaGetLastError());
  }
};

static_assert(RopeOp<Rope<Cuda>, Cuda, float> && RopeOp<Rope<Cuda>, Cuda, Precision<bf16, bf16, float, float, float>>);

}  // namespace ops
KUMIKI_NAMESPACE_END
