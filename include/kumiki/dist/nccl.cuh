// kumiki/dist/nccl.cuh: data parallelism over NCCL on the GPU: KUMIKI_NCCL_CHECK, and dist::NcclComm,
// the communicator the trainer reduces device (Cuda) gradients with, made from a torchrun-style
// environment (from_env) or over MPI (dist/nccl_mpi.cuh).
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/bf16.hpp"
#include "kumiki/core/buffer.hpp"
#include "kumiki/core/cuda/allocator.cuh"
#include "kumiki/core/cuda/check.cuh"
#include "kumiki/core/device.hpp"
#include "kumiki/core/dtype.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/dist/comm.hpp"
#include "kumiki/dist/rendezvous.hpp"
#include "kumiki/dist/zero.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/ops/cuda/context.cuh"

/// Throws kumiki::Error naming the NCCL call, file:line and NCCL's error string.
#define KUMIKI_NCCL_CHECK(call)                                                          \
  do {                                                                                   \
    ncclResult_t const kumiki_status_ = (call);                                          \
    if (kumiki_status_ != ncclSuccess) [[unlikely]]                                      \
      ::kumiki::detail::fail("NCCL call failed: " #call, __FILE__, __LINE__,            \
                             ncclGetErrorString(kumiki_status_));                        \
  } while (0)

KUMIKI_NAMESPACE_BEGIN
namespace dist {
namespace nccl_detail {

inline constexpr int scale_threads = 256;
/// The scale kernel is grid-stride and never launches more blocks than this.
inline constexpr std::uint64_t scale_max_blocks = std::uint64_t{1} << 15;

/// p[i] *= s: one fp32 multiply rounded to nearest, the same as MpiComm's host loop.
template <int Threads>
__global__ void __launch_bounds__(Threads) scale_kernel(float* p, std::uint64_t n, float s) {
  std::uint64_t const stride = std::uint64_t{gridDim.x} * Threads;
  for (std::uint64_t i = std::uint64_t{blockIdx.x} * Threads + threadIdx.x; i < n; i += stride)
    p[i] = __fmul_rn(p[i], s);
}

static_assert(sizeof(ncclUniqueId) == NCCL_UNIQUE_ID_BYTES);

}  // namespace nccl_detail

/// The data-parallel communicator over NCCL for device (Cuda) arenas: dist::MpiComm's members, on the
/// GPU. Default-constructed it is one process (rank 0 of 1) and calls no NCCL function, so one program
/// serves both a plain run and a launched one; constructed on a unique id it spans `size` ranks, one
/// GPU each. Construct it before the model and its ops::Ctx<Cuda>: it makes its device current.
///
/// Every collective on device memory is queued on the ctx's stream, after the kernels that produced
/// its input; the host-value ones (all_reduce_sum, barrier) use a stream of the communicator's own.
///   reduce_gradients    ncclAllReduce (sum) of the fp32 arena in place, then one fp32 multiply by
///                       1 / size() on the GPU: Megatron's data-parallel average, and the same order
///                       (sum, then scale) as MpiComm. With gradients_ready calls during the backward
///                       (the trainer's overlap, dist::OverlappingCommunicator) the arena goes in
///                       buckets of bucket_bytes() (Megatron's 40M elements by default) on a stream of
///                       the communicator's own, each queued once the backward has written it, and
///                       ctx.stream waits for the last; without them, in one call on ctx.stream (NCCL
///                       pipelines one call in chunks of its own). The padding between tensors is
///                       reduced too (it is zero on every rank). With ZeRO-1 owners (set_owners)
///                       the buckets are reduced to their owners instead (ncclReduce groups).
///   reduce_scatter_sum  (ZeRO-1) the sum over the ranks lands in this rank's [bounds[rank],
///   all_gather          bounds[rank + 1]); then each rank's part is copied to every rank. The parts
///                       are uneven (ZeroPartition cuts at granules, the last rank takes the rest, the
///                       padding goes with its tensor), while ncclReduceScatter / ncclAllGather need
///                       equal counts: a padded equal-count view would need a staging copy of the
///                       whole buffer (tens of GB of gradients for an 8B model). So each is one NCCL
///                       group of size() rooted collectives, in place: ncclReduce of part r to root r,
///                       and ncclBroadcast of part r from root r (what PyTorch's ProcessGroupNCCL does
///                       for uneven reduce_scatter / all_gather). Each rank sends about N floats for
///                       the N of the buffer, against (size - 1) / size N for ring reduce-scatter /
///                       all-gather, and NCCL runs the group's operations together, not one by one.
///
/// No call waits for ever: the communicator is non-blocking (ncclConfig_t::blocking = 0), and each
/// operation is waited for by polling ncclCommGetAsyncError and cudaStreamQuery. When it has not
/// completed `timeout_s` seconds later (a rank was killed, crashed or is stuck), or NCCL reports an
/// asynchronous error (a peer is gone), this rank says so on stderr, aborts the communicator
/// (ncclCommAbort, which also stops NCCL's kernels on the GPU) and exits with status 1; the launcher
/// (torchrun, mpirun, srun) then ends the other ranks. The timeout must exceed the longest gap
/// between two collectives: a step's forward and backward (the wait starts with the backward's
/// kernels still queued before the all-reduce), an evaluation, a checkpoint write.
class NcclComm {
 public:
  NcclComm() = default;

