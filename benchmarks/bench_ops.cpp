// Per-op microbenchmarks at the shapes of the issue-3 reference step (B 8 x T 256 = 2048 tokens,
// hidden 256, 4 heads / 2 groups of 64, ffn 704, vocab 8192): GFLOP/s for GEMM-like ops, GB/s for
// memory-bound ones. Second argument: OpenMP threads.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cmath>
#include <random>
#include <vector>

#include "kumiki/ops/cpu/attention.hpp"
#include "kumiki/ops/cpu/embedding.hpp"
#include "kumiki/ops/cpu/gemm.hpp"
#include "kumiki/ops/cpu/linear.hpp"
#include "kumiki/ops/cpu/lm_head_loss.hpp"
#include "kumiki/ops/cpu/rmsnorm.hpp"
#include "kumiki/ops/cpu/rope.hpp"
#include "kumiki/ops/cpu/swiglu.hpp"

using namespace kumiki;

namespace {
/// The op context of these CPU calls (empty on the CPU).
ops::Ctx<Cpu> ctx;
}  // namespace

namespace {
constexpr std::int64_t N = 2048, C = 256, F = 704, V = 8192, Bt = 8, Tt = 256, H = 4, G = 2, hd = 64;

std::vector<float> randn(std::int64_t n, unsigned seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = d(rng);
  return v;
}

struct Threads {
  int saved;
  Threads(benchmark::State const& s, int index) : saved(omp_get_max_threads()) {
    omp_set_num_threads(static_cast<int>(s.range(index)));
  }
  ~Threads() { omp_set_num_threads(saved); }
};

void flops(benchmark::State& s, double f) {
  s.counters["GFLOP/s"] = benchmark::Counter(f * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
void bytes(benchmark::State& s, double b) {
  s.counters["GB/s"] = benchmark::Counter(b * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// Linear layers of one block: range(0) selects (in, out): 0 qkv 256->512, 1 o 256->256, 2 gate|up
// 256->1408, 3 down 704->256; range(1) threads; range(2): 0 forward, 1 backward (input + weight).
void BM_Linear(benchmark::State& s) {
  Threads th(s, 1);
  static constexpr std::int64_t shapes[4][2] = {{C, C + 2 * G * hd}, {C, C}, {C, 2 * F}, {F, C}};
  std::int64_t const in = shapes[s.range(0)][0], out = shapes[s.range(0)][1];
  auto x = randn(N * in, 1), w = randn(out * in, 2, 0.02f), y = randn(N * out, 3), dx = randn(N * in, 4);
  std::vector<float> dw(out * in, 0.0f);
  bool const bwd = s.range(2) != 0;
  for (auto _ : s) {
    if (!bwd) {
      ops::Linear<Cpu>::forward(ctx, x.data(), w.data(), y.data(), N, in, out);
    } else {
      ops::Linear<Cpu>::backward_input(ctx, y.data(), w.data(), dx.data(), N, in, out);
      ops::Linear<Cpu>::backward_weight(ctx, y.data(), x.data(), dw.data(), N, in, out);
    }
    benchmark::ClobberMemory();
  }
  flops(s, (bwd ? 4.0 : 2.0) * N * in * out);
}
BENCHMARK(BM_Linear)->ArgNames({"shape", "threads", "bwd"})->ArgsProduct({{0, 1, 2, 3}, {1, 2}, {0, 1}})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();

// Square GEMM for reference: what Eigen's kernel reaches on this CPU.
void BM_Gemm(benchmark::State& s) {
  Threads th(s, 1);
  std::int64_t const n = s.range(0);
  auto a = randn(n * n, 1), b = randn(n * n, 2), c = randn(n * n, 3);
  for (auto _ : s) {
    ops::cpu::gemm<float>(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    benchmark::ClobberMemory();
  }
  flops(s, 2.0 * n * n * n);
}
BENCHMARK(BM_Gemm)->ArgNames({"n", "threads"})->ArgsProduct({{512, 1024}, {1, 2}})->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// Attention at B 8, T 256, 4 heads over 2 groups; FLOPs counted as the causal half of QK^T and PV
// (forward 2 * 2 * B * H * T^2 * hd / 2; backward 2.5x that, the convention of FlashAttention).
void BM_Attention(benchmark::State& s) {
  Threads th(s, 0);
  std::int64_t const QKV = C + 2 * G * hd;
  ops::AttentionShape const sh{Bt, Tt, H, G, hd, QKV, QKV, QKV, C};
  auto qkv = randn(N * QKV, 1), o = randn(N * C, 2), d_o = randn(N * C, 3), d_qkv = randn(N * QKV, 4);
  std::vector<float> lse(Bt * H * Tt);
  float const scale = 1.0f / std::sqrt(float(hd));
  ops::Attention<Cpu>::forward(ctx, sh, qkv.data(), qkv.data() + C, qkv.data() + C + G * hd, o.data(), lse.data(), nullptr,
                               scale);
  bool const bwd = s.range(1) != 0;
  for (auto _ : s) {
    if (!bwd)
      ops::Attention<Cpu>::forward(ctx, sh, qkv.data(), qkv.data() + C, qkv.data() + C + G * hd, o.data(), lse.data(),
                                   nullptr, scale);
    else
      ops::Attention<Cpu>::backward(ctx, sh, qkv.data(), qkv.data() + C, qkv.data() + C + G * hd, o.data(), d_o.data(),
                                    lse.data(), d_qkv.data(), d_qkv.data() + C, d_qkv.data() + C + G * hd, nullptr,
                                    scale);
    benchmark::ClobberMemory();
  }
  double const fwd = 2.0 * 2.0 * Bt * H * Tt * Tt * hd / 2.0;
  flops(s, bwd ? 2.5 * fwd : fwd);
}
BENCHMARK(BM_Attention)->ArgNames({"threads", "bwd"})->ArgsProduct({{1, 2}, {0, 1}})->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// Fused LM head + cross-entropy, forward + backward, 2048 tokens x vocab 8192 in chunks of range(1).
void BM_LmHeadLoss(benchmark::State& s) {
  Threads th(s, 0);
  ops::LmHeadLossArgs a;
  a.tokens = N, a.hidden = C, a.vocab = V, a.padded_vocab = V, a.chunk = s.range(1);
  auto x = randn(N * C, 1), w = randn(V * C, 2, 0.02f), dx = randn(N * C, 3);
  std::vector<float> dw(V * C, 0.0f), scratch(ops::LmHeadLoss<Cpu>::scratch_elems(a));
  std::vector<std::int32_t> t(N);
  for (std::int64_t i = 0; i < N; ++i) t[i] = static_cast<std::int32_t>((i * 7919) % V);
  for (auto _ : s) {
    auto r = ops::LmHeadLoss<Cpu>::run<float>(ctx, a, x.data(), w.data(), t.data(), nullptr, dx.data(), dw.data(), nullptr,
                                              scratch.data());
    benchmark::DoNotOptimize(r);
  }
  flops(s, 6.0 * N * C * V);
}
BENCHMARK(BM_LmHeadLoss)->ArgNames({"threads", "chunk"})->ArgsProduct({{1, 2}, {64, 128, 256, 512, 1024}})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();

// Memory-bound ops over the (2048, 256) residual stream / (2048, 704) MLP activations.
void BM_RmsNorm(benchmark::State& s) {
  Threads th(s, 0);
  auto x = randn(N * C, 1), w = randn(C, 2), y = randn(N * C, 3), dx = randn(N * C, 4);
  std::vector<float> rstd(N), dw(C);
  bool const bwd = s.range(1) != 0;
  for (auto _ : s) {
    if (!bwd)
      ops::RmsNorm<Cpu>::forward(ctx, x.data(), w.data(), y.data(), rstd.data(), N, C, 1e-6);
    else
      ops::RmsNorm<Cpu>::backward(ctx, y.data(), x.data(), w.data(), rstd.data(), dx.data(), dw.data(), N, C, true);
    benchmark::ClobberMemory();
  }
  bytes(s, (bwd ? 5.0 : 2.0) * N * C * 4);
}
BENCHMARK(BM_RmsNorm)->ArgNames({"threads", "bwd"})->ArgsProduct({{1, 2}, {0, 1}})->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

void BM_SwiGlu(benchmark::State& s) {
  Threads th(s, 0);
  auto gu = randn(N * 2 * F, 1), h = randn(N * F, 2), dgu = randn(N * 2 * F, 3);
  bool const bwd = s.range(1) != 0;
  for (auto _ : s) {
    if (!bwd)
      ops::SwiGlu<Cpu>::forward(ctx, gu.data(), gu.data() + F, 2 * F, h.data(), F, N, F);
    else
      ops::SwiGlu<Cpu>::backward(ctx, h.data(), F, gu.data(), gu.data() + F, 2 * F, dgu.data(), dgu.data() + F, 2 * F, N, F);
    benchmark::ClobberMemory();
  }
  bytes(s, (bwd ? 5.0 : 3.0) * N * F * 4);
}
BENCHMARK(BM_SwiGlu)->ArgNames({"threads", "bwd"})->ArgsProduct({{1, 2}, {0, 1}})->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

void BM_Rope(benchmark::State& s) {
  Threads th(s, 0);
  std::int64_t const QKV = C + 2 * G * hd;
  auto qkv = randn(N * QKV, 1);
  std::vector<float> cs(Tt * hd / 2), sn(Tt * hd / 2);
  ops::Rope<Cpu>::tables(ctx, cs.data(), sn.data(), Tt, hd, 10000.0);
  for (auto _ : s) {
    ops::Rope<Cpu>::apply(ctx, qkv.data(), Bt, Tt, H, hd, QKV, cs.data(), sn.data(), false);
    ops::Rope<Cpu>::apply(ctx, qkv.data() + C, Bt, Tt, G, hd, QKV, cs.data(), sn.data(), false);
    benchmark::ClobberMemory();
  }
  bytes(s, 2.0 * N * (C + G * hd) * 4);
}
BENCHMARK(BM_Rope)->ArgNames({"threads"})->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_Embedding(benchmark::State& s) {
  Threads th(s, 0);
  auto table = randn(V * C, 1), out = randn(N * C, 2);
  std::vector<float> d_table(V * C, 0.0f);
  std::vector<std::int32_t> t(N);
  for (std::int64_t i = 0; i < N; ++i) t[i] = static_cast<std::int32_t>((i * 7919) % V);
  bool const bwd = s.range(1) != 0;
  for (auto _ : s) {
    if (!bwd)
      ops::Embedding<Cpu>::forward(ctx, t.data(), table.data(), out.data(), N, C, V);
    else
      ops::Embedding<Cpu>::backward(ctx, t.data(), out.data(), d_table.data(), N, C);
    benchmark::ClobberMemory();
  }
  bytes(s, (bwd ? 3.0 : 2.0) * N * C * 4);
}
BENCHMARK(BM_Embedding)->ArgNames({"threads", "bwd"})->ArgsProduct({{1, 2}, {0, 1}})->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
}  // namespace

BENCHMARK_MAIN();
