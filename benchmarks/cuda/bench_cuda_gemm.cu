// Compute-bound CUDA ops at LLM-jp-4 8B shapes (4096 tokens, hidden 4096, FFN 14336, padded vocabulary
// 99584): cuBLASLt linear layers and the fused LM head + loss, bf16 inputs with fp32 accumulation.
// TFLOP/s counts 2 m n k per GEMM.
#include <vector>

#include "bench_cuda.cuh"
#include "kumiki/ops/cuda/linear.cuh"
#include "kumiki/ops/cuda/lm_head_loss.cuh"

namespace kb = kumiki_bench;
namespace ops = kumiki::ops;
using kb::bf16;
using kb::C;
using kb::F;
using kb::N;

static void BM_LinearForwardQKV(benchmark::State& state) {
  if (!kb::need_gpu(state)) return;
  ops::Ctx<kb::Cuda> ctx;
  kb::DevArray<bf16> x(ctx, N * C, 1), w(ctx, kb::QKV * C, 2, -0.02f, 0.02f), y(ctx, N * kb::QKV, 3);
  kb::run_timed(state, ctx, 0, 2.0 * N * C * kb::QKV,
                [&] { ops::Linear<kb::Cuda>::forward(ctx, x.data(), w.data(), y.data(), N, C, kb::QKV, false, 0, 0); });
}
BENCHMARK(BM_LinearForwardQKV)->UseManualTime()->Unit(benchmark::kMicrosecond);

static void BM_LinearBackwardInputDown(benchmark::State& state) {
  if (!kb::need_gpu(state)) return;
  ops::Ctx<kb::Cuda> ctx;
  kb::DevArray<bf16> d_y(ctx, N * C, 1), w(ctx, C * F, 2, -0.02f, 0.02f), d_x(ctx, N * F, 3);
  kb::run_timed(state, ctx, 0, 2.0 * N * C * F,
                [&] { ops::Linear<kb::Cuda>::backward_input(ctx, d_y.data(), w.data(), d_x.data(), N, F, C, false, 0, 0); });
}
BENCHMARK(BM_LinearBackwardInputDown)->UseManualTime()->Unit(benchmark::kMicrosecond);

static void BM_LinearBackwardWeightDown(benchmark::State& state) {
  if (!kb::need_gpu(state)) return;
  ops::Ctx<kb::Cuda> ctx;
  kb::DevArray<bf16> d_y(ctx, N * C, 1), x(ctx, N * F, 2);
  kb::DevArray<float> d_w(ctx, C * F, 3);
  kb::run_timed(state, ctx, 0, 2.0 * N * C * F,
                [&] { ops::Linear<kb::Cuda>::backward_weight(ctx, d_y.data(), x.data(), d_w.data(), N, F, C, 0, 0); });
}
BENCHMARK(BM_LinearBackwardWeightDown)->UseManualTime()->Unit(benchmark::kMicrosecond);

static void BM_LmHeadLossForwardBackward(benchmark::State& state) {
  if (!kb::need_gpu(state)) return;
  ops::Ctx<kb::Cuda> ctx;
  ops::LmHeadLossArgs a;
  a.tokens = N, a.hidden = C, a.vocab = kb::cfg.vocab_size, a.padded_vocab = kb::Vp, a.chunk = 1024;
  kb::DevArray<bf16> x(ctx, N * C, 1), w(ctx, kb::Vp * C, 2, -0.02f, 0.02f), d_x(ctx, N * C, 3);
  kb::DevArray<float> d_w(ctx, kb::Vp * C, 4), scratch(ctx, ops::LmHeadLoss<kb::Cuda>::scratch_elems(a), 5);
  kumiki::Buffer<kb::Cuda> targets(static_cast<std::size_t>(N) * 4);
  std::vector<std::int32_t> host(static_cast<std::size_t>(N));
  for (std::int64_t i = 0; i < N; ++i) host[static_cast<std::size_t>(i)] = static_cast<std::int32_t>((i * 7919) % a.vocab);
  kumiki::Copy<kb::Cuda, kumiki::Cpu>::bytes(targets.data(), host.data(), host.size() * 4);
  auto const* tg = reinterpret_cast<std::int32_t const*>(targets.data());
  // three GEMMs of N x C x Vp: the logits, d_x and d_W
  kb::run_timed(state, ctx, 0, 6.0 * N * C * kb::Vp, [&] {
    benchmark::DoNotOptimize(ops::LmHeadLoss<kb::Cuda>::run(ctx, a, x.data(), w.data(), tg, static_cast<bf16 const*>(nullptr),
                                                            d_x.data(), d_w.data(), static_cast<bf16*>(nullptr),
                                                            scratch.data()));
  });
}
BENCHMARK(BM_LmHeadLossForwardBackward)->UseManualTime()->Unit(benchmark::kMillisecond);
