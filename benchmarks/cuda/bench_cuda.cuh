// Shared pieces of the CUDA kernel benchmarks (bench_cuda_ops): LLM-jp-4 8B ("7.7B") shapes, device
// buffers filled on the device, and CUDA-event timing reported to Google Benchmark as manual time with
// GB/s or TFLOP/s counters (scripts/gpu-check reads them against the measured ceilings).
#pragma once

#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kumiki/core/bf16.hpp"
#include "kumiki/core/cuda/allocator.cuh"
#include "device_fill.cuh"
#include "kumiki/models/configs.hpp"
#include "kumiki/ops/cuda/context.cuh"

namespace kumiki_bench {

using kumiki::bf16;
using kumiki::Cuda;

/// LLM-jp-4 8B, one sequence of 4096 tokens per micro-batch (the shapes a training step runs).
constexpr auto cfg = kumiki::models::llmjp4_8b;
constexpr std::int64_t N = 4096, C = cfg.hidden, F = cfg.ffn_hidden, H = cfg.num_heads, G = cfg.num_query_groups;
constexpr std::int64_t hd = cfg.head_dim(), KV = cfg.kv_width(), QKV = C + 2 * KV, Vp = cfg.padded_vocab();

/// n elements of T on the device, uniform in (lo, hi) from Philox stream `stream`.
template <class T>
struct DevArray {
  DevArray(kumiki::ops::Ctx<Cuda>& ctx, std::int64_t n, std::uint64_t stream, float lo = -1.0f, float hi = 1.0f)
      : buf(static_cast<std::size_t>(n) * sizeof(T)), count(n) {
    fill_uniform<T><<<1024, 256, 0, ctx.stream>>>(data(), n, stream, lo, hi);
    KUMIKI_CUDA_CHECK(cudaGetLastError());
  }
  T* data() const { return reinterpret_cast<T*>(buf.data()); }
  kumiki::Buffer<Cuda> buf;
  std::int64_t count;
};

/// Times `op` (which queues work on ctx.stream) with CUDA events per iteration, after one warm-up
/// call, and sets the GB/s (bytes > 0) or TFLOP/s (flops > 0) counter from the mean time.
template <class Op>
void run_timed(benchmark::State& state, kumiki::ops::Ctx<Cuda>& ctx, double bytes, double flops, Op&& op) {
  op();
  ctx.synchronize();
  cudaEvent_t a, b;
  KUMIKI_CUDA_CHECK(cudaEventCreate(&a));
  KUMIKI_CUDA_CHECK(cudaEventCreate(&b));
  double total_s = 0;
  std::int64_t iterations = 0;
  for (auto _ : state) {
    KUMIKI_CUDA_CHECK(cudaEventRecord(a, ctx.stream));
    op();
    KUMIKI_CUDA_CHECK(cudaEventRecord(b, ctx.stream));
    KUMIKI_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    KUMIKI_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    state.SetIterationTime(static_cast<double>(ms) * 1e-3);
    total_s += static_cast<double>(ms) * 1e-3;
    ++iterations;
  }
  KUMIKI_CUDA_CHECK(cudaEventDestroy(a));
  KUMIKI_CUDA_CHECK(cudaEventDestroy(b));
  double const mean_s = iterations ? total_s / static_cast<double>(iterations) : 0.0;
  if (mean_s > 0 && bytes > 0) state.counters["GB/s"] = bytes / mean_s / 1e9;
  if (mean_s > 0 && flops > 0) state.counters["TFLOP/s"] = flops / mean_s / 1e12;
}

/// Skips the benchmark (with a message) when no GPU is visible.
inline bool need_gpu(benchmark::State& state) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    (void)cudaGetLastError();
    state.SkipWithError("no CUDA device visible");
    return false;
  }
  return true;
}

}  // namespace kumiki_bench
