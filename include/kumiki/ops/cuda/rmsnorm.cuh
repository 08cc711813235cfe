// kumiki/ops/cuda/rmsnorm.cuh: CUDA RMSNorm forward and backward: one thread block per row with an
// fp32 sum in a fixed reduction tree; the weight gradient as per-block partial column sums over fixed
// row groups, then a second kernel that adds the partials in group order (no atomics).
//
// Element mapping shared by every kernel here: a row of c elements is cut into chunks of K = 16 /
// sizeof(T) consecutive elements (one 16-byte load of activations), chunk ch belongs to thread
// ch % blockDim.x, and each thread walks its chunks in increasing order and the elements of a chunk in
// order. Loads are 16-byte vectors when c % K == 0 and every pointer is aligned, scalar (with bounds
// checks) otherwise; the order of the arithmetic is the same on both paths, so results do not depend
// on alignment. The block size depends on c only, so every reduction tree is fixed by the shape.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <cuda_runtime.h>

#include "kumiki/config.hpp"
#include "kumiki/core/bf16.hpp"
#include "kumiki/core/cuda/check.cuh"
#include "kumiki/core/device.hpp"
#include "kumiki/core/precision.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/ops/cuda/context.cuh"
#include "kumiki/ops/rmsnorm.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

/// Device helpers and kernels of the CUDA RMSNorm (also used by ops/cuda/residual_rmsnorm.cuh).
namespace rmsnorm_kernels {

/// Most threads per row block (a multiple of the warp size).
inline constexpr int max_threads = 256;
/// Most row groups of the backward, i.e. per-block weight-gradient partials (a fixed number, so the
/// grouping, and with it the summation order, depends on n only and not on the device).
inline constexpr std::int64_t max_row_groups = 1024;
/// Dynamic shared memory the backward uses for its column accumulators before falling back to
/// accumulating in the scratch partials directly (below the 48 KiB needing no opt-in, minus static).
inline constexpr std::size_t max_shared_accumulator_bytes = 46 * 1024;
/// Row slices summed in parallel by the weight-gradient kernel (its blockDim.y).
inline constexpr int column_slices = 8;

/// Storage types the kernels read and write (each converted to float for the arithmetic).
template <class E>
inline constexpr bool storage_type = std::is_same_v<E, float> || std::is_same_v<E, bf16>;

/// Elements per chunk: one 16-byte load of activations.
template <class T>
inline constexpr int chunk_elems = static_cast<int>(16 / sizeof(T));

__device__ __forceinline__ float as_float(float v) { return v; }
__device__ __forceinline__ float as_float(bf16 v) { return v.to_float(); }

/// float -> E, rounding to nearest even for bf16.
template <class E>
__device__ __forceinline__ E store_as(float v) {
  if constexpr (std::is_same_v<E, bf16>)
    return bf16(v);
  else
    return v;
}

/// Rounds v to E's precision (what storing as E and reading back gives).
template <class E>
__device__ __forceinline__ float round_as(float v) {
  return as_float(store_as<E>(v));
}

/// K elements of E as one aligned vector access (16 or 32 bytes).
template <class E, int K>
struct alignas(sizeof(E) * K) Pack {
  E v[K];
};

/// out[k] = row[j0 + k] as float for k < K; elements at or past c read as 0 (scalar path only: the
/// vector path is taken when c % K == 0, so a chunk is then whole).
template <int K, class E>
__device__ __forceinline__ void load_chunk(E const* row, std::int64_t j0, std::int64_t c, bool vec, float (&out)[K]) {
  if (vec) {
    Pack<E, K> const p = *reinterpret_cast<Pack<E, K> const*>(row + j0);
#pragma unroll
    for (int k = 0; k < K; ++k) out[k] = as_float(p.v[k]);
  } else {
#pragma unroll
    for (int k = 0; k < K; ++k) out[k] = j0 + k < c ? as_float(row[j0 + k]) : 0.0f;
  }
}

/// row[j0 + k] = in[k] rounded to E, for the k with j0 + k < c.
template <int K, class E>
__device__ __forceinline__ void store_chunk(E* row, std::int64_t j0, std::int64_t c, bool vec, float const (&in)[K]) {
  if (vec) {
    Pack<E, K> p;
#pragma unroll
    for (int k = 0; k < K; ++k) p.v[k] = store_as<E>(in[k]);
    *reinterpret_cast<Pack<E, K>*>(row + j0) = p;
  } else {
#pragma unroll
    for (int k = 0; k < K; ++k)
      if (j0 + k < c) row[j0 + k] = store_as<E>(in[k]);
  }
}

/// The sum of v over the block, returned to every thread. Fixed tree: a butterfly within each warp
/// (every lane ends with the same bits, as float addition commutes), then the warp totals added in
/// warp order. blockDim.x must be a multiple of 32; `warp_sums` holds 32 floats of shared memory
/// and may be reused right after the call (the final barrier protects it).
__device__ __forceinline__ float block_sum(float v, float* warp_sums) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  unsigned const warp = threadIdx.x / 32, warps = blockDim.x / 32;
  if (threadIdx.x % 32 == 0) warp_sums[warp] = v;
  __syncthreads();
  float total = warp_sums[0];
  for (unsigned i = 1; i < warps; ++i) total += warp_sums[i];
  __syncthreads();
  return total;
}

