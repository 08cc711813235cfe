// `kumiki plot LOG.jsonl --out curves.png`: training and eval loss and the learning rate against
// consumed tokens, with stage boundaries marked, drawn by gnuplot (pngcairo, else png, else svg).
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "command.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/train/log.hpp"

namespace {

namespace fs = std::filesystem;

std::string gnuplot_terminal(fs::path const& out) {
  if (out.extension() == ".svg") return "svg size 1200,800 dynamic";
  // pngcairo draws anti-aliased lines; Debian's gnuplot-nox has it, plain `png` (libgd) is the fallback.
  int const has_cairo = std::system("gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1");
  return has_cairo == 0 ? "pngcairo size 1200,800" : "png size 1200,800";
}

void plot(std::string const& log_path, std::string const& out_path, std::string const& title) {
  auto const lines = kumiki::train::read_jsonl(log_path);
  fs::path const out = fs::absolute(out_path);
  fs::path const work = fs::temp_directory_path() / ("kumiki-plot-" + std::to_string(::getpid()));
  fs::create_directories(work);
  std::ofstream steps(work / "steps.dat"), evals(work / "evals.dat");
  std::vector<std::pair<double, std::string>> stages;
  std::size_t n_steps = 0, n_evals = 0;
  for (auto const& j : lines) {
    std::string const type = j.value("type", "");
    if (type == "step" && !j.value("skipped", false) && j["loss"].is_number()) {
      steps << j["tokens"].get<double>() << ' ' << j["loss"].get<double>() << ' ' << j["lr"].get<double>() << '\n';
      ++n_steps;
    } else if (type == "eval" && j["loss"].is_number()) {
      evals << j["tokens"].get<double>() << ' ' << j["loss"].get<double>() << " \"" << j.value("dataset", "") << "\"\n";
      ++n_evals;
    } else if (type == "stage") {
      stages.emplace_back(j["tokens"].get<double>(), j.value("name", ""));
    }
  }
  steps.close();
  evals.close();
  KUMIKI_CHECK(n_steps > 0, "log '", log_path, "' holds no training steps to plot");

  std::ofstream gp(work / "plot.gp");
  gp << "set terminal " << gnuplot_terminal(out) << "\n"
     << "set output '" << out.string() << "'\n"
     << "set multiplot layout 2,1 title '" << title << "'\n"
     << "set grid\nset lmargin 12\nset key top right\nset xlabel 'tokens'\nset format x '%.1s%c'\n";
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
  gp << "set ylabel 'loss'\n"
     << "plot '" << (work / "steps.dat").string() << "' using 1:2 with lines lw 1 lc rgb '#1f77b4' title 'train loss'";
  if (n_evals) gp << ", '" << (work / "evals.dat").string() << "' using 1:2 with points pt 7 ps 0.8 lc rgb '#d62728' title 'eval loss'";
  gp << "\nset ylabel 'learning rate'\nset format y '%.1e'\n"
     << "plot '" << (work / "steps.dat").string() << "' using 1:3 with lines lw 2 lc rgb '#2ca02c' title 'lr'\n"
     << "unset multiplot\n";
  gp.close();
  std::string const cmd = "gnuplot '" + (work / "plot.gp").string() + "'";
  int const rc = std::system(cmd.c_str());
  fs::remove_all(work);
  KUMIKI_CHECK(rc == 0, "gnuplot failed (exit ", rc, "); is gnuplot installed?");
  std::printf("wrote %s (%zu steps, %zu evals, %zu stages)\n", out.string().c_str(), n_steps, n_evals, stages.size());
}

kumiki_cli::Registration reg{60, [](CLI::App& app) {
  auto* cmd = app.add_subcommand("plot", "Plot loss and learning rate against tokens from a training log (JSONL)");
  static std::string log, out, title = "kumiki training";
  cmd->add_option("log", log, "Training log, DIR/log.jsonl")->required()->check(CLI::ExistingFile);
  cmd->add_option("--out,-o", out, "Output image (.png or .svg)")->required();
  cmd->add_option("--title", title, "Plot title");
  cmd->callback([] { plot(log, out, title); });
}};

}  // namespace
