// kumiki/train/log.hpp: the machine-readable training log (one JSON object per line) and the
// human progress line (stage, step, loss, tokens/s, ETA).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"

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
  double elapsed_s = 0;
  bool skipped = false;          // non-finite loss or gradient: the update was not applied
  std::optional<double> moe_aux; // MoE models: load-balancing loss (summed over layers), batch mean
  std::optional<double> moe_z;   // MoE models: router z-loss (summed over layers), batch mean
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
};

/// A stage starting (boundaries are marked on plots).
struct StageRecord {
  std::string name;
  std::int64_t step = 0;
  std::int64_t tokens = 0;
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
  if (r.moe_aux) j["moe_aux_loss"] = detail::number(*r.moe_aux);
  if (r.moe_z) j["moe_z_loss"] = detail::number(*r.moe_z);
  return j;
}
inline nlohmann::json to_json(EvalRecord const& r) {
  return {{"type", "eval"},   {"step", r.step},       {"stage", r.stage},
          {"tokens", r.tokens}, {"dataset", r.dataset}, {"loss", detail::number(r.loss)},
          {"perplexity", detail::number(r.perplexity)}, {"eval_tokens", r.eval_tokens}};
}
inline nlohmann::json to_json(StageRecord const& r) {
  return {{"type", "stage"}, {"name", r.name}, {"step", r.step}, {"tokens", r.tokens}};
}

/// Appends JSON lines to a file, flushing each line so a killed run loses at most the line in flight.
class JsonlLog {
 public:
  JsonlLog() = default;
  explicit JsonlLog(std::string path) : path_(std::move(path)), out_(path_, std::ios::app) {
    KUMIKI_CHECK(out_.good(), "cannot open log file '", path_, "' for appending");
  }
  template <class Record>
  void write(Record const& r) {
    out_ << to_json(r).dump() << '\n';
    out_.flush();
    KUMIKI_CHECK(out_.good(), "write to log file '", path_, "' failed");
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
                r.lr, r.grad_norm, r.tokens_per_s, format_duration(eta_s).c_str(), r.skipped ? " (skipped)" : "");
  return buf;
}

}  // namespace train
KUMIKI_NAMESPACE_END
