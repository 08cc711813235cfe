// kumiki/cli/micro_anneal.hpp: `kumiki micro-anneal --from CKPT --baseline W P ... --candidate NAME=PREFIX
// ... --tokens N  --eval NAME=PREFIX ... --out DIR`: OLMo 2's micro-annealing. For each candidate data source
// a short anneal from the checkpoint (its weights and AdamW state; the lr from the checkpoint's value
// linearly to 0, no warmup) on 50% candidate + 50% baseline mix, plus one baseline-only anneal of the same
// length; then a table of held-out loss per eval set for each run and each candidate's delta against the
// baseline (DIR/micro_anneal.md and .csv). Each anneal is an ordinary run directory DIR/<name> (resumable:
// rerun the same command; exportable).
#pragma once

#include <omp.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "kumiki/cli/app.hpp"
#include "kumiki/cpu.hpp"
#include "kumiki/models/configs.hpp"
#include "kumiki/train/checkpoint.hpp"
#include "kumiki/train/hf_interop.hpp"
#include "kumiki/train/log.hpp"
#include "kumiki/train/recipe.hpp"
#include "kumiki/train/trainer.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace cli {
namespace detail::cmd_micro_anneal {

namespace fs = std::filesystem;
namespace kt = kumiki::train;

struct Args {
  std::string from, out;
  std::vector<std::string> baseline, candidates, evals;
  std::int64_t tokens = 0, eval_batches = 4, seq_len = 0, global_batch = 0, micro_batch = 0;
  std::int64_t seed = -1;
  double lr = 0;
  int threads = 0;
  bool quiet = false;
};

struct Source {
  std::string name, prefix;
};

/// The absolute prefix of a dataset given on the command line (`as_written` for messages); its
/// .bin and .idx must exist.
inline std::string dataset_prefix(std::string const& prefix, char const* flag, std::string const& as_written) {
  fs::path const p = fs::absolute(prefix);
  for (char const* ext : {".bin", ".idx"})
    KUMIKI_REQUIRE(fs::is_regular_file(p.string() + ext), flag, " '", as_written, "': dataset file '", p.string(), ext,
                   "' does not exist");
  return p.string();
}

inline Source name_prefix(std::string const& s, char const* flag) {
  auto const eq = s.find('=');
  KUMIKI_REQUIRE(eq != std::string::npos && eq > 0 && eq + 1 < s.size(), flag, " '", s, "': expected NAME=PREFIX");
  std::string const name = s.substr(0, eq);
  for (char c : name)
    KUMIKI_REQUIRE(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-', flag, " '", s,
                   "': the name may hold letters, digits, '_' and '-' only (it names a run directory)");
  return {name, dataset_prefix(s.substr(eq + 1), flag, s)};
}

std::string toml_string(std::string const& s) {  // a TOML basic string
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

inline std::string number(double x) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", x);
  return buf;
}

/// The held-out loss per eval set at the end of a run (its last eval records).
inline std::map<std::string, double> final_eval(fs::path const& run) {
  std::map<std::string, double> out;
  for (auto const& j : kt::read_jsonl((run / "log.jsonl").string()))
    if (j.value("type", "") == "eval" && j["loss"].is_number()) out[j.value("dataset", "")] = j["loss"].get<double>();
  return out;
}

template <class Configs>
void micro_anneal(Args const& a) {
  if (a.threads > 0) omp_set_num_threads(a.threads);
  // The checkpoint and the recipe it was trained with: the model, batch, optimizer and lr reached.
  fs::path const ckpt = kt::resolve_checkpoint(a.from);
  kt::verify_training_checkpoint(ckpt);
  std::string const model(kt::checkpoint_configuration<Configs>(ckpt).name.view());
  kt::Recipe const base = kt::parse_recipe<Configs>(kt::detail::read_text(ckpt / kt::ckpt_recipe_file),
                                           (ckpt / kt::ckpt_recipe_file).string(), ckpt, /*check_files=*/false);
  kt::TrainState const at = kt::parse_train_state(kt::detail::read_text(ckpt / kt::ckpt_state_file),
                                                  (ckpt / kt::ckpt_state_file).string());
  double const lr0 = a.lr > 0 ? a.lr : base.lr(at.step);
  KUMIKI_REQUIRE(lr0 > 0, "the lr of checkpoint '", ckpt.string(), "' at step ", at.step,
                 " is 0: nothing to anneal from; give --lr");

  KUMIKI_REQUIRE(a.baseline.size() % 2 == 0, "--baseline takes weight, prefix pairs: W1 P1 W2 P2 ...");
  std::vector<std::pair<double, std::string>> baseline;
  double wsum = 0;
  for (std::size_t i = 0; i < a.baseline.size(); i += 2) {
    double w = 0;
    try {
      w = std::stod(a.baseline[i]);
    } catch (std::exception const&) {
      KUMIKI_FAIL("--baseline: '", a.baseline[i], "' is not a weight (W1 P1 W2 P2 ...)");
    }
    KUMIKI_REQUIRE(w > 0 && std::isfinite(w), "--baseline: weight ", a.baseline[i], " must be > 0");
    baseline.emplace_back(w, dataset_prefix(a.baseline[i + 1], "--baseline", a.baseline[i + 1]));
    wsum += w;
  }
  std::vector<Source> candidates, evals;
  for (auto const& c : a.candidates) candidates.push_back(name_prefix(c, "--candidate"));
  for (auto const& e : a.evals) evals.push_back(name_prefix(e, "--eval"));
  for (auto const& c : candidates)
    KUMIKI_REQUIRE(c.name != "baseline", "--candidate: the name 'baseline' is the baseline-only run's; choose another");

  std::int64_t const seq = a.seq_len > 0 ? a.seq_len : base.seq_len;
  std::int64_t const gb = a.global_batch > 0 ? a.global_batch : base.global_batch;
  std::int64_t const mb = a.micro_batch > 0 ? a.micro_batch : std::min(base.micro_batch, gb);
  std::int64_t const seed = a.seed >= 0 ? a.seed : static_cast<std::int64_t>(base.seed);
  fs::path const out = fs::absolute(a.out);
  fs::create_directories(out);

  struct Run {
    std::string name, description;
    std::vector<std::pair<double, std::string>> data;
  };
  std::vector<Run> runs{{"baseline", "baseline only", {}}};
  for (auto const& [w, p] : baseline) runs[0].data.emplace_back(w / wsum, p);
  for (auto const& c : candidates) {
    Run r{c.name, "50% " + c.name + " + 50% baseline", {}};
    for (auto const& [w, p] : baseline) r.data.emplace_back(0.5 * w / wsum, p);
    r.data.emplace_back(0.5, c.prefix);
    runs.push_back(std::move(r));
  }

  auto const& o = base.optimizer;
  for (std::size_t k = 0; k < runs.size(); ++k) {
    Run const& run = runs[k];
    std::string text = "# kumiki micro-anneal run '" + run.name + "' (" + run.description + ") from " + ckpt.string() +
                       "\nmodel = " + toml_string(model) + "\nseed = " + std::to_string(seed) + "\nseq_len = " +
                       std::to_string(seq) + "\nglobal_batch = " + std::to_string(gb) + "\nmicro_batch = " +
                       std::to_string(mb) + "\n\n[optimizer]\nbeta1 = " + number(o.beta1) + "\nbeta2 = " +
                       number(o.beta2) + "\neps = " + number(o.eps) + "\nweight_decay = " + number(o.weight_decay) +
                       "\nclip_grad = " + number(o.clip_grad) + "\nmax_nonfinite = " + std::to_string(o.max_nonfinite) +
                       "\n\n[[stages]]\nname = " + toml_string(run.name) + "\ndata = [";
    for (std::size_t i = 0; i < run.data.size(); ++i)
      text += (i ? ", " : "") + number(run.data[i].first) + ", " + toml_string(run.data[i].second);
    text += "]\ntokens = " + std::to_string(a.tokens) + "\neval = [";
    for (std::size_t i = 0; i < evals.size(); ++i)
      text += std::string(i ? ", " : "") + "{ name = " + toml_string(evals[i].name) + ", prefix = " + toml_string(evals[i].prefix) + " }";
    text += "]\neval_batches = " + std::to_string(a.eval_batches) +
            "\nkeep_checkpoints = 1\n\n[stages.lr]\nlr_decay_style = \"anneal\"   # from the checkpoint's lr linearly "
            "to 0, no warmup\nlr = " + number(lr0) + "\nmin_lr = 0.0\n";
    fs::path const recipe_path = out / (run.name + ".toml");
    kt::Recipe const recipe = kt::parse_recipe<Configs>(text, recipe_path.string(), out);  // checked before any run
    {
      std::ofstream f(recipe_path);
      f << text;
      KUMIKI_REQUIRE(f.good(), "cannot write '", recipe_path.string(), "'");
    }
    std::fprintf(stderr, "[micro-anneal] run %zu/%zu '%s' (%s): %lld steps of %lld tokens, lr %.3e -> 0, from %s\n",
                 k + 1, runs.size(), run.name.c_str(), run.description.c_str(),
                 static_cast<long long>(recipe.total_steps()), static_cast<long long>(gb * seq), lr0, ckpt.string().c_str());
    kt::TrainerOptions opt;
    opt.progress = !a.quiet;
    opt.progress_every = std::max<std::int64_t>(1, recipe.total_steps() / 10);
    opt.init_checkpoint = ckpt;
    auto const outcome = Configs::dispatch(model, [&](auto tag) {
      kt::Trainer<decltype(tag)::config> trainer(recipe, out / run.name, opt);
      return trainer.run();
    });
    KUMIKI_REQUIRE(outcome == kt::RunOutcome::completed, "micro-anneal run '", run.name, "' did not complete (see above); "
                   "rerun the same command to resume it");
  }

  // The table: held-out loss after each anneal, and each candidate's delta against the baseline.
  std::vector<std::map<std::string, double>> losses;
  for (auto const& r : runs) losses.push_back(final_eval(out / r.name));
  std::string md = "| run | data |", sep = "|---|---|", csv = "run,data";
  for (auto const& e : evals) md += " " + e.name + " |", sep += "---:|", csv += "," + e.name;
  for (auto const& e : evals) md += " delta " + e.name + " |", sep += "---:|", csv += ",delta_" + e.name;
  md += "\n" + sep + "\n";
  csv += "\n";
  for (std::size_t k = 0; k < runs.size(); ++k) {
    md += "| " + runs[k].name + " | " + runs[k].description + " |";
    csv += runs[k].name + "," + runs[k].description;
    for (auto const& e : evals) {
      auto const it = losses[k].find(e.name);
      KUMIKI_CHECK(it != losses[k].end(), "run '", runs[k].name, "' logged no eval of '", e.name, "'");
      char b[32];
      std::snprintf(b, sizeof b, "%.4f", it->second);
      md += std::string(" ") + b + " |";
      csv += "," + number(it->second);
    }
    for (auto const& e : evals) {
      double const d = losses[k].at(e.name) - losses[0].at(e.name);
      char b[32];
      std::snprintf(b, sizeof b, "%+.4f", d);
      md += k == 0 ? " |" : std::string(" ") + b + " |";
      csv += k == 0 ? std::string(",") : "," + number(d);
    }
    md += "\n";
    csv += "\n";
  }
  std::string const head = "Micro-anneal from " + ckpt.string() + " (" + model + ", lr " + number(lr0) +
                           " linearly to 0 over " + std::to_string(a.tokens) + " tokens per run; held-out loss at the "
                           "end of each run, delta = run - baseline, negative is better)\n\n";
  std::ofstream(out / "micro_anneal.md") << head << md;
  std::ofstream(out / "micro_anneal.csv") << csv;
  std::printf("%s%s\nwrote %s and %s\n", head.c_str(), md.c_str(), (out / "micro_anneal.md").string().c_str(),
              (out / "micro_anneal.csv").string().c_str());
}

}  // namespace detail::cmd_micro_anneal

