// gpu_ceilings: the two ceilings the kernel benchmarks are read against, measured on this GPU with
// CUDA events (3 warm-up runs, then the mean of 10 timed ones):
//   - device copy bandwidth: cudaMemcpyAsync of 2 GiB device to device, counting bytes read plus
//     bytes written (what a memory-bound kernel moving x bytes in and out is compared with);
//   - dense bf16 GEMM throughput: cuBLASLt, 8192 x 8192 x 8192, bf16 inputs and output, fp32
//     accumulation, on Philox-random data (zeros run faster and would flatter the ceiling).
// Usage: gpu_ceilings [--json FILE]   Exit 77 (skipped) without a GPU.
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "kumiki/core/bf16.hpp"
#include "kumiki/core/cuda/allocator.cuh"
#include "kumiki/core/cuda/check.cuh"
#include "device_fill.cuh"

namespace {

using kumiki::bf16;

/// Mean milliseconds of `runs` calls of f after `warmup` calls, timed with events on `stream`.
template <class F>
float time_ms(cudaStream_t stream, int warmup, int runs, F&& f) {
  for (int i = 0; i < warmup; ++i) f();
  cudaEvent_t a, b;
  KUMIKI_CUDA_CHECK(cudaEventCreate(&a));
  KUMIKI_CUDA_CHECK(cudaEventCreate(&b));
  KUMIKI_CUDA_CHECK(cudaEventRecord(a, stream));
  for (int i = 0; i < runs; ++i) f();
  KUMIKI_CUDA_CHECK(cudaEventRecord(b, stream));
  KUMIKI_CUDA_CHECK(cudaEventSynchronize(b));
  float ms = 0;
  KUMIKI_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
  KUMIKI_CUDA_CHECK(cudaEventDestroy(a));
  KUMIKI_CUDA_CHECK(cudaEventDestroy(b));
  return ms / static_cast<float>(runs);
}

double copy_gbps(cudaStream_t stream) {
  std::size_t const bytes = std::size_t{2} << 30;
  kumiki::Buffer<kumiki::Cuda> src(bytes), dst(bytes);
  KUMIKI_CUDA_CHECK(cudaMemsetAsync(src.data(), 1, bytes, stream));
  float const ms = time_ms(stream, 3, 10, [&] {
    KUMIKI_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), bytes, cudaMemcpyDeviceToDevice, stream));
  });
  return 2.0 * static_cast<double>(bytes) / (static_cast<double>(ms) * 1e-3) / 1e9;
}

double gemm_bf16_tflops(cudaStream_t stream) {
  constexpr std::int64_t n = 8192;
  std::size_t const bytes = static_cast<std::size_t>(n * n) * sizeof(bf16);
  kumiki::Buffer<kumiki::Cuda> a(bytes), b(bytes), c(bytes), workspace(std::size_t{32} << 20);
  kumiki_bench::fill_uniform<bf16><<<1024, 256, 0, stream>>>(reinterpret_cast<bf16*>(a.data()), n * n, 1, -1.0f, 1.0f);
  kumiki_bench::fill_uniform<bf16><<<1024, 256, 0, stream>>>(reinterpret_cast<bf16*>(b.data()), n * n, 2, -1.0f, 1.0f);
  KUMIKI_CUDA_CHECK(cudaGetLastError());

  cublasLtHandle_t lt;
  KUMIKI_CUBLAS_CHECK(cublasLtCreate(&lt));
  cublasLtMatmulDesc_t op;
  KUMIKI_CUBLAS_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  cublasLtMatrixLayout_t layout;  // the same n x n column-major layout for A, B, C and D
  KUMIKI_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&layout, CUDA_R_16BF, n, n, n));
  cublasLtMatmulPreference_t pref;
  KUMIKI_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  std::size_t ws = workspace.size();
  KUMIKI_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  KUMIKI_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(lt, op, layout, layout, layout, layout, pref, 1, &heuristic, &found));
  if (found == 0) kumiki::detail::fail("cuBLASLt found no algorithm for the 8192^3 bf16 GEMM", __FILE__, __LINE__);
  float const alpha = 1.0f, beta = 0.0f;
  float const ms = time_ms(stream, 3, 10, [&] {
    KUMIKI_CUBLAS_CHECK(cublasLtMatmul(lt, op, &alpha, a.data(), layout, b.data(), layout, &beta, c.data(), layout,
                                       c.data(), layout, &heuristic.algo, workspace.data(), ws, stream));
  });
  KUMIKI_CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
  KUMIKI_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(layout));
  KUMIKI_CUBLAS_CHECK(cublasLtMatmulDescDestroy(op));
  KUMIKI_CUBLAS_CHECK(cublasLtDestroy(lt));
  return 2.0 * static_cast<double>(n) * n * n / (static_cast<double>(ms) * 1e-3) / 1e12;
}

}  // namespace

int main(int argc, char** argv) {
  std::string json;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
      json = argv[++i];
    } else {
      std::fprintf(stderr, "usage: gpu_ceilings [--json FILE]\n");
      return 2;
    }
  }
  if (kumiki::cuda_device_count() == 0) {
    std::printf("gpu_ceilings: skipped: no CUDA device visible\n");
    return 77;
  }
  try {
    cudaDeviceProp prop{};
    KUMIKI_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    cudaStream_t stream;
    KUMIKI_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    double const gbps = copy_gbps(stream);
    double const tflops = gemm_bf16_tflops(stream);
    KUMIKI_CUDA_CHECK(cudaStreamDestroy(stream));
    std::printf("%s: device copy %.0f GB/s (read + write), cuBLASLt bf16 GEMM 8192^3 %.1f TFLOP/s\n", prop.name, gbps,
                tflops);
    if (!json.empty()) {
      std::FILE* f = std::fopen(json.c_str(), "w");
      if (f == nullptr) {
        std::fprintf(stderr, "gpu_ceilings: cannot write '%s'\n", json.c_str());
        return 1;
      }
      std::fprintf(f, "{\"gpu\": \"%s\", \"copy_gbps\": %.1f, \"gemm_bf16_tflops\": %.2f, \"gemm_shape\": \"8192x8192x8192\"}\n",
                   prop.name, gbps, tflops);
      std::fclose(f);
    }
  } catch (std::exception const& e) {
    std::fprintf(stderr, "gpu_ceilings: %s\n", e.what());
    return 1;
  }
  return 0;
}
