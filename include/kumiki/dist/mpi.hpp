// kumiki/dist/mpi.hpp: data parallelism over MPI on the host: KUMIKI_MPI_CHECK, an RAII MPI session
// (init/finalize), how to tell that a launcher started this process, and dist::MpiComm, the
// communicator the trainer reduces host gradients with.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/bf16.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/core/dtype.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/dist/comm.hpp"
#include "kumiki/dist/zero.hpp"
#include "kumiki/ops/context.hpp"

KUMIKI_NAMESPACE_BEGIN

namespace detail {
inline std::string mpi_error_string(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS) return "unknown MPI error " + std::to_string(code);
  return std::string(buf, static_cast<std::size_t>(len));
}
}  // namespace detail

KUMIKI_NAMESPACE_END

/// Throws kumiki::Error naming the MPI call, file:line and MPI's own error string.
#define KUMIKI_MPI_CHECK(call)                                                                 \
  do {                                                                                         \
    int const kumiki_status_ = (call);                                                         \
    if (kumiki_status_ != MPI_SUCCESS) [[unlikely]]                                            \
      ::kumiki::detail::fail("MPI call failed: " #call, __FILE__, __LINE__,                   \
                             ::kumiki::detail::mpi_error_string(kumiki_status_));              \
  } while (0)

KUMIKI_NAMESPACE_BEGIN

/// Initializes MPI (errors returned, not fatal) and finalizes it on destruction. One per process.
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv) {
    int initialized = 0;
    KUMIKI_MPI_CHECK(MPI_Initialized(&initialized));
    if (!initialized) {
      KUMIKI_MPI_CHECK(MPI_Init(argc, argv));
      owns_ = true;
    }
    KUMIKI_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    KUMIKI_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
    KUMIKI_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
  }
  MpiSession(MpiSession const&) = delete;
  MpiSession& operator=(MpiSession const&) = delete;
  ~MpiSession() {
    if (owns_) MPI_Finalize();
  }
  int rank() const { return rank_; }
  int size() const { return size_; }

 private:
  bool owns_ = false;
  int rank_ = 0;
  int size_ = 1;
};

namespace dist {

/// Whether an MPI launcher started this process: Open MPI's mpirun / mpiexec, or a PMI / PMIx launcher
/// (Slurm's srun --mpi=pmix or pmi2, MPICH's hydra). A process started without one runs alone and
/// never initializes MPI.
inline bool launched_by_mpi() {
  for (char const* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(v) != nullptr) return true;
  return false;
}

/// The data-parallel communicator over MPI for host (Cpu) arenas. Default-constructed it is one
/// process (rank 0 of 1) and calls no MPI function, so one program serves both a plain run and a
/// launched one; constructed on a communicator (MPI_COMM_WORLD under a launcher) it spans its ranks.
///
/// reduce_gradients sums the fp32 gradient arena over the ranks in place (MPI_Iallreduce, in buckets
/// of at most `bucket_elements`, so that no count overflows MPI's int) and divides by size() after
/// the sum, as Megatron's data-parallel average. Every rank ends with the same bits: each element's
/// sum is MPI's, and with two ranks a + b == b + a exactly. The padding between tensors is reduced too
/// (it is zero on every rank).
///
/// No call waits for ever: each collective is started non-blocking and polled (MPI_Test drives Open
/// MPI's progress), and when it has not completed `timeout_s` seconds later (a rank was killed, crashed
/// or is stuck, and the launcher has not ended the job) this rank says so on stderr and calls
/// MPI_Abort, which ends every rank with a non-zero exit. The timeout must exceed the longest gap
/// between two collectives: a step's forward and backward, an evaluation, a checkpoint write.
class MpiComm {
 public:
  static constexpr std::int64_t bucket_elements = std::int64_t{1} << 26;  // 256 MiB of fp32

  MpiComm() = default;
  explicit MpiComm(MPI_Comm comm, double timeout_s = 600.0) : comm_(comm), timeout_s_(timeout_s) {
    KUMIKI_REQUIRE(timeout_s > 0, "the communication timeout must be positive seconds, got ", timeout_s);
    KUMIKI_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    KUMIKI_MPI_CHECK(MPI_Comm_size(comm_, &size_));
  }

