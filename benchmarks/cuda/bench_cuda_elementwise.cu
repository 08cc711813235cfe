// Memory-bound CUDA ops at LLM-jp-4 8B shapes (4096 tokens x hidden 4096, FFN 14336), bf16
// activations and weights, fp32 statistics and gradients: GB/s counts the bytes each op must move.
#include <vector>

#include "bench_cuda.cuh"
#include "kumiki/ops/cuda/embedding.cuh"
#include "kumiki/ops/cuda/residual.cuh"
#include "kumiki/ops/cuda/residual_rmsnorm.cuh"
#include "kumiki/ops/cuda/rmsnorm.cuh"
#include "kumiki/ops/cuda/rope.cuh"
#include "kumiki/ops/cuda/swiglu.cuh"

namespace kb = kumiki_bench;
namespace ops = kumiki::ops;
using kb::bf16;
using kb::C;
using kb::F;
using kb::N;

static void BM_Residual(benchmark::State& state) {
  if (!kb::need_gpu(state)) return;
  ops::Ctx<kb::Cuda> ctx;
  kb::DevArray<bf16> a(ctx, N * C, 1), b(ctx, N * C, 2), out(ctx, N * C, 3);
  kb::run_timed(state, ctx, 3.0 * N * C * 2, 0, [&] { ops::Residual<kb::Cuda>::forward(ctx, a.data(), b.data(), out.data(), N * C); });
}
BENCHMARK(BM_Residual)->UseManualTime()->Unit(benchmark::kMicrosecond);

static void BM_ResidualRmsNorm(benchmark::State& state) {
  if (!kb::need_gpu(state)) return;
  ops::Ctx<kb::Cuda> ctx;
  kb::DevArray<bf16> a(ctx, N * C, 1), b(ctx, N * C, 2), sum(ctx, N * C, 3), w(ctx, C, 4), y(ctx, N * C, 5);
  kb::DevArray<float> rstd(ctx, N, 6);
  kb::run_timed(state, ctx, 4.0 * N * C * 2, 0, [&] {
    ops::ResidualRmsNorm<kb::Cuda>::forward(ctx, a.data(), b.data(), sum.data(), w.data(), y.data(), rstd.data(), N, C, 1e-6);
  });
}
BENCHMARK(BM_ResidualRmsNorm)->UseManualTime()->Unit(benchmark::kMicrosecond);

static void BM_RmsNormBackward(benchmark::State& state) {
  if (!kb::need_gpu(state)) return;
  ops::Ctx<kb::Cuda> ctx;
  kb::DevArray<bf16> d_y(ctx, N * C, 1), x(ctx, N * C, 2), w(ctx, C, 3), d_x(ctx, N * C, 4);
  kb::DevArray<float> rstd(ctx, N, 5, 0.5f, 1.5f), d_w(ctx, C, 6);
  // reads d_y, x and d_x (accumulate), writes d_x
  kb::run_timed(state, ctx, 4.0 * N * C * 2, 0, [&] {
    ops::RmsNorm<kb::Cuda>::backward(ctx, d_y.data(), x.data(), w.data(), rstd.data(), d_x.data(), d_w.data(), N, C, true);
  });
}
BENCHMARK(BM_RmsNormBackward)->UseManualTime()->Unit(benchmark::kMicrosecond);

static void BM_SwiGluForward(benchmark::State& state) {
  if (!kb::need_gpu(state)) return;
  ops::Ctx<kb::Cuda> ctx;
  kb::DevArray<bf16> gu(ctx, N * 2 * F, 1), h(ctx, N * F, 2);
  kb::run_timed(state, ctx, 3.0 * N * F * 2, 0,
                [&] { ops::SwiGlu<kb::Cuda>::forward(ctx, gu.data(), gu.data() + F, 2 * F, h.data(), F, N, F); });
}
BENCHMARK(BM_SwiGluForward)->UseManualTime()->Unit(benchmark::kMicrosecond);