/// Threads for rows of `chunks` chunks: one chunk each up to max_threads, in whole warps.
inline int threads_for(std::int64_t chunks) {
  std::int64_t const warps = std::min<std::int64_t>((chunks + 31) / 32, max_threads / 32);
  return static_cast<int>(std::max<std::int64_t>(warps, 1) * 32);
}

/// Whether p may be read as Pack<E, K>.
template <int K, class E>
inline bool pack_aligned(E const* p) {
  return reinterpret_cast<std::uintptr_t>(p) % (sizeof(E) * K) == 0;
}

/// Blocks of a row-per-block grid (rows beyond it are taken by a block-stride loop).
inline unsigned row_grid(std::int64_t n) {
  return static_cast<unsigned>(std::min<std::int64_t>(n, std::int64_t{1} << 20));
}

/// Forward: block b normalizes rows b, b + gridDim.x, ...: rstd = 1 / sqrt(sum_j x^2 / c + eps) by
/// block_sum, then y = x * rstd * w.
template <class T, class W, class S, int K>
__global__ void __launch_bounds__(max_threads)
    forward_kernel(T const* x, W const* w, T* y, S* rstd, std::int64_t n, std::int64_t c, float eps, bool vec) {
  __shared__ float warp_sums[32];
  std::int64_t const chunks = (c + K - 1) / K;
  for (std::int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    T const* xr = x + i * c;
    float squares = 0.0f;
    for (std::int64_t ch = threadIdx.x; ch < chunks; ch += blockDim.x) {
      float xv[K];
      load_chunk<K>(xr, ch * K, c, vec, xv);
#pragma unroll
      for (int k = 0; k < K; ++k)
        if (ch * K + k < c) squares += xv[k] * xv[k];
    }
    float const r = 1.0f / sqrtf(block_sum(squares, warp_sums) / static_cast<float>(c) + eps);
    if (threadIdx.x == 0) rstd[i] = store_as<S>(r);
    for (std::int64_t ch = threadIdx.x; ch < chunks; ch += blockDim.x) {
      float xv[K], wv[K], yv[K];
      load_chunk<K>(xr, ch * K, c, vec, xv);
      load_chunk<K>(w, ch * K, c, vec, wv);
#pragma unroll
      for (int k = 0; k < K; ++k) yv[k] = xv[k] * r * wv[k];
      store_chunk<K>(y + i * c, ch * K, c, vec, yv);
    }
  }
}

