// Core microbenchmarks: Philox normal sampling (samples/s, 1 and all threads) and bf16 conversion.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <vector>

#include "kumiki/ops/cpu/fill.hpp"  // philox_fill_*: host fills
#include "kumiki/core/bf16.hpp"
#include "kumiki/core/philox.hpp"

static void BM_PhiloxNormal(benchmark::State& state) {
  std::size_t const n = static_cast<std::size_t>(state.range(0));
  int const threads = static_cast<int>(state.range(1));
  std::vector<float> out(n);
  int const saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  for (auto _ : state) {
    kumiki::philox_fill_normal(out.data(), n, {1234, 0}, 0.0f, 0.02f);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  omp_set_num_threads(saved);
  state.counters["samples/s"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_PhiloxNormal)->Args({1 << 22, 1})->Args({1 << 22, 2})->Unit(benchmark::kMillisecond)->UseRealTime();

static void BM_PhiloxUniform(benchmark::State& state) {
  std::size_t const n = static_cast<std::size_t>(state.range(0));
  std::vector<float> out(n);
  for (auto _ : state) {
    kumiki::philox_fill_uniform(out.data(), n, {1234, 0}, -1.0f, 1.0f);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["samples/s"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_PhiloxUniform)->Arg(1 << 22)->Unit(benchmark::kMillisecond)->UseRealTime();

static void BM_Bf16FromFloat(benchmark::State& state) {
  std::size_t const n = static_cast<std::size_t>(state.range(0));
  std::vector<float> in(n);
  std::vector<kumiki::bf16> out(n);
  kumiki::philox_fill_normal(in.data(), n, {7, 0}, 0.0f, 1.0f);
  for (auto _ : state) {
    for (std::size_t i = 0; i < n; ++i) out[i] = kumiki::bf16(in[i]);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n * 6));
}
BENCHMARK(BM_Bf16FromFloat)->Arg(1 << 22)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
