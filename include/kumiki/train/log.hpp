// kumiki/train/log.hpp: the machine-readable training log (one JSON object per line) and the
// human progress line (stage, step, loss, tokens/s, ETA).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/train/spikes.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace train {

/// One optimizer step. `loss` is the mean token loss over the global batch; `mfu` uses the model's
/// Megatron FLOPs per token (see models/) against `peak_flops` given to the trainer.
struct StepRecord {
  std::int64_t step = 0;         // global optimizer step, counted from 0 over all stages
  std::string stage;             // stage name from the recipe
  std::int64_t stage_step = 0;   // step within the stage
  std::int64_t tokens = 0;       // consumed training tokens after this step, over all stages
  double loss = 0;
  double lr = 0;
  double grad_norm = 0;
  double tokens_per_s = 0;
  double model_flops_per_s = 0;  // Megatron model FLOPs per token x tokens/s
  double mfu = 0;
  double peak_rss_mb = 0;
  std::optional<double> peak_device_mb;  // device runs: the most device memory the run's buffers held
  std::optional<std::int64_t> overlapped_buckets;  // data parallel: gradient buckets reduced during the backward
  double elapsed_s = 0;
  bool skipped = false;          // the update was not applied (skip_reason says why)
  std::string skip_reason;       // "nonfinite", "outlier" or "loss_ceiling" when skipped
  std::optional<double> moe_aux; // MoE models: load-balancing loss (summed over layers), batch mean
  std::optional<double> moe_z;   // MoE models: router z-loss (summed over layers), batch mean
  SpikeJudgement spike;          // the spike detector's verdict (written when it judged the step)
  std::int64_t data_skip = 0;    // global batches of this stage's data skipped by rollbacks so far
  std::int64_t rollbacks = 0;    // rollbacks before this step (lines of an abandoned branch keep theirs)
};

/// One held-out evaluation.
struct EvalRecord {
  std::int64_t step = 0;
  std::string stage;
  std::int64_t tokens = 0;
  std::string dataset;
  double loss = 0;
  double perplexity = 0;
  std::int64_t eval_tokens = 0;
  std::int64_t rollbacks = 0;
};

/// A stage starting (boundaries are marked on plots).
struct StageRecord {
  std::string name;
  std::int64_t step = 0;
  std::int64_t tokens = 0;
  std::int64_t rollbacks = 0;
};

/// A rollback (train/spikes.hpp): after step `step` the run went back to the checkpoint of step
/// `to_step`. The steps it abandoned are the lines with the same `rollbacks` and a step >= to_step.
struct RollbackRecord {
  std::int64_t step = 0;              // the last step of the trouble
  std::string stage;
  std::int64_t tokens = 0;            // consumed tokens after that step
  std::string reason;                 // "outliers", "loss_ceiling" or "nonfinite"
  std::int64_t trouble_start = 0;     // first step of the trouble
  std::int64_t to_step = 0;           // the checkpoint reloaded
  std::int64_t skip_batches = 0;      // global batches of data skipped from there
  std::int64_t data_skip = 0;         // the stage's data skip after this rollback
  double lr_factor = 1.0;             // lr multiplied by this ...
  std::int64_t lr_steps = 0;          // ... for this many steps from to_step
  std::int64_t rollbacks = 0;         // rollbacks before this one
  bool same_order = true;             // the rebuilt sample index agrees with the one read before
};

namespace detail {
/// JSON has no NaN/Inf; non-finite numbers are written as null so the line stays valid JSON.
inline nlohmann::json number(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); }
}  // namespace detail

