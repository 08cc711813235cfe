// kumiki/core/buffer.hpp: owning, aligned, RAII memory on a device; the host allocator.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/core/error.hpp"

KUMIKI_NAMESPACE_BEGIN

/// Allocation policy per device: allocate, deallocate, zero and the `alignment` every allocation and
/// arena slot has. The CUDA specialization (cudaMalloc) is in core/cuda/allocator.cuh.
template <DeviceTag D>
struct Allocator {
  static_assert(always_false<D>, "kumiki: no allocator for this device; include kumiki/cuda.cuh for Cuda");
};

template <>
struct Allocator<Cpu> {
  /// Alignment of every allocation and of every arena slot (cache line, AVX-512).
  static constexpr std::size_t alignment = host_alignment;
  /// 64-byte aligned host memory; throws kumiki::Error when the system has none to give.
  static void* allocate(std::size_t bytes) {
    if (bytes == 0) return nullptr;
    std::size_t const rounded = (bytes + host_alignment - 1) / host_alignment * host_alignment;
    void* p = std::aligned_alloc(host_alignment, rounded);
    if (p == nullptr) KUMIKI_FAIL("host allocation of ", bytes, " bytes failed");
    return p;
  }
  static void deallocate(void* p, std::size_t) noexcept { std::free(p); }
  static void zero(void* p, std::size_t bytes) {
    if (bytes) std::memset(p, 0, bytes);
  }
};

/// Byte copies from device `Src` to device `Dst` (synchronous: the data is in place on return). The
/// CUDA specializations (cudaMemcpy) are in core/cuda/allocator.cuh.
template <DeviceTag Dst, DeviceTag Src>
struct Copy {
  static_assert(always_false<Dst, Src>, "kumiki: no copy between these devices; include kumiki/cuda.cuh for Cuda");
};

template <>
struct Copy<Cpu, Cpu> {
  static void bytes(void* dst, void const* src, std::size_t n) {
    if (n) std::memcpy(dst, src, n);
  }
};

/// An owning allocation of `size()` bytes on device `D`. Move-only.
template <DeviceTag D>
class Buffer {
 public:
  using device = D;

  Buffer() = default;
  explicit Buffer(std::size_t bytes) : data_(Allocator<D>::allocate(bytes)), bytes_(bytes) {}
  Buffer(Buffer&& o) noexcept : data_(std::exchange(o.data_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      release();
      data_ = std::exchange(o.data_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }
  Buffer(Buffer const&) = delete;
  Buffer& operator=(Buffer const&) = delete;
  ~Buffer() { release(); }

  std::byte* data() const { return static_cast<std::byte*>(data_); }
  std::size_t size() const { return bytes_; }
  void zero() { Allocator<D>::zero(data_, bytes_); }

 private:
  void release() noexcept {
    if (data_) Allocator<D>::deallocate(data_, bytes_);
    data_ = nullptr;
    bytes_ = 0;
  }
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
};

KUMIKI_NAMESPACE_END
