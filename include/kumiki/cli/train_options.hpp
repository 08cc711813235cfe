// kumiki/cli/train_options.hpp: the backend-neutral half of `kumiki train` (cli/train.hpp): its
// arguments, the trainer options they make, the device choice and the plan a run is checked against
// before anything is allocated (--dry-run prints it). The CUDA half (cli/train_cuda.cuh, compiled by
// nvcc in a program built with CUDA) registers itself in cuda_training(); this header includes neither
// the CPU ops (Eigen) nor the CUDA ones, so both halves include it.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <optional>
#include <string>

#include "kumiki/config.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/dist/comm.hpp"
#include "kumiki/dist/rendezvous.hpp"
#include "kumiki/models/configs.hpp"
#include "kumiki/train/checkpoint.hpp"
#include "kumiki/train/hf_interop.hpp"
#include "kumiki/train/plan.hpp"
#include "kumiki/train/recipe.hpp"
#include "kumiki/train/trainer.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace cli {
namespace detail::cmd_train {

struct TrainArgs {
  std::string recipe, out, init_from;
  std::string device = "auto";  // auto | cpu | cuda
  int threads = 0;
  bool allow_recipe_change = false, quiet = false, recompute = false, keep_optimizer = false, dry_run = false;
  bool light_recompute = false;
  std::int64_t progress_every = 1;
  double comm_timeout = 600;
  double grad_bucket_mb = 0;  // data-parallel gradient buckets (MB; 0: dist::default_bucket_bytes)
  std::int64_t loss_chunk = 0;  // tokens per LM-head loss chunk (0: resolve_loss_chunk chooses)
};

/// The GPU a CUDA build sees: its name and the memory it can allocate (cudaMemGetInfo's total).
struct GpuInfo {
  std::string name;
  double memory_bytes = 0;
};

/// What a program built with CUDA adds (cli/train_cuda.cuh): the visible GPU, or why there is none,
/// and training on it. Empty in a program without CUDA.
struct CudaTraining {
  std::function<std::optional<GpuInfo>(std::string& why_none)> probe;
  std::function<int(TrainArgs const&, train::Recipe const&)> train;
};
inline CudaTraining& cuda_training() {
  static CudaTraining hooks;
  return hooks;
}

/// The trainer options the arguments ask for; `rank` is this process's data-parallel rank.
template <class Configs>
train::TrainerOptions trainer_options(TrainArgs const& a, train::Recipe const& recipe, int rank) {
  train::TrainerOptions opt;
  opt.progress = !a.quiet;
  opt.progress_every = a.progress_every;
  opt.allow_recipe_change = a.allow_recipe_change;
  opt.step.recompute = a.recompute;
  opt.step.light_recompute = a.light_recompute;
  if (a.loss_chunk > 0) opt.step.loss_chunk = a.loss_chunk;
  // The resume test's crash points (tests/train/resume_test.py); the library reads no environment.
  if (char const* crash = std::getenv("KUMIKI_CRASH_AT")) opt.crash_at = crash;
  // The data-parallel tests (tests/dist/dp_test.py): only this rank crashes, with this signal (KILL, STOP).
  if (char const* r = std::getenv("KUMIKI_CRASH_RANK"); r != nullptr && std::to_string(rank) != r) opt.crash_at.clear();
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
  return opt;
}

/// --grad-bucket-mb in bytes, whole floats (dist::default_bucket_bytes when not given).
inline std::size_t bucket_bytes(TrainArgs const& a) {
  if (a.grad_bucket_mb <= 0) return dist::default_bucket_bytes;
  return std::max<std::size_t>(static_cast<std::size_t>(a.grad_bucket_mb * 1e6) / 4 * 4, 4);
}

/// The process's exit status for a run's outcome: 0 completed or interrupted (rerun to resume), 3
/// stopped by the non-finite or spike guards.
inline int exit_code(train::RunOutcome o) {
  switch (o) {
    case train::RunOutcome::completed:
    case train::RunOutcome::interrupted: return 0;
    case train::RunOutcome::stopped_nonfinite:
    case train::RunOutcome::stopped_spikes: return 3;
  }
  return 1;
}

/// --device resolved: "cpu" or "cuda"; `gpu` receives the visible GPU (cuda). Throws InputError for a
/// device this program or machine lacks, unless `planning` (--dry-run plans for an H200 then).
inline std::string resolve_device(TrainArgs const& a, bool planning, std::optional<GpuInfo>& gpu) {
  KUMIKI_REQUIRE(a.device == "auto" || a.device == "cpu" || a.device == "cuda", "--device '", a.device,
                 "': give cpu, cuda or auto");
  if (a.device == "cpu") return "cpu";
  CudaTraining const& cuda = cuda_training();
  if (!cuda.train) {
    KUMIKI_REQUIRE(a.device == "auto" || planning, "--device cuda: this kumiki was built without CUDA (configure "
                   "with -DKUMIKI_CUDA=ON where nvcc and NCCL are installed); use --device cpu");
    return a.device == "auto" ? "cpu" : "cuda";
  }
  std::string why;
  gpu = cuda.probe(why);
  if (gpu) return "cuda";
  KUMIKI_REQUIRE(a.device == "auto" || planning, "--device cuda: no CUDA device is visible (", why,
                 "); use --device cpu, or --dry-run to see the plan for an H200");
  return a.device == "auto" ? "cpu" : "cuda";
}

/// This machine's physical memory in bytes (0 when unknown).
inline double host_memory_bytes() {
  long const pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && size > 0 ? static_cast<double>(pages) * static_cast<double>(size) : 0.0;
}

/// The memory plan of `recipe` on `device` (cuda: bf16 with the master weights in halves, CUDA arenas,
/// against `gpu` or an H200; cpu: f32, host arenas, against this machine's memory), from the same
/// layouts the run allocates.
inline train::Plan run_plan(train::Recipe const& recipe, models::TransformerConfig const& config,
                            std::string const& device, std::optional<GpuInfo> const& gpu, bool recompute, int ranks,
                            bool light_recompute = false, std::int64_t loss_chunk = nn::StepOptions{}.loss_chunk) {
  train::PlanOptions o;
  o.cuda = device == "cuda";
  o.precision = o.cuda ? train::PlanPrecision::bf16 : train::PlanPrecision::f32;
  o.recompute = recompute;
  o.light_recompute = light_recompute;
  o.loss_chunk = loss_chunk;
  o.gpus = ranks;
  if (o.cuda && gpu) o.gpu = train::Accelerator{gpu->name, train::h200_sxm().peak_flops, gpu->memory_bytes};
  if (!o.cuda) o.gpu = train::Accelerator{"host", train::h200_sxm().peak_flops, host_memory_bytes()};
  return train::make_plan(recipe.model, config, {recipe}, o);
}

/// The LM head's loss chunks on a GPU, largest first. Each chunk's weight-gradient GEMM reads and
/// writes the whole fp32 gradient of the LM head (padded vocabulary x hidden: 0.8 GB for LLM-jp-4
/// 1.3B), so a chunk of 256 tokens makes that GEMM memory-bound (about 3x its FLOP time on an H200);
/// from 1024 tokens it is compute-bound. The price is the fp32 logits scratch, chunk x padded vocabulary.
inline constexpr std::int64_t gpu_loss_chunks[] = {4096, 2048, 1024, 512};

/// --loss-chunk, or the run's choice: the CPU's default (nn::StepOptions, 256); on a GPU the largest of
/// gpu_loss_chunks that the plan fits with (the default where none does: the plan then says so).
inline std::int64_t resolve_loss_chunk(TrainArgs const& a, train::Recipe const& recipe,
                                       models::TransformerConfig const& config, std::string const& device,
                                       std::optional<GpuInfo> const& gpu, int ranks) {
  if (a.loss_chunk > 0) return a.loss_chunk;
  std::int64_t const fallback = nn::StepOptions{}.loss_chunk;
  if (device != "cuda") return fallback;
  for (std::int64_t const chunk : gpu_loss_chunks) {
    train::Plan const p = run_plan(recipe, config, device, gpu, a.recompute, ranks, a.light_recompute, chunk);
    if (p.options.gpu.memory_bytes <= 0 || train::plan_fits(p)) return chunk;
  }
  return fallback;
}

/// Prints the plan's memory table (every buffer, the total against the device) to `os`.
inline void print_memory(std::ostream& os, train::Plan const& p) {
  for (auto const& m : p.memory) {
    os << "| buffer (" << m.micro_batch << " x " << m.seq_len << ", " << (p.options.cuda ? "cuda, bf16" : "cpu, f32")
       << ") | bytes | GiB |\n|---|---:|---:|\n";
    train::print_memory_rows(os, m);
    os << "| " << p.options.gpu.name << " memory | " << train::detail::grouped(static_cast<std::int64_t>(p.options.gpu.memory_bytes))
       << " | " << train::detail::gib(static_cast<std::int64_t>(p.options.gpu.memory_bytes)) << " |\n\n";
  }
}

/// Plans the run before anything is allocated (`a.loss_chunk` resolved: resolve_loss_chunk). --dry-run: prints the plan and returns 0 when it fits,
/// 2 when not. A GPU run whose plan does not fit is refused with the table (status 2, or -1 to go on).
template <class Configs>
int check_plan(TrainArgs const& a, train::Recipe const& recipe, std::string const& device,
               std::optional<GpuInfo> const& gpu, int ranks) {
  models::TransformerConfig const& config = Configs::find(recipe.model);
  train::Plan const plan = run_plan(recipe, config, device, gpu, a.recompute, ranks, a.light_recompute, a.loss_chunk);
  bool const fits = plan.options.gpu.memory_bytes <= 0 || train::plan_fits(plan);
  auto const advice = [&] {  // the cheapest recomputation that fits
    std::string s = "the run needs more memory than the " + plan.options.gpu.name + " has";
    if (!a.recompute && !a.light_recompute &&
        train::plan_fits(run_plan(recipe, config, device, gpu, false, ranks, /*light_recompute=*/true)))
      s += "; with --light-recompute it fits (each block's first norm and SwiGLU recomputed, about 1% more compute)";
    else if (!a.recompute && train::plan_fits(run_plan(recipe, config, device, gpu, /*recompute=*/true, ranks)))
      s += "; with --recompute it fits";
    else
      s += "; lower micro_batch or seq_len in the recipe";
    return s;
  };
  if (a.dry_run) {
    if (device == "cuda" && !gpu) std::cout << "(no GPU visible: planned for one " << plan.options.gpu.name << ")\n\n";
    train::print_plan(std::cout, plan);
    std::cout << "## This run\n\nLM-head loss chunk: " << plan.options.loss_chunk << " tokens"
              << (device == "cuda" ? " (--loss-chunk; by default the largest of 4096, 2048, 1024, 512 that fits)" : "")
              << "\n\n";
    print_memory(std::cout, plan);
    std::cout << (fits ? "Fits." : "Does not fit: " + advice() + ".") << "\n";
    return fits ? 0 : 2;
  }
  if (fits || device != "cuda") return -1;
  print_memory(std::cerr, plan);
  std::fprintf(stderr, "kumiki: error: %s (the table above; nothing was allocated)\n", advice().c_str());
  return 2;
}

}  // namespace detail::cmd_train
}  // namespace cli
KUMIKI_NAMESPACE_END
