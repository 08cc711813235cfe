// Flash attention at LLM-jp-4 8B shapes: one sequence of 4096 tokens, 32 heads over 8 groups,
// head_dim 128, causal. TFLOP/s counts the useful (causal) work: forward 2 B H T^2 hd (QK^T and PV
// over half the T x T square), backward 2.5 times that (five products instead of two). Each on the
// tensor-core kernels (tensor_cores:1, the default) and on the CUDA-core kernels (tensor_cores:0).
#include "bench_cuda.cuh"
#include "kumiki/ops/cuda/attention.cuh"

namespace kb = kumiki_bench;
namespace ops = kumiki::ops;
using kb::bf16;

namespace {
constexpr std::int64_t T = kb::N;
ops::AttentionShape shape() { return {1, T, kb::H, kb::G, kb::hd, kb::QKV, kb::QKV, kb::QKV, kb::C}; }
float scale() { return 1.0f / std::sqrt(static_cast<float>(kb::hd)); }
constexpr double forward_flops = 2.0 * kb::H * static_cast<double>(T) * T * kb::hd;

/// Sets Attention<Cuda>::tensor_cores from the benchmark's argument for its lifetime.
struct KernelSet {
  explicit KernelSet(benchmark::State const& state) { ops::Attention<kb::Cuda>::tensor_cores = state.range(0) != 0; }
  KernelSet(KernelSet const&) = delete;
  KernelSet& operator=(KernelSet const&) = delete;
  ~KernelSet() { ops::Attention<kb::Cuda>::tensor_cores = true; }
};
}  // namespace

static void BM_AttentionForward(benchmark::State& state) {
  if (!kb::need_gpu(state)) return;
  KernelSet const kernels(state);
  ops::Ctx<kb::Cuda> ctx;
  kb::DevArray<bf16> qkv(ctx, T * kb::QKV, 1), o(ctx, T * kb::C, 2);
  kb::DevArray<float> lse(ctx, kb::H * T, 3);
  bf16* q = qkv.data();
  kb::run_timed(state, ctx, 0, forward_flops, [&] {
    ops::Attention<kb::Cuda>::forward(ctx, shape(), q, q + kb::C, q + kb::C + kb::KV, o.data(), lse.data(), nullptr, scale());
  });
}
BENCHMARK(BM_AttentionForward)->ArgName("tensor_cores")->Arg(1)->Arg(0)->UseManualTime()->Unit(benchmark::kMillisecond);

static void BM_AttentionBackward(benchmark::State& state) {
  if (!kb::need_gpu(state)) return;
  KernelSet const kernels(state);
  ops::Ctx<kb::Cuda> ctx;
  kb::DevArray<bf16> qkv(ctx, T * kb::QKV, 1), o(ctx, T * kb::C, 2), d_o(ctx, T * kb::C, 3), d_qkv(ctx, T * kb::QKV, 4);
  kb::DevArray<float> lse(ctx, kb::H * T, 5);
  bf16* q = qkv.data();
  bf16* dq = d_qkv.data();
  ops::Attention<kb::Cuda>::forward(ctx, shape(), q, q + kb::C, q + kb::C + kb::KV, o.data(), lse.data(), nullptr, scale());
  kb::run_timed(state, ctx, 0, 2.5 * forward_flops, [&] {
    ops::Attention<kb::Cuda>::backward(ctx, shape(), q, q + kb::C, q + kb::C + kb::KV, o.data(), d_o.data(), lse.data(), dq,
                                       dq + kb::C, dq + kb::C + kb::KV, nullptr, scale());
  });
}
BENCHMARK(BM_AttentionBackward)->ArgName("tensor_cores")->Arg(1)->Arg(0)->UseManualTime()->Unit(benchmark::kMillisecond);