  /// Rank `rank` of `size` on CUDA device `device` (as select_device chooses); every rank passes the
  /// same `id` (ncclGetUniqueId on one rank, handed to the others by from_env's rendezvous or
  /// nccl_over_mpi's broadcast).
  NcclComm(int rank, int size, ncclUniqueId id, int device, double timeout_s = 600.0)
      : rank_(rank), size_(size), timeout_s_(timeout_s) {
    KUMIKI_REQUIRE(timeout_s > 0, "the communication timeout must be positive seconds, got ", timeout_s);
    KUMIKI_CHECK(size >= 1 && rank >= 0 && rank < size, "NcclComm: rank ", rank, " of ", size);
    device_ = select_device(rank, size, device);
    try {
      KUMIKI_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
      KUMIKI_CUDA_CHECK(cudaStreamCreateWithFlags(&grad_stream_, cudaStreamNonBlocking));
      KUMIKI_CUDA_CHECK(cudaEventCreateWithFlags(&grads_ready_, cudaEventDisableTiming));
      KUMIKI_CUDA_CHECK(cudaEventCreateWithFlags(&grads_reduced_, cudaEventDisableTiming));
      scalar_ = Buffer<Cuda>(sizeof(double));
      ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
      config.blocking = 0;
      settle(ncclCommInitRankConfig(&comm_, size, id, rank, &config), "ncclCommInitRankConfig",
             "the creation of the NCCL communicator (waiting for every rank to create it)");
    } catch (...) {
      release(true);
      throw;
    }
  }

  /// The communicator of a torchrun-style launch (dist/rendezvous.hpp): RANK and WORLD_SIZE give the
  /// rank, LOCAL_RANK the GPU, and rank 0 hands its NCCL unique id (128 bytes) to the others through
  /// the TCP rendezvous at MASTER_ADDR:MASTER_PORT, which waits at most `timeout_s` seconds too.
  static NcclComm from_env(double timeout_s = 600.0) {
    EnvLaunch const env = read_env_launch();
    select_device(env.rank, env.world_size, env.local_rank);  // before NCCL touches CUDA on rank 0
    ncclUniqueId id{};
    std::array<std::byte, sizeof(ncclUniqueId)> bytes{};
    if (env.rank == 0) {
      KUMIKI_NCCL_CHECK(ncclGetUniqueId(&id));
      std::memcpy(bytes.data(), &id, sizeof id);
    }
    bytes = exchange(env, bytes, timeout_s);
    std::memcpy(&id, bytes.data(), sizeof id);
    return NcclComm(env.rank, env.world_size, id, env.local_rank, timeout_s);
  }

  NcclComm(NcclComm&& o) noexcept { take(o); }
  NcclComm& operator=(NcclComm&& o) noexcept {
    if (this != &o) {
      release(false);
      take(o);
    }
    return *this;
  }
  NcclComm(NcclComm const&) = delete;
  NcclComm& operator=(NcclComm const&) = delete;
  ~NcclComm() { release(std::uncaught_exceptions() > 0); }

  /// Ends the communicator at once, as on a timeout but without exiting: NCCL's kernels are stopped and
  /// no peer is waited for (train::Trainer calls it when unwinding from an error). Collectives after it
  /// do nothing, as on a default-constructed communicator.
  void abort() noexcept { release(true); }

  int rank() const { return rank_; }
  int size() const { return size_; }
  int device() const { return device_; }
  double timeout_s() const { return timeout_s_; }

