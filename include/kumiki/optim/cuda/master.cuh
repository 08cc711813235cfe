// kumiki/optim/cuda/master.cuh: fp32 master weights to and from their two 16-bit halves on the GPU
// (optim/master.hpp): one thread an element, the host's functions compiled for the device, so the bits
// are the host's whatever the launch shape.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include "kumiki/config.hpp"
#include "kumiki/core/bf16.hpp"
#include "kumiki/core/cuda/check.cuh"
#include "kumiki/core/device.hpp"
#include "kumiki/ops/cuda/context.cuh"
#include "kumiki/optim/master.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace optim {
namespace cuda_detail {

inline constexpr int master_threads = 256;

// (Templates, as every kernel in a header: one definition whatever the translation units.)
template <int Threads>
__global__ void __launch_bounds__(Threads)
    split_master_kernel(float const* __restrict__ x, bf16* __restrict__ hi, std::uint16_t* __restrict__ lo,
                        std::int64_t n) {
  for (std::int64_t i = blockIdx.x * std::int64_t{Threads} + threadIdx.x; i < n; i += std::int64_t{gridDim.x} * Threads) {
    MasterHalves const h = split_master(x[i]);
    hi[i] = bf16::from_bits(h.hi);
    if (lo != nullptr) lo[i] = h.lo;
  }
}

template <int Threads>
__global__ void __launch_bounds__(Threads)
    join_master_kernel(bf16 const* __restrict__ hi, std::uint16_t const* __restrict__ lo, float* __restrict__ x,
                       std::int64_t n) {
  for (std::int64_t i = blockIdx.x * std::int64_t{Threads} + threadIdx.x; i < n; i += std::int64_t{gridDim.x} * Threads)
    x[i] = join_master(hi[i].bits, lo[i]);
}

/// Blocks for n elements: one element a thread, at most 2^16 blocks (a grid-stride loop does the rest).
inline unsigned master_grid(std::int64_t n) {
  std::int64_t const blocks = (n + master_threads - 1) / master_threads;
  return static_cast<unsigned>(blocks < (std::int64_t{1} << 16) ? blocks : (std::int64_t{1} << 16));
}

}  // namespace cuda_detail

template <>
struct MasterSplit<Cuda> {
  static void split(ops::Ctx<Cuda>& ctx, float const* x, bf16* hi, std::uint16_t* lo, std::int64_t n) {
    if (n <= 0) return;
    constexpr int threads = cuda_detail::master_threads;
    cuda_detail::split_master_kernel<threads><<<cuda_detail::master_grid(n), threads, 0, ctx.stream>>>(x, hi, lo, n);
    KUMIKI_CUDA_CHECK(cudaGetLastError());
  }
  static void join(ops::Ctx<Cuda>& ctx, bf16 const* hi, std::uint16_t const* lo, float* x, std::int64_t n) {
    if (n <= 0) return;
    constexpr int threads = cuda_detail::master_threads;
    cuda_detail::join_master_kernel<threads><<<cuda_detail::master_grid(n), threads, 0, ctx.stream>>>(hi, lo, x, n);
    KUMIKI_CUDA_CHECK(cudaGetLastError());
  }
};

}  // namespace optim
KUMIKI_NAMESPACE_END