  int rank() const { return rank_; }
  int size() const { return size_; }
  double timeout_s() const { return timeout_s_; }

  /// The bucket size of the overlapped reduction (dist::OverlappingCommunicator; default Megatron's).
  void set_bucket_bytes(std::size_t bytes) { buckets_ = GradientBuckets(std::max<std::size_t>(bytes, sizeof(float))); }
  std::size_t bucket_bytes() const { return buckets_.bucket_bytes(); }
  /// Buckets of the last step started before its backward ended.
  std::int64_t overlapped_buckets() const { return buckets_.last_early(); }

  /// ZeRO-1 (dist::ZeroCommunicator): the ranks' parts of the gradient arena (ZeroPartition::floats).
  /// Once set, the buckets gradients_ready starts are reduced to their owners (each bucket's piece of
  /// rank r's part summed on rank r: MPI_Ireduce) instead of all-reduced, and reduce_scatter_sum with
  /// these bounds finishes the step's reduction. Empty: all-reduce (plain data parallelism).
  void set_owners(std::span<std::int64_t const> bounds) {
    if (!bounds.empty()) (void)part_counts(bounds, false);  // checks them
    owners_.assign(bounds.begin(), bounds.end());
  }

  /// During the last micro-batch's backward (dist::OverlappingCommunicator): starts the reduction of
  /// the finished gradients [from, ...) once a bucket's worth has gathered (MPI_Iallreduce, or with
  /// owners set MPI_Ireduce to each owner), and drives the progress of the reductions already started
  /// (Open MPI progresses inside MPI calls).
  template <class Backend>
    requires std::same_as<Backend, Cpu>
  void gradients_ready(ops::Ctx<Backend>& /*ctx*/, Arena<Backend>& grads, std::size_t from) {
    if (size_ == 1) return;
    if (GradientBuckets::Range const r = buckets_.take(from, grads.total_bytes()); r.bytes() > 0) {
      if (owners_.empty()) start_sum(floats(grads, r), static_cast<std::int64_t>(r.bytes() / sizeof(float)), pending_);
      else start_owned_sums(reinterpret_cast<float*>(grads.data()), r);
    }
    for (MPI_Request& req : pending_) {
      int done = 0;
      KUMIKI_MPI_CHECK(MPI_Test(&req, &done, MPI_STATUS_IGNORE));
    }
  }

  /// Sums the gradients over the ranks (what gradients_ready has not started yet, then waits for all),
  /// and divides by size().
  template <class Backend>
    requires std::same_as<Backend, Cpu>
  void reduce_gradients(ops::Ctx<Backend>& /*ctx*/, Arena<Backend>& grads) {
    if (size_ == 1) return;
    for (auto const& e : grads.layout().entries())
      KUMIKI_CHECK(e.dtype == DType::f32, "MpiComm reduces fp32 gradients; '", e.name, "' is ", dtype_name(e.dtype));
    if (GradientBuckets::Range const r = buckets_.rest(grads.total_bytes()); r.bytes() > 0)
      start_sum(floats(grads, r), static_cast<std::int64_t>(r.bytes() / sizeof(float)), pending_);
    for (MPI_Request& req : pending_) wait(req, "the all-reduce of the gradients");
    pending_.clear();
    auto* g = reinterpret_cast<float*>(grads.data());
    std::int64_t const n = static_cast<std::int64_t>(grads.total_bytes() / sizeof(float));
    float const inv = 1.0f / static_cast<float>(size_);
    for (std::int64_t i = 0; i < n; ++i) g[i] *= inv;
  }

  /// Sums `data` (n floats on every rank) over the ranks, in place, bucket by bucket.
  void all_reduce_sum(float* data, std::int64_t n) const {
    if (size_ == 1) return;
    std::vector<MPI_Request> reqs;
    start_sum(data, n, reqs);
    for (MPI_Request& req : reqs) wait(req, "the all-reduce of the gradients");
  }

