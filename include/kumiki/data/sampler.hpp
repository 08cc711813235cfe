// kumiki/data/sampler.hpp: data-parallel sample order as Megatron's MegatronPretrainingSampler:
// consecutive global indices from the consumed-sample count, rank r taking its micro-batch slice.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace data {

/// Each step covers micro_batch_size * data_parallel_size consecutive sample indices starting at the
/// consumed-sample count; rank r gets [start + r * mbs, start + (r + 1) * mbs). Resuming means
/// constructing it with the consumed-sample count saved in the checkpoint: the continuation is the
/// same as if the run had never stopped. Gradient accumulation simply calls next() several times
/// per global batch.
class PretrainingSampler {
 public:
  PretrainingSampler(std::int64_t total_samples, std::int64_t consumed_samples, std::int64_t micro_batch_size,
                     std::int64_t data_parallel_rank, std::int64_t data_parallel_size, bool drop_last = true)
      : total_(total_samples), consumed_(consumed_samples), mbs_(micro_batch_size), rank_(data_parallel_rank),
        dp_(data_parallel_size), drop_last_(drop_last) {
    KUMIKI_CHECK(total_ > 0, "no sample to consume: total_samples = ", total_);
    KUMIKI_CHECK(consumed_ >= 0 && consumed_ < total_, "consumed samples ", consumed_, " outside [0, ", total_, ")");
    KUMIKI_CHECK(mbs_ > 0, "micro batch size must be positive, got ", mbs_);
    KUMIKI_CHECK(dp_ > 0 && rank_ >= 0 && rank_ < dp_, "data-parallel rank ", rank_, " outside [0, ", dp_, ")");
  }

  /// Global samples consumed by all ranks so far (what a checkpoint stores).
  std::int64_t consumed_samples() const { return consumed_; }
  std::int64_t micro_batch_times_data_parallel() const { return mbs_ * dp_; }

  /// This rank's next micro-batch of global sample indices; false when the samples are exhausted
  /// (a last incomplete step is dropped unless drop_last is false, then its slice may be short).
  bool next(std::vector<std::int64_t>& out) {
    out.clear();
    std::int64_t const step = mbs_ * dp_;
    std::int64_t const left = total_ - consumed_;
    if (left <= 0 || (left < step && drop_last_)) return false;
    std::int64_t const begin = consumed_ + rank_ * mbs_;
    std::int64_t const end = std::min(begin + mbs_, total_);
    for (std::int64_t i = begin; i < end; ++i) out.push_back(i);
    consumed_ += std::min(step, left);
    return true;
  }

 private:
  std::int64_t total_, consumed_, mbs_, rank_, dp_;
  bool drop_last_;
};

}  // namespace data
KUMIKI_NAMESPACE_END
