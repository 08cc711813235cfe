// kumiki/core/cuda/check.cuh: KUMIKI_CUDA_CHECK and KUMIKI_CUBLAS_CHECK turn failed CUDA / cuBLAS(Lt)
// calls into kumiki::Error naming the call and file:line.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"

#define KUMIKI_CUDA_CHECK(call)                                                                     \
  do {                                                                                              \
    cudaError_t const kumiki_status_ = (call);                                                      \
    if (kumiki_status_ != cudaSuccess) [[unlikely]]                                                 \
      ::kumiki::detail::fail("CUDA call failed: " #call, __FILE__, __LINE__,                       \
                             cudaGetErrorName(kumiki_status_), ": ", cudaGetErrorString(kumiki_status_)); \
  } while (0)

#define KUMIKI_CUBLAS_CHECK(call)                                                                     \
  do {                                                                                                \
    cublasStatus_t const kumiki_status_ = (call);                                                     \
    if (kumiki_status_ != CUBLAS_STATUS_SUCCESS) [[unlikely]]                                         \
      ::kumiki::detail::fail("cuBLAS call failed: " #call, __FILE__, __LINE__,                       \
                             cublasGetStatusName(kumiki_status_), ": ", cublasGetStatusString(kumiki_status_)); \
  } while (0)

KUMIKI_NAMESPACE_BEGIN

/// Number of visible CUDA devices; 0 when there is no driver or no GPU (never throws).
inline int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

KUMIKI_NAMESPACE_END