  /// Makes CUDA device `device` (the rank's rank on its node) this thread's current device, and returns
  /// the device taken: the only visible one where the launcher gives each rank its own GPU (Slurm's
  /// --gpus-per-task=1, a CUDA_VISIBLE_DEVICES per rank), else `device`, which must exist (the
  /// constructor does this; call it earlier where CUDA is used before, e.g. around ncclGetUniqueId).
  static int select_device(int rank, int size, int device) {
    int const devices = cuda_device_count();
    KUMIKI_REQUIRE(devices > 0, "rank ", rank, " of ", size, ": no CUDA device is visible to this process");
    if (devices == 1) device = 0;
    KUMIKI_REQUIRE(device >= 0 && device < devices, "rank ", rank, " of ", size, ": CUDA device ", device,
                   " (its rank on its node) does not exist; this node has ", devices,
                   " visible GPU(s): start at most that many ranks per node");
    KUMIKI_CUDA_CHECK(cudaSetDevice(device));
    return device;
  }

  /// The bucket size of the overlapped reduction (dist::OverlappingCommunicator; default Megatron's).
  void set_bucket_bytes(std::size_t bytes) { buckets_ = GradientBuckets(std::max<std::size_t>(bytes, sizeof(float))); }
  std::size_t bucket_bytes() const { return buckets_.bucket_bytes(); }
  /// Buckets of the last step started before its backward ended.
  std::int64_t overlapped_buckets() const { return buckets_.last_early(); }

  /// During the last micro-batch's backward (dist::OverlappingCommunicator): once a bucket's worth of
  /// finished gradients [from, ...) has gathered, queues its ncclAllReduce on the communicator's
  /// gradient stream after the kernels queued so far on ctx.stream (an event), so that it runs beside
  /// the rest of the backward, which writes only below `from`. The host does not wait.
  void gradients_ready(ops::Ctx<Cuda>& ctx, Arena<Cuda>& grads, std::size_t from) {
    if (comm_ == nullptr) return;
    if (GradientBuckets::Range const r = buckets_.take(from, grads.total_bytes()); r.bytes() > 0) start_sum(ctx, grads, r);
  }

  /// ZeRO-1 (dist::ZeroCommunicator): the ranks' parts of the gradient arena (ZeroPartition::floats).
  /// Once set, the buckets gradients_ready starts are reduced to their owners (a group of ncclReduce,
  /// each bucket's piece of rank r's part to rank r, on the gradient stream) instead of all-reduced,
  /// and reduce_scatter_sum with these bounds finishes the step's reduction. Empty: all-reduce.
  void set_owners(std::span<std::int64_t const> bounds) {
    if (!bounds.empty()) check_bounds(bounds, "set_owners");
    owners_.assign(bounds.begin(), bounds.end());
  }

  /// Every rank's fp32 gradients summed, then multiplied by 1 / size(), in place (see the class
  /// comment): the buckets gradients_ready has not started are reduced now, ctx.stream waits for all
  /// of them, and the host waits (with the timeout) for the scaled result.
  void reduce_gradients(ops::Ctx<Cuda>& ctx, Arena<Cuda>& grads) {
    if (comm_ == nullptr) return;
    for (auto const& e : grads.layout().entries())
      KUMIKI_CHECK(e.dtype == DType::f32, "NcclComm reduces fp32 gradients; '", e.name, "' is ", dtype_name(e.dtype));
    auto* g = reinterpret_cast<float*>(grads.data());
    std::uint64_t const n = grads.total_bytes() / sizeof(float);
    char const* what = "the all-reduce of the gradients";
    bool const overlapped = buckets_.started();
    GradientBuckets::Range const rest = buckets_.rest(grads.total_bytes());
    if (!overlapped) {  // one all-reduce of the whole arena, on ctx.stream
      if (n == 0) return;
      settle(ncclAllReduce(g, g, n, ncclFloat32, ncclSum, comm_, ctx.stream), "ncclAllReduce", what);
    } else {  // the rest on the gradient stream too, then ctx.stream waits for every bucket
      if (rest.bytes() > 0) start_sum(ctx, grads, rest);
      KUMIKI_CUDA_CHECK(cudaEventRecord(grads_reduced_, grad_stream_));
      KUMIKI_CUDA_CHECK(cudaStreamWaitEvent(ctx.stream, grads_reduced_, 0));
    }
    if (size_ > 1) {
      constexpr int threads = nccl_detail::scale_threads;
      auto const blocks =
          static_cast<unsigned>(std::min<std::uint64_t>((n + threads - 1) / threads, nccl_detail::scale_max_blocks));
      nccl_detail::scale_kernel<threads><<<blocks, threads, 0, ctx.stream>>>(g, n, 1.0f / static_cast<float>(size_));
      KUMIKI_CUDA_CHECK(cudaGetLastError());
    }
    wait(ctx.stream, what);
  }

