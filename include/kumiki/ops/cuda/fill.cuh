// kumiki/ops/cuda/fill.cuh: CUDA parameter fills: Philox normals addressed by element index (the same
// values as Fill<Cpu>), constants, and zeroing with cudaMemsetAsync.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

#include "kumiki/config.hpp"
#include "kumiki/core/bf16.hpp"
#include "kumiki/core/cuda/check.cuh"
#include "kumiki/core/device.hpp"
#include "kumiki/core/philox.hpp"
#include "kumiki/core/precision.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/ops/cuda/context.cuh"
#include "kumiki/ops/fill.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {
namespace fill_kernels {

inline constexpr int threads = 256;
/// Grid-stride kernels never launch more blocks than this.
inline constexpr std::int64_t max_blocks = std::int64_t{1} << 15;

inline unsigned grid_for(std::int64_t work) {
  return static_cast<unsigned>(std::clamp<std::int64_t>((work + threads - 1) / threads, 1, max_blocks));
}

/// p[j] = fma(std, N_j, mean) in float, rounded once to T; N_j = s.normal(j), the host's function.
template <class T>
__global__ void __launch_bounds__(threads)
    normal_kernel(T* p, std::int64_t n, PhiloxStream s, float mean, float std) {
  std::int64_t const stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t j = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < n; j += stride)
    p[j] = T(__fmaf_rn(std, s.normal(static_cast<std::uint64_t>(j)), mean));
}

template <class T>
__global__ void __launch_bounds__(threads)
    constant_kernel(T* p, std::int64_t n, T value) {
  std::int64_t const stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t j = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < n; j += stride)
    p[j] = value;
}

}  // namespace fill_kernels

template <>
struct Fill<Cuda> {
  /// p[j] = fma(float(std), N_j, float(mean)) (one rounding in float, then once to T) with N_j the j-th
  /// normal of Philox stream (seed, stream): PhiloxStream::normal is the host's code compiled for the
  /// device, so the values are Fill<Cpu>'s (std::fma there). One thread per element, grid-stride
  /// (256 threads, at most 2^15 blocks); element j depends only on (seed, stream, j): deterministic
  /// for any launch shape. The double log / sqrt / cos / sin inside normal() are CUDA's (sqrt
  /// correctly rounded, the others within 1-2 ulp in double), so an element whose double value lies
  /// within ~2^-28 of a float rounding boundary could differ from the host by one float ulp.
  template <class T>
  static void normal(Ctx<Cuda>& ctx, T* p, std::int64_t n, std::uint64_t seed, std::uint64_t stream, double mean,
                     double std) {
    if (n <= 0) return;
    fill_kernels::normal_kernel<T><<<fill_kernels::grid_for(n), fill_kernels::threads, 0, ctx.stream>>>(
        p, n, PhiloxStream{seed, stream}, static_cast<float>(mean), static_cast<float>(std));
    KUMIKI_CUDA_CHECK(cudaGetLastError());
  }
  /// Zeroes n bytes: cudaMemsetAsync on ctx.stream.
  static void zero_bytes(Ctx<Cuda>& ctx, void* p, std::size_t n) {
    if (n > 0) KUMIKI_CUDA_CHECK(cudaMemsetAsync(p, 0, n, ctx.stream));
  }
  /// p[j] = value over n elements: one thread per element, grid-stride; exact.
  template <class T>
  static void constant(Ctx<Cuda>& ctx, T* p, std::int64_t n, T value) {
    if (n <= 0) return;
    fill_kernels::constant_kernel<T><<<fill_kernels::grid_for(n), fill_kernels::threads, 0, ctx.stream>>>(p, n, value);
    KUMIKI_CUDA_CHECK(cudaGetLastError());
  }
};

static_assert(FillOp<Fill<Cuda>, Cuda, float> && FillOp<Fill<Cuda>, Cuda, Precision<bf16, bf16, float, float, float>>);

}  // namespace ops
KUMIKI_NAMESPACE_END
