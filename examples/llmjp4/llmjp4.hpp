// examples/llmjp4/llmjp4.hpp: the body of the LLM-jp-4 example programs (llmjp4_1_3b.cpp,
// llmjp4_8b.cpp): how a C++ trainer of its own embeds kumiki through the library's API, not the
// `kumiki` program.
//
//   --dry-run  the whole plan (the recipes beside this file: pretraining, then mid-training) in
//              numbers, allocating nothing: parameters per component, model FLOPs per token, steps and
//              tokens per stage, the lr at each stage boundary, memory per buffer for a backend and
//              precision, GPU-days at a stated MFU (train/plan.hpp). --json FILE writes them as JSON.
//   --smoke    one real training step of the configuration on the CPU: nn::Transformer<Cfg, Cpu>
//              initialized as Megatron does, forward and backward on one random sequence, Megatron's
//              gradient clipping, one optim::AdamW<Cpu> step; prints each phase's time, the loss before
//              and after the step (on the same batch), the arenas' sizes and the process's peak memory.
#pragma once

#include <sys/resource.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <omp.h>

#include "kumiki/cpu.hpp"
#include "kumiki/kumiki.hpp"
#include "kumiki/train/plan.hpp"
#include "kumiki/train/recipe.hpp"

namespace llmjp4 {

namespace fs = std::filesystem;

/// Peak resident memory of this process so far, in bytes (Linux reports ru_maxrss in KiB).
inline std::int64_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<std::int64_t>(u.ru_maxrss) * 1024;
}

/// MemAvailable from /proc/meminfo in bytes; 0 when it cannot be read.
inline std::int64_t available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("MemAvailable:", 0) == 0) return std::stoll(line.substr(13)) * 1024;  // "MemAvailable:  N kB"
  return 0;
}

inline double gib(std::int64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0); }

