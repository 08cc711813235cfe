// kumiki/cli/train.hpp: `kumiki train --recipe R.toml --out DIR [--device D] [--dry-run] [--init-from C
// [--keep-optimizer]]`: runs (or resumes) a multi-stage training recipe, from the seeded init, from the weights
// of a checkpoint or a Hugging Face directory, or from a checkpoint's weights and AdamW state, on the CPU or
// (a program built with CUDA: cli/train_cuda.cuh) the GPU, after checking the run's memory plan. Started
// by an MPI launcher (mpirun, srun) in a program built with MPI (kumiki::mpi), the ranks train data-parallel
// on the CPU (dist::MpiComm) or, with --device cuda, on one GPU each (dist::NcclComm); a torchrun-style
// launch (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) trains on GPUs without MPI.
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
#include "kumiki/cli/train_options.hpp"
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

/// The run on this process: the device resolved (refused before any work when missing), the recipe
/// read once with every check (a dry run needs no data: its prefixes are checked when the run starts),
/// the plan checked against the device (rank 0 of the communicator speaks); then the GPU's trainer
/// (the program's CUDA half) or the CPU's, with `comm`.
template <class Configs, class Comm>
int run(TrainArgs const& a, Comm const& comm) {
  using namespace kumiki;
  std::optional<GpuInfo> gpu;
  std::string const device = resolve_device(a, a.dry_run, gpu);
  train::Recipe const recipe = train::load_recipe<Configs>(a.recipe, /*check_files=*/!a.dry_run);
  // The ranks: MPI's (mpirun, srun), or on a GPU those of a torchrun-style launch (RANK, WORLD_SIZE:
  // NCCL over a TCP rendezvous, cli/train_cuda.cuh); the CPU's data parallelism runs over MPI only.
  int rank = comm.rank(), ranks = comm.size();
  if (ranks == 1 && dist::launched_by_env()) {
    dist::EnvLaunch const env = dist::read_env_launch();
    KUMIKI_REQUIRE(device == "cuda" || env.world_size == 1, "WORLD_SIZE=", env.world_size, " (a torchrun-style launch) "
                   "with --device cpu: data parallelism on CPUs runs over MPI; start the ranks with mpirun or srun");
    rank = env.rank, ranks = env.world_size;
  }
  if (rank > 0 && a.dry_run) return 0;
  if (rank == 0 && device == "cuda")
    std::fprintf(stderr, "kumiki: device: cuda (%s)\n",
                 gpu ? (gpu->name + ", " + train::detail::gib(static_cast<std::int64_t>(gpu->memory_bytes))).c_str()
                     : "none visible");
  else if (rank == 0)
    std::fprintf(stderr, "kumiki: device: cpu (%d threads)\n", a.threads > 0 ? a.threads : omp_get_max_threads());
  TrainArgs args = a;
  args.loss_chunk = resolve_loss_chunk(a, recipe, Configs::find(recipe.model), device, gpu, ranks);
  if (int const rc = check_plan<Configs>(args, recipe, device, gpu, ranks); rc >= 0) return rc;
  if (device == "cuda") return cuda_training().train(args, recipe);  // its communicator: NCCL over the same ranks
  if (a.threads > 0) omp_set_num_threads(a.threads);
  train::TrainerOptions const opt = trainer_options<Configs>(args, recipe, rank);
  auto const outcome = Configs::dispatch(recipe.model, [&](auto tag) {
    train::Trainer<decltype(tag)::config, Cpu, Comm> trainer(recipe, a.out, opt, comm);
    return trainer.run();
  });
  return exit_code(outcome);
}

/// Under an MPI launcher: one MPI session, the ranks of MPI_COMM_WORLD; an error on any rank ends all
/// of them (MPI_Abort) instead of leaving the others waiting. Without one: one process, no MPI.
template <class Configs>
int train(TrainArgs const& a) {
#if KUMIKI_CLI_MPI
  if (!dist::launched_by_mpi()) return run<Configs>(a, dist::MpiComm{});
  MpiSession session(nullptr, nullptr);
  dist::MpiComm comm(MPI_COMM_WORLD, a.comm_timeout);
  comm.set_bucket_bytes(bucket_bytes(a));
  try {
    return run<Configs>(a, comm);
  } catch (std::exception const& e) {
    if (comm.size() == 1) throw;
    std::fprintf(stderr, "kumiki: error: rank %d of %d: %s\n", comm.rank(), comm.size(), e.what());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
  }
#else
  return run<Configs>(a, dist::NoComm{});
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
  cmd->add_option("--device", a.device,
                  "cuda (bf16 weights, fp32 master weights and moments), cpu (f32), or auto: cuda when this program "
                  "was built with CUDA and a GPU is visible, else cpu")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  cmd->add_flag("--dry-run", a.dry_run,
                "Print the plan (parameters, FLOPs, stages, every buffer's memory against the device's) and exit: 0 "
                "when it fits, 2 when not; nothing is allocated");
  cmd->add_option("--threads", a.threads, "OpenMP threads (default: all cores)");
  cmd->add_option("--progress-every", a.progress_every, "Steps between progress lines")->check(CLI::PositiveNumber);
  cmd->add_flag("--recompute", a.recompute, "Recompute block activations in the backward (less memory, same gradients)");
  cmd->add_flag("--light-recompute", a.light_recompute,
                "Keep neither each block's first norm output nor its SwiGLU output; recompute them in the backward "
                "(same gradients, about 1% more compute; LLM-jp-4 8B at 4096 then fits an H200)");
  cmd->add_option("--loss-chunk", a.loss_chunk,
                  "Tokens per chunk of the fused LM head and loss (scratch: chunk x padded vocabulary fp32). Default: "
                  "256 on the CPU; on a GPU the largest of 4096, 2048, 1024, 512 that the memory plan fits")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--allow-recipe-change", a.allow_recipe_change, "Resume even if the recipe differs from the checkpoint's");
  cmd->add_flag("--quiet", a.quiet, "No progress lines");
  cmd->add_option("--comm-timeout", a.comm_timeout,
                  "Data-parallel runs: seconds a rank waits in a collective for the others before ending every rank "
                  "(longer than a step, an evaluation or a checkpoint write)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--grad-bucket-mb", a.grad_bucket_mb,
                  "Data-parallel runs: MB of gradients per all-reduce bucket; the buckets of the last micro-batch are "
                  "reduced while its backward goes on (default 160, Megatron's 40M elements)")
      ->check(CLI::PositiveNumber);
  cmd->callback([] {
    int const rc = train<Configs>(a);
    if (rc != 0) std::exit(rc);
  });
}

}  // namespace cli
KUMIKI_NAMESPACE_END
