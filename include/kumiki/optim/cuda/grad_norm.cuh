// kumiki/optim/cuda/grad_norm.cuh: the gradient norm and scaling on the GPU: fp64 per-block partial sums
// of squares and one fixed-order final pass (deterministic), and an element-wise fp32 scale, both over a
// FlatRange of an fp32 gradient arena with the padding between tensors skipped.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <cuda_runtime.h>

#include "kumiki/config.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/cuda/allocator.cuh"
#include "kumiki/core/cuda/check.cuh"
#include "kumiki/core/device.hpp"
#include "kumiki/core/dtype.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/ops/cuda/context.cuh"
#include "kumiki/optim/clip.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace optim {
namespace cuda_detail {

/// Threads per block of the gradient-norm kernels.
inline constexpr int grad_norm_threads = 256;
/// Elements one block of the sum-of-squares kernel reduces (256 per thread).
inline constexpr std::uint64_t grad_norm_chunk = std::uint64_t{1} << 16;
/// Elements one block of the scale kernel multiplies (16 per thread, all loaded before any is stored).
inline constexpr std::uint64_t grad_scale_chunk = std::uint64_t{1} << 12;
/// Tensor segments one launch carries in its parameters (24 bytes each, well under the 4 KiB limit).
inline constexpr int grad_segments_per_launch = 32;

/// One tensor's part of the range: `n` consecutive floats from `data` (the tensor's element `lo`).
struct GradSegment {
  float* data;
  std::uint64_t n;
  std::uint64_t first_block;  // this segment's first block, counted from the launch's first block
};

/// The segments of one launch, passed by value (kernel parameters are copied at launch, so no host
/// buffer has to outlive the call). Blocks [seg[s].first_block, seg[s + 1].first_block) belong to
/// segment s; `blocks` is the launch's grid size.
struct GradSegmentBatch {
  GradSegment seg[grad_segments_per_launch];
  int count;
  std::uint64_t blocks;
};

/// The segment of block `block`: the last one whose first block is <= block (segment 0 starts at 0).
__device__ __forceinline__ GradSegment const& segment_of_block(GradSegmentBatch const& b, std::uint64_t block) {
  int s = 0;
  while (s + 1 < b.count && b.seg[s + 1].first_block <= block) ++s;
  return b.seg[s];
}

/// Sum of `x` over the block, in a fixed tree (shuffles within each warp, then the warp sums by warp 0);
/// the result is valid in thread 0. Called once per kernel (it owns a static shared array).
template <int Threads>
__device__ __forceinline__ double block_sum_fixed(double x) {
  static_assert(Threads % 32 == 0 && Threads <= 1024, "block_sum_fixed: whole warps, at most 32");
  __shared__ double warp_sums[Threads / 32];
  for (int o = 16; o > 0; o >>= 1) x = __dadd_rn(x, __shfl_down_sync(0xffffffffu, x, o));
  int const lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  if (lane == 0) warp_sums[warp] = x;
  __syncthreads();
  double total = 0.0;
  if (warp == 0) {
    total = lane < Threads / 32 ? warp_sums[lane] : 0.0;
    for (int o = 16; o > 0; o >>= 1) total = __dadd_rn(total, __shfl_down_sync(0xffffffffu, total, o));
  }
  return total;
}

/// Loads one thread of the gradient kernels issues before it uses any of them. Each of them is one
/// coalesced 128-byte access of its warp; with one at a time a full SM holds 8 KiB of reads in flight,
/// about a third of what the HBM3e bandwidth times its latency asks of each SM (~22 KiB on an H200), so
/// a pass over 8e9 gradients would run at roughly a third of the copy bandwidth.
inline constexpr int grad_loads_in_flight = 8;

/// partials[b] = sum of g^2 (fp64) over chunk c of segment s, for every block b of the launch (s and c
/// found from b). Each thread takes the elements lo + t, lo + t + Threads, ... in that order; it loads
/// grad_loads_in_flight of them (0 past the end) before adding their squares one after the other. The
/// products of two floats are exact in double and adding +0.0 to a sum of squares leaves it unchanged,
/// so the result is the fixed sequence of additions of the plain strided loop, bit for bit.
template <int Threads>
__global__ void __launch_bounds__(Threads) grad_sum_squares_kernel(GradSegmentBatch batch, double* partials) {
  constexpr int unroll = grad_loads_in_flight;
  static_assert(grad_norm_chunk % (std::uint64_t{Threads} * unroll) == 0, "whole rounds of loads per chunk");
  std::uint64_t const block = blockIdx.x;
  GradSegment const& s = segment_of_block(batch, block);
  std::uint64_t const lo = (block - s.first_block) * grad_norm_chunk;
  std::uint64_t const hi = lo + grad_norm_chunk < s.n ? lo + grad_norm_chunk : s.n;
  float const* const data = s.data;
  double acc = 0.0;
  for (std::uint64_t k = lo + threadIdx.x; k < hi; k += std::uint64_t{Threads} * unroll) {
    float v[unroll];
    if (k + std::uint64_t{Threads} * (unroll - 1) < hi) {  // every round but a segment's last: no test per load
#pragma unroll
      for (int u = 0; u < unroll; ++u) v[u] = data[k + std::uint64_t{Threads} * static_cast<std::uint64_t>(u)];
    } else {
#pragma unroll
      for (int u = 0; u < unroll; ++u) {
        std::uint64_t const i = k + std::uint64_t{Threads} * static_cast<std::uint64_t>(u);
        v[u] = i < hi ? data[i] : 0.0f;
      }
    }
#pragma unroll
    for (int u = 0; u < unroll; ++u) {
      double const x = static_cast<double>(v[u]);
      acc = __dadd_rn(acc, __dmul_rn(x, x));
    }
  }
  double const total = block_sum_fixed<Threads>(acc);
  if (threadIdx.x == 0) partials[block] = total;
}

/// *out = partials[0] + ... + partials[count - 1] by one block: thread t adds partials t, t + Threads, ...
/// in index order, then the fixed tree of block_sum_fixed.
template <int Threads>
__global__ void __launch_bounds__(Threads) grad_sum_partials_kernel(double const* partials, std::uint64_t count, double* out) {
  double acc = 0.0;
  for (std::uint64_t k = threadIdx.x; k < count; k += Threads) acc = __dadd_rn(acc, partials[k]);
  double const total = block_sum_fixed<Threads>(acc);
  if (threadIdx.x == 0) *out = total;
}

/// g *= coeff (one fp32 multiply, rounded to nearest) over chunk c of segment s, for every block.
template <int Threads>
__global__ void __launch_bounds__(Threads) grad_scale_kernel(GradSegmentBatch batch, float coeff) {
  std::uint64_t const block = blockIdx.x;
  GradSegment const& s = segment_of_block(batch, block);
  std::uint64_t const lo = (block - s.first_block) * grad_scale_chunk;
  std::uint64_t const hi = lo + grad_scale_chunk < s.n ? lo + grad_scale_chunk : s.n;
  constexpr int per_thread = static_cast<int>(grad_scale_chunk / Threads);
  static_assert(grad_scale_chunk % Threads == 0, "whole elements per thread");
  // A whole chunk: all of a thread's loads first, then its stores (grad_loads_in_flight says why).
  float* const at = s.data + lo + threadIdx.x;
  if (hi - lo == grad_scale_chunk) {  // every chunk but a segment's last: no test per element
    float v[per_thread];
#pragma unroll
    for (int u = 0; u < per_thread; ++u) v[u] = at[Threads * u];
#pragma unroll
    for (int u = 0; u < per_thread; ++u) at[Threads * u] = __fmul_rn(v[u], coeff);
  } else {
    for (std::uint64_t k = lo + threadIdx.x; k < hi; k += Threads) s.data[k] = __fmul_rn(s.data[k], coeff);
  }
}

/// The tensor parts of `range` in layout order (fp32 required; `what` names the caller in the error),
/// each with the number of `chunk`-element blocks it needs and its first block counted over all
/// segments.
struct GradPlan {
  std::vector<GradSegment> segments;  // first_block counted from the first segment
  std::uint64_t blocks = 0;
};

inline GradPlan plan_segments(Arena<Cuda> const& grads, FlatRange range, std::uint64_t chunk, char const* what) {
  GradPlan plan;
  for_each_in_range(grads.layout(), range, [&](std::size_t i, std::size_t lo, std::size_t hi) {
    ArenaEntry const& e = grads.layout()[i];
    KUMIKI_CHECK(e.dtype == DType::f32, what, " expects fp32 gradients; '", e.name, "' is ", dtype_name(e.dtype));
    float* const data = reinterpret_cast<float*>(grads.data() + e.offset) + lo;
    std::uint64_t const n = hi - lo;
    plan.segments.push_back(GradSegment{data, n, plan.blocks});
    plan.blocks += (n + chunk - 1) / chunk;
  });
  return plan;
}

/// Calls launch(batch, base) for the plan's segments, grad_segments_per_launch at a time, in order: the
/// batch's blocks are renumbered from 0, `base` is the global number of its first block.
template <class Launch>
void for_each_batch(GradPlan const& plan, Launch&& launch) {
  std::size_t const n = plan.segments.size();
  for (std::size_t first = 0; first < n; first += grad_segments_per_launch) {
    std::size_t const count = std::min<std::size_t>(grad_segments_per_launch, n - first);
    GradSegmentBatch batch{};
    std::uint64_t const base = plan.segments[first].first_block;
    std::uint64_t const next = first + count < n ? plan.segments[first + count].first_block : plan.blocks;
    for (std::size_t s = 0; s < count; ++s) {
      batch.seg[s] = plan.segments[first + s];
      batch.seg[s].first_block -= base;
    }
    batch.count = static_cast<int>(count);
    batch.blocks = next - base;
    KUMIKI_CHECK(batch.blocks < (std::uint64_t{1} << 31), "gradient norm: ", batch.blocks, " blocks in one launch");
    if (batch.blocks > 0) launch(batch, base);
  }
}

}  // namespace cuda_detail