  /// n floats from rank `root` to every rank, in place, bucket by bucket.
  void broadcast(float* data, std::int64_t n, int root) const {
    if (size_ == 1) return;
    for (std::int64_t b = 0; b < n; b += bucket_elements) {
      int const count = static_cast<int>(std::min(bucket_elements, n - b));
      MPI_Request req = MPI_REQUEST_NULL;
      KUMIKI_MPI_CHECK(MPI_Ibcast(data + b, count, MPI_FLOAT, root, comm_, &req));
      wait(req, "the broadcast of the parameters");
    }
  }
  template <class Backend>
    requires std::same_as<Backend, Cpu>
  void broadcast(ops::Ctx<Backend>& /*ctx*/, float* data, std::int64_t n, int root) const {
    broadcast(data, n, root);
  }

  /// Bounds that split n floats evenly over the ranks: rank r gets [n r / size, n (r + 1) / size).
  std::vector<std::int64_t> even_bounds(std::int64_t n) const {
    std::vector<std::int64_t> b(static_cast<std::size_t>(size_) + 1);
    for (int r = 0; r <= size_; ++r) b[static_cast<std::size_t>(r)] = n * r / size_;
    return b;
  }

  /// The ZeRO-1 reduce-scatter (dist::ZeroCommunicator): `data` (bounds.back() floats on every rank)
  /// summed over the ranks into this rank's [bounds[rank], bounds[rank + 1]) of it; the other elements
  /// are left undefined. Each part must be below 2^31 floats (MPI's int counts).
  /// After gradients_ready has started buckets (with owners set to `bounds`), the rest goes the same
  /// way and every reduction is waited for: each part holds its sum in place all the same.
  void reduce_scatter_sum(float* data, std::span<std::int64_t const> bounds) {
    if (size_ == 1) return;
    std::vector<int> const counts = part_counts(bounds, false);
    if (buckets_.started()) {
      KUMIKI_CHECK(std::equal(bounds.begin(), bounds.end(), owners_.begin(), owners_.end()),
                   "MpiComm::reduce_scatter_sum: the bounds differ from set_owners' after an overlapped backward");
      GradientBuckets::Range const rest = buckets_.rest(static_cast<std::size_t>(bounds.back()) * sizeof(float));
      if (rest.bytes() > 0) start_owned_sums(data, rest);
      for (MPI_Request& req : pending_) wait(req, "the reduce-scatter of the gradients");
      pending_.clear();
      return;
    }
    MPI_Request req = MPI_REQUEST_NULL;
    KUMIKI_MPI_CHECK(MPI_Ireduce_scatter(MPI_IN_PLACE, data, counts.data(), MPI_FLOAT, MPI_SUM, comm_, &req));
    wait(req, "the reduce-scatter of the gradients");
    std::int64_t const begin = bounds[static_cast<std::size_t>(rank_)];  // MPI leaves the result at the start
    if (begin != 0)
      std::memmove(data + begin, data, static_cast<std::size_t>(counts[static_cast<std::size_t>(rank_)]) * sizeof(float));
  }

  /// The ZeRO-1 all-gather: each rank r's [bounds[r], bounds[r + 1]) of `data` (floats, or the bf16
  /// weights of a bf16 model: moved as 16-bit words) to every rank. The whole buffer must be below 2^31
  /// elements (MPI's int displacements).
  template <class T>
    requires std::same_as<T, float> || std::same_as<T, bf16>
  void all_gather(T* data, std::span<std::int64_t const> bounds) const {
    if (size_ == 1) return;
    std::vector<int> const counts = part_counts(bounds, true);
    std::vector<int> const displs = part_displs(bounds);
    MPI_Datatype const type = std::same_as<T, float> ? MPI_FLOAT : MPI_UINT16_T;
    MPI_Request req = MPI_REQUEST_NULL;
    KUMIKI_MPI_CHECK(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, counts.data(), displs.data(), type, comm_,
                                     &req));
    wait(req, "the all-gather of the parameters");
  }

