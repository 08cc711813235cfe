// kumiki/train/spikes.hpp: loss and gradient-norm spike detection for long WSD runs, the skip-step
// rule of OLMo-core's SkipStepOptimizer and the policy of a rollback (Megatron users' answer:
// reload the last good checkpoint and skip the offending data).
//
// Detection (OLMo-core, SkipStepOptimizer.get_step_factor). The window holds the loss and the global
// gradient norm (before clipping) of the last W accepted steps of the stage. Step t is judged once
// the window holds at least `min_history` - 1 earlier steps (OLMo-core: max(2, W / 2) values counting
// t itself); then, with mean and standard deviation over the window (unbiased, n - 1, as
// torch.std_mean), t is an outlier when
//     loss_t - mean(loss) > k * std(loss)   or   gnorm_t - mean(gnorm) > k * std(gnorm).
// Only upward deviations count. Everything is double, summed in window order (oldest first), so the
// verdict is one fixed function of the logged values: every rank of a data-parallel run, which sees
// the same all-reduced loss and norm, takes the same one.
//
// Three choices differ from OLMo-core. (1) Outliers do not enter the window. OLMo-core appends every
// step, so one spike (z = 86 in tests/train/spikes_test.py) widens the band for the next W steps and
// a second, equal spike right after it is no longer an outlier: a burst would never reach the bound
// of consecutive skips that triggers a rollback. (2) The window restarts with each stage: new data,
// sequence length and schedule move the loss level. (3) Non-finite values never enter it (the
// non-finite guard of optim/clip.hpp handles them), and min_history is at least 3, so a standard
// deviation always exists.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/json.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace train {

/// A stage's spike handling (recipe: `[spikes]` for every stage, `[stages.spikes]` per stage).
struct SpikePolicy {
  bool detect = true;                     ///< judge every step against the window (and log its z-scores)
  std::int64_t window = 128;              ///< W: accepted steps of history (OLMo-core's rolling_interval_length)
  double sigma = 6.0;                     ///< k: outlier above mean + k std (OLMo-core's sigma_factor)
  std::int64_t min_history = 64;          ///< steps in the window, counting the judged one, before judging
  bool skip = true;                       ///< an outlier step applies no update (else it is only logged)
  std::int64_t max_consecutive = 8;       ///< more skipped outliers in a row than this: roll back, or stop
  double loss_ceiling = 0.0;              ///< a loss above it rolls back (or stops) at once; 0: none
  bool rollback = false;                  ///< on the bounds above (and the non-finite bound): roll back
  std::int64_t rollback_skip_batches = 0; ///< after a rollback, global batches skipped beyond those the abandoned steps read
  double rollback_lr_factor = 1.0;        ///< lr multiplied by this for `rollback_lr_steps` steps after it
  std::int64_t rollback_lr_steps = 0;
  std::int64_t max_rollbacks = 3;         ///< rollbacks over the whole run before it stops

  /// OLMo-core's minimum history for a window of W steps, at least 3 (see the file comment).
  static constexpr std::int64_t default_min_history(std::int64_t window) { return std::max<std::int64_t>(3, window / 2); }
};

/// Mean, standard deviation and z-score of one value against a window.
struct SpikeStat {
  double mean = 0, std = 0;
  double z = 0;  ///< (x - mean) / std; +-inf when std is 0 and x differs from the mean
};

/// The verdict on one step.
struct SpikeJudgement {
  bool judged = false;  ///< the window held enough history (else nothing below is set)
  SpikeStat loss, grad_norm;
  bool loss_outlier = false, grad_norm_outlier = false;
  bool outlier() const { return loss_outlier || grad_norm_outlier; }
  /// "loss", "grad_norm", "loss+grad_norm" or "".
  std::string kind() const {
    if (loss_outlier && grad_norm_outlier) return "loss+grad_norm";
    return loss_outlier ? "loss" : grad_norm_outlier ? "grad_norm" : "";
  }
};

/// Mean and unbiased standard deviation of `v` (two passes, in order), and the z-score of `x`.
inline SpikeStat spike_stat(std::deque<double> const& v, double x) {
  KUMIKI_CHECK(v.size() >= 2, "a spike statistic needs 2 values, got ", v.size());
  double sum = 0;
  for (double a : v) sum += a;
  SpikeStat s;
  s.mean = sum / static_cast<double>(v.size());
  double sq = 0;
  for (double a : v) sq += (a - s.mean) * (a - s.mean);
  s.std = std::sqrt(sq / static_cast<double>(v.size() - 1));
  double const d = x - s.mean;
  s.z = s.std > 0 ? d / s.std : d == 0 ? 0.0 : std::copysign(std::numeric_limits<double>::infinity(), d);
  return s;
}

