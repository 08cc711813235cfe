// The MoE MLP of demo_moe (hidden 256, 4 experts of width 688, top-2) on 2048 tokens, forward and
// forward + backward, against the dense SwiGLU MLP of the same per-token FLOPs (width 2 x 688): the
// cost of routing, dispatch and per-expert GEMMs. GFLOP/s count active (top-k) expert FLOPs plus the
// router. range(0): 0 forward, 1 forward + backward; range(1): OpenMP threads.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <random>
#include <vector>

#include "kumiki/cpu.hpp"
#include "kumiki/ops/cpu/detail/eigen.hpp"

#include "kumiki/models/configs.hpp"
#include "kumiki/moe/moe_layer.hpp"
#include "kumiki/ops/cpu/linear.hpp"
#include "kumiki/ops/cpu/swiglu.hpp"

using namespace kumiki;

namespace {
/// The op context of these CPU calls (empty on the CPU).
ops::Ctx<Cpu> ctx;
}  // namespace

namespace {
constexpr auto Cfg = models::demo_moe;
constexpr std::int64_t N = 2048, C = Cfg.hidden, E = Cfg.num_experts, K = Cfg.moe_top_k, Fe = Cfg.expert_ffn();
using Vec = std::vector<float, Eigen::aligned_allocator<float>>;

Vec randn(std::int64_t n, unsigned seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  Vec v(static_cast<std::size_t>(n));
  for (auto& x : v) x = d(rng);
  return v;
}

struct Threads {
  int saved;
  explicit Threads(benchmark::State const& s) : saved(omp_get_max_threads()) {
    omp_set_num_threads(static_cast<int>(s.range(1)));
  }
  ~Threads() { omp_set_num_threads(saved); }
};

void rates(benchmark::State& s, double flops_fwd) {
  double const f = s.range(0) ? 3.0 * flops_fwd : flops_fwd;
  s.counters["GFLOP/s"] = benchmark::Counter(f * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  s.counters["tokens/s"] = benchmark::Counter(double(N), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_MoeLayer(benchmark::State& s) {
  Threads th(s);
  using Layer = moe::MoeLayer<Cfg, Cpu, float>;
  std::int64_t const R = N * K, stride = 3 * Fe * C;
  Vec w = randn(E * C + E * stride, 1, 0.02f), g(w.size(), 0.0f), x = randn(N * C, 2), d_out = randn(N * C, 3);
  Vec out(N * C), d_x(N * C), logits(N * E), probs(N * E), lse(N), topk_w(N * K), xg(R * C), gu(R * 2 * Fe), h(R * Fe),
      y(R * C), d_y(R * C), d_h(R * Fe), d_gu(R * 2 * Fe), d_xg(R * C), d_w(N * K), d_logits(N * E);
  std::vector<std::int32_t> topk_idx(N * K), row_token(R), token_row(N * K);
  std::vector<std::int64_t> counts(E), offsets(E + 1);
  auto view = [&](Vec& v) {
    float* b = v.data() + E * C;
    return moe::MoeWeights<float>{v.data(), b, b + Fe * C, b + 2 * Fe * C, stride};
  };
  moe::MoeActivations<float> const a{logits.data(), probs.data(), lse.data(), topk_idx.data(), topk_w.data(),
                                     counts.data(), offsets.data(), row_token.data(), token_row.data(), xg.data(),
                                     gu.data(), h.data(), y.data()};
  moe::MoeScratch<float> const sc{d_y.data(), d_h.data(), d_gu.data(), d_xg.data(), d_w.data(), d_logits.data()};
  for (auto _ : s) {
    Layer::forward(ctx, view(w), a, x.data(), N, out.data());
    if (s.range(0)) Layer::backward(ctx, view(w), view(g), a, sc, x.data(), N, d_out.data(), d_x.data(), 1.0);
    benchmark::DoNotOptimize(out.data());
  }
  rates(s, 2.0 * N * (double(E) * C + double(K) * 3 * C * Fe));
}

void BM_DenseMlpSameFlops(benchmark::State& s) {
  Threads th(s);
  constexpr std::int64_t F = K * Fe;
  Vec wgu = randn(2 * F * C, 1, 0.02f), wd = randn(C * F, 2, 0.02f), x = randn(N * C, 3), d_out = randn(N * C, 4);
  Vec gu(N * 2 * F), h(N * F), out(N * C), d_h(N * F), d_gu(N * 2 * F), d_x(N * C), g_gu(wgu.size(), 0.0f),
      g_d(wd.size(), 0.0f);
  using L = ops::Linear<Cpu>;
  for (auto _ : s) {
    L::forward(ctx, x.data(), wgu.data(), gu.data(), N, C, 2 * F);
    ops::SwiGlu<Cpu>::forward(ctx, gu.data(), gu.data() + F, 2 * F, h.data(), F, N, F);
    L::forward(ctx, h.data(), wd.data(), out.data(), N, F, C);
    if (s.range(0)) {
      L::backward_input(ctx, d_out.data(), wd.data(), d_h.data(), N, F, C);
      L::backward_weight(ctx, d_out.data(), h.data(), g_d.data(), N, F, C);
      ops::SwiGlu<Cpu>::backward(ctx, d_h.data(), F, gu.data(), gu.data() + F, 2 * F, d_gu.data(), d_gu.data() + F, 2 * F, N, F);
      L::backward_input(ctx, d_gu.data(), wgu.data(), d_x.data(), N, C, 2 * F);
      L::backward_weight(ctx, d_gu.data(), x.data(), g_gu.data(), N, C, 2 * F);
    }
    benchmark::DoNotOptimize(out.data());
  }
  rates(s, 2.0 * N * 3.0 * C * F);
}
}  // namespace

BENCHMARK(BM_MoeLayer)->ArgsProduct({{0, 1}, {1, 2}})->ArgNames({"bwd", "threads"})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_DenseMlpSameFlops)
    ->ArgsProduct({{0, 1}, {1, 2}})
    ->ArgNames({"bwd", "threads"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_MAIN();