  /// The ZeRO-1 reduce-scatter (dist::ZeroCommunicator): `data` (bounds.back() floats on every rank,
  /// device memory) summed over the ranks into this rank's [bounds[rank], bounds[rank + 1]) of it; the
  /// rest is left undefined. One group of ncclReduce, part r to root r (see the class comment). After
  /// gradients_ready has started buckets (owners set to `bounds`), the rest goes the same way on the
  /// gradient stream and ctx.stream waits for all of it.
  void reduce_scatter_sum(ops::Ctx<Cuda>& ctx, float* data, std::span<std::int64_t const> bounds) {
    check_bounds(bounds, "reduce_scatter_sum");
    if (comm_ == nullptr) return;
    char const* what = "the reduce-scatter of the gradients";
    if (buckets_.started()) {
      KUMIKI_CHECK(std::equal(bounds.begin(), bounds.end(), owners_.begin(), owners_.end()),
                   "NcclComm::reduce_scatter_sum: the bounds differ from set_owners' after an overlapped backward");
      GradientBuckets::Range const rest = buckets_.rest(static_cast<std::size_t>(bounds.back()) * sizeof(float));
      if (rest.bytes() > 0) start_owned_sums(ctx, data, rest);
      KUMIKI_CUDA_CHECK(cudaEventRecord(grads_reduced_, grad_stream_));
      KUMIKI_CUDA_CHECK(cudaStreamWaitEvent(ctx.stream, grads_reduced_, 0));
      wait(ctx.stream, what);
      return;
    }
    settle(ncclGroupStart(), "ncclGroupStart", what);
    for (int r = 0; r < size_; ++r) {
      auto const [begin, count] = part(bounds, r);
      if (count > 0)
        settle(ncclReduce(data + begin, data + begin, count, ncclFloat32, ncclSum, r, comm_, ctx.stream), "ncclReduce",
               what);
    }
    settle(ncclGroupEnd(), "ncclGroupEnd", what);
    wait(ctx.stream, what);
  }

  /// The ZeRO-1 all-gather: each rank r's [bounds[r], bounds[r + 1]) of `data` (device memory: floats,
  /// or the bf16 weights of a bf16 model) to every rank. One group of ncclBroadcast, part r from root r.
  template <class T>
    requires std::same_as<T, float> || std::same_as<T, bf16>
  void all_gather(ops::Ctx<Cuda>& ctx, T* data, std::span<std::int64_t const> bounds) const {
    check_bounds(bounds, "all_gather");
    if (comm_ == nullptr) return;
    ncclDataType_t const type = std::same_as<T, float> ? ncclFloat32 : ncclBfloat16;  // copied, never summed
    char const* what = "the all-gather of the parameters";
    settle(ncclGroupStart(), "ncclGroupStart", what);
    for (int r = 0; r < size_; ++r) {
      auto const [begin, count] = part(bounds, r);
      if (count > 0)
        settle(ncclBroadcast(data + begin, data + begin, count, type, r, comm_, ctx.stream), "ncclBroadcast", what);
    }
    settle(ncclGroupEnd(), "ncclGroupEnd", what);
    wait(ctx.stream, what);
  }