/// Backward, per row group: block g takes rows [g * rows_per_group, (g + 1) * rows_per_group) in
/// order. Per row: dot = sum_j d_y * w * x by block_sum; d_x = rstd * (d_y * w) - x * rstd^3 * dot / c
/// (written, or added to d_x); each thread adds d_y * x * rstd into the accumulators of its own
/// columns (no other thread touches them, so no barrier and one order: increasing row). The
/// accumulators (layout [k][chunk]: conflict-free shared memory, coalesced global) live in dynamic
/// shared memory when `in_shared`, else directly in the block's partials row; either way the block's
/// column sums end in partials[g * K * chunks ...], read by weight_grad_kernel.
template <class T, class W, class S, int K>
__global__ void __launch_bounds__(max_threads)
    backward_rows_kernel(T const* d_y, T const* x, W const* w, S const* rstd, T* d_x, float* partials, std::int64_t n,
                         std::int64_t c, std::int64_t rows_per_group, bool accumulate, bool vec, bool in_shared) {
  extern __shared__ float shared_acc[];
  __shared__ float warp_sums[32];
  std::int64_t const chunks = (c + K - 1) / K, padded = K * chunks;
  std::int64_t const g = blockIdx.x;
  std::int64_t const row0 = g * rows_per_group, row1 = std::min(n, row0 + rows_per_group);
  float* acc = in_shared ? shared_acc : partials + g * padded;
  for (std::int64_t ch = threadIdx.x; ch < chunks; ch += blockDim.x)
#pragma unroll
    for (int k = 0; k < K; ++k) acc[k * chunks + ch] = 0.0f;
  for (std::int64_t i = row0; i < row1; ++i) {
    T const* dyr = d_y + i * c;
    T const* xr = x + i * c;
    float const r = as_float(rstd[i]);
    float dot = 0.0f;
    for (std::int64_t ch = threadIdx.x; ch < chunks; ch += blockDim.x) {
      float dy[K], xv[K], wv[K];
      load_chunk<K>(dyr, ch * K, c, vec, dy);
      load_chunk<K>(xr, ch * K, c, vec, xv);
      load_chunk<K>(w, ch * K, c, vec, wv);
#pragma unroll
      for (int k = 0; k < K; ++k)
        if (ch * K + k < c) {
          dot += dy[k] * wv[k] * xv[k];
          acc[k * chunks + ch] += dy[k] * xv[k] * r;
        }
    }
    float const coef = r * r * r * (block_sum(dot, warp_sums) / static_cast<float>(c));
    for (std::int64_t ch = threadIdx.x; ch < chunks; ch += blockDim.x) {
      float dy[K], xv[K], wv[K], dx[K] = {};
      load_chunk<K>(dyr, ch * K, c, vec, dy);
      load_chunk<K>(xr, ch * K, c, vec, xv);
      load_chunk<K>(w, ch * K, c, vec, wv);
      if (accumulate)
        load_chunk<K>(static_cast<T const*>(d_x + i * c), ch * K, c, vec, dx);
#pragma unroll
      for (int k = 0; k < K; ++k) {
        float const v = r * (dy[k] * wv[k]) - xv[k] * coef;
        dx[k] = accumulate ? dx[k] + v : v;
      }
      store_chunk<K>(d_x + i * c, ch * K, c, vec, dx);
    }
  }
  if (in_shared)
    for (std::int64_t ch = threadIdx.x; ch < chunks; ch += blockDim.x)
#pragma unroll
      for (int k = 0; k < K; ++k) partials[g * padded + k * chunks + ch] = acc[k * chunks + ch];
}

/// d_w[j] += the sum of the groups' partials of column j. Block (32, column_slices): thread x takes
/// accumulator slot p = blockIdx.x * 32 + x (column j = (p % chunks) * K + p / chunks), slice y sums
/// the groups [y * per_slice, (y + 1) * per_slice) in increasing order, and thread (x, 0) adds the
/// slice sums in slice order: a fixed tree for a given (n, c).
template <class G, int K>
__global__ void __launch_bounds__(32 * column_slices)
    weight_grad_kernel(float const* partials, G* d_w, std::int64_t groups, std::int64_t c) {
  __shared__ float slice_sums[column_slices][32];
  std::int64_t const chunks = (c + K - 1) / K, padded = K * chunks;
  std::int64_t const p = static_cast<std::int64_t>(blockIdx.x) * 32 + threadIdx.x;
  std::int64_t const per_slice = (groups + column_slices - 1) / column_slices;
  std::int64_t const g0 = threadIdx.y * per_slice, g1 = std::min(groups, g0 + per_slice);
  float s = 0.0f;
  if (p < padded)
    for (std::int64_t g = g0; g < g1; ++g) s += partials[g * padded + p];
  slice_sums[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && p < padded) {
    float total = slice_sums[0][threadIdx.x];
    for (int y = 1; y < column_slices; ++y) total += slice_sums[y][threadIdx.x];
    std::int64_t const j = (p % chunks) * K + p / chunks;
    if (j < c) d_w[j] = store_as<G>(as_float(d_w[j]) + total);
  }
}

}  // namespace rmsnorm_kernels