/// One forward / backward / clip / AdamW step of Transformer<Cfg, Cpu> on `seq` random tokens.
template <auto Cfg>
int smoke(std::string_view name, std::int64_t seq, std::uint64_t seed) {
  namespace k = kumiki;
  using Clock = std::chrono::steady_clock;
  auto const since = [](Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  KUMIKI_REQUIRE(seq >= 2 && seq <= Cfg.max_seq_len, "--seq must lie in [2, ", Cfg.max_seq_len, "], got ", seq);
  // What the step allocates, from the layouts alone: fp32 parameters, gradients and two moments (16
  // bytes a parameter) and the activations of one sequence. Refused up front when the machine lacks it.
  std::int64_t const need =
      16 * Cfg.num_params() +
      static_cast<std::int64_t>(k::nn::activation_layout(Cfg, 1, seq, false, k::nn::StepOptions{}.loss_chunk,
                                                         k::DType::f32, k::DType::f32).total_bytes());
  std::int64_t const available = available_memory_bytes();
  std::printf("%s smoke step on the CPU (%d threads): %lld parameters, one sequence of %lld tokens; needs %.2f GiB "
              "(16 bytes a parameter + activations), %.2f GiB available\n",
              std::string(name).c_str(), omp_get_max_threads(), static_cast<long long>(Cfg.num_params()),
              static_cast<long long>(seq), gib(need), gib(available));
  std::fflush(stdout);
  KUMIKI_REQUIRE(available <= 0 || need <= available, "the step needs ", gib(need), " GiB but this machine has ",
                 gib(available), " GiB available (MemAvailable in /proc/meminfo); run it on a larger machine");

  // The model's parameter and gradient arenas, then AdamW's two moments: fp32 each (Precision<float>).
  auto t0 = Clock::now();
  auto model = std::make_unique<k::nn::Transformer<Cfg, k::Cpu>>();
  model->init(seed);
  std::printf("  init (Megatron, Philox):        %8.2f s\n", since(t0));
  std::fflush(stdout);
  t0 = Clock::now();
  k::optim::AdamW<k::Cpu> adamw(model->params().layout(), k::optim::AdamWConfig{0.9f, 0.95f, 1e-8f, 0.1f});
  std::printf("  AdamW state (zeroed moments):   %8.2f s\n", since(t0));

  // One document of random token ids; the targets are the next tokens.
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::int32_t> id(0, static_cast<std::int32_t>(Cfg.vocab_size - 1));
  std::vector<std::int32_t> text(static_cast<std::size_t>(seq + 1));
  for (auto& t : text) t = id(rng);
  std::vector<std::int32_t> const tokens(text.begin(), text.end() - 1), targets(text.begin() + 1, text.end());

  t0 = Clock::now();
  model->zero_grad();
  double const loss = model->forward_backward(tokens.data(), targets.data(), 1, seq).loss;
  double const t_fb = since(t0);
  std::printf("  forward + backward:             %8.2f s  (loss %.4f; ln(vocab) = %.4f)\n", t_fb, loss,
              std::log(static_cast<double>(Cfg.vocab_size)));
  std::fflush(stdout);
  t0 = Clock::now();
  auto const clip = k::optim::clip_grad_norm(model->context(), model->grads(), 1.0);
  KUMIKI_REQUIRE(clip.finite, "the gradient norm is not finite");
  adamw.step(model->context(), model->params(), model->grads(), 3e-4f);
  std::printf("  clip (norm %.4f) + AdamW step:  %8.2f s\n", clip.norm, since(t0));
  t0 = Clock::now();
  double const after = model->forward(tokens.data(), targets.data(), 1, seq).loss;
  std::printf("  forward again (same batch):     %8.2f s  (loss %.4f, %+.4f)\n", since(t0), after, after - loss);

  std::int64_t const p = static_cast<std::int64_t>(model->params().total_bytes());
  std::int64_t const g = static_cast<std::int64_t>(model->grads().total_bytes());
  std::int64_t const m = static_cast<std::int64_t>(adamw.exp_avg().total_bytes() + adamw.exp_avg_sq().total_bytes());
  std::int64_t const a = static_cast<std::int64_t>(model->activations().total_bytes());
  std::printf("  arenas: parameters %.2f GiB, gradients %.2f GiB, AdamW moments %.2f GiB, activations %.3f GiB: %.2f GiB\n",
              gib(p), gib(g), gib(m), gib(a), gib(p + g + m + a));
  std::printf("  peak resident memory: %.2f GiB\n", gib(peak_rss_bytes()));
  std::printf("{\"smoke\": {\"model\": \"%s\", \"seq\": %lld, \"loss\": %.17g, \"loss_after\": %.17g, \"grad_norm\": %.17g, "
              "\"forward_backward_s\": %.3f, \"arena_bytes\": %lld, \"peak_rss_bytes\": %lld}}\n",
              std::string(name).c_str(), static_cast<long long>(seq), loss, after, clip.norm, t_fb,
              static_cast<long long>(p + g + m + a), static_cast<long long>(peak_rss_bytes()));
  return after < loss ? 0 : 1;  // one step on this very batch must lower its loss
}

/// The program: `name` is the configuration's name in recipes; `recipe_dir` holds
/// <name>_pretrain.toml and <name>_midtrain.toml.
template <auto Cfg>
int main(int argc, char** argv, std::string_view name, fs::path const& recipe_dir) {
  std::string const model(name);
  CLI::App app{"The LLM-jp-4 " + model + " example: the plan in numbers (--dry-run) or one real CPU step (--smoke)",
               fs::path(argv[0]).filename().string()};
  bool dry_run = false, smoke_step = false, recompute = false, light_recompute = false;
  std::vector<std::string> recipes = {(recipe_dir / (model + "_pretrain.toml")).string(),
                                      (recipe_dir / (model + "_midtrain.toml")).string()};
  std::string backend = "cuda", precision, gpu = "h200", json;
  std::int64_t gpus = 64, seq = 256;
  double mfu = 0.4;
  int threads = 0, zero = -1;
  std::uint64_t seed = 1234;
  auto* mode = app.add_option_group("mode");
  mode->add_flag("--dry-run", dry_run, "print the plan in numbers; allocates nothing");
  mode->add_flag("--smoke", smoke_step, "one real forward/backward/AdamW step on the CPU");
  mode->require_option(1);
  app.add_option("--recipe", recipes, "recipes run one after another (default: pretraining, then mid-training)")
      ->check(CLI::ExistingFile);
  app.add_option("--backend", backend, "memory for which backend's arenas")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--precision", precision, "f32, or bf16 (Megatron's bf16 recipe; CUDA only); default: cuda bf16, cpu f32")
      ->check(CLI::IsMember({"f32", "bf16"}));
  app.add_flag("--recompute", recompute, "count activations with recomputation (one block's kept)");
  app.add_flag("--light-recompute", light_recompute, "count activations with light recomputation (no ln1, no SwiGLU output)");
  app.add_option("--gpu", gpu, "accelerator of the cost estimate")->check(CLI::IsMember({"h100", "h200"}));
  app.add_option("--gpus", gpus, "GPUs (data-parallel ranks) for the wall-clock estimate and ZeRO-1's split")
      ->check(CLI::PositiveNumber);
  app.add_option("--zero", zero, "memory with ZeRO stage 0 or 1 over --gpus ranks (default: each recipe's [parallel] zero)")
      ->check(CLI::IsMember({0, 1}));
  app.add_option("--mfu", mfu, "model FLOPs utilization assumed")->check(CLI::Range(0.01, 1.0));
  app.add_option("--json", json, "also write the plan as JSON to this file");
  app.add_option("--seq", seq, "--smoke: sequence length");
  app.add_option("--seed", seed, "--smoke: init and data seed");
  app.add_option("--threads", threads, "--smoke: OpenMP threads (default: all cores)")->check(CLI::PositiveNumber);
  try {
    app.parse(argc, argv);
    if (smoke_step) {
      if (threads > 0) omp_set_num_threads(threads);
      return smoke<Cfg>(name, seq, seed);
    }
    kumiki::train::PlanOptions opt;
    opt.cuda = backend == "cuda";
    if (precision.empty()) precision = opt.cuda ? "bf16" : "f32";
    KUMIKI_REQUIRE(opt.cuda || precision == "f32",
                   "--backend cpu trains in f32 (the CPU ops compute in one type); bf16 is the CUDA recipe");
    opt.precision = precision == "bf16" ? kumiki::train::PlanPrecision::bf16 : kumiki::train::PlanPrecision::f32;
    opt.recompute = recompute;
    opt.light_recompute = light_recompute;
    opt.gpu = gpu == "h100" ? kumiki::train::h100_sxm() : kumiki::train::h200_sxm();
    opt.gpus = gpus;
    opt.mfu = mfu;
    opt.zero = zero;
    std::vector<kumiki::train::Recipe> parsed;
    // The data files are not needed to plan: their prefixes are checked when a run starts.
    for (auto const& r : recipes) parsed.push_back(kumiki::train::load_recipe(r, /*check_files=*/false));
    auto const plan = kumiki::train::make_plan(model, Cfg, parsed, opt);
    kumiki::train::print_plan(std::cout, plan);
    if (!json.empty()) {
      std::ofstream out(json);
      KUMIKI_REQUIRE(out.good(), "cannot write '", json, "'");
      out << kumiki::train::plan_json(plan).dump(2) << "\n";
    }
    return 0;
  } catch (CLI::ParseError const& e) {
    return app.exit(e);
  } catch (std::exception const& e) {
    std::fprintf(stderr, "%s: error: %s\n", app.get_name().c_str(), e.what());
    return 1;
  }
}

}  // namespace llmjp4
