// kumiki/ops/cuda/context.cuh: the CUDA op context: one stream, a cuBLASLt handle and its workspace,
// and device scratch handed to the ops.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>
#include <vector>

#include <cublasLt.h>
#include <cuda_runtime.h>

#include "kumiki/config.hpp"
#include "kumiki/core/buffer.hpp"
#include "kumiki/core/cuda/allocator.cuh"
#include "kumiki/core/cuda/check.cuh"
#include "kumiki/core/device.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/ops/context.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

/// Everything a CUDA op needs besides its arguments. Every kernel, cuBLASLt call and copy of the ops
/// is queued on `stream`, in call order; the host synchronizes only where it reads results (a loss,
/// a gradient norm, a checkpoint). Owned by a model (or a test) and never shared between threads.
///   - `lt` and `workspace`: cuBLASLt's handle and the workspace its matmul heuristics may use
///     (32 MiB, what NVIDIA recommends for Hopper);
///   - `scratch`: device memory for ops' temporaries, grown with `scratch_at_least` (between steps,
///     never while a kernel may still read it: the growth synchronizes the stream first);
///   - `deferred`: device records ops leave for the host to read later, all in one copy (the deferred
///     sums of ops::LmHeadLoss, ops/lm_head_loss.hpp): `deferred_used` bytes of it are pending.
template <>
struct Ctx<Cuda> {
  static constexpr std::size_t workspace_bytes = std::size_t{32} << 20;

  Ctx() : workspace(workspace_bytes) {
    KUMIKI_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    try {
      KUMIKI_CUBLAS_CHECK(cublasLtCreate(&lt));
    } catch (...) {
      (void)cudaStreamDestroy(stream);
      throw;
    }
  }
  Ctx(Ctx const&) = delete;
  Ctx& operator=(Ctx const&) = delete;
  ~Ctx() {
    if (stream != nullptr) (void)cudaStreamSynchronize(stream);  // nothing queued still uses the handle
    if (lt != nullptr) (void)cublasLtDestroy(lt);
    if (stream != nullptr) (void)cudaStreamDestroy(stream);
  }

  /// Device scratch of at least `bytes` bytes (256-byte aligned, contents undefined). A growth frees
  /// the old scratch first (after the stream's work), so that both are never held at once; pointers
  /// from earlier calls are then stale.
  std::byte* scratch_at_least(std::size_t bytes) {
    if (scratch.size() < bytes) {
      KUMIKI_CUDA_CHECK(cudaStreamSynchronize(stream));
      scratch = Buffer<Cuda>();
      scratch = Buffer<Cuda>(bytes);
    }
    return scratch.data();
  }
  void synchronize() const { KUMIKI_CUDA_CHECK(cudaStreamSynchronize(stream)); }

  /// Room for one more deferred record of `bytes` bytes (256-byte aligned), after the pending ones,
  /// which a growth keeps (it synchronizes the stream and copies them: the first steps only).
  std::byte* defer_record(std::size_t bytes) {
    std::size_t const need = deferred_used + (bytes + 255) / 256 * 256;
    if (deferred.size() < need) {
      KUMIKI_CUDA_CHECK(cudaStreamSynchronize(stream));
      Buffer<Cuda> grown(std::max(need, 2 * deferred.size()));
      Copy<Cuda, Cuda>::bytes(grown.data(), deferred.data(), deferred_used);
      deferred = std::move(grown);
    }
    std::byte* const at = deferred.data() + deferred_used;
    deferred_used = need;
    return at;
  }

  /// The pending records, copied to the host after everything queued so far (one synchronization),
  /// and forgotten.
  std::vector<std::byte> take_deferred() {
    std::vector<std::byte> host(deferred_used);
    if (deferred_used) {
      KUMIKI_CUDA_CHECK(cudaMemcpyAsync(host.data(), deferred.data(), deferred_used, cudaMemcpyDeviceToHost, stream));
      KUMIKI_CUDA_CHECK(cudaStreamSynchronize(stream));
    }
    deferred_used = 0;
    return host;
  }

  cudaStream_t stream = nullptr;
  cublasLtHandle_t lt = nullptr;
  Buffer<Cuda> workspace;
  Buffer<Cuda> scratch;
  Buffer<Cuda> deferred;
  std::size_t deferred_used = 0;
};

/// Host bytes to the device in stream order, without stalling it (ops/context.hpp): each put copies
/// `src` into the channel's next pinned host slot (two per channel, used in turn) and queues an
/// asynchronous copy from there into the channel's device buffer on ctx.stream. The device buffer is
/// reused in stream order (the copy runs after the kernels queued before it, which read the previous
/// bytes); a pinned slot is rewritten only after its previous copy has left it (its event), so the host
/// waits only when it runs two uploads ahead of the device, and then for copies queued long before.
template <>
class Upload<Cuda> {
 public:
  Upload() = default;
  Upload(Upload const&) = delete;
  Upload& operator=(Upload const&) = delete;
  ~Upload() {
    for (Channel& c : channels_)
      for (Slot& s : c.slots) s.release();
  }

  void const* put(Ctx<Cuda>& ctx, int channel, void const* src, std::size_t bytes) {
    KUMIKI_CHECK(channel >= 0 && channel < 16, "Upload: channel ", channel, " outside [0, 16)");
    if (static_cast<std::size_t>(channel) >= channels_.size()) channels_.resize(static_cast<std::size_t>(channel) + 1);
    Channel& c = channels_[static_cast<std::size_t>(channel)];
    if (bytes == 0) return c.device.data();
    Slot& s = c.slots[c.next];
    c.next ^= 1;
    if (s.event != nullptr) KUMIKI_CUDA_CHECK(cudaEventSynchronize(s.event));  // its previous copy is done
    if (s.bytes < bytes) {
      s.release();
      KUMIKI_CUDA_CHECK(cudaMallocHost(&s.host, bytes));
      s.bytes = bytes;
    }
    if (s.event == nullptr) KUMIKI_CUDA_CHECK(cudaEventCreateWithFlags(&s.event, cudaEventDisableTiming));
    if (c.device.size() < bytes) {
      KUMIKI_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));  // no queued kernel reads the old buffer
      c.device = Buffer<Cuda>(bytes);
    }
    std::memcpy(s.host, src, bytes);
    KUMIKI_CUDA_CHECK(cudaMemcpyAsync(c.device.data(), s.host, bytes, cudaMemcpyHostToDevice, ctx.stream));
    KUMIKI_CUDA_CHECK(cudaEventRecord(s.event, ctx.stream));
    return c.device.data();
  }

 private:
  struct Slot {
    void* host = nullptr;  // pinned (cudaMallocHost)
    std::size_t bytes = 0;
    cudaEvent_t event = nullptr;  // recorded after the copy out of `host`
    void release() noexcept {
      if (event != nullptr) (void)cudaEventSynchronize(event);
      if (host != nullptr) (void)cudaFreeHost(host);
      host = nullptr, bytes = 0;
      if (event != nullptr) (void)cudaEventDestroy(event);
      event = nullptr;
    }
  };
  struct Channel {
    Buffer<Cuda> device;
    std::array<Slot, 2> slots{};
    unsigned next = 0;
  };
  std::vector<Channel> channels_;
};

/// This translation unit runs CUDA ops (ops/context.hpp).
template <>
inline constexpr bool backend_available<Cuda> = true;

}  // namespace ops
KUMIKI_NAMESPACE_END
