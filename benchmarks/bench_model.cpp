// Whole-model benchmarks: one training step (forward + backward + AdamW) of the issue-3 reference
// config (hidden 256, 4 layers, 4 heads / 2 groups, ffn 704, vocab 8192) at batch 8 x seq 256, and of
// the demo config; tokens/s, model GFLOP/s (Megatron formula, models::TransformerConfig::flops_per_token)
// and the process's peak RSS.
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <chrono>
#include <random>
#include <vector>

#include "bench_util.hpp"
#include "kumiki/cpu.hpp"
#include "kumiki/models/configs.hpp"
#include "kumiki/nn/transformer.hpp"
#include "kumiki/optim/adamw.hpp"

using namespace kumiki;

namespace {
double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

/// User + system CPU seconds of the whole process (all threads).
double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

using kumiki_bench::random_tokens;

// range(0) batch, range(1) seq, range(2) recompute, range(3): 0 full step with AdamW, 1 forward+backward,
// 2 forward only.
template <auto Cfg>
void BM_TrainStep(benchmark::State& state) {
  std::int64_t const B = state.range(0), T = state.range(1);
  int const mode = static_cast<int>(state.range(3));
  nn::Transformer<Cfg> model;
  model.init(1);
  optim::AdamW<Cpu> adamw(model.params().layout());
  auto const tokens = random_tokens(B * T, Cfg.vocab_size, 1), targets = random_tokens(B * T, Cfg.vocab_size, 2);
  nn::StepOptions opt;
  opt.recompute = state.range(2) != 0;
  auto step = [&] {
    double loss = 0.0;
    if (mode == 2) {
      loss = model.forward(tokens.data(), targets.data(), B, T, opt);
    } else {
      model.zero_grad();
      loss = model.forward_backward(tokens.data(), targets.data(), B, T, opt);
      if (mode == 0) adamw.step(model.context(), model.params(), model.grads(), 3e-4f);
    }
    benchmark::DoNotOptimize(loss);
  };
  step();  // allocate activations, warm caches
  double const cpu0 = process_cpu_seconds();
  for (auto _ : state) step();
  double const cpu_per_step = (process_cpu_seconds() - cpu0) / static_cast<double>(state.iterations());
  state.counters["process_cpu_ms"] = 1e3 * cpu_per_step;  // all threads; robust to a busy machine
  double const tokens_per_iter = static_cast<double>(B * T);
  double const flops = (mode == 2 ? Cfg.flops_per_token(T) / 3.0 : Cfg.flops_per_token(T)) * tokens_per_iter;
  state.counters["tokens/s"] = benchmark::Counter(tokens_per_iter, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["peak_rss_MiB"] = peak_rss_mib();
  state.counters["activations_MiB"] = static_cast<double>(model.activations().total_bytes()) / (1024.0 * 1024.0);
  state.SetLabel(mode == 0 ? "fwd+bwd+adamw" : mode == 1 ? "fwd+bwd" : "fwd");
}
// Where the time of a step goes: per-op wall milliseconds per step (nn::StepTimings), AdamW included.
template <auto Cfg>
void BM_StepBreakdown(benchmark::State& state) {
  std::int64_t const B = state.range(0), T = state.range(1);
  nn::Transformer<Cfg> model;
  model.init(1);
  optim::AdamW<Cpu> adamw(model.params().layout());
  auto const tokens = random_tokens(B * T, Cfg.vocab_size, 1), targets = random_tokens(B * T, Cfg.vocab_size, 2);
  nn::StepTimings tm;
  nn::StepOptions opt;
  double adam_s = 0.0, zero_s = 0.0;
  auto step = [&] {
    auto const t0 = std::chrono::steady_clock::now();
    model.zero_grad();
    auto const t1 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(model.forward_backward(tokens.data(), targets.data(), B, T, opt).loss);
    auto const t2 = std::chrono::steady_clock::now();
    adamw.step(model.context(), model.params(), model.grads(), 3e-4f);
    auto const t3 = std::chrono::steady_clock::now();
    zero_s += std::chrono::duration<double>(t1 - t0).count();
    adam_s += std::chrono::duration<double>(t3 - t2).count();
  };
  step();
  tm = {};
  opt.timings = &tm;
  adam_s = zero_s = 0.0;
  std::int64_t n = 0;
  for (auto _ : state) {
    step();
    ++n;
  }
  auto ms = [&](double s) { return 1e3 * s / static_cast<double>(n); };
  state.counters["embedding_ms"] = ms(tm.embedding);
  state.counters["rmsnorm_ms"] = ms(tm.rmsnorm);
  state.counters["linear_ms"] = ms(tm.linear);
  state.counters["rope_ms"] = ms(tm.rope);
  state.counters["attention_ms"] = ms(tm.attention);
  state.counters["swiglu_ms"] = ms(tm.swiglu);
  state.counters["residual_ms"] = ms(tm.residual);
  state.counters["lm_head_loss_ms"] = ms(tm.lm_head_loss);
  state.counters["adamw_ms"] = ms(adam_s);
  state.counters["zero_grad_ms"] = ms(zero_s);
  state.SetLabel("per-op wall ms per step");
}
}  // namespace

BENCHMARK(BM_StepBreakdown<models::bench_ref>)
    ->Name("StepBreakdown/bench_ref")
    ->ArgNames({"B", "T"})
    ->Args({8, 256})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(2.0);
BENCHMARK(BM_TrainStep<models::bench_ref>)
    ->Name("TrainStep/bench_ref")
    ->ArgNames({"B", "T", "recompute", "mode"})
    ->Args({8, 256, 0, 0})
    ->Args({8, 256, 1, 0})
    ->Args({8, 256, 0, 1})
    ->Args({8, 256, 0, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(2.0);
BENCHMARK(BM_TrainStep<models::demo>)
    ->Name("TrainStep/demo")
    ->ArgNames({"B", "T", "recompute", "mode"})
    ->Args({8, 256, 0, 0})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(2.0);

BENCHMARK_MAIN();
