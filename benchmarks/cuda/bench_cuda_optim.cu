// The optimizer over a 2^28-element fp32 arena (a quarter of a 1.3B model, in 8 tensors): fused AdamW
// with fp32 master weights writing the bf16 model copy (30 bytes per element: p, m, v read and
// written, g read, the bf16 copy written), and the gradient norm (4 bytes per element).
#include <string>

#include "bench_cuda.cuh"
#include "kumiki/core/arena.hpp"
#include "kumiki/optim/cuda/adamw.cuh"
#include "kumiki/optim/cuda/grad_norm.cuh"

namespace kb = kumiki_bench;
namespace ops = kumiki::ops;

namespace {
constexpr std::int64_t tensors = 8, rows = 8192, cols = 4096;  // 8 x 2^25 = 2^28 elements
kumiki::ArenaLayout layout(kumiki::DType dt) {
  kumiki::ArenaLayout l(kumiki::Allocator<kb::Cuda>::alignment);
  for (std::int64_t i = 0; i < tensors; ++i) l.add("w." + std::to_string(i), dt, kumiki::Shape{rows, cols});
  return l;
}
constexpr double elements = static_cast<double>(tensors * rows * cols);
}  // namespace

static void BM_AdamWStepBf16Copy(benchmark::State& state) {
  if (!kb::need_gpu(state)) return;
  ops::Ctx<kb::Cuda> ctx;
  kumiki::Arena<kb::Cuda> master(layout(kumiki::DType::f32)), grads(layout(kumiki::DType::f32)), model(layout(kumiki::DType::bf16));
  kumiki::optim::AdamW<kb::Cuda> opt(master.layout());
  kb::run_timed(state, ctx, 30.0 * elements, 0,
                [&] { opt.step(ctx, master, grads, 1e-4f, 0.1f, &model); });
}
BENCHMARK(BM_AdamWStepBf16Copy)->UseManualTime()->Unit(benchmark::kMillisecond);

static void BM_GradNormSumSquares(benchmark::State& state) {
  if (!kb::need_gpu(state)) return;
  ops::Ctx<kb::Cuda> ctx;
  kumiki::Arena<kb::Cuda> grads(layout(kumiki::DType::f32));
  kb::run_timed(state, ctx, 4.0 * elements, 0, [&] {
    benchmark::DoNotOptimize(kumiki::optim::GradNorm<kb::Cuda>::sum_squares(ctx, grads, kumiki::FlatRange{}));
  });
}
BENCHMARK(BM_GradNormSumSquares)->UseManualTime()->Unit(benchmark::kMillisecond);
