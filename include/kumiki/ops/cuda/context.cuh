// kumiki/ops/cuda/context.cuh: the CUDA op context: one stream, a cuBLASLt handle and its workspace,
// and device scratch handed to the ops.
#pragma once

#include <cstddef>

#include <cublasLt.h>
#include <cuda_runtime.h>

#include "kumiki/config.hpp"
#include "kumiki/core/buffer.hpp"
#include "kumiki/core/cuda/allocator.cuh"
#include "kumiki/core/cuda/check.cuh"
#include "kumiki/core/device.hpp"
#include "kumiki/ops/context.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

/// Everything a CUDA op needs besides its arguments. Every kernel, cuBLASLt call and copy of the ops
/// is queued on `stream`, in call order; the host synchronizes only where it reads results (a loss,
/// a gradient norm, a checkpoint). Owned by a model (or a test) and never shared between threads.
///   - `lt` and `workspace`: cuBLASLt's handle and the workspace its matmul heuristics may use
///     (32 MiB, what NVIDIA recommends for Hopper);
///   - `scratch`: device memory for ops' temporaries, grown with `scratch_at_least` (between steps,
///     never while a kernel may still read it: the growth synchronizes the stream first).
template <>
struct Ctx<Cuda> {
  static constexpr std::size_t workspace_bytes = std::size_t{32} << 20;

  Ctx() : workspace(workspace_bytes) {
    KUMIKI_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    KUMIKI_CUBLAS_CHECK(cublasLtCreate(&lt));
  }
  Ctx(Ctx const&) = delete;
  Ctx& operator=(Ctx const&) = delete;
  ~Ctx() {
    if (lt != nullptr) (void)cublasLtDestroy(lt);
    if (stream != nullptr) {
      (void)cudaStreamSynchronize(stream);
      (void)cudaStreamDestroy(stream);
    }
  }

  /// Device scratch of at least `bytes` bytes (256-byte aligned, contents undefined).
  std::byte* scratch_at_least(std::size_t bytes) {
    if (scratch.size() < bytes) {
      KUMIKI_CUDA_CHECK(cudaStreamSynchronize(stream));
      scratch = Buffer<Cuda>(bytes);
    }
    return scratch.data();
  }
  void synchronize() const { KUMIKI_CUDA_CHECK(cudaStreamSynchronize(stream)); }

  cudaStream_t stream = nullptr;
  cublasLtHandle_t lt = nullptr;
  Buffer<Cuda> workspace;
  Buffer<Cuda> scratch;
};

/// This translation unit runs CUDA ops (ops/context.hpp).
template <>
inline constexpr bool backend_available<Cuda> = true;

}  // namespace ops
KUMIKI_NAMESPACE_END