/// Gradient norm and scaling on the GPU, over the elements of `range` (padding between tensors skipped,
/// as for_each_in_range walks them), every kernel on ctx.stream.
template <>
struct GradNorm<Cuda> {
  /// sum over the range of g^2, in double.
  /// Decomposition: the range's tensor parts (segments) are cut into chunks of 2^16 elements from each
  /// part's start; one block of 256 threads per chunk writes the chunk's fp64 sum to ctx scratch
  /// (partials in segment then chunk order; segments go 32 per launch in the kernel parameters); then
  /// one block sums the partials; one 8-byte device-to-host copy and a stream synchronization return it.
  /// Deterministic: the chunks, each thread's order within a chunk, the block trees and the final
  /// pass are fixed by the layout and the range alone (no atomics). Not bitwise equal to the CPU's
  /// sum (a different order of additions), equal to it within double rounding.
  static double sum_squares(ops::Ctx<Cuda>& ctx, Arena<Cuda> const& grads, FlatRange range) {
    constexpr int threads = cuda_detail::grad_norm_threads;
    cuda_detail::GradPlan const plan =
        cuda_detail::plan_segments(grads, range, cuda_detail::grad_norm_chunk, "gradient norm");
    if (plan.blocks == 0) return 0.0;
    double* const partials = reinterpret_cast<double*>(ctx.scratch_at_least((plan.blocks + 1) * sizeof(double)));
    cuda_detail::for_each_batch(plan, [&](cuda_detail::GradSegmentBatch const& batch, std::uint64_t base) {
      cuda_detail::grad_sum_squares_kernel<threads>
          <<<static_cast<unsigned>(batch.blocks), threads, 0, ctx.stream>>>(batch, partials + base);
      KUMIKI_CUDA_CHECK(cudaGetLastError());
    });
    cuda_detail::grad_sum_partials_kernel<threads><<<1, threads, 0, ctx.stream>>>(partials, plan.blocks, partials + plan.blocks);
    KUMIKI_CUDA_CHECK(cudaGetLastError());
    double result = 0.0;
    KUMIKI_CUDA_CHECK(cudaMemcpyAsync(&result, partials + plan.blocks, sizeof(double), cudaMemcpyDeviceToHost, ctx.stream));
    KUMIKI_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
    return result;
  }

  /// g *= coeff over the range (fp32 multiply, as the CPU). Decomposition: chunks of 4096 elements of
  /// each tensor part, one block of 256 threads per chunk (coalesced stride). Element-wise, so
  /// deterministic and bitwise equal to the CPU. Queued on ctx.stream, no synchronization.
  static void scale(ops::Ctx<Cuda>& ctx, Arena<Cuda>& grads, FlatRange range, float coeff) {
    constexpr int threads = cuda_detail::grad_norm_threads;
    cuda_detail::GradPlan const plan =
        cuda_detail::plan_segments(grads, range, cuda_detail::grad_scale_chunk, "scale_grads");
    cuda_detail::for_each_batch(plan, [&](cuda_detail::GradSegmentBatch const& batch, std::uint64_t /*base*/) {
      cuda_detail::grad_scale_kernel<threads><<<static_cast<unsigned>(batch.blocks), threads, 0, ctx.stream>>>(batch, coeff);
      KUMIKI_CUDA_CHECK(cudaGetLastError());
    });
  }
};

static_assert(GradNormOp<GradNorm<Cuda>, Cuda>);

}  // namespace optim
KUMIKI_NAMESPACE_END
