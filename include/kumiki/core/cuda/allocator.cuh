// kumiki/core/cuda/allocator.cuh: device memory for Buffer<Cuda> and Arena<Cuda> through cudaMalloc.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <cstddef>
#include <cstdio>
#include <string>

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
    if (cudaError_t const e = cudaMalloc(&p, bytes); e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();  // not sticky: clear it for the error path's own calls
      std::size_t free = 0, total = 0;
      (void)cudaMemGetInfo(&free, &total);
      KUMIKI_FAIL("out of GPU memory: ", bytes, " bytes (", gib(bytes), ") more were asked for with ", gib(in_use_.load()),
                  " held by kumiki's buffers (peak ", gib(peak_.load()), "); the GPU has ", gib(free), " free of ",
                  gib(total), ". `kumiki train --dry-run` prints the run's memory plan; --light-recompute, --recompute or "
                  "a smaller micro-batch need less");
    } else {
      KUMIKI_CUDA_CHECK(e);
    }
    std::size_t const now = in_use_.fetch_add(bytes) + bytes;
    std::size_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    return p;
  }
  /// `bytes` in GiB with two decimals, for messages.
  static std::string gib(std::size_t bytes) {
    char text[32];
    std::snprintf(text, sizeof text, "%.2f GiB", static_cast<double>(bytes) / double(1 << 30));
    return text;
  }
  static void deallocate(void* p, std::size_t bytes) noexcept {
    if (p == nullptr) return;
    (void)cudaFree(p);
    in_use_.fetch_sub(bytes);
  }
  /// The most bytes Buffer<Cuda> / Arena<Cuda> held at once in this process (what the memory plan of
  /// train/plan.hpp predicts; cuBLASLt's and NCCL's own allocations and the CUDA context are not counted).
  static std::size_t peak_bytes() { return peak_.load(); }
  /// Zeroes on the legacy stream and waits, so work queued afterwards on any stream sees zeros.
  static void zero(void* p, std::size_t bytes) {
    if (bytes == 0) return;
    KUMIKI_CUDA_CHECK(cudaMemset(p, 0, bytes));
    KUMIKI_CUDA_CHECK(cudaDeviceSynchronize());
  }

 private:
  static inline std::atomic<std::size_t> in_use_{0}, peak_{0};
};

// Copies that cross the host/device boundary are synchronous with respect to ALL device work: they
// wait for everything queued on every stream (the ops run on non-blocking streams, which the legacy
// stream cudaMemcpy uses does not wait for), copy, and return once the bytes are in place (a pageable
// host-to-device cudaMemcpy may return before its DMA lands). They serve host staging (checkpoints,
// initial weights, tests), never the training step, so the device-wide waits cost nothing that matters.
namespace detail {
inline void copy_synchronously(void* dst, void const* src, std::size_t n, cudaMemcpyKind kind) {
  if (n == 0) return;
  KUMIKI_CUDA_CHECK(cudaDeviceSynchronize());
  KUMIKI_CUDA_CHECK(cudaMemcpy(dst, src, n, kind));
  KUMIKI_CUDA_CHECK(cudaDeviceSynchronize());
}
}  // namespace detail

template <>
struct Copy<Cuda, Cpu> {
  static void bytes(void* dst, void const* src, std::size_t n) {
    detail::copy_synchronously(dst, src, n, cudaMemcpyHostToDevice);
  }
};

template <>
struct Copy<Cpu, Cuda> {
  static void bytes(void* dst, void const* src, std::size_t n) {
    detail::copy_synchronously(dst, src, n, cudaMemcpyDeviceToHost);
  }
};

template <>
struct Copy<Cuda, Cuda> {
  static void bytes(void* dst, void const* src, std::size_t n) {
    detail::copy_synchronously(dst, src, n, cudaMemcpyDeviceToDevice);
  }
};

KUMIKI_NAMESPACE_END
