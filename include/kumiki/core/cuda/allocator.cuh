// kumiki/core/cuda/allocator.cuh: device memory for Buffer<Cuda> and Arena<Cuda> through cudaMalloc.
#pragma once

#include <cuda_runtime.h>

#include "kumiki/config.hpp"
#include "kumiki/core/buffer.hpp"
#include "kumiki/core/cuda/check.cuh"

KUMIKI_NAMESPACE_BEGIN

template <>
struct Allocator<Cuda> {
  /// cudaMalloc returns 256-byte aligned memory; arena slots on the device are aligned as much, what
  /// cuBLASLt and vectorized (128-bit) loads want.
  static constexpr std::size_t alignment = 256;
  static void* allocate(std::size_t bytes) {
    if (bytes == 0) return nullptr;
    void* p = nullptr;
    KUMIKI_CUDA_CHECK(cudaMalloc(&p, bytes));
    return p;
  }
  static void deallocate(void* p, std::size_t) noexcept { (void)cudaFree(p); }
  static void zero(void* p, std::size_t bytes) {
    if (bytes) KUMIKI_CUDA_CHECK(cudaMemset(p, 0, bytes));
  }
};

template <>
struct Copy<Cuda, Cpu> {
  static void bytes(void* dst, void const* src, std::size_t n) {
    if (n) KUMIKI_CUDA_CHECK(cudaMemcpy(dst, src, n, cudaMemcpyHostToDevice));
  }
};

template <>
struct Copy<Cpu, Cuda> {
  static void bytes(void* dst, void const* src, std::size_t n) {
    if (n) KUMIKI_CUDA_CHECK(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToHost));
  }
};

template <>
struct Copy<Cuda, Cuda> {
  static void bytes(void* dst, void const* src, std::size_t n) {
    if (n) KUMIKI_CUDA_CHECK(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToDevice));
  }
};

KUMIKI_NAMESPACE_END