inline nlohmann::json to_json(StepRecord const& r) {
  nlohmann::json j = {{"type", "step"},        {"step", r.step},
                      {"stage", r.stage},      {"stage_step", r.stage_step},
                      {"tokens", r.tokens},    {"loss", detail::number(r.loss)},
                      {"lr", r.lr},            {"grad_norm", detail::number(r.grad_norm)},
                      {"tokens_per_s", r.tokens_per_s}, {"model_flops_per_s", r.model_flops_per_s}, {"mfu", r.mfu},
                      {"peak_rss_mb", r.peak_rss_mb},   {"elapsed_s", r.elapsed_s},
                      {"skipped", r.skipped}};
  if (r.peak_device_mb) j["peak_device_mb"] = *r.peak_device_mb;
  if (r.overlapped_buckets) j["overlapped_buckets"] = *r.overlapped_buckets;
  if (r.moe_aux) j["moe_aux_loss"] = detail::number(*r.moe_aux);
  if (r.moe_z) j["moe_z_loss"] = detail::number(*r.moe_z);
  if (!r.skip_reason.empty()) j["skip_reason"] = r.skip_reason;
  if (r.spike.judged) {
    SpikeJudgement const& s = r.spike;
    j["spike"] = {{"loss_mean", s.loss.mean},           {"loss_std", s.loss.std},
                  {"loss_z", detail::number(s.loss.z)}, {"grad_norm_mean", s.grad_norm.mean},
                  {"grad_norm_std", s.grad_norm.std},   {"grad_norm_z", detail::number(s.grad_norm.z)},
                  {"outlier", s.kind()}};
  }
  if (r.data_skip != 0) j["data_skip"] = r.data_skip;
  if (r.rollbacks != 0) j["rollbacks"] = r.rollbacks;
  return j;
}
inline nlohmann::json to_json(EvalRecord const& r) {
  nlohmann::json j = {{"type", "eval"},   {"step", r.step},       {"stage", r.stage},
                      {"tokens", r.tokens}, {"dataset", r.dataset}, {"loss", detail::number(r.loss)},
                      {"perplexity", detail::number(r.perplexity)}, {"eval_tokens", r.eval_tokens}};
  if (r.rollbacks != 0) j["rollbacks"] = r.rollbacks;
  return j;
}
inline nlohmann::json to_json(StageRecord const& r) {
  nlohmann::json j = {{"type", "stage"}, {"name", r.name}, {"step", r.step}, {"tokens", r.tokens}};
  if (r.rollbacks != 0) j["rollbacks"] = r.rollbacks;
  return j;
}
/// The soup that ends a stage with `seeds`: the runs averaged into the main run at `step`.
struct SoupRecord {
  std::int64_t step = 0;
  std::string stage;
  std::int64_t tokens = 0;
  std::vector<std::uint64_t> seeds;
  std::vector<std::string> runs;  // their final checkpoints
  std::int64_t rollbacks = 0;
};
inline nlohmann::json to_json(SoupRecord const& r) {
  nlohmann::json j = {{"type", "soup"}, {"step", r.step},   {"stage", r.stage},
                      {"tokens", r.tokens}, {"seeds", r.seeds}, {"runs", r.runs}};
  if (r.rollbacks != 0) j["rollbacks"] = r.rollbacks;
  return j;
}
inline nlohmann::json to_json(RollbackRecord const& r) {
  return {{"type", "rollback"},           {"step", r.step},
          {"stage", r.stage},             {"tokens", r.tokens},
          {"reason", r.reason},           {"trouble_start", r.trouble_start},
          {"to_step", r.to_step},         {"skip_batches", r.skip_batches},
          {"data_skip", r.data_skip},     {"lr_factor", r.lr_factor},
          {"lr_steps", r.lr_steps},       {"rollbacks", r.rollbacks},
          {"same_sample_order", r.same_order}};
}

/// Appends JSON lines to a file, flushing each line so a killed run loses at most the line in flight.
class JsonlLog {
 public:
  /// A log that is off: write() does nothing (a data-parallel rank other than 0).
  JsonlLog() = default;
  explicit JsonlLog(std::string path) : path_(std::move(path)), out_(path_, std::ios::app) {
    KUMIKI_REQUIRE(out_.good(), "cannot open log file '", path_, "' for appending");
  }
  template <class Record>
  void write(Record const& r) {
    if (path_.empty()) return;
    out_ << to_json(r).dump() << '\n';
    out_.flush();
    KUMIKI_REQUIRE(out_.good(), "write to log file '", path_, "' failed");
  }
  std::string const& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream out_;
};

/// Reads every JSON line of a log; a malformed line is an error naming its line number.
inline std::vector<nlohmann::json> read_jsonl(std::string const& path) {
  std::ifstream in(path);
  KUMIKI_REQUIRE(in.good(), "cannot open log file '", path, "'");
  std::vector<nlohmann::json> lines;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    KUMIKI_REQUIRE(!j.is_discarded() && j.is_object(), "log file '", path, "' line ", n, " is not a JSON object");
    lines.push_back(std::move(j));
  }
  return lines;
}

/// Which log lines a rollback abandoned: a rollback record ends the branch of its `rollbacks` count
/// from its `to_step` on, so a line of that branch at or after that step was undone.
class RollbackBranches {
 public:
  explicit RollbackBranches(std::vector<nlohmann::json> const& lines) {
    for (auto const& j : lines)
      if (j.value("type", "") == "rollback") {
        ended_[rollbacks_of(j)] = j.value("to_step", std::int64_t{0});
        records_.push_back(j);
      }
  }
  static std::int64_t rollbacks_of(nlohmann::json const& j) { return j.value("rollbacks", std::int64_t{0}); }
  bool abandoned(nlohmann::json const& j) const {
    auto const it = ended_.find(rollbacks_of(j));
    return it != ended_.end() && j.value("step", std::int64_t{0}) >= it->second;
  }
  std::vector<nlohmann::json> const& records() const { return records_; }

 private:
  std::map<std::int64_t, std::int64_t> ended_;
  std::vector<nlohmann::json> records_;
};

/// "1h02m03s" style durations for the progress line.
inline std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  auto const s = static_cast<std::int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm%02llds", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  else if (s >= 60)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  return buf;
}

/// The terminal progress line: stage, step / total, loss, lr, tokens/s and the ETA of the whole run.
inline std::string progress_line(StepRecord const& r, std::int64_t total_steps, double eta_s) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "[%s] step %lld/%lld loss %.4f lr %.3e gnorm %.3f %.0f tok/s ETA %s%s",
                r.stage.c_str(), static_cast<long long>(r.step + 1), static_cast<long long>(total_steps), r.loss,
                r.lr, r.grad_norm, r.tokens_per_s, format_duration(eta_s).c_str(), r.skipped ? (" (skipped: " + r.skip_reason + ")").c_str() : "");
  return buf;
}

}  // namespace train
KUMIKI_NAMESPACE_END
