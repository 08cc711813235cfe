// Generation benchmarks (nn::Generator, key/value cache) on the CPU: decode tokens/s at batch 1 and 8
// after a 128-token prompt, and prefill tokens/s, for the demo model and LLM-jp-4 1.3B (random
// weights). Decoding is memory-bound: each step reads every weight once (shared by the batch) and each
// sequence's cache, so the counters give the bytes one step reads and the rate they were read at, to
// set against BM_ReadBandwidth (reading 1 GiB on all threads) and BM_CopyBandwidth (memcpy) measured in
// the same run.
#include <benchmark/benchmark.h>

#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "bench_util.hpp"
#include "kumiki/cpu.hpp"
#include "kumiki/models/configs.hpp"
#include "kumiki/nn/generator.hpp"
#include "kumiki/nn/transformer.hpp"

using namespace kumiki;

namespace {
using kumiki_bench::random_tokens;

/// The same model for every case of a configuration (the 1.3B takes a minute to initialize).
template <auto Cfg>
nn::Transformer<Cfg>& shared_model() {
  static auto m = [] {
    auto p = std::make_unique<nn::Transformer<Cfg>>();
    p->init(1);
    return p;
  }();
  return *m;
}

constexpr std::int64_t prompt_len = 128;

// range(0): batch. Each iteration is one decoding step of every sequence (after the prompt), with the
// caches reset to the prompt every 64 steps so that the context stays near prompt_len + 32.
template <auto Cfg>
void BM_Decode(benchmark::State& state) {
  std::int64_t const B = state.range(0);
  auto& model = shared_model<Cfg>();
  nn::Generator gen(model, B, prompt_len + 64);
  using Feed = typename nn::Generator<nn::Transformer<Cfg>>::Feed;
  std::vector<Feed> prompt, step;
  for (std::int64_t b = 0; b < B; ++b) {
    prompt.push_back({b, random_tokens(prompt_len, Cfg.vocab_size, static_cast<unsigned>(b))});
    step.push_back({b, {1}});
  }
  double context = 0;
  std::int64_t n = 0;
  for (auto _ : state) {
    if (n % 64 == 0) {
      state.PauseTiming();
      for (std::int64_t b = 0; b < B; ++b) gen.reset(b);
      gen.extend(prompt);
      state.ResumeTiming();
    }
    context += static_cast<double>(gen.length(0));
    benchmark::DoNotOptimize(gen.extend(step));
    ++n;
  }
  // Bytes one step reads: every weight but the embedding table (of which it reads B rows) once, and per
  // sequence K and V of its context in every layer.
  double const weights = static_cast<double>(Cfg.num_params() - Cfg.padded_vocab() * Cfg.hidden) * 4.0;
  double const cache = static_cast<double>(B) * (context / static_cast<double>(n)) * 2.0 *
                       static_cast<double>(Cfg.num_layers * Cfg.kv_width()) * 4.0;
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(B * n), benchmark::Counter::kIsRate);
  state.counters["MB/step"] = (weights + cache) / 1e6;
  state.counters["GB/s"] = benchmark::Counter((weights + cache) * static_cast<double>(n) / 1e9, benchmark::Counter::kIsRate);
}

// range(0): prompts of prompt_len tokens prefilled together.
template <auto Cfg>
void BM_Prefill(benchmark::State& state) {
  std::int64_t const B = state.range(0);
  auto& model = shared_model<Cfg>();
  nn::Generator gen(model, B, prompt_len);
  using Feed = typename nn::Generator<nn::Transformer<Cfg>>::Feed;
  std::vector<Feed> prompt;
  for (std::int64_t b = 0; b < B; ++b) prompt.push_back({b, random_tokens(prompt_len, Cfg.vocab_size, static_cast<unsigned>(b))});
  for (auto _ : state) {
    for (std::int64_t b = 0; b < B; ++b) gen.reset(b);
    benchmark::DoNotOptimize(gen.extend(prompt));
  }
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(B * prompt_len * state.iterations()), benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(
      Cfg.flops_per_token(prompt_len) / 3.0 * static_cast<double>(B * prompt_len * state.iterations()) / 1e9,
      benchmark::Counter::kIsRate);  // forward only: a third of the training FLOPs
}

// The ceilings a memory-bound decoder is read against: reading 1 GiB (a sum over all threads, what a
// decoding step does with the weights), and memcpy of 1 GiB (GB/s of bytes read; each is also written).
void BM_ReadBandwidth(benchmark::State& state) {
  std::size_t const n = (std::size_t{1} << 30) / sizeof(float);
  std::vector<float> a(n, 1.0f);
  std::int64_t const chunks = 256, len = static_cast<std::int64_t>(n) / chunks;
  for (auto _ : state) {
    double sum = 0.0;
#pragma omp parallel for reduction(+ : sum) schedule(static)
    for (std::int64_t c = 0; c < chunks; ++c) {  // 16 accumulators: vector adds, no latency chain
      float acc[16] = {};
      float const* p = a.data() + c * len;
      for (std::int64_t i = 0; i < len; i += 16)
        for (int j = 0; j < 16; ++j) acc[j] += p[i + j];
      for (float x : acc) sum += x;
    }
    benchmark::DoNotOptimize(sum);
  }
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(n * sizeof(float)) * static_cast<double>(state.iterations()) / 1e9,
                                              benchmark::Counter::kIsRate);
}

void BM_CopyBandwidth(benchmark::State& state) {
  std::size_t const n = std::size_t{1} << 30;
  std::vector<char> a(n, 1), b(n, 2);
  for (auto _ : state) {
    std::memcpy(b.data(), a.data(), n);
    benchmark::DoNotOptimize(b.data());
  }
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(n) * static_cast<double>(state.iterations()) / 1e9,
                                              benchmark::Counter::kIsRate);
}
}  // namespace

BENCHMARK(BM_ReadBandwidth)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_CopyBandwidth)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Decode<models::demo>)->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Prefill<models::demo>)->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Decode<models::llmjp4_1_3b>)->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(5.0);
BENCHMARK(BM_Prefill<models::llmjp4_1_3b>)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(5.0);

BENCHMARK_MAIN();