  /// Each rank's part (`mine`, bounds[rank + 1] - bounds[rank] floats of device memory) into its place in
  /// `whole` on rank `root` only: one NCCL group of ncclSend (every other rank) and ncclRecv (root, once
  /// per other rank); root's own part is copied on the stream unless `mine` is already its place.
  void gather(ops::Ctx<Cuda>& ctx, float const* mine, float* whole, std::span<std::int64_t const> bounds, int root) const {
    check_bounds(bounds, "gather");
    KUMIKI_CHECK(root >= 0 && root < size_, "NcclComm::gather: root ", root, " of ", size_);
    auto const [begin, count] = part(bounds, rank_);
    if (rank_ == root && count > 0 && mine != whole + begin)
      KUMIKI_CUDA_CHECK(cudaMemcpyAsync(whole + begin, mine, count * sizeof(float), cudaMemcpyDeviceToDevice, ctx.stream));
    if (comm_ == nullptr || size_ == 1) return;
    char const* what = "the gather of the optimizer state for a checkpoint";
    settle(ncclGroupStart(), "ncclGroupStart", what);
    if (rank_ == root) {
      for (int r = 0; r < size_; ++r) {
        auto const [at, n] = part(bounds, r);
        if (r != root && n > 0) settle(ncclRecv(whole + at, n, ncclFloat32, r, comm_, ctx.stream), "ncclRecv", what);
      }
    } else if (count > 0) {
      settle(ncclSend(mine, count, ncclFloat32, root, comm_, ctx.stream), "ncclSend", what);
    }
    settle(ncclGroupEnd(), "ncclGroupEnd", what);
    wait(ctx.stream, what);
  }

  /// n floats of device memory from rank `root` to every rank, in place (ncclBroadcast on the ctx's stream).
  void broadcast(ops::Ctx<Cuda>& ctx, float* data, std::int64_t n, int root) const {
    KUMIKI_CHECK(n >= 0 && root >= 0 && root < size_, "NcclComm::broadcast: ", n, " floats from rank ", root, " of ", size_);
    if (comm_ == nullptr || n == 0) return;
    char const* what = "the broadcast of the parameters";
    settle(ncclBroadcast(data, data, static_cast<std::size_t>(n), ncclFloat32, root, comm_, ctx.stream), "ncclBroadcast",
           what);
    wait(ctx.stream, what);
  }

  /// A host double summed over the ranks (in double on the GPU; the same order on every rank).
  double all_reduce_sum(double x) const {
    if (comm_ == nullptr) return x;
    return device_sum(x, "an all-reduce of the loss, the gradient norm or a flag");
  }

  /// Every rank waits for the others: NCCL has no barrier, so an all-reduce of one value stands for it.
  void barrier() const {
    if (comm_ == nullptr) return;
    (void)device_sum(0.0, "a barrier (rank 0 writing a checkpoint or a data cache)");
  }

 private:
  /// Queues the sum over the ranks of the gradient bytes `r` on the gradient stream, after everything
  /// queued so far on ctx.stream (the kernels that wrote them).
  /// With owners set (ZeRO-1), to their owners instead (start_owned_sums).
  void start_sum(ops::Ctx<Cuda>& ctx, Arena<Cuda>& grads, GradientBuckets::Range r) {
    KUMIKI_CHECK(r.begin % sizeof(float) == 0 && r.end % sizeof(float) == 0 && r.end <= grads.total_bytes(),
                 "NcclComm: gradient bytes [", r.begin, ", ", r.end, ") are not whole floats of the arena");
    if (!owners_.empty()) return start_owned_sums(ctx, reinterpret_cast<float*>(grads.data()), r);
    KUMIKI_CUDA_CHECK(cudaEventRecord(grads_ready_, ctx.stream));
    KUMIKI_CUDA_CHECK(cudaStreamWaitEvent(grad_stream_, grads_ready_, 0));
    auto* g = reinterpret_cast<float*>(grads.data() + r.begin);
    settle(ncclAllReduce(g, g, r.bytes() / sizeof(float), ncclFloat32, ncclSum, comm_, grad_stream_), "ncclAllReduce",
           "the all-reduce of a gradient bucket");
  }

  /// Queues, on the gradient stream after everything queued so far on ctx.stream, the sums of the
  /// gradient bytes `r` (whole floats of `data`) to their owners: one group of ncclReduce, for each
  /// rank q the floats of r inside q's part (owners_) summed on q, in place.
  void start_owned_sums(ops::Ctx<Cuda>& ctx, float* data, GradientBuckets::Range r) {
    KUMIKI_CUDA_CHECK(cudaEventRecord(grads_ready_, ctx.stream));
    KUMIKI_CUDA_CHECK(cudaStreamWaitEvent(grad_stream_, grads_ready_, 0));
    auto const first = static_cast<std::int64_t>(r.begin / sizeof(float));
    auto const last = static_cast<std::int64_t>(r.end / sizeof(float));
    char const* what = "the reduce-scatter of a gradient bucket";
    settle(ncclGroupStart(), "ncclGroupStart", what);
    for_each_part_piece(owners_, first, last, [&](int q, std::int64_t begin, std::int64_t end) {
      settle(ncclReduce(data + begin, data + begin, static_cast<std::size_t>(end - begin), ncclFloat32, ncclSum, q,
                        comm_, grad_stream_),
             "ncclReduce", what);
    });
    settle(ncclGroupEnd(), "ncclGroupEnd", what);
  }