/// The rolling history of one stage: the last `window` finite (loss, gradient norm) pairs, oldest
/// first. Part of a checkpoint's state, so a resumed run judges exactly as an uninterrupted one.
class SpikeWindow {
 public:
  /// Judges a step's loss and norm against the history (which it does not change).
  SpikeJudgement judge(double loss, double grad_norm, SpikePolicy const& p) const {
    SpikeJudgement j;
    if (!p.detect || static_cast<std::int64_t>(loss_.size()) + 1 < p.min_history) return j;
    j.judged = true;
    j.loss = spike_stat(loss_, loss);
    j.grad_norm = spike_stat(norm_, grad_norm);
    j.loss_outlier = loss - j.loss.mean > p.sigma * j.loss.std;
    j.grad_norm_outlier = grad_norm - j.grad_norm.mean > p.sigma * j.grad_norm.std;
    return j;
  }
  /// Adds an accepted step (the caller leaves outliers out); the oldest leaves beyond `window`.
  /// Non-finite values are not history.
  void push(double loss, double grad_norm, std::int64_t window) {
    if (!std::isfinite(loss) || !std::isfinite(grad_norm)) return;
    loss_.push_back(loss);
    norm_.push_back(grad_norm);
    while (static_cast<std::int64_t>(loss_.size()) > window) loss_.pop_front(), norm_.pop_front();
  }
  void clear() { loss_.clear(), norm_.clear(); }
  std::size_t size() const { return loss_.size(); }
  std::deque<double> const& losses() const { return loss_; }
  std::deque<double> const& grad_norms() const { return norm_; }

  nlohmann::json to_json() const {
    return {{"loss", std::vector<double>(loss_.begin(), loss_.end())},
            {"grad_norm", std::vector<double>(norm_.begin(), norm_.end())}};
  }
  /// Reads to_json's object; `where` names it for errors ("checkpoint state 'F': \"spikes.window\"").
  static SpikeWindow from_json(nlohmann::json const& j, std::string const& where) {
    KUMIKI_REQUIRE(j.is_object(), where, " is ", ::kumiki::detail::json_describe(j), ", expected an object");
    SpikeWindow w;
    for (auto const& [key, out] : {std::pair{"loss", &w.loss_}, std::pair{"grad_norm", &w.norm_}}) {
      auto const it = j.find(key);
      KUMIKI_REQUIRE(it != j.end() && it->is_array(), where, " has no array \"", key, "\"");
      for (auto const& v : *it) {
        KUMIKI_REQUIRE(v.is_number() && std::isfinite(v.get<double>()), where, ".", key, " holds ",
                       ::kumiki::detail::json_describe(v), ", expected finite numbers");
        out->push_back(v.get<double>());
      }
    }
    KUMIKI_REQUIRE(w.loss_.size() == w.norm_.size(), where, " holds ", w.loss_.size(), " losses but ", w.norm_.size(),
                   " gradient norms");
    return w;
  }

 private:
  std::deque<double> loss_, norm_;
};

/// What ends a run of trouble: why a rollback (or, without rollback, a stop) happens.
enum class TroubleKind : std::uint8_t { none, outliers, loss_ceiling, nonfinite };

inline std::string_view trouble_name(TroubleKind k) {
  switch (k) {
    case TroubleKind::none: return "none";
    case TroubleKind::outliers: return "outliers";
    case TroubleKind::loss_ceiling: return "loss_ceiling";
    case TroubleKind::nonfinite: return "nonfinite";
  }
  return "?";
}

/// The spike handling's part of a run's state (checkpointed in state.json under "spikes").
struct SpikeState {
  SpikeWindow window;                    ///< the current stage's history (accepted steps)
  std::int64_t consecutive = 0;          ///< skipped outliers in a row before this point
  std::int64_t outliers_total = 0;       ///< outlier steps so far (since the checkpoint's own history)
  std::int64_t rollbacks = 0;            ///< rollbacks over the whole run
  std::int64_t data_skip_batches = 0;    ///< global batches of the current stage's data skipped by rollbacks
  double lr_factor = 1.0;                ///< multiplies the lr while step < lr_factor_until
  std::int64_t lr_factor_until = 0;

  double lr(double scheduled, std::int64_t step) const { return step < lr_factor_until ? scheduled * lr_factor : scheduled; }

  nlohmann::json to_json() const {
    return {{"window", window.to_json()},         {"consecutive_outliers", consecutive},
            {"outliers_total", outliers_total},   {"rollbacks", rollbacks},
            {"data_skip_batches", data_skip_batches}, {"lr_factor", lr_factor},
            {"lr_factor_until", lr_factor_until}};
  }
};

}  // namespace train
KUMIKI_NAMESPACE_END