static void BM_SwiGluBackward(benchmark::State& state) {
  if (!kb::need_gpu(state)) return;
  ops::Ctx<kb::Cuda> ctx;
  kb::DevArray<bf16> gu(ctx, N * 2 * F, 1), d_h(ctx, N * F, 2), d_gu(ctx, N * 2 * F, 3);
  kb::run_timed(state, ctx, 5.0 * N * F * 2, 0, [&] {
    ops::SwiGlu<kb::Cuda>::backward(ctx, d_h.data(), F, gu.data(), gu.data() + F, 2 * F, d_gu.data(), d_gu.data() + F,
                                    2 * F, N, F);
  });
}
BENCHMARK(BM_SwiGluBackward)->UseManualTime()->Unit(benchmark::kMicrosecond);

static void BM_RopeQ(benchmark::State& state) {
  if (!kb::need_gpu(state)) return;
  ops::Ctx<kb::Cuda> ctx;
  kb::DevArray<bf16> qkv(ctx, N * kb::QKV, 1);
  kb::DevArray<float> cos_t(ctx, N * kb::hd / 2, 2), sin_t(ctx, N * kb::hd / 2, 3);
  ops::Rope<kb::Cuda>::tables(ctx, cos_t.data(), sin_t.data(), N, kb::hd, kb::cfg.rope_base);
  kb::run_timed(state, ctx, 2.0 * N * C * 2, 0, [&] {
    ops::Rope<kb::Cuda>::apply(ctx, qkv.data(), 1, N, kb::H, kb::hd, kb::QKV, cos_t.data(), sin_t.data(), false);
  });
}
BENCHMARK(BM_RopeQ)->UseManualTime()->Unit(benchmark::kMicrosecond);

static void BM_EmbeddingForward(benchmark::State& state) {
  if (!kb::need_gpu(state)) return;
  ops::Ctx<kb::Cuda> ctx;
  kb::DevArray<bf16> table(ctx, kb::Vp * C, 1), out(ctx, N * C, 2);
  kumiki::Buffer<kb::Cuda> ids(static_cast<std::size_t>(N) * 4);
  std::vector<std::int32_t> host(static_cast<std::size_t>(N));
  for (std::int64_t i = 0; i < N; ++i) host[static_cast<std::size_t>(i)] = static_cast<std::int32_t>((i * 7919) % kb::cfg.vocab_size);
  kumiki::Copy<kb::Cuda, kumiki::Cpu>::bytes(ids.data(), host.data(), host.size() * 4);
  auto const* tok = reinterpret_cast<std::int32_t const*>(ids.data());
  kb::run_timed(state, ctx, 2.0 * N * C * 2, 0,
                [&] { ops::Embedding<kb::Cuda>::forward(ctx, tok, table.data(), out.data(), N, C, kb::Vp); });
}
BENCHMARK(BM_EmbeddingForward)->UseManualTime()->Unit(benchmark::kMicrosecond);

static void BM_EmbeddingBackward(benchmark::State& state) {
  if (!kb::need_gpu(state)) return;
  ops::Ctx<kb::Cuda> ctx;
  kb::DevArray<bf16> d_out(ctx, N * C, 1);
  kb::DevArray<float> d_table(ctx, kb::Vp * C, 2);
  kumiki::Buffer<kb::Cuda> ids(static_cast<std::size_t>(N) * 4);
  std::vector<std::int32_t> host(static_cast<std::size_t>(N));
  for (std::int64_t i = 0; i < N; ++i) host[static_cast<std::size_t>(i)] = static_cast<std::int32_t>((i * 7919) % 5000);
  kumiki::Copy<kb::Cuda, kumiki::Cpu>::bytes(ids.data(), host.data(), host.size() * 4);
  auto const* tok = reinterpret_cast<std::int32_t const*>(ids.data());
  // reads d_out (bf16), reads and writes the touched fp32 table rows (at most N of them)
  kb::run_timed(state, ctx, N * C * (2.0 + 8.0), 0,
                [&] { ops::Embedding<kb::Cuda>::backward(ctx, tok, d_out.data(), d_table.data(), N, C); });
}
BENCHMARK(BM_EmbeddingBackward)->UseManualTime()->Unit(benchmark::kMicrosecond);
