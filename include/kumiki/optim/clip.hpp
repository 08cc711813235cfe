// kumiki/optim/clip.hpp: global L2 gradient-norm clipping (Megatron's coefficient) and the policy for non-finite norms.
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

KUMIKI_NAMESPACE_BEGIN
namespace optim {

/// L2 norm over every element of an fp32 gradient arena, squares summed in double. The arena is
/// cut into fixed blocks whose partial sums (OpenMP over blocks, SIMD within) are added in block
/// order, so the result does not depend on the thread count. Inf or NaN anywhere gives a non-finite
/// result.
inline double global_grad_norm(Arena<Cpu> const& grads) {
  constexpr std::int64_t block = 1 << 14;
  struct Block {
    float const* data;
    std::int64_t n;
  };
  std::vector<Block> blocks;
  for (auto const& e : grads.layout().entries()) {
    KUMIKI_CHECK(e.dtype == DType::f32, "gradient norm expects fp32 gradients; '", e.name, "' is ", dtype_name(e.dtype));
    float const* g = reinterpret_cast<float const*>(grads.data() + e.offset);
    std::int64_t const n = static_cast<std::int64_t>(e.numel());
    for (std::int64_t b = 0; b < n; b += block) blocks.push_back({g + b, std::min(block, n - b)});
  }
  std::vector<double> partial(blocks.size());
  std::int64_t const nb = static_cast<std::int64_t>(blocks.size());
#pragma omp parallel for schedule(static)
  for (std::int64_t b = 0; b < nb; ++b) {
    float const* g = blocks[static_cast<std::size_t>(b)].data;
    std::int64_t const n = blocks[static_cast<std::size_t>(b)].n;
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (std::int64_t k = 0; k < n; ++k) s += static_cast<double>(g[k]) * static_cast<double>(g[k]);
    partial[static_cast<std::size_t>(b)] = s;
  }
  double sum = 0.0;
  for (double s : partial) sum += s;
  return std::sqrt(sum);
}

/// Multiplies every gradient by `coeff` (fp32 multiply).
inline void scale_grads(Arena<Cpu>& grads, float coeff) {
  for (auto const& e : grads.layout().entries()) {
    KUMIKI_CHECK(e.dtype == DType::f32, "scale_grads expects fp32 gradients; '", e.name, "' is ", dtype_name(e.dtype));
    float* g = reinterpret_cast<float*>(grads.data() + e.offset);
    std::int64_t const n = static_cast<std::int64_t>(e.numel());
#pragma omp parallel for schedule(static)
    for (std::int64_t k = 0; k < n; ++k) g[k] *= coeff;
  }
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
inline ClipResult clip_grad_norm(Arena<Cpu>& grads, double max_norm) {
  ClipResult r;
  r.norm = global_grad_norm(grads);
  r.finite = std::isfinite(r.norm);
  if (!r.finite || max_norm <= 0.0) return r;
  double const coeff = max_norm / (r.norm + 1.0e-6);
  if (coeff < 1.0) {
    r.coeff = coeff;
    scale_grads(grads, static_cast<float>(coeff));
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