  /// Each rank's part (`mine`, bounds[rank + 1] - bounds[rank] floats) into its place in `whole` on rank
  /// `root` only (dist::ZeroCommunicator::gather). The whole buffer must be below 2^31 floats.
  void gather(float const* mine, float* whole, std::span<std::int64_t const> bounds, int root) const {
    std::vector<int> const counts = part_counts(bounds, true);
    auto const me = static_cast<std::size_t>(rank_);
    if (size_ == 1) {
      if (mine != whole + bounds[me]) std::memmove(whole + bounds[me], mine, static_cast<std::size_t>(counts[me]) * sizeof(float));
      return;
    }
    std::vector<int> const displs = part_displs(bounds);
    bool const in_place = rank_ == root && mine == whole + bounds[me];
    MPI_Request req = MPI_REQUEST_NULL;
    KUMIKI_MPI_CHECK(MPI_Igatherv(in_place ? MPI_IN_PLACE : mine, counts[me], MPI_FLOAT, whole, counts.data(),
                                  displs.data(), MPI_FLOAT, root, comm_, &req));
    wait(req, "the gather of the optimizer state for a checkpoint");
  }

  /// The same on the backend's terms (dist::ZeroCommunicator): host memory, nothing queued.
  template <class Backend>
    requires std::same_as<Backend, Cpu>
  void reduce_scatter_sum(ops::Ctx<Backend>& /*ctx*/, float* data, std::span<std::int64_t const> bounds) {
    reduce_scatter_sum(data, bounds);
  }
  template <class Backend, class T>
    requires std::same_as<Backend, Cpu> && (std::same_as<T, float> || std::same_as<T, bf16>)
  void all_gather(ops::Ctx<Backend>& /*ctx*/, T* data, std::span<std::int64_t const> bounds) const {
    all_gather(data, bounds);
  }
  template <class Backend>
    requires std::same_as<Backend, Cpu>
  void gather(ops::Ctx<Backend>& /*ctx*/, float const* mine, float* whole, std::span<std::int64_t const> bounds,
              int root) const {
    gather(mine, whole, bounds, root);
  }

  double all_reduce_sum(double x) const {
    if (size_ == 1) return x;
    double sum = 0.0;
    MPI_Request req = MPI_REQUEST_NULL;
    KUMIKI_MPI_CHECK(MPI_Iallreduce(&x, &sum, 1, MPI_DOUBLE, MPI_SUM, comm_, &req));
    wait(req, "an all-reduce of the loss, the gradient norm or a flag");
    return sum;
  }

  void barrier() const {
    if (size_ == 1) return;
    MPI_Request req = MPI_REQUEST_NULL;
    KUMIKI_MPI_CHECK(MPI_Ibarrier(comm_, &req));
    wait(req, "a barrier (rank 0 writing a checkpoint or a data cache)");
  }

 private:
  /// MPI's int counts of the parts between `bounds` (size() + 1 of them, non-decreasing from 0);
  /// `displaced`: the whole buffer must fit an int displacement too.
  std::vector<int> part_counts(std::span<std::int64_t const> bounds, bool displaced) const {
    KUMIKI_CHECK(bounds.size() == static_cast<std::size_t>(size_) + 1 && bounds.front() == 0,
                 "MpiComm: ", bounds.size(), " part bounds for ", size_, " ranks (expected ranks + 1, from 0)");
    KUMIKI_CHECK(!displaced || bounds.back() < (std::int64_t{1} << 31), "MpiComm: ", bounds.back(),
                 " elements exceed MPI's int displacements");
    std::vector<int> counts(static_cast<std::size_t>(size_));
    for (std::size_t r = 0; r < counts.size(); ++r) {
      std::int64_t const n = bounds[r + 1] - bounds[r];
      KUMIKI_CHECK(n >= 0 && n < (std::int64_t{1} << 31), "MpiComm: a part of ", n, " elements (MPI's int counts)");
      counts[r] = static_cast<int>(n);
    }
    return counts;
  }

  /// MPI's int displacements of the parts: bounds[0 .. size()) (part_counts(bounds, true) checked them).
  std::vector<int> part_displs(std::span<std::int64_t const> bounds) const {
    std::vector<int> displs(static_cast<std::size_t>(size_));
    for (std::size_t r = 0; r < displs.size(); ++r) displs[r] = static_cast<int>(bounds[r]);
    return displs;
  }

