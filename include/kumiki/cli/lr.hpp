// kumiki/cli/lr.hpp: `kumiki lr`: prints a learning-rate schedule as CSV (step,lr), draws it with gnuplot, or
// compares cosine with WSD the way the LLM-jp talk does. Its schedule options are the recipe keys of an lr
// table in kebab case (Megatron's names): `--lr-decay-iters` is `lr_decay_iters`.
#pragma once

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "kumiki/cli/app.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/toml.hpp"
#include "kumiki/sched/schedule.hpp"
#include "kumiki/sched/toml.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace cli {
namespace detail::cmd_lr {

namespace fs = std::filesystem;
namespace sched = kumiki::sched;
namespace toml = kumiki::toml;

struct LrArgs {
  toml::Table options;  ///< the schedule options given, under their recipe keys (--lr-decay-iters: lr_decay_iters)
  std::vector<std::string> renamed;  ///< old options given: their messages
  std::int64_t steps = 100000;
  std::int64_t every = 1;
  std::string recipe, recipe_table = "lr", plot, csv_out, title;
  bool compare = false;
  bool print_toml = false;
};

inline std::string fmt(double x) {
  char buf[64];
  auto const r = std::to_chars(buf, buf + sizeof buf, x);  // shortest text that reads back exactly
  return std::string(buf, r.ptr);
}

/// The table at `path` ("train.lr", "stages[0].lr") of a recipe file.
inline toml::Value const& find_table(toml::Table const& doc, std::string const& file, std::string const& path) {
  toml::Value const* v = nullptr;
  toml::Table const* t = &doc;
  std::string rest = path;
  while (!rest.empty()) {
    std::size_t const dot = rest.find('.');
    std::string part = rest.substr(0, dot);
    rest = dot == std::string::npos ? "" : rest.substr(dot + 1);
    std::optional<std::size_t> index;
    if (auto const br = part.find('['); br != std::string::npos && part.back() == ']') {
      std::string const digits = part.substr(br + 1, part.size() - br - 2);
      std::size_t k = 0;
      auto const r = std::from_chars(digits.data(), digits.data() + digits.size(), k);
      KUMIKI_REQUIRE(r.ec == std::errc() && r.ptr == digits.data() + digits.size() && !digits.empty(), "--table '", path,
                     "': '", part, "' is not KEY[INDEX]");
      index = k;
      part = part.substr(0, br);
    }
    KUMIKI_REQUIRE(t != nullptr, "recipe '", file, "': '", path, "' is not a table path");
    v = t->get(part);
    KUMIKI_REQUIRE(v != nullptr, "recipe '", file, "' has no table '", path, "' (--table)");
    if (index) {
      toml::Array const* a = v->as_array();
      KUMIKI_REQUIRE(a != nullptr && *index < a->size(), "recipe '", file, "' has no table '", path, "' (--table)");
      v = &(*a)[*index];
    }
    t = v->as_table();
  }
  KUMIKI_REQUIRE(v != nullptr && v->is_table(), "recipe '", file, "': '", path, "' (--table) is not a table");
  return *v;
}

/// The schedule the options (or the recipe) describe, validated.
inline sched::Schedule build(LrArgs const& a) {
  sched::TableContext ctx;
  ctx.train_iters = a.steps;  // as in Megatron, the decay ends with the run unless told otherwise
  if (!a.recipe.empty()) {
    KUMIKI_REQUIRE(a.options.empty(), "--recipe reads the schedule from the file; give no schedule options beside it (got --",
                   sched::detail::flag(a.options.begin()->first), ")");
    std::ifstream in(a.recipe);
    KUMIKI_REQUIRE(in.good(), "cannot open recipe '", a.recipe, "'");
    std::string const text((std::istreambuf_iterator<char>(in)), {});
    toml::Table const doc = toml::parse(text, a.recipe);
    toml::Value const& t = find_table(doc, a.recipe, a.recipe_table);
    try {
      return sched::schedule_from_toml(*t.as_table(), a.recipe_table, ctx, t.line());
    } catch (kumiki::InputError const& e) {
      throw kumiki::InputError("recipe '" + a.recipe + "': " + e.what(), e.where());
    }
  }
  ctx.flags = true;  // messages name --lr-decay-iters rather than the key lr_decay_iters
  return sched::schedule_from_toml(a.options, "", ctx);
}

/// A number option of --compare, with the talk's default.
template <class T>
inline T option_or(LrArgs const& a, char const* key, T fallback) {
  toml::Value const* v = a.options.get(key);
  if (v == nullptr) return fallback;
  if constexpr (std::is_same_v<T, double>)
    return v->as_float() ? *v->as_float() : static_cast<double>(*v->as_integer());
  else if constexpr (std::is_same_v<T, std::string>)
    return *v->as_string();
  else
    return *v->as_integer();
}

inline std::string gnuplot_terminal() {
  // pngcairo draws anti-aliased lines (Debian gnuplot-nox has it); plain png (libgd) is the fallback.
  int const has_cairo = std::system("gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1");
  return has_cairo == 0 ? "pngcairo size 1100,650 font 'sans,11'" : "png size 1100,650";
}

/// Draws the CSV's columns 2.. against column 1.
inline void plot(fs::path const& csv, fs::path const& png, std::vector<std::string> const& labels, std::string const& title) {
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
  KUMIKI_REQUIRE(rc == 0, "gnuplot failed (exit ", rc, "); is gnuplot installed?");
}

inline void run(LrArgs const& a) {
  if (!a.renamed.empty()) KUMIKI_FAIL(a.renamed.front());
  KUMIKI_REQUIRE(a.steps >= 0 && a.steps <= (std::int64_t{1} << 40), "--steps must be in 0..2^40, got ", a.steps);
  KUMIKI_REQUIRE(a.every >= 1, "--every must be >= 1, got ", a.every);
  if (auto const* gb = a.options.get("global_batch"))
    KUMIKI_REQUIRE(*gb->as_integer() >= 1 && *gb->as_integer() <= (std::int64_t{1} << 22), "--global-batch must be in 1..2^22, got ",
                   *gb->as_integer());
  std::vector<std::string> labels;
  std::vector<sched::Schedule> curves;
  std::string title = a.title;
  if (a.compare) {
    // The talk's comparison: warmup 2000 (or --lr-warmup-iters) from 0, cosine to lr/10, WSD to 0 and to
    // lr/10, the WSD cooldown over the last tenth (or --lr-wsd-decay-iters) with minus_sqrt.
    for (auto const& [k, v] : a.options)
      KUMIKI_REQUIRE(k == "lr" || k == "lr_warmup_iters" || k == "lr_decay_iters" || k == "lr_wsd_decay_iters" ||
                         k == "lr_wsd_decay_style",
                     "--compare takes --lr, --lr-warmup-iters, --lr-decay-iters, --lr-wsd-decay-iters and --lr-wsd-decay-style; not --",
                     sched::detail::flag(k));
    double const lr = option_or(a, "lr", 3e-4);
    std::int64_t const warmup = option_or<std::int64_t>(a, "lr_warmup_iters", 2000);
    std::int64_t const D = option_or<std::int64_t>(a, "lr_decay_iters", a.steps);
    std::int64_t const wsd = option_or<std::int64_t>(a, "lr_wsd_decay_iters", D / 10);
    std::string const style_text = option_or<std::string>(a, "lr_wsd_decay_style", "minus_sqrt");
    auto const style = sched::parse_decay_shape(style_text);
    KUMIKI_REQUIRE(style.has_value(), "--lr-wsd-decay-style must be exponential, linear, cosine or minus_sqrt, got '", style_text, "'");
    curves.push_back(sched::Cosine{lr, lr / 10, 0.0, warmup, D});
    curves.push_back(sched::Wsd{lr, 0.0, 0.0, warmup, D, wsd, *style});
    curves.push_back(sched::Wsd{lr, lr / 10, 0.0, warmup, D, wsd, *style});
    labels = {"cosine (to lr/10)", "WSD (to 0)", "WSD (to lr/10)"};
    if (title.empty())
      title = "cosine vs WSD: lr " + fmt(lr) + ", warmup " + std::to_string(warmup) + ", WSD " + style_text +
              " decay over the last " + std::to_string(wsd) + " of " + std::to_string(D) + " steps";
  } else {
    curves.push_back(build(a));
    labels = {std::string(curves[0].name())};
    if (title.empty()) title = "kumiki lr: " + std::string(curves[0].name());
  }
  for (auto const& c : curves) c.validate();
  if (a.print_toml) {
    std::cout << sched::to_toml(curves.at(0));
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
    KUMIKI_REQUIRE(out.good(), "cannot write --csv file '", a.csv_out, "'");
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

/// A schedule option: its recipe key (the flag is the key in kebab case), its value type and help.
enum class Kind { number, integer, text, integers, numbers };
struct OptionSpec {
  char const* key;
  Kind kind;
  char const* help;
};
constexpr OptionSpec schedule_options[] = {
    {"lr_decay_style", Kind::text, "constant | linear | cosine | inverse-square-root | WSD (Megatron's) | anneal"},
    {"lr", Kind::number, "Peak lr (Megatron --lr); for anneal the lr it starts from"},
    {"min_lr", Kind::number, "lr at the end of the decay (Megatron --min-lr; default 0)"},
    {"lr_warmup_init", Kind::number, "lr at step 0, where warmup starts (Megatron --lr-warmup-init; default 0)"},
    {"lr_warmup_iters", Kind::integer, "Warmup length (Megatron --lr-warmup-iters; default 0)"},
    {"lr_warmup_samples", Kind::integer, "Warmup length in samples (Megatron --lr-warmup-samples)"},
    {"lr_decay_iters", Kind::integer, "Where the decay ends (Megatron --lr-decay-iters; default --steps)"},
    {"lr_decay_samples", Kind::integer, "Where the decay ends, in samples (Megatron --lr-decay-samples)"},
    {"lr_wsd_decay_iters", Kind::integer, "WSD cooldown length (Megatron --lr-wsd-decay-iters); anneal: default all"},
    {"lr_wsd_decay_samples", Kind::integer, "WSD cooldown length in samples (Megatron --lr-wsd-decay-samples)"},
    {"lr_wsd_decay_style", Kind::text, "WSD / anneal cooldown: exponential | linear | cosine | minus_sqrt (Megatron's; "
                                       "default exponential, anneal linear)"},
    {"global_batch", Kind::integer, "Samples per iteration, for lengths given in samples"},
    {"branch_start_iters", Kind::integer, "Decay branch: leave the schedule at this step (LLM-jp-4 branches)"},
    {"branch_start_samples", Kind::integer, "Decay branch start in samples"},
    {"branch_decay_iters", Kind::integer, "Decay branch length (LLM-jp-4: 100000)"},
    {"branch_decay_samples", Kind::integer, "Decay branch length in samples"},
    {"branch_min_lr", Kind::number, "Decay branch target lr (default 0)"},
    {"branch_decay_style", Kind::text, "Decay branch shape (default minus_sqrt)"},
    {"milestone_iters", Kind::integers, "Steps from which the lr is multiplied by --milestone-factors (DeepSeek: 80% and 90%)"},
    {"milestone_samples", Kind::integers, "Milestones in samples"},
    {"milestone_factors", Kind::numbers, "Factor at each milestone, or one for all (DeepSeek: 0.316)"},
};
/// Options of earlier versions and what replaced them.
constexpr std::pair<char const*, char const*> renamed_options[] = {
    {"--schedule", "--lr-decay-style (Megatron's; constant, linear, cosine, inverse-square-root, WSD or anneal; a decay branch "
                   "and milestones are the --branch-* and --milestone-* options)"},
    {"--max-lr", "--lr (Megatron's)"},
    {"--init-lr", "--lr-warmup-init (Megatron's)"},
    {"--warmup", "--lr-warmup-iters (Megatron's)"},
    {"--decay-steps", "--lr-decay-iters (Megatron's)"},
    {"--wsd-decay-steps", "--lr-wsd-decay-iters (Megatron's)"},
    {"--decay-style", "--lr-wsd-decay-style (Megatron's)"},
    {"--unit", "--lr-warmup-samples, --lr-decay-samples, ... with --global-batch (Megatron's)"},
    {"--milestones", "--milestone-iters (steps, no longer fractions of --steps)"},
    {"--factor", "--milestone-factors"},
    {"--branch-start", "--branch-start-iters"},
    {"--branch-steps", "--branch-decay-iters"},
    {"--branch-to", "--branch-min-lr"},
    {"--branch-style", "--branch-decay-style"},
};

}  // namespace detail::cmd_lr

template <class Configs>
void add_lr(CLI::App& app) {
  using namespace detail::cmd_lr;
  auto a = std::make_shared<LrArgs>();
  auto* cmd = app.add_subcommand("lr", "Print a learning-rate schedule as CSV (step,lr), plot it, or compare cosine with WSD");
  // The schedule options are the recipe keys of an lr table in kebab case (one vocabulary, Megatron's
  // names): they are gathered into a table and read by the recipe reader, with its checks and defaults.
  for (OptionSpec const& o : schedule_options) {
    std::string const key = o.key;
    std::string const name = "--" + sched::detail::flag(key);
    switch (o.kind) {
      case Kind::number:
        cmd->add_option_function<double>(name, [a, key](double v) { a->options.insert_or_assign(key, v); }, o.help);
        break;
      case Kind::integer:
        cmd->add_option_function<std::int64_t>(name, [a, key](std::int64_t v) { a->options.insert_or_assign(key, v); }, o.help);
        break;
      case Kind::text:
        cmd->add_option_function<std::string>(name, [a, key](std::string const& v) { a->options.insert_or_assign(key, v); }, o.help);
        break;
      case Kind::integers:
        cmd->add_option_function<std::vector<std::int64_t>>(
               name, [a, key](std::vector<std::int64_t> const& v) { a->options.insert_or_assign(key, toml::Array(v.begin(), v.end())); },
               o.help)
            ->delimiter(',');
        break;
      case Kind::numbers:
        cmd->add_option_function<std::vector<double>>(
               name, [a, key](std::vector<double> const& v) { a->options.insert_or_assign(key, toml::Array(v.begin(), v.end())); },
               o.help)
            ->delimiter(',');
        break;
    }
  }
  for (auto const& [old_name, replacement] : renamed_options) {
    std::string const message = std::string(old_name) + " was renamed: use " + replacement;
    cmd->add_option_function<std::string>(old_name, [a, message](std::string const&) { a->renamed.push_back(message); })
        ->group("");  // hidden
  }
  cmd->add_option("--steps", a->steps, "Print steps 0..N (iterations); the default of --lr-decay-iters")->capture_default_str();
  cmd->add_option("--recipe", a->recipe, "Read the schedule from a TOML recipe instead of the options")->check(CLI::ExistingFile);
  cmd->add_option("--table", a->recipe_table, "Table of the recipe holding the schedule (dotted path, e.g. stages[0].lr)")
      ->capture_default_str();
  cmd->add_flag("--print-toml", a->print_toml, "Print the schedule as a TOML table instead of the CSV");
  cmd->add_flag("--compare", a->compare,
                "cosine (to lr/10) vs WSD (to 0 and to lr/10), as in the LLM-jp talk (defaults: --lr 3e-4, "
                "--lr-warmup-iters 2000, --lr-wsd-decay-iters D/10, --lr-wsd-decay-style minus_sqrt)");
  cmd->add_option("--every", a->every, "Print every K-th step (and the last)")->capture_default_str();
  cmd->add_option("--csv", a->csv_out, "Write the CSV to this file instead of stdout");
  cmd->add_option("--plot", a->plot, "Draw the curve(s) into this PNG with gnuplot");
  cmd->add_option("--title", a->title, "Plot title");
  cmd->callback([a] { run(*a); });
}

}  // namespace cli
KUMIKI_NAMESPACE_END