  void check_bounds(std::span<std::int64_t const> bounds, char const* who) const {
    KUMIKI_CHECK(bounds.size() == static_cast<std::size_t>(size_) + 1 && bounds.front() == 0, "NcclComm::", who, ": ",
                 bounds.size(), " part bounds for ", size_, " ranks (expected ranks + 1, from 0)");
    for (std::size_t r = 0; r + 1 < bounds.size(); ++r)
      KUMIKI_CHECK(bounds[r + 1] >= bounds[r], "NcclComm::", who, ": part bounds decrease at ", r, ": ", bounds[r],
                   " > ", bounds[r + 1]);
  }

  struct Part {
    std::int64_t begin;
    std::size_t count;
  };
  static Part part(std::span<std::int64_t const> bounds, int r) {
    auto const i = static_cast<std::size_t>(r);
    return Part{bounds[i], static_cast<std::size_t>(bounds[i + 1] - bounds[i])};
  }

  /// `x` summed over the ranks through the device (the communicator's own stream).
  double device_sum(double x, char const* what) const {
    auto* d = reinterpret_cast<double*>(scalar_.data());
    KUMIKI_CUDA_CHECK(cudaMemcpyAsync(d, &x, sizeof x, cudaMemcpyHostToDevice, stream_));
    settle(ncclAllReduce(d, d, 1, ncclFloat64, ncclSum, comm_, stream_), "ncclAllReduce", what);
    wait(stream_, what);  // before reading back: a copy to pageable memory would block without a timeout
    double sum = 0.0;
    KUMIKI_CUDA_CHECK(cudaMemcpyAsync(&sum, d, sizeof sum, cudaMemcpyDeviceToHost, stream_));
    KUMIKI_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return sum;
  }

  double seconds_since(std::chrono::steady_clock::time_point start) const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  /// The result of an NCCL call on the non-blocking communicator. ncclInProgress means NCCL is still
  /// creating the communicator or queueing the operation: it is on the stream only once
  /// ncclCommGetAsyncError stops saying so, and nothing else may be queued before (polled, with the
  /// timeout). Any other failure is a usage error and throws kumiki::Error naming the call.
  void settle(ncclResult_t result, char const* call, char const* what) const {
    if (result == ncclSuccess) return;
    if (result != ncclInProgress || comm_ == nullptr)
      ::kumiki::detail::fail("NCCL call failed", __FILE__, __LINE__, call, " during ", what, ": ",
                             ncclGetErrorString(result), comm_ != nullptr ? " (" : "",
                             comm_ != nullptr ? ncclGetLastError(comm_) : "", comm_ != nullptr ? ")" : "");
    auto const start = std::chrono::steady_clock::now();
    for (std::int64_t polls = 0;; ++polls) {
      ncclResult_t state = ncclSuccess;
      KUMIKI_NCCL_CHECK(ncclCommGetAsyncError(comm_, &state));
      if (state == ncclSuccess) return;
      if (state != ncclInProgress) stop(what, state);
      if (seconds_since(start) > timeout_s_) stop(what, ncclInProgress);
      pause(polls);
    }
  }

  /// Waits until everything queued on `stream` (the collective last) has completed, or stops the rank.
  void wait(cudaStream_t stream, char const* what) const {
    auto const start = std::chrono::steady_clock::now();
    for (std::int64_t polls = 0;; ++polls) {
      ncclResult_t state = ncclSuccess;
      KUMIKI_NCCL_CHECK(ncclCommGetAsyncError(comm_, &state));
      if (state != ncclSuccess && state != ncclInProgress) stop(what, state);
      if (state == ncclSuccess) {
        cudaError_t const done = cudaStreamQuery(stream);
        if (done == cudaSuccess) return;
        if (done != cudaErrorNotReady) KUMIKI_CUDA_CHECK(done);
      }
      if (seconds_since(start) > timeout_s_) stop(what, ncclInProgress);
      pause(polls);
    }
  }

