// kumiki/ops/cuda/residual_rmsnorm.cuh: CUDA residual add fused with the RMSNorm that reads it: one
// kernel reads a and b once, writes sum = a + b, and normalizes the stored sum into y with rstd saved.
// It uses the element mapping, loads and block reduction of ops/cuda/rmsnorm.cuh: y and rstd are
// computed exactly as RmsNorm<Cuda>::forward computes them from the stored sum.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include "kumiki/config.hpp"
#include "kumiki/core/bf16.hpp"
#include "kumiki/core/cuda/check.cuh"
#include "kumiki/core/device.hpp"
#include "kumiki/core/precision.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/ops/cuda/context.cuh"
#include "kumiki/ops/cuda/rmsnorm.cuh"
#include "kumiki/ops/residual_rmsnorm.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

namespace residual_rmsnorm_kernels {

/// Block b takes rows b, b + gridDim.x, ...; per row, pass 1: s = round_T(a + b) stored to sum, and
/// the sum of s^2 of the ROUNDED values (what a norm reading the stored sum sees), then block_sum's
/// fixed tree; rstd = 1 / sqrt(sum / c + eps); pass 2: y = s * rstd * w with s read back from sum.
/// Each thread reads back only the elements it wrote itself (same chunk mapping in both passes), so
/// no barrier is needed and sum may alias a or b, y may alias sum.
template <class T, class W, class S, int K>
__global__ void __launch_bounds__(rmsnorm_kernels::max_threads)
    forward_kernel(T const* a, T const* b, T* sum, W const* w, T* y, S* rstd, std::int64_t n, std::int64_t c, float eps,
                   bool vec) {
  namespace rk = rmsnorm_kernels;
  __shared__ float warp_sums[32];
  std::int64_t const chunks = (c + K - 1) / K;
  for (std::int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    T* sr = sum + i * c;
    float squares = 0.0f;
    for (std::int64_t ch = threadIdx.x; ch < chunks; ch += blockDim.x) {
      float av[K], bv[K], sv[K];
      rk::load_chunk<K>(a + i * c, ch * K, c, vec, av);
      rk::load_chunk<K>(b + i * c, ch * K, c, vec, bv);
#pragma unroll
      for (int k = 0; k < K; ++k) sv[k] = rk::round_as<T>(av[k] + bv[k]);
      rk::store_chunk<K>(sr, ch * K, c, vec, sv);
#pragma unroll
      for (int k = 0; k < K; ++k)
        if (ch * K + k < c) squares += sv[k] * sv[k];
    }
    float const r = 1.0f / sqrtf(rk::block_sum(squares, warp_sums) / static_cast<float>(c) + eps);
    if (threadIdx.x == 0) rstd[i] = rk::store_as<S>(r);
    for (std::int64_t ch = threadIdx.x; ch < chunks; ch += blockDim.x) {
      float sv[K], wv[K], yv[K];
      rk::load_chunk<K>(static_cast<T const*>(sr), ch * K, c, vec, sv);
      rk::load_chunk<K>(w, ch * K, c, vec, wv);
#pragma unroll
      for (int k = 0; k < K; ++k) yv[k] = sv[k] * r * wv[k];
      rk::store_chunk<K>(y + i * c, ch * K, c, vec, yv);
    }
  }
}

}  // namespace residual_rmsnorm_kernels

template <>
struct ResidualRmsNorm<Cuda> {
  /// sum (n, c) = a + b (rounded to T); y = sum * rstd * w, rstd[i] = 1 / sqrt(mean_j sum[i,j]^2 + eps),
  /// in one kernel: one block per row (at most 256 threads, chosen from c), fp32 arithmetic, the sum
  /// of squares in a fixed tree (rmsnorm_kernels::block_sum), so the result depends on (n, c) only. As
  /// on the CPU (Residual, then RmsNorm), the norm reads the sum rounded to T. n or c <= 0: nothing to do.
  template <class T, class W, class S>
  static void forward(Ctx<Cuda>& ctx, T const* a, T const* b, T* sum, W const* w, T* y, S* rstd, std::int64_t n,
                      std::int64_t c, double eps) {
    namespace rk = rmsnorm_kernels;
    static_assert(rk::storage_type<T> && rk::storage_type<W> && rk::storage_type<S>,
                  "kumiki: ResidualRmsNorm<Cuda> takes float or bf16");
    if (n <= 0 || c <= 0) return;
    constexpr int K = rk::chunk_elems<T>;
    std::int64_t const chunks = (c + K - 1) / K;
    bool const vec = c % K == 0 && rk::pack_aligned<K>(a) && rk::pack_aligned<K>(b) &&
                     rk::pack_aligned<K>(static_cast<T const*>(sum)) && rk::pack_aligned<K>(w) &&
                     rk::pack_aligned<K>(static_cast<T const*>(y));
    residual_rmsnorm_kernels::forward_kernel<T, W, S, K><<<rk::row_grid(n), rk::threads_for(chunks), 0, ctx.stream>>>(
        a, b, sum, w, y, rstd, n, c, static_cast<float>(eps), vec);
    KUMIKI_CUDA_CHECK(cudaGetLastError());
  }
};

static_assert(ResidualRmsNormOp<ResidualRmsNorm<Cuda>, Cuda, float> &&
              ResidualRmsNormOp<ResidualRmsNorm<Cuda>, Cuda, Precision<bf16, bf16, float, float, float>>);

}  // namespace ops
KUMIKI_NAMESPACE_END
