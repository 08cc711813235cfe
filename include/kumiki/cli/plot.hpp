// kumiki/cli/plot.hpp: `kumiki plot LOG.jsonl --out curves.png`: training and eval loss and the learning rate
// against consumed tokens, with stage boundaries, skipped outlier steps and rollbacks marked (the steps a
// rollback abandoned in grey) and the seed runs of a stage with `seeds` drawn beside the main run, by gnuplot
// (pngcairo, else png, else svg).
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <CLI/CLI.hpp>

#include "kumiki/cli/app.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/train/log.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace cli {
namespace detail::cmd_plot {

namespace fs = std::filesystem;

inline std::string gnuplot_terminal(fs::path const& out) {
  if (out.extension() == ".svg") return "svg size 1200,800 dynamic";
  // pngcairo draws anti-aliased lines; Debian's gnuplot-nox has it, plain `png` (libgd) is the fallback.
  int const has_cairo = std::system("gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1");
  return has_cairo == 0 ? "pngcairo size 1200,800" : "png size 1200,800";
}

/// Text for a single-quoted gnuplot string (a quote is doubled); `noenhanced` titles keep '_' literal.
inline std::string gnuplot_quote(std::string const& s) {
  std::string out;
  for (char c : s) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out;
}

inline void plot(std::string const& log_path, std::string const& out_path, std::string const& title) {
  auto const lines = kumiki::train::read_jsonl(log_path);
  fs::path const out = fs::absolute(out_path);
  fs::path const work = fs::temp_directory_path() / ("kumiki-plot-" + std::to_string(::getpid()));
  fs::create_directories(work);
  std::ofstream steps(work / "steps.dat"), abandoned(work / "abandoned.dat"), outliers(work / "outliers.dat");
  kumiki::train::RollbackBranches const branches(lines);
  std::size_t n_abandoned = 0, n_outliers = 0;
  double max_loss = 0;  // of the curve itself: an outlier far above it is drawn at the top edge
  // One data file per eval set, in order of first appearance: each gets its own colour and legend entry.
  std::vector<std::string> eval_sets;
  std::vector<std::ofstream> evals;
  std::vector<std::pair<double, std::string>> stages;
  std::size_t n_steps = 0, n_evals = 0;
  for (auto const& j : lines) {
    std::string const type = j.value("type", "");
    if (type == "step" && j["loss"].is_number() && j.value("skip_reason", "") != "" && j.value("skip_reason", "") != "nonfinite") {
      outliers << j["tokens"].get<double>() << ' ' << j["loss"].get<double>() << '\n';
      ++n_outliers;
    } else if (type == "step" && !j.value("skipped", false) && j["loss"].is_number() && branches.abandoned(j)) {
      abandoned << j["tokens"].get<double>() << ' ' << j["loss"].get<double>() << '\n';
      ++n_abandoned;
    } else if (type == "step" && !j.value("skipped", false) && j["loss"].is_number()) {
      steps << j["tokens"].get<double>() << ' ' << j["loss"].get<double>() << ' ' << j["lr"].get<double>() << '\n';
      max_loss = std::max(max_loss, j["loss"].get<double>());
      ++n_steps;
    } else if (type == "eval" && j["loss"].is_number()) {
      std::string const set = j.value("dataset", "eval");
      std::size_t k = 0;
      while (k < eval_sets.size() && eval_sets[k] != set) ++k;
      if (k == eval_sets.size()) {
        eval_sets.push_back(set);
        evals.emplace_back(work / ("eval" + std::to_string(k) + ".dat"));
      }
      evals[k] << j["tokens"].get<double>() << ' ' << j["loss"].get<double>() << '\n';
      ++n_evals;
    } else if (type == "stage") {
      stages.emplace_back(j["tokens"].get<double>(), j.value("name", ""));
    }
  }
  // A stage with `seeds` trained in seed runs beside this log (OUT/seeds/<stage>-seed<seed>/): their
  // steps are the stage's curves, one per seed.
  std::vector<std::string> seed_titles;
  for (auto const& j : lines) {
    if (j.value("type", "") != "soup") continue;
    std::string const stage = j.value("stage", "");
    for (auto const& seed : j["seeds"]) {
      fs::path const seed_log = fs::path(log_path).parent_path() / "seeds" /
                                (stage + "-seed" + std::to_string(seed.get<std::uint64_t>())) / "log.jsonl";
      if (!fs::exists(seed_log)) continue;
      std::ofstream f(work / ("seed" + std::to_string(seed_titles.size()) + ".dat"));
      for (auto const& r : kumiki::train::read_jsonl(seed_log.string()))
        if (r.value("type", "") == "step" && r.value("stage", "") == stage && !r.value("skipped", false) &&
            r["loss"].is_number() && !branches.abandoned(r))
          f << r["tokens"].get<double>() << ' ' << r["loss"].get<double>() << ' ' << r["lr"].get<double>() << '\n';
      seed_titles.push_back("train loss: " + stage + ", seed " + std::to_string(seed.get<std::uint64_t>()));
    }
  }
  steps.close(), abandoned.close(), outliers.close();
  for (auto& e : evals) e.close();
  KUMIKI_REQUIRE(n_steps > 0, "log '", log_path, "' holds no training steps to plot");

  std::ofstream gp(work / "plot.gp");
  gp << "set terminal " << gnuplot_terminal(out) << "\n"
     << "set output '" << out.string() << "'\n"
     << "set multiplot layout 2,1 title '" << title << "'\n"
     << "set grid\nset lmargin 12\nset key top right noenhanced\nset xlabel 'tokens'\nset format x '%.1s%c'\n";
  auto mark_stages = [&] {
    int k = 1;
    for (auto const& [tokens, name] : stages) {
      gp << "set arrow " << k << " from " << tokens << ", graph 0 to " << tokens
         << ", graph 1 nohead dt 2 lc rgb 'gray40'\n";
      gp << "set label " << k << " '" << name << "' at " << tokens << ", graph 0.95 offset 0.5,0 font ',9'\n";
      ++k;
    }
  };
  mark_stages();
  int k = static_cast<int>(stages.size()) + 1;
  for (auto const& r : branches.records()) {  // where each rollback happened, in tokens
    double const tokens = r.value("tokens", 0.0);
    gp << "set arrow " << k << " from " << tokens << ", graph 0 to " << tokens << ", graph 1 nohead dt 3 lw 1.5 lc rgb '#d62728'\n";
    gp << "set label " << k << " 'rollback to step " << r.value("to_step", 0LL) << "' at " << tokens
       << ", graph 0.08 right offset -0.5,0 font ',9' tc rgb '#d62728'\n";
    ++k;
  }
  // Outliers far above the curve would flatten it: the loss axis ends a little above the curve, and
  // higher outliers sit on that edge (their value is in `kumiki spikes`).
  double const top = 1.15 * max_loss;
  if (n_outliers > 0 && max_loss > 0) gp << "set yrange [*:" << top << "]\n";
  gp << "set ylabel 'loss'\n"
     << "plot '" << (work / "steps.dat").string() << "' using 1:2 with lines lw 1 lc rgb '#1f77b4' title 'train loss'";
  static constexpr char const* seed_colors[] = {"#17becf", "#bcbd22", "#7f7f7f", "#e377c2"};
  for (std::size_t k = 0; k < seed_titles.size(); ++k)
    gp << ", '" << (work / ("seed" + std::to_string(k) + ".dat")).string() << "' using 1:2 with lines lw 1 lc rgb '"
       << seed_colors[k % 4] << "' title '" << gnuplot_quote(seed_titles[k]) << "'";
  if (n_abandoned > 0)
    gp << ", '" << (work / "abandoned.dat").string()
       << "' using 1:2 with points pt 7 ps 0.3 lc rgb 'gray60' title 'steps undone by a rollback'";
  if (n_outliers > 0)
    gp << ", '" << (work / "outliers.dat").string() << "' using 1:($2 > " << top << " ? " << 0.99 * top
       << " : $2) with points pt 2 ps 1.6 lw 2 lc rgb '#d62728' title 'skipped outlier'";
  // Colours after the training curve's blue, point types differ too (for grey-scale prints).
  static constexpr char const* eval_colors[] = {"#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"};
  static constexpr int eval_points[] = {7, 5, 9, 11, 13, 15, 4};
  for (std::size_t k = 0; k < eval_sets.size(); ++k)
    gp << ", '" << (work / ("eval" + std::to_string(k) + ".dat")).string() << "' using 1:2 with linespoints lw 1 pt "
       << eval_points[k % 7] << " ps 0.9 lc rgb '" << eval_colors[k % 7] << "' title '" << gnuplot_quote("eval loss: " + eval_sets[k])
       << "'";
  gp << "\nset autoscale y\nset ylabel 'learning rate'\nset format y '%.1e'\n"
     << "plot '" << (work / "steps.dat").string() << "' using 1:3 with lines lw 2 lc rgb '#2ca02c' title 'lr'"
     << (seed_titles.empty() ? std::string()
                             : ", '" + (work / "seed0.dat").string() + "' using 1:3 with lines lw 2 lc rgb '#2ca02c' notitle")
     << "\n"
     << "unset multiplot\n";
  gp.close();
  std::string const cmd = "gnuplot '" + (work / "plot.gp").string() + "'";
  int const rc = std::system(cmd.c_str());
  fs::remove_all(work);
  KUMIKI_REQUIRE(rc == 0, "gnuplot failed (exit ", rc, "); is gnuplot installed?");
  std::printf("wrote %s (%zu steps, %zu evals of %zu eval sets, %zu stages, %zu skipped outliers, %zu rollbacks)\n",
              out.string().c_str(), n_steps, n_evals, eval_sets.size(), stages.size(), n_outliers,
              branches.records().size());
  if (!seed_titles.empty()) std::printf("  with the curves of %zu seed runs\n", seed_titles.size());
}

}  // namespace detail::cmd_plot

template <class Configs>
void add_plot(CLI::App& app) {
  using namespace detail::cmd_plot;
  auto* cmd = app.add_subcommand("plot", "Plot loss and learning rate against tokens from a training log (JSONL)");
  static std::string log, out, title = "kumiki training";
  cmd->add_option("log", log, "Training log, DIR/log.jsonl")->required()->check(CLI::ExistingFile);
  cmd->add_option("--out,-o", out, "Output image (.png or .svg)")->required();
  cmd->add_option("--title", title, "Plot title");
  cmd->callback([] { plot(log, out, title); });
}

}  // namespace cli
KUMIKI_NAMESPACE_END