  /// Spins for the first polls (a collective usually completes within microseconds of its inputs),
  /// then sleeps between them: the wait may cover a whole backward pass still queued on the stream,
  /// and a spinning thread would take a core from the data loader.
  static void pause(std::int64_t polls) {
    if (polls > 1000) std::this_thread::sleep_for(std::chrono::microseconds(50));
  }

  /// Ends this rank: `what` timed out (state ncclInProgress) or failed with NCCL's asynchronous `state`.
  [[noreturn]] void stop(char const* what, ncclResult_t state) const {
    if (state == ncclInProgress)
      std::fprintf(stderr,
                   "kumiki: error: rank %d of %d: %s did not complete within %g s: another rank has stopped (killed, "
                   "crashed or stuck). Ending this rank (the launcher ends the others); resume by rerunning the same "
                   "command (raise --comm-timeout if a step, evaluation or checkpoint legitimately takes longer)\n",
                   rank_, size_, what, timeout_s_);
    else
      std::fprintf(
          stderr,
          "kumiki: error: rank %d of %d: %s failed: NCCL reports '%s' (%s): another rank has stopped or the "
          "network failed. Ending this rank (the launcher ends the others); resume by rerunning the same command\n",
          rank_, size_, what, ncclGetErrorString(state), ncclGetLastError(comm_));
    std::fflush(stderr);
    (void)ncclCommAbort(comm_);
    std::_Exit(1);
  }

  void take(NcclComm& o) noexcept {
    comm_ = std::exchange(o.comm_, nullptr);
    stream_ = std::exchange(o.stream_, nullptr);
    grad_stream_ = std::exchange(o.grad_stream_, nullptr);
    grads_ready_ = std::exchange(o.grads_ready_, nullptr);
    grads_reduced_ = std::exchange(o.grads_reduced_, nullptr);
    buckets_ = o.buckets_;
    owners_ = std::move(o.owners_);
    scalar_ = std::move(o.scalar_);
    rank_ = std::exchange(o.rank_, 0);
    size_ = std::exchange(o.size_, 1);
    device_ = std::exchange(o.device_, 0);
    timeout_s_ = o.timeout_s_;
  }

  /// Frees the communicator: ncclCommFinalize (flushes this rank's operations and waits, at most
  /// timeout_s, for the peers to do the same) then ncclCommDestroy; or ncclCommAbort at once when
  /// `abort` (unwinding from an error: a peer may never finalize) or when finalizing fails.
  void release(bool abort) noexcept {
    if (comm_ != nullptr) {
      bool finalized = false;
      if (!abort) {
        ncclResult_t state = ncclCommFinalize(comm_);
        auto const start = std::chrono::steady_clock::now();
        for (std::int64_t polls = 0; state == ncclInProgress && seconds_since(start) <= timeout_s_; ++polls) {
          if (ncclCommGetAsyncError(comm_, &state) != ncclSuccess) break;
          pause(polls);
        }
        finalized = state == ncclSuccess;
      }
      (void)(finalized ? ncclCommDestroy(comm_) : ncclCommAbort(comm_));
      comm_ = nullptr;
    }
    for (cudaStream_t* st : {&stream_, &grad_stream_})
      if (*st != nullptr) (void)cudaStreamDestroy(std::exchange(*st, nullptr));
    for (cudaEvent_t* ev : {&grads_ready_, &grads_reduced_})
      if (*ev != nullptr) (void)cudaEventDestroy(std::exchange(*ev, nullptr));
    scalar_ = Buffer<Cuda>{};
  }

  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;  // for the host-value collectives
  cudaStream_t grad_stream_ = nullptr;  // for the gradient buckets reduced beside the backward
  cudaEvent_t grads_ready_ = nullptr;   // on ctx.stream: a bucket's gradients are written
  cudaEvent_t grads_reduced_ = nullptr; // on grad_stream_: every bucket of the step is reduced
  GradientBuckets buckets_;
  std::vector<std::int64_t> owners_;  // ZeRO-1: the ranks' parts of the gradient arena (set_owners)
  Buffer<Cuda> scalar_;            // their one double on the device
  int rank_ = 0;
  int size_ = 1;
  int device_ = 0;
  double timeout_s_ = 600.0;
};

static_assert(OverlappingCommunicator<NcclComm, Cuda> && ZeroCommunicator<NcclComm, Cuda>);

}  // namespace dist
KUMIKI_NAMESPACE_END
