// kumiki/cli/spikes.hpp: `kumiki spikes RUN [--csv FILE]`: the spike report of a training run
// (train/spikes.hpp): every outlier, skipped step and rollback, with its step, stage, tokens and z-scores,
// read from the log.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <CLI/CLI.hpp>

#include "kumiki/cli/app.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/train/log.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace cli {
namespace detail::cmd_spikes {

namespace fs = std::filesystem;
using kumiki::train::RollbackBranches;
using nlohmann::json;

inline std::string fmt(json const& v, char const* f = "%.4g") {
  if (!v.is_number()) return v.is_null() ? "inf" : "";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v.get<double>());
  return buf;
}

struct Event {
  json step;
  std::string action;
};

inline void report(std::string const& run, std::string const& csv_path) {
  fs::path log = run;
  if (fs::is_directory(log)) log /= "log.jsonl";
  KUMIKI_REQUIRE(fs::is_regular_file(log), "'", run, "' is neither a run directory holding log.jsonl nor a log file");
  auto const lines = kumiki::train::read_jsonl(log.string());

  RollbackBranches const branches(lines);
  auto const& rollbacks = branches.records();
  std::int64_t steps = 0, judged = 0, outliers = 0, skipped = 0, nonfinite = 0, lost = 0;
  std::vector<Event> events;
  for (auto const& j : lines) {
    if (j.value("type", "") != "step") continue;
    ++steps;
    bool const gone = branches.abandoned(j);
    lost += gone ? 1 : 0;
    bool const has_spike = j.contains("spike") && j["spike"].is_object();
    std::string const kind = has_spike ? j["spike"].value("outlier", "") : "";
    judged += has_spike ? 1 : 0;
    bool const skip = j.value("skipped", false);
    std::string const reason = j.value("skip_reason", skip ? "nonfinite" : "");
    if (!kind.empty()) ++outliers;
    if (skip) ++skipped;
    if (reason == "nonfinite") ++nonfinite;
    if (kind.empty() && !skip) continue;
    std::string action = skip ? "skipped (" + reason + ")" : "applied (skip = false)";
    if (gone) action += ", abandoned by rollback " + std::to_string(RollbackBranches::rollbacks_of(j) + 1);
    events.push_back({j, action});
  }

  std::printf("kumiki spikes: %s: %lld steps logged (%lld judged by the detector); %lld outliers, %lld skipped steps "
              "(%lld non-finite), %zu rollback(s), %lld logged steps abandoned by rollbacks\n\n",
              log.string().c_str(), static_cast<long long>(steps), static_cast<long long>(judged),
              static_cast<long long>(outliers), static_cast<long long>(skipped), static_cast<long long>(nonfinite),
              rollbacks.size(), static_cast<long long>(lost));
  if (events.empty()) {
    std::printf("No outliers and no skipped steps.\n");
  } else {
    std::printf("| step | stage | tokens | loss | loss z | grad norm | grad norm z | outlier | action |\n"
                "|---:|---|---:|---:|---:|---:|---:|---|---|\n");
    for (auto const& e : events) {
      json const& j = e.step;
      json const sp = j.contains("spike") ? j["spike"] : json::object();
      std::printf("| %lld | %s | %lld | %s | %s | %s | %s | %s | %s |\n", static_cast<long long>(j.value("step", 0LL)),
                  j.value("stage", "").c_str(), static_cast<long long>(j.value("tokens", 0LL)), fmt(j["loss"]).c_str(),
                  sp.contains("loss_z") ? fmt(sp["loss_z"], "%.1f").c_str() : "",
                  fmt(j["grad_norm"]).c_str(), sp.contains("grad_norm_z") ? fmt(sp["grad_norm_z"], "%.1f").c_str() : "",
                  sp.value("outlier", "").c_str(), e.action.c_str());
    }
  }
  if (!rollbacks.empty()) {
    std::printf("\n| rollback | after step | stage | tokens | reason | trouble from step | back to step | batches skipped "
                "| stage's data skip | lr |\n|---:|---:|---|---:|---|---:|---:|---:|---:|---|\n");
    for (auto const& r : rollbacks) {
      std::string const lr = r.value("lr_steps", 0LL) > 0
                                 ? "x" + fmt(r["lr_factor"]) + " for " + std::to_string(r.value("lr_steps", 0LL)) + " steps"
                                 : "unchanged";
      std::printf("| %lld | %lld | %s | %lld | %s | %lld | %lld | %lld | %lld | %s |\n",
                  static_cast<long long>(RollbackBranches::rollbacks_of(r) + 1), static_cast<long long>(r.value("step", 0LL)),
                  r.value("stage", "").c_str(), static_cast<long long>(r.value("tokens", 0LL)),
                  r.value("reason", "").c_str(), static_cast<long long>(r.value("trouble_start", 0LL)),
                  static_cast<long long>(r.value("to_step", 0LL)), static_cast<long long>(r.value("skip_batches", 0LL)),
                  static_cast<long long>(r.value("data_skip", 0LL)), lr.c_str());
    }
  }
  if (!csv_path.empty()) {
    std::ofstream csv(csv_path);
    KUMIKI_REQUIRE(csv.good(), "cannot write '", csv_path, "'");
    csv << "event,step,stage,tokens,loss,loss_z,grad_norm,grad_norm_z,outlier,action,to_step,skip_batches\n";
    for (auto const& e : events) {
      json const& j = e.step;
      json const sp = j.contains("spike") ? j["spike"] : json::object();
      csv << "step," << j.value("step", 0LL) << ',' << j.value("stage", "") << ',' << j.value("tokens", 0LL) << ','
          << fmt(j["loss"], "%.17g") << ',' << (sp.contains("loss_z") ? fmt(sp["loss_z"], "%.17g") : "") << ','
          << fmt(j["grad_norm"], "%.17g") << ',' << (sp.contains("grad_norm_z") ? fmt(sp["grad_norm_z"], "%.17g") : "")
          << ',' << sp.value("outlier", "") << ",\"" << e.action << "\",,\n";
    }
    for (auto const& r : rollbacks)
      csv << "rollback," << r.value("step", 0LL) << ',' << r.value("stage", "") << ',' << r.value("tokens", 0LL)
          << ",,,,,," << r.value("reason", "") << ',' << r.value("to_step", 0LL) << ',' << r.value("skip_batches", 0LL)
          << '\n';
    KUMIKI_REQUIRE(csv.good(), "write to '", csv_path, "' failed");
    std::printf("\nwrote %s\n", csv_path.c_str());
  }
}

}  // namespace detail::cmd_spikes

template <class Configs>
void add_spikes(CLI::App& app) {
  using namespace detail::cmd_spikes;
  auto* cmd = app.add_subcommand("spikes", "Report a run's loss / gradient-norm outliers, skipped steps and rollbacks");
  static std::string run, csv;
  cmd->add_option("run", run, "Run directory (its log.jsonl) or a log file")->required();
  cmd->add_option("--csv", csv, "Also write the events as CSV here");
  cmd->callback([] { report(run, csv); });
}

}  // namespace cli
KUMIKI_NAMESPACE_END
