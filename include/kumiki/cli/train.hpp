// kumiki/cli/train.hpp: `kumiki train --recipe R.toml --out DIR [--init-from C [--keep-optimizer]]`: runs (or
// resumes) a multi-stage training recipe, from the seeded init, from the weights of a checkpoint or a Hugging
// Face directory, or from a checkpoint's weights and AdamW state. Started by an MPI launcher (mpirun, srun)
// in a program built with MPI (kumiki::mpi), the ranks train data-parallel (dist::MpiComm).
#pragma once

#include <omp.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>

#include <CLI/CLI.hpp>

#include "kumiki/cli/app.hpp"
#include "kumiki/cpu.hpp"
#include "kumiki/io/hf.hpp"
#include "kumiki/train/hf_interop.hpp"
#include "kumiki/models/configs.hpp"
#include "kumiki/train/recipe.hpp"
#include "kumiki/train/trainer.hpp"

#if __has_include(<mpi.h>)  // the program links kumiki::mpi
#include "kumiki/dist/mpi.hpp"
#define KUMIKI_CLI_MPI 1
#else
#define KUMIKI_CLI_MPI 0
#endif

KUMIKI_NAMESPACE_BEGIN
namespace cli {
namespace detail::cmd_train {

struct TrainArgs {
  std::string recipe, out, init_from;
  int threads = 0;
  bool allow_recipe_change = false, quiet = false, recompute = false, keep_optimizer = false;
  std::int64_t progress_every = 1;
  double comm_timeout = 600;
};

template <class Configs, class Comm>
int train_with(TrainArgs const& a, Comm const& comm) {
  using namespace kumiki;
  if (a.threads > 0) omp_set_num_threads(a.threads);
  train::Recipe recipe = train::load_recipe<Configs>(a.recipe);  // every check before any work
  train::TrainerOptions opt;
  opt.progress = !a.quiet;
  opt.progress_every = a.progress_every;
  opt.allow_recipe_change = a.allow_recipe_change;
  opt.step.recompute = a.recompute;
  // The resume test's crash points (tests/train/resume_test.py); the library reads no environment.
  if (char const* crash = std::getenv("KUMIKI_CRASH_AT")) opt.crash_at = crash;
  // The data-parallel tests (tests/dist/dp_test.py): only this rank crashes, with this signal (KILL, STOP).
  if (char const* rank = std::getenv("KUMIKI_CRASH_RANK"); rank != nullptr && std::to_string(comm.rank()) != rank)
    opt.crash_at.clear();
  if (char const* sig = std::getenv("KUMIKI_CRASH_SIGNAL")) opt.crash_signal = std::string(sig) == "STOP" ? SIGSTOP : SIGKILL;
  // The spike tests' synthetic spike (tests/train/spikes_test.py): "FIRST[-LAST]:FACTOR" data batches.
  if (char const* spike = std::getenv("KUMIKI_SPIKE_AT"))
    opt.spike_at = train::parse_spike_injection(spike, "KUMIKI_SPIKE_AT");
  // Initial weights: a Hugging Face directory (config.json) or a kumiki checkpoint / run directory,
  // read by the trainer only when the run has no checkpoint of its own yet (a rerun resumes instead).
  if (a.keep_optimizer) {
    // Weights and AdamW state (OLMo 2's stage 2, LLM-jp's mid-training from the end of pretraining):
    // a kumiki checkpoint or run directory only; the trainer checks it holds the recipe's model.
    KUMIKI_REQUIRE(!a.init_from.empty(), "--keep-optimizer needs --init-from CHECKPOINT");
    KUMIKI_REQUIRE(!std::filesystem::is_regular_file(std::filesystem::path(a.init_from) / "config.json"),
                   "--keep-optimizer: '", a.init_from, "' is a Hugging Face directory, which holds no optimizer state; "
                   "give a kumiki checkpoint or run directory, or leave --keep-optimizer out");
    opt.init_checkpoint = a.init_from;  // the trainer checks it holds the recipe's model, field by field
  } else if (!a.init_from.empty()) {
    bool const hf = std::filesystem::is_regular_file(std::filesystem::path(a.init_from) / "config.json");
    opt.init_source = std::string(hf ? "Hugging Face model '" : "checkpoint '") + a.init_from + "'";
    opt.init_weights = [from = a.init_from, model = recipe.model]() -> Arena<Cpu> {
      train::CheckpointModel m = train::read_model_weights<Configs>(from);
      KUMIKI_REQUIRE(m.config_name == model, "--init-from '", from, "' holds a '", m.config_name,
                     "' model, but the recipe trains '", model, "'");
      return std::move(m.params);
    };
  }
  auto const outcome = Configs::dispatch(recipe.model, [&](auto tag) {
    train::Trainer<decltype(tag)::config, Cpu, Comm> trainer(recipe, a.out, opt, comm);
    return trainer.run();
  });
  switch (outcome) {
    case train::RunOutcome::completed:
    case train::RunOutcome::interrupted: return 0;
    case train::RunOutcome::stopped_nonfinite:
    case train::RunOutcome::stopped_spikes: return 3;
  }
  return 1;
}

/// Under an MPI launcher: one MPI session, the ranks of MPI_COMM_WORLD; an error on any rank ends all
/// of them (MPI_Abort) instead of leaving the others waiting. Without one: one process, no MPI.
template <class Configs>
int train(TrainArgs const& a) {
#if KUMIKI_CLI_MPI
  if (!dist::launched_by_mpi()) return train_with<Configs>(a, dist::MpiComm{});
  MpiSession session(nullptr, nullptr);
  dist::MpiComm const comm(MPI_COMM_WORLD, a.comm_timeout);
  try {
    return train_with<Configs>(a, comm);
  } catch (std::exception const& e) {
    if (comm.size() == 1) throw;
    std::fprintf(stderr, "kumiki: error: rank %d of %d: %s\n", comm.rank(), comm.size(), e.what());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
  }
#else
  return train_with<Configs>(a, dist::NoComm{});
#endif
}

}  // namespace detail::cmd_train

template <class Configs>
void add_train(CLI::App& app) {
  using namespace detail::cmd_train;
  static TrainArgs a;
  auto* cmd = app.add_subcommand("train", "Train (or resume) a multi-stage recipe; rerun the same command to resume");
  cmd->add_option("--recipe", a.recipe, "Recipe (TOML)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--out", a.out, "Run directory: log.jsonl, checkpoints/, data-cache/")->required();
  cmd->add_option("--init-from", a.init_from,
                  "Start from these weights (a checkpoint, a run directory or a Hugging Face Llama / Mixtral directory) "
                  "instead of the seeded init; fresh optimizer, step 0. Ignored once the run has checkpoints")
      ->check(CLI::ExistingDirectory);
  cmd->add_flag("--keep-optimizer", a.keep_optimizer,
                "With --init-from a kumiki checkpoint: also start from its AdamW moments and step count (mid-training "
                "from the end of pretraining), still at step 0 of the recipe");
  cmd->add_option("--threads", a.threads, "OpenMP threads (default: all cores)");
  cmd->add_option("--progress-every", a.progress_every, "Steps between progress lines")->check(CLI::PositiveNumber);
  cmd->add_flag("--recompute", a.recompute, "Recompute block activations in the backward (less memory, same gradients)");
  cmd->add_flag("--allow-recipe-change", a.allow_recipe_change, "Resume even if the recipe differs from the checkpoint's");
  cmd->add_flag("--quiet", a.quiet, "No progress lines");
  cmd->add_option("--comm-timeout", a.comm_timeout,
                  "Data-parallel runs: seconds a rank waits in a collective for the others before ending every rank "
                  "(longer than a step, an evaluation or a checkpoint write)")
      ->check(CLI::PositiveNumber);
  cmd->callback([] {
    int const rc = train<Configs>(a);
    if (rc != 0) std::exit(rc);
  });
}

}  // namespace cli
KUMIKI_NAMESPACE_END