template <class Configs>
void add_micro_anneal(CLI::App& app) {
  using namespace detail::cmd_micro_anneal;
  static Args a;
  auto* cmd = app.add_subcommand("micro-anneal", "Assess candidate data sources by short anneals from a checkpoint (OLMo 2)");
  cmd->add_option("--from", a.from, "Checkpoint (or run directory) to anneal from: its weights and AdamW state")->required();
  cmd->add_option("--baseline", a.baseline, "The baseline mix: W1 PREFIX1 W2 PREFIX2 ...")->required()->expected(2, -1);
  cmd->add_option("--candidate", a.candidates, "A candidate source NAME=PREFIX (repeat)")->required();
  cmd->add_option("--tokens", a.tokens, "Training tokens of each anneal")->required()->check(CLI::PositiveNumber);
  cmd->add_option("--eval", a.evals, "A held-out set NAME=PREFIX (repeat)")->required();
  cmd->add_option("--out", a.out, "Directory of the runs and the table")->required();
  cmd->add_option("--eval-batches", a.eval_batches, "Micro-batches per eval set")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--seq-len", a.seq_len, "Sequence length (default: the checkpoint recipe's)");
  cmd->add_option("--global-batch", a.global_batch, "Global batch (default: the checkpoint recipe's)");
  cmd->add_option("--micro-batch", a.micro_batch, "Micro-batch (default: the checkpoint recipe's)");
  cmd->add_option("--seed", a.seed, "Data-order seed (default: the checkpoint recipe's)");
  cmd->add_option("--lr", a.lr, "The lr to anneal from (default: the checkpoint's, from its recipe)");
  cmd->add_option("--threads", a.threads, "OpenMP threads (default: all cores)");
  cmd->add_flag("--quiet", a.quiet, "No progress lines");
  cmd->callback([] { micro_anneal<Configs>(a); });
}

}  // namespace cli
KUMIKI_NAMESPACE_END