template <>
struct RmsNorm<Cuda> {
  /// y (n, c) = x * rstd * w, rstd[i] = 1 / sqrt(mean_j x[i,j]^2 + eps) (saved for the backward), all
  /// in fp32 from T / W inputs, rounded once on store. One block per row (threads_for(c / K), at most
  /// 256): the sum of squares is each thread's chunks in order, then block_sum's fixed tree, so the
  /// result depends on (n, c) only. n or c <= 0: nothing to do.
  template <class T, class W, class S>
  static void forward(Ctx<Cuda>& ctx, T const* x, W const* w, T* y, S* rstd, std::int64_t n, std::int64_t c, double eps) {
    namespace rk = rmsnorm_kernels;
    static_assert(rk::storage_type<T> && rk::storage_type<W> && rk::storage_type<S>,
                  "kumiki: RmsNorm<Cuda> takes float or bf16");
    if (n <= 0 || c <= 0) return;
    constexpr int K = rk::chunk_elems<T>;
    std::int64_t const chunks = (c + K - 1) / K;
    bool const vec = c % K == 0 && rk::pack_aligned<K>(x) && rk::pack_aligned<K>(w) &&
                     rk::pack_aligned<K>(static_cast<T const*>(y));
    rk::forward_kernel<T, W, S, K><<<rk::row_grid(n), rk::threads_for(chunks), 0, ctx.stream>>>(
        x, w, y, rstd, n, c, static_cast<float>(eps), vec);
    KUMIKI_CUDA_CHECK(cudaGetLastError());
  }

  /// With g = w * d_y: d_x = rstd * g - x * rstd^3 * mean_j(g * x) (written, or added when
  /// accumulate, e.g. into a residual-stream gradient); d_w += sum_i d_y * x * rstd.
  /// Two kernels, no atomics: backward_rows_kernel gives each of min(n, 1024) blocks a fixed range of
  /// consecutive rows (d_x per row as in the forward; fp32 per-column partial sums of its rows, in row
  /// order, into ctx scratch), then weight_grad_kernel adds the partials per column in group order
  /// into d_w. Grouping and trees depend on (n, c) only, so the result is bitwise reproducible.
  template <class T, class W, class S, class G>
  static void backward(Ctx<Cuda>& ctx, T const* d_y, T const* x, W const* w, S const* rstd, T* d_x, G* d_w, std::int64_t n,
                       std::int64_t c, bool accumulate) {
    namespace rk = rmsnorm_kernels;
    static_assert(rk::storage_type<T> && rk::storage_type<W> && rk::storage_type<S> && rk::storage_type<G>,
                  "kumiki: RmsNorm<Cuda> takes float or bf16");
    if (n <= 0 || c <= 0) return;
    constexpr int K = rk::chunk_elems<T>;
    std::int64_t const chunks = (c + K - 1) / K, padded = K * chunks;
    std::int64_t const rows_per_group = (n + rk::max_row_groups - 1) / rk::max_row_groups;
    std::int64_t const groups = (n + rows_per_group - 1) / rows_per_group;
    auto* const partials = reinterpret_cast<float*>(
        ctx.scratch_at_least(static_cast<std::size_t>(groups * padded) * sizeof(float)));
    std::size_t const acc_bytes = static_cast<std::size_t>(padded) * sizeof(float);
    bool const in_shared = acc_bytes <= rk::max_shared_accumulator_bytes;
    bool const vec = c % K == 0 && rk::pack_aligned<K>(d_y) && rk::pack_aligned<K>(x) && rk::pack_aligned<K>(w) &&
                     rk::pack_aligned<K>(static_cast<T const*>(d_x));
    rk::backward_rows_kernel<T, W, S, K>
        <<<static_cast<unsigned>(groups), rk::threads_for(chunks), in_shared ? acc_bytes : 0, ctx.stream>>>(
            d_y, x, w, rstd, d_x, partials, n, c, rows_per_group, accumulate, vec, in_shared);
    KUMIKI_CUDA_CHECK(cudaGetLastError());
    unsigned const column_blocks = static_cast<unsigned>((padded + 31) / 32);
    rk::weight_grad_kernel<G, K><<<column_blocks, dim3(32, rk::column_slices), 0, ctx.stream>>>(partials, d_w, groups, c);
    KUMIKI_CUDA_CHECK(cudaGetLastError());
  }
};

static_assert(RmsNormOp<RmsNorm<Cuda>, Cuda, float> &&
              RmsNormOp<RmsNorm<Cuda>, Cuda, Precision<bf16, bf16, float, float, float>>);

}  // namespace ops
KUMIKI_NAMESPACE_END
