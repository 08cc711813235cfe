// kumiki/optim/clip.hpp: global L2 gradient-norm clipping (Megatron's coefficient) over any backend, and the
// policy for non-finite norms.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/core/dtype.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/dist/comm.hpp"
#include "kumiki/ops/context.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace optim {

/// Squared L2 norm and scaling of an fp32 gradient arena over a FlatRange of its elements (a ZeRO-1
/// shard, or the whole arena). The primary template only names the interface; backends specialize
/// it: optim/cpu/grad_norm.hpp (Cpu), optim/cuda/grad_norm.cuh (Cuda). Each specialization sums in
/// double in an order fixed by the arena, never by the thread count.
template <class Backend>
struct GradNorm {
  static_assert(always_false<Backend>, "kumiki: no GradNorm for this backend; include kumiki/cpu.hpp (Cpu) or "
                                       "kumiki/cuda.cuh (Cuda)");
};

/// The GradNorm signature: sum_squares (grads, range) -> double; scale (grads, range, coeff).
template <class Op, class Backend>
concept GradNormOp = requires(ops::Ctx<Backend>& ctx, Arena<Backend>& g, Arena<Backend> const& cg, FlatRange r, float c) {
  { Op::sum_squares(ctx, cg, r) } -> std::same_as<double>;
  { Op::scale(ctx, g, r, c) } -> std::same_as<void>;
};

/// L2 norm over every element of an fp32 gradient arena (in `range`, summed over the ranks of `comm`).
/// Inf or NaN anywhere gives a non-finite result.
template <class Backend, class Comm = dist::NoComm>
double global_grad_norm(ops::Ctx<Backend>& ctx, Arena<Backend> const& grads, FlatRange range = {}, Comm const& comm = {}) {
  return std::sqrt(comm.all_reduce_sum(GradNorm<Backend>::sum_squares(ctx, grads, range)));
}

/// Multiplies every gradient in `range` by `coeff` (fp32 multiply).
template <class Backend>
void scale_grads(ops::Ctx<Backend>& ctx, Arena<Backend>& grads, float coeff, FlatRange range = {}) {
  GradNorm<Backend>::scale(ctx, grads, range, coeff);
}

struct ClipResult {
  double norm = 0.0;   ///< global L2 norm before clipping (what the trainer logs)
  double coeff = 1.0;  ///< factor applied to the gradients (1 when not clipped or not finite)
  bool finite = true;  ///< false: gradients left untouched, the step must be skipped
  bool clipped() const { return coeff < 1.0; }
};

/// Megatron-LM clip_grad_norm: coeff = max_norm / (norm + 1e-6), gradients scaled when coeff < 1.
/// A non-finite norm leaves the gradients as they are and reports finite = false.
/// max_norm <= 0 disables clipping (the norm is still computed).
template <class Backend, class Comm = dist::NoComm>
ClipResult clip_grad_norm(ops::Ctx<Backend>& ctx, Arena<Backend>& grads, double max_norm, FlatRange range = {},
                          Comm const& comm = {}) {
  ClipResult r;
  r.norm = global_grad_norm(ctx, grads, range, comm);
  r.finite = std::isfinite(r.norm);
  if (!r.finite || max_norm <= 0.0) return r;
  double const coeff = max_norm / (r.norm + 1.0e-6);
  if (coeff < 1.0) {
    r.coeff = coeff;
    scale_grads(ctx, grads, static_cast<float>(coeff), range);
  }
  return r;
}

/// What the trainer does with this step's gradients.
enum class StepVerdict : std::uint8_t {
  apply,  ///< finite norm: clip and update
  skip,   ///< non-finite norm: no update (the optimizer step count does not advance); log it
  stop,   ///< non-finite `max_consecutive` times in a row: stop the run (e.g. resume from a checkpoint)
};

/// Policy for non-finite gradient norms: skip such steps, and stop after `max_consecutive` of them
/// in a row (0 = never stop, skip for ever). Remembers every skipped iteration for the log.
class NonFiniteGuard {
 public:
  explicit NonFiniteGuard(int max_consecutive = 0) : max_consecutive_(max_consecutive) {
    KUMIKI_CHECK(max_consecutive >= 0, "NonFiniteGuard: max_consecutive must be >= 0, got ", max_consecutive);
  }

  /// Records the norm of `iteration` and returns what to do.
  StepVerdict check(double grad_norm, std::int64_t iteration) {
    if (std::isfinite(grad_norm)) {
      consecutive_ = 0;
      return StepVerdict::apply;
    }
    ++consecutive_;
    skipped_.push_back(iteration);
    if (max_consecutive_ > 0 && consecutive_ >= max_consecutive_) return StepVerdict::stop;
    return StepVerdict::skip;
  }

  int consecutive() const { return consecutive_; }
  int max_consecutive() const { return max_consecutive_; }
  std::vector<std::int64_t> const& skipped_iterations() const { return skipped_; }
  std::size_t total_skipped() const { return skipped_.size(); }

 private:
  int max_consecutive_;
  int consecutive_ = 0;
  std::vector<std::int64_t> skipped_;
};

}  // namespace optim
KUMIKI_NAMESPACE_END
