// kumiki/dist/comm.hpp: what the trainer asks of a data-parallel communicator, and the one-process one.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>

#include "kumiki/config.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/ops/context.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace dist {

/// A communicator over the data-parallel ranks of a run, on backend `Backend`:
///   rank(), size()                       this process's rank and the number of ranks;
///   reduce_gradients(ctx, grads)         after gradient accumulation and before clipping: every rank's
///                                        gradients summed and divided by size() (an all-reduce, or a
///                                        reduce-scatter into this rank's ZeRO-1 range);
///   all_reduce_sum(x)                    a host double summed over ranks (the squared gradient norm,
///                                        the loss, a flag);
///   broadcast(ctx, data, n, root)        n floats of backend memory from rank `root` to every rank
///                                        (the weights every rank starts from);
///   barrier()                            every rank waits for the others (rank 0 wrote a checkpoint
///                                        or a data cache the others read next).
/// Every call is collective: all ranks make the same calls in the same order.
template <class C, class Backend>
concept Communicator = requires(C& c, C const& cc, ops::Ctx<Backend>& ctx, Arena<Backend>& grads, double x, float* data,
                                 std::int64_t n) {
  { cc.rank() } -> std::convertible_to<int>;
  { cc.size() } -> std::convertible_to<int>;
  { c.reduce_gradients(ctx, grads) } -> std::same_as<void>;
  { cc.all_reduce_sum(x) } -> std::same_as<double>;
  { c.broadcast(ctx, data, n, 0) } -> std::same_as<void>;
  { cc.barrier() } -> std::same_as<void>;
};

/// A communicator that reduces gradients while the backward still runs. During the backward of a
/// step's last micro-batch the trainer calls gradients_ready(ctx, grads, from) each time the bytes
/// [from, end) of the gradient arena hold their final values (the backward runs from the LM head,
/// at the arena's end, down to the embedding, at its start, so `from` only decreases); the
/// communicator may start reducing them, in buckets of its choice. reduce_gradients then reduces
/// what is left, waits for all of it and divides by size(), with the same result as without the
/// calls (dist::MpiComm: MPI_Iallreduce per bucket; dist::NcclComm: ncclAllReduce per bucket on a
/// stream of its own, beside the backward's kernels). With ZeRO-1 (a ZeroCommunicator's set_owners)
/// the buckets are reduced to the ranks owning their parts, and reduce_scatter_sum finishes instead.
/// Collective: every rank makes the same calls.
template <class C, class Backend>
concept OverlappingCommunicator = Communicator<C, Backend> && requires(C& c, C const& cc, ops::Ctx<Backend>& ctx,
                                                                       Arena<Backend>& grads, std::size_t from) {
  { c.gradients_ready(ctx, grads, from) } -> std::same_as<void>;
  { cc.overlapped_buckets() } -> std::convertible_to<std::int64_t>;  // the last step's buckets started early
};

/// The bucket size of an OverlappingCommunicator unless told otherwise: Megatron-LM's default
/// (--ddp-bucket-size: 40M fp32 elements, 160 MB), large enough that each all-reduce runs near the
/// network's bandwidth, small enough that most of them hide behind the backward.
inline constexpr std::size_t default_bucket_bytes = std::size_t{40'000'000} * 4;

/// The bucket policy both communicators share: the bytes [from, pending_end) are final and not yet
/// reduced; a bucket starts once they reach `bucket_bytes` (`take` returns it and moves pending_end
/// down), and `rest` hands over whatever remains at the end of the backward, ready for the next step.
class GradientBuckets {
 public:
  struct Range {
    std::size_t begin = 0, end = 0;
    std::size_t bytes() const { return end - begin; }
  };
  explicit GradientBuckets(std::size_t bucket_bytes = default_bucket_bytes) : bucket_bytes_(bucket_bytes) {}

  std::size_t bucket_bytes() const { return bucket_bytes_; }
  /// [from, pending end) when it has reached the bucket size (then no longer pending), else empty.
  Range take(std::size_t from, std::size_t total) {
    if (!started_) started_ = true, pending_end_ = total;
    if (from >= pending_end_ || pending_end_ - from < bucket_bytes_) return {};
    Range const r{from, pending_end_};
    pending_end_ = from;
    ++early_;
    return r;
  }
  /// [0, pending end): what the backward left; the policy starts over for the next step.
  Range rest(std::size_t total) {
    Range const r{0, started_ ? pending_end_ : total};
    started_ = false;
    last_early_ = early_;
    early_ = 0;
    return r;
  }
  /// Whether a backward has reported finished gradients since the last rest().
  bool started() const { return started_; }
  /// Buckets started before the end of the last step's backward (what overlapped).
  std::int64_t last_early() const { return last_early_; }

 private:
  std::size_t bucket_bytes_;
  std::size_t pending_end_ = 0;
  bool started_ = false;
  std::int64_t early_ = 0, last_early_ = 0;
};

/// One process: nothing to reduce.
struct NoComm {
  static constexpr int rank() { return 0; }
  static constexpr int size() { return 1; }
  template <class Backend>
  void reduce_gradients(ops::Ctx<Backend>& /*ctx*/, Arena<Backend>& /*grads*/) {}
  static constexpr double all_reduce_sum(double x) { return x; }
  template <class Backend>
  void broadcast(ops::Ctx<Backend>& /*ctx*/, float* /*data*/, std::int64_t /*n*/, int /*root*/) {}
  static constexpr void barrier() {}
};

static_assert(Communicator<NoComm, Cpu> && Communicator<NoComm, Cuda>);

}  // namespace dist
KUMIKI_NAMESPACE_END
