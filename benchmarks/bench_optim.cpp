// Optimizer microbenchmarks: fused AdamW over a 100M-parameter fp32 arena (GB/s and the fraction of
// copy bandwidth measured in this binary), the bf16 master-weight variant, and the gradient norm.
//
// Bytes are counted as the kernel must move them: AdamW reads p, g, m, v and writes p, m, v
// (28 bytes per parameter; +2 for the bf16 model copy); a copy reads and writes 4 bytes per float
// (8 bytes per element). Run e.g. `bench_optim --benchmark_filter='Copy|AdamW'`.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>

#include "kumiki/cpu.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/philox.hpp"
#include "kumiki/optim/adamw.hpp"
#include "kumiki/optim/clip.hpp"

using namespace kumiki;

namespace {
/// The op context of these CPU calls (empty on the CPU).
ops::Ctx<Cpu> ctx;
}  // namespace

namespace {

constexpr std::int64_t kParams = 100'000'000;

/// A LLaMA-like mix of tensors adding up to `total` parameters: 4096-wide matrices plus 1-D norms.
ArenaLayout model_like_layout(std::int64_t total, DType dtype = DType::f32) {
  ArenaLayout L;
  std::int64_t left = total;
  for (int i = 0; left > 0; ++i) {
    std::int64_t const norm = std::min<std::int64_t>(4096, left);
    L.add("layers." + std::to_string(i) + ".norm.weight", dtype, Shape{norm});
    left -= norm;
    std::int64_t const rows = std::min<std::int64_t>(1024, left / 4096);
    if (rows > 0) {
      L.add("layers." + std::to_string(i) + ".weight", dtype, Shape{rows, 4096});
      left -= rows * 4096;
    } else if (left > 0) {
      L.add("layers." + std::to_string(i) + ".tail", dtype, Shape{left});
      left = 0;
    }
  }
  return L;
}

struct ThreadScope {
  int saved = omp_get_max_threads();
  explicit ThreadScope(int n) { omp_set_num_threads(n); }
  ~ThreadScope() { omp_set_num_threads(saved); }
};

/// Copies `n` floats with `threads` threads, each copying one contiguous share with memcpy.
void parallel_copy(float* __restrict dst, float const* __restrict src, std::int64_t n) {
#pragma omp parallel
  {
    std::int64_t const nt = omp_get_num_threads(), t = omp_get_thread_num();
    std::int64_t const lo = n * t / nt, hi = n * (t + 1) / nt;
    std::memcpy(dst + lo, src + lo, static_cast<std::size_t>(hi - lo) * sizeof(float));
  }
}

/// Times one call of `f` in seconds.
template <class F>
double seconds(F&& f) {
  auto const t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// Copy source and destination of kParams floats, shared by the benchmarks (allocated once).
struct CopyBuffers {
  Buffer<Cpu> src{kParams * sizeof(float)}, dst{kParams * sizeof(float)};
  CopyBuffers() {
    src.zero();
    dst.zero();
  }
  double copy_seconds() {
    return seconds([&] { parallel_copy(reinterpret_cast<float*>(dst.data()), reinterpret_cast<float const*>(src.data()), kParams); });
  }
};

void BM_Copy(benchmark::State& state) {
  ThreadScope scope(static_cast<int>(state.range(0)));
  CopyBuffers buf;
  for (auto _ : state) {
    parallel_copy(reinterpret_cast<float*>(buf.dst.data()), reinterpret_cast<float const*>(buf.src.data()), kParams);
    benchmark::ClobberMemory();
  }
  state.counters["GB/s"] = benchmark::Counter(8.0 * kParams, benchmark::Counter::kIsIterationInvariantRate,
                                              benchmark::Counter::kIs1000);
}
BENCHMARK(BM_Copy)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);

/// Runs `step` as the benchmark body; between iterations (timing paused) runs one copy of the same
/// thread count, so the copy bandwidth is sampled under the same machine load as the step. Reports
/// GB/s (mean), best_GB/s (fastest iteration), copy_GB/s (fastest copy) and vs_copy = best / copy.
template <class Step>
void run_against_copy(benchmark::State& state, double bytes, Step&& step) {
  CopyBuffers buf;
  double best_step = 1e30, best_copy = 1e30;
  for (auto _ : state) {
    best_step = std::min(best_step, seconds(step));
    benchmark::ClobberMemory();
    state.PauseTiming();
    best_copy = std::min(best_copy, buf.copy_seconds());
    state.ResumeTiming();
  }
  double const copy_bytes = 8.0 * static_cast<double>(kParams);
  state.counters["GB/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.counters["best_GB/s"] = bytes / best_step / 1e9;
  state.counters["copy_GB/s"] = copy_bytes / best_copy / 1e9;
  state.counters["vs_copy"] = (bytes / best_step) / (copy_bytes / best_copy);
}

void BM_AdamW(benchmark::State& state) {
  ThreadScope scope(static_cast<int>(state.range(0)));
  ArenaLayout const L = model_like_layout(kParams);
  Arena<Cpu> p(L), g(L);
  for (std::size_t i = 0; i < L.size(); ++i) {
    auto v = g.get<float>(i);
    philox_fill_normal(v.data(), static_cast<std::size_t>(v.numel()), {1, i}, 0.0f, 1e-3f);
  }
  optim::AdamW<Cpu> opt(L);
  opt.step(ctx, p, g, 3e-4f);  // first touch of everything outside the timing
  state.counters["params"] = static_cast<double>(L.numel());
  run_against_copy(state, 28.0 * static_cast<double>(L.numel()), [&] { opt.step(ctx, p, g, 3e-4f); });
}
BENCHMARK(BM_AdamW)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(10);

/// bf16 model + fp32 master: 28 bytes as above plus the 2-byte bf16 write.
void BM_AdamWMasterBf16(benchmark::State& state) {
  ThreadScope scope(static_cast<int>(state.range(0)));
  ArenaLayout const model = model_like_layout(kParams, DType::bf16);
  ArenaLayout const L = optim::master_layout(model);
  Arena<Cpu> master(L), g(L), bf(model);
  optim::AdamW<Cpu> opt(L);
  opt.step(ctx, master, g, 3e-4f, 0.1f, &bf);
  run_against_copy(state, 30.0 * static_cast<double>(L.numel()), [&] { opt.step(ctx, master, g, 3e-4f, 0.1f, &bf); });
}
BENCHMARK(BM_AdamWMasterBf16)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(10);

void BM_GradNorm(benchmark::State& state) {
  ThreadScope scope(static_cast<int>(state.range(0)));
  ArenaLayout const L = model_like_layout(kParams);
  Arena<Cpu> g(L);
  for (auto _ : state) benchmark::DoNotOptimize(optim::global_grad_norm(ctx, g));
  state.counters["GB/s"] = benchmark::Counter(4.0 * static_cast<double>(L.numel()), benchmark::Counter::kIsIterationInvariantRate,
                                              benchmark::Counter::kIs1000);
}
BENCHMARK(BM_GradNorm)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