  /// The gradient bytes `r` of `grads`, checked to be whole floats.
  template <class Backend>
  static float* floats(Arena<Backend>& grads, GradientBuckets::Range r) {
    KUMIKI_CHECK(r.begin % sizeof(float) == 0 && r.end % sizeof(float) == 0 && r.end <= grads.total_bytes(),
                 "MpiComm: gradient bytes [", r.begin, ", ", r.end, ") are not whole floats of the arena");
    return reinterpret_cast<float*>(grads.data() + r.begin);
  }

  /// Starts the sum over the ranks of `data` (n floats), in place, in pieces of at most bucket_elements
  /// (MPI's int counts); their requests are appended to `reqs`.
  void start_sum(float* data, std::int64_t n, std::vector<MPI_Request>& reqs) const {
    for (std::int64_t b = 0; b < n; b += bucket_elements) {
      int const count = static_cast<int>(std::min(bucket_elements, n - b));
      MPI_Request& req = reqs.emplace_back(MPI_REQUEST_NULL);
      KUMIKI_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, data + b, count, MPI_FLOAT, MPI_SUM, comm_, &req));
    }
  }

  /// Starts the sums of the gradient bytes `r` (whole floats of `data`) to their owners: for each rank
  /// q, the floats of r inside q's part summed on q, in place (MPI_Ireduce, MPI_IN_PLACE on the root),
  /// in pieces of at most bucket_elements; the requests join pending_.
  void start_owned_sums(float* data, GradientBuckets::Range r) {
    KUMIKI_CHECK(r.begin % sizeof(float) == 0 && r.end % sizeof(float) == 0, "MpiComm: gradient bytes [", r.begin,
                 ", ", r.end, ") are not whole floats");
    auto const first = static_cast<std::int64_t>(r.begin / sizeof(float));
    auto const last = static_cast<std::int64_t>(r.end / sizeof(float));
    for_each_part_piece(owners_, first, last, [&](int q, std::int64_t begin, std::int64_t end) {
      for (std::int64_t b = begin; b < end; b += bucket_elements) {
        int const count = static_cast<int>(std::min(bucket_elements, end - b));
        MPI_Request& req = pending_.emplace_back(MPI_REQUEST_NULL);
        KUMIKI_MPI_CHECK(MPI_Ireduce(rank_ == q ? MPI_IN_PLACE : data + b, data + b, count, MPI_FLOAT, MPI_SUM, q,
                                     comm_, &req));
      }
    });
  }

  void wait(MPI_Request& req, char const* what) const {
    auto const start = std::chrono::steady_clock::now();
    for (std::int64_t polls = 0;; ++polls) {
      int done = 0;
      KUMIKI_MPI_CHECK(MPI_Test(&req, &done, MPI_STATUS_IGNORE));
      if (done) return;
      double const waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (waited > timeout_s_) {
        std::fprintf(stderr,
                     "kumiki: error: rank %d of %d: %s did not complete within %g s: another rank has stopped "
                     "(killed, crashed or stuck). Ending every rank; resume by rerunning the same command (raise "
                     "--comm-timeout if a step, evaluation or checkpoint legitimately takes longer)\n",
                     rank_, size_, what, timeout_s_);
        std::fflush(stderr);
        MPI_Abort(comm_, 1);
        std::_Exit(1);  // MPI_Abort does not return; should it, this rank still stops
      }
      if (polls > 1000) std::this_thread::yield();
    }
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  double timeout_s_ = 600.0;
  GradientBuckets buckets_;             // the overlapped reduction's bucket policy
  std::vector<MPI_Request> pending_;    // its reductions started and not yet waited for
  std::vector<std::int64_t> owners_;    // ZeRO-1: the ranks' parts of the gradient arena (set_owners)
};

static_assert(OverlappingCommunicator<MpiComm, Cpu> && ZeroCommunicator<MpiComm, Cpu>);

}  // namespace dist
KUMIKI_NAMESPACE_END
