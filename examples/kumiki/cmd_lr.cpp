// `kumiki lr`: prints a learning-rate schedule as CSV (step,lr), draws it with gnuplot, or compares
// cosine with WSD the way the LLM-jp talk does.
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <toml++/toml.h>

#include "command.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/sched/schedule.hpp"
#include "kumiki/sched/toml.hpp"

namespace {

namespace fs = std::filesystem;
namespace sched = kumiki::sched;

struct LrArgs {
  std::string schedule = "wsd";
  double max_lr = 3e-4;
  double min_lr = 3e-5;
  double init_lr = 0.0;
  std::int64_t warmup = 2000;
  std::int64_t steps = 100000;
  std::int64_t decay_steps = -1;      // D; default: --steps
  std::int64_t wsd_decay_steps = -1;  // default: 10% of D
  std::string decay_style = "minus_sqrt";
  std::string unit = "iterations";
  std::int64_t global_batch = 1;
  std::vector<double> milestones{0.8, 0.9};
  double factor = 0.316;
  std::int64_t branch_start = -1;
  std::int64_t branch_steps = 0;
  double branch_to = 0.0;
  std::string branch_style = "minus_sqrt";
  std::int64_t every = 1;
  std::string recipe, recipe_table = "lr", plot, csv_out, title;
  bool compare = false;
  bool print_toml = false;
};

std::string fmt(double x) {
  char buf[64];
  auto const r = std::to_chars(buf, buf + sizeof buf, x);  // shortest text that reads back exactly
  return std::string(buf, r.ptr);
}

/// The schedule the options describe (validated).
sched::Schedule build(LrArgs const& a) {
  if (!a.recipe.empty()) {
    toml::table const doc = toml::parse_file(a.recipe);
    toml::node const* node = doc.at_path(a.recipe_table).node();
    KUMIKI_CHECK(node != nullptr && node->is_table(), "recipe ", a.recipe, " has no table [", a.recipe_table, "]");
    return sched::schedule_from_toml(*node->as_table(), a.recipe_table);
  }
  auto const unit = sched::parse_unit(a.unit);
  KUMIKI_CHECK(unit.has_value(), "--unit must be iterations or samples, got '", a.unit, "'");
  auto const style = sched::parse_decay_shape(a.decay_style);
  KUMIKI_CHECK(style.has_value(), "--decay-style must be linear, cosine, exponential or minus_sqrt, got '", a.decay_style, "'");
  sched::Clock const clock{*unit, a.global_batch};
  std::int64_t const D = a.decay_steps >= 0 ? a.decay_steps : a.steps * clock.count(1);
  std::int64_t const wsd = a.wsd_decay_steps >= 0 ? a.wsd_decay_steps : D / 10;
  sched::BaseSchedule base;
  std::string const& s = a.schedule;
  if (s == "constant" || s == "steps") {
    base = sched::Constant{a.max_lr, a.init_lr, a.warmup, clock};
  } else if (s == "linear") {
    base = sched::Linear{a.max_lr, a.min_lr, a.init_lr, a.warmup, D, clock};
  } else if (s == "cosine") {
    base = sched::Cosine{a.max_lr, a.min_lr, a.init_lr, a.warmup, D, clock};
  } else if (s == "inverse-sqrt" || s == "inverse_sqrt") {
    base = sched::InverseSqrt{a.max_lr, a.min_lr, a.init_lr, a.warmup, D, clock};
  } else if (s == "wsd") {
    base = sched::Wsd{a.max_lr, a.min_lr, a.init_lr, a.warmup, D, wsd, *style, clock};
  } else if (s == "anneal") {  // OLMo 2 stage 2: from --max-lr (the current lr) to --min-lr over D, no warmup
    base = sched::Anneal{a.max_lr, a.min_lr, 0, D, *style, clock};
  } else {
    KUMIKI_FAIL("--schedule must be wsd, cosine, linear, constant, inverse-sqrt, steps or anneal, got '", s, "'");
  }
  sched::Schedule out = base;
  if (s == "steps") {
    sched::Steps m{base, {}, 0, clock};
    for (double f : a.milestones) m.add(static_cast<std::int64_t>(f * static_cast<double>(a.steps * clock.count(1))), a.factor);
    out = m;
  }
  if (a.branch_start >= 0) {
    KUMIKI_CHECK(s != "steps", "--branch-start applies to a plain schedule, not to 'steps'");
    auto const bstyle = sched::parse_decay_shape(a.branch_style);
    KUMIKI_CHECK(bstyle.has_value(), "--branch-style must be linear, cosine, exponential or minus_sqrt");
    out = sched::Branch{base, a.branch_start, a.branch_steps, a.branch_to, *bstyle, clock};
  }
  out.validate();
  return out;
}

std::string gnuplot_terminal() {
  // pngcairo draws anti-aliased lines (Debian gnuplot-nox has it); plain png (libgd) is the fallback.
  int const has_cairo = std::system("gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1");
  return has_cairo == 0 ? "pngcairo size 1100,650 font 'sans,11'" : "png size 1100,650";
}

/// Draws the CSV's columns 2.. against column 1.
void plot(fs::path const& csv, fs::path const& png, std::vector<std::string> const& labels, std::string const& title) {
  fs::path const script = fs::path(png).replace_extension(".gp.tmp");
  {
    std::ofstream gp(script);
    gp << "set terminal " << gnuplot_terminal() << "\n"
       << "set output '" << png.string() << "'\n"
       << "set datafile separator ','\n"
       << "set title \"" << title << "\" noenhanced\n"
       << "set xlabel 'step'\nset ylabel 'learning rate'\n"
       << "set format y '%.1e'\nset grid\nset key at graph 0.06, 0.06 left bottom Left reverse box opaque\nset yrange [0:*]\n"
       << "plot ";
    static char const* const colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"};
    for (std::size_t i = 0; i < labels.size(); ++i)
      gp << (i ? ", " : "") << "'" << csv.string() << "' using 1:" << i + 2 << " skip 1 with lines lw 2 lc rgb '"
         << colors[i % 4] << "' title '" << labels[i] << "'";
    gp << "\n";
  }
  std::string const cmd = "gnuplot '" + script.string() + "'";
  int const rc = std::system(cmd.c_str());
  fs::remove(script);
  KUMIKI_CHECK(rc == 0, "gnuplot failed (exit ", rc, "); is gnuplot installed?");
}

void run(LrArgs const& a) {
  KUMIKI_CHECK(a.steps >= 0, "--steps must be >= 0");
  KUMIKI_CHECK(a.every >= 1, "--every must be >= 1");
  std::vector<std::string> labels;
  std::vector<sched::Schedule> curves;
  std::string title = a.title;
  if (a.compare) {
    // The talk's comparison: warmup 2000 (or --warmup) from 0, cosine to max/10, WSD to 0 and to max/10.
    std::int64_t const D = a.decay_steps >= 0 ? a.decay_steps : a.steps;
    std::int64_t const wsd = a.wsd_decay_steps >= 0 ? a.wsd_decay_steps : D / 10;
    auto const style = sched::parse_decay_shape(a.decay_style);
    KUMIKI_CHECK(style.has_value(), "--decay-style must be linear, cosine, exponential or minus_sqrt");
    curves.push_back(sched::Cosine{a.max_lr, a.max_lr / 10, 0.0, a.warmup, D});
    curves.push_back(sched::Wsd{a.max_lr, 0.0, 0.0, a.warmup, D, wsd, *style});
    curves.push_back(sched::Wsd{a.max_lr, a.max_lr / 10, 0.0, a.warmup, D, wsd, *style});
    labels = {"cosine (to max/10)", "WSD (to 0)", "WSD (to max/10)"};
    if (title.empty())
      title = "cosine vs WSD: max lr " + fmt(a.max_lr) + ", warmup " + std::to_string(a.warmup) + ", WSD " + a.decay_style +
              " decay over the last " + std::to_string(wsd) + " of " + std::to_string(D) + " steps";
  } else {
    curves.push_back(build(a));
    labels = {std::string(curves[0].name())};
    if (title.empty()) title = "kumiki lr: " + std::string(curves[0].name());
  }
  for (auto const& c : curves) c.validate();
  if (a.print_toml) {
    std::cout << sched::to_toml(curves.at(0)) << "\n";
    return;
  }

  std::ostringstream csv;
  csv << "step";
  if (a.compare) {
    csv << ",cosine,wsd_to_0,wsd_to_max_div_10\n";
  } else {
    csv << ",lr\n";
  }
  for (std::int64_t s = 0; s <= a.steps; ++s) {
    if (s % a.every != 0 && s != a.steps) continue;
    csv << s;
    for (auto const& c : curves) csv << ',' << fmt(c.lr(s));
    csv << '\n';
  }
  if (!a.csv_out.empty()) {
    std::ofstream out(a.csv_out);
    out << csv.str();
    KUMIKI_CHECK(out.good(), "cannot write ", a.csv_out);
  }
  if (a.plot.empty()) {
    if (a.csv_out.empty()) std::fputs(csv.str().c_str(), stdout);
    return;
  }
  fs::path const png = a.plot;
  fs::path const data = a.csv_out.empty() ? fs::path(png).replace_extension(".csv.tmp") : fs::path(a.csv_out);
  if (a.csv_out.empty()) {
    std::ofstream out(data);
    out << csv.str();
  }
  plot(data, png, labels, title);
  if (a.csv_out.empty()) fs::remove(data);
  std::fprintf(stderr, "kumiki lr: wrote %s\n", png.string().c_str());
}

kumiki_cli::Registration reg{30, [](CLI::App& app) {
  auto a = std::make_shared<LrArgs>();
  auto* cmd = app.add_subcommand("lr", "Print a learning-rate schedule as CSV (step,lr), plot it, or compare cosine with WSD");
  cmd->add_option("--schedule", a->schedule, "wsd | cosine | linear | constant | inverse-sqrt | steps | anneal")->capture_default_str();
  cmd->add_option("--max-lr", a->max_lr, "Peak lr (Megatron --lr); for anneal the lr to start from")->capture_default_str();
  cmd->add_option("--min-lr", a->min_lr, "Final lr (Megatron --min-lr; LLM-jp-4: 3e-5)")->capture_default_str();
  cmd->add_option("--init-lr", a->init_lr, "lr at step 0, where warmup starts (Megatron --lr-warmup-init)")->capture_default_str();
  cmd->add_option("--warmup", a->warmup, "Warmup length W (in --unit)")->capture_default_str();
  cmd->add_option("--steps", a->steps, "Print steps 0..N (iterations)")->capture_default_str();
  cmd->add_option("--decay-steps", a->decay_steps, "Decay end D (Megatron --lr-decay-iters; in --unit; default: --steps)");
  cmd->add_option("--wsd-decay-steps", a->wsd_decay_steps, "WSD cooldown length (Megatron --lr-wsd-decay-iters; default D/10)");
  cmd->add_option("--decay-style", a->decay_style, "WSD / anneal cooldown: linear | cosine | exponential | minus_sqrt")
      ->capture_default_str();
  cmd->add_option("--unit", a->unit, "Unit of W, D and cooldowns: iterations | samples")->capture_default_str();
  cmd->add_option("--global-batch", a->global_batch, "Samples per iteration (with --unit samples)")->capture_default_str();
  cmd->add_option("--milestones", a->milestones, "steps: fractions of --steps where the lr is multiplied by --factor")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--factor", a->factor, "steps: factor at each milestone (DeepSeek: 0.316)")->capture_default_str();
  cmd->add_option("--branch-start", a->branch_start, "Decay branch: from this step decay from the schedule's lr there");
  cmd->add_option("--branch-steps", a->branch_steps, "Decay branch length (LLM-jp-4: 100000)");
  cmd->add_option("--branch-to", a->branch_to, "Decay branch target lr")->capture_default_str();
  cmd->add_option("--branch-style", a->branch_style, "Decay branch shape")->capture_default_str();
  cmd->add_option("--recipe", a->recipe, "Read the schedule from a TOML recipe instead of the options")->check(CLI::ExistingFile);
  cmd->add_option("--table", a->recipe_table, "Table of the recipe holding the schedule (dotted path)")->capture_default_str();
  cmd->add_flag("--print-toml", a->print_toml, "Print the schedule as a TOML table instead of the CSV");
  cmd->add_flag("--compare", a->compare, "cosine (to max/10) vs WSD (to 0 and to max/10), as in the LLM-jp talk");
  cmd->add_option("--every", a->every, "Print every K-th step (and the last)")->capture_default_str();
  cmd->add_option("--csv", a->csv_out, "Write the CSV to this file instead of stdout");
  cmd->add_option("--plot", a->plot, "Draw the curve(s) into this PNG with gnuplot");
  cmd->add_option("--title", a->title, "Plot title");
  cmd->callback([a] { run(*a); });
}};

}  // namespace
