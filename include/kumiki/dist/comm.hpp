// kumiki/dist/comm.hpp: what the trainer asks of a data-parallel communicator, and the one-process one.
#pragma once

#include <concepts>
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
