// kumiki/nn/transformer_block.hpp: one pre-norm LLaMA block (RMSNorm -> GQA attention with RoPE ->
// residual -> RMSNorm -> SwiGLU MLP or mixture of experts -> residual), forward and backward over
// caller-owned buffers.
#pragma once

#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/core/precision.hpp"
#include "kumiki/models/transformer_config.hpp"
#include "kumiki/moe/moe_layer.hpp"
#include "kumiki/ops/attention.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/ops/linear.hpp"
#include "kumiki/ops/linear_group.hpp"
#include "kumiki/ops/residual.hpp"
#include "kumiki/ops/residual_rmsnorm.hpp"
#include "kumiki/ops/rmsnorm.hpp"
#include "kumiki/ops/rope.hpp"
#include "kumiki/ops/swiglu.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace nn {

/// A block's weights (W = the parameter type) or their gradients (W = the gradient type), HF
/// layouts: q (C, C), k / v (KV, C), o (C, C), gate / up (F, C), down (C, F), norms (C); for an MoE
/// block `moe` instead of gate / up / down.
template <class W>
struct BlockWeights {
  W* ln1 = nullptr;
  W* q = nullptr;
  W* k = nullptr;
  W* v = nullptr;
  W* o = nullptr;
  W* ln2 = nullptr;
  W* gate = nullptr;
  W* up = nullptr;
  W* down = nullptr;
  moe::MoeWeights<W> moe{};
};

/// What a block's forward saves for its backward (N = B * T tokens): activations in A, row
/// statistics in S.
template <class A, class S = A>
struct BlockActivations {
  A* ln1 = nullptr;    // (N, C) normed input
  S* rstd1 = nullptr;  // (N)
  A* qkv = nullptr;    // (N, C + 2 KV): q | k | v per token, q and k after RoPE
  A* att = nullptr;    // (N, C) attention output before o_proj
  S* lse = nullptr;    // (B, H, T)
  A* x_mid = nullptr;  // (N, C) residual stream after attention
  A* ln2 = nullptr;    // (N, C)
  S* rstd2 = nullptr;  // (N)
  A* gu = nullptr;     // (N, 2F): gate | up per token (dense MLP)
  A* h = nullptr;      // (N, F) silu(gate) * up (dense MLP)
  moe::MoeActivations<A, S> moe{};  // MoE MLP
};

/// Scratch shared by all blocks during the backward (and the o/down projection outputs forward).
template <class A, class S = A>
struct BlockScratch {
  A* tmp = nullptr;    // (N, C)
  A* d_ln = nullptr;   // (N, C)
  A* d_att = nullptr;  // (N, C)
  A* d_qkv = nullptr;  // (N, C + 2 KV)
  A* d_h = nullptr;    // (N, F)
  A* d_gu = nullptr;   // (N, 2F)
  moe::MoeScratch<A, S> moe{};
};

/// Wall-clock seconds per op family, accumulated over calls when a step is given a StepTimings
/// (the per-op breakdown of bench_model). Host timers: on an asynchronous backend they would need a
/// synchronization, so they are off unless asked for.
struct StepTimings {
  double embedding = 0, rmsnorm = 0, linear = 0, rope = 0, attention = 0, swiglu = 0, residual = 0, lm_head_loss = 0;
  double moe = 0;  // a whole MoE MLP: router, dispatch, expert GEMMs and combine
  double total() const {
    return embedding + rmsnorm + linear + rope + attention + swiglu + residual + lm_head_loss + moe;
  }
};

namespace detail {
/// Runs f, adding its wall time to t->*field when t is given.
template <class F>
void timed(StepTimings* t, double StepTimings::*field, F&& f) {
  if (t == nullptr) {
    f();
    return;
  }
  auto const t0 = std::chrono::steady_clock::now();
  f();
  t->*field += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace detail

/// Per-call context: sizes, RoPE tables (statistics type S), optional document starts (reset
/// attention mask).
template <class S>
struct BlockContext {
  std::int64_t batch = 0, seq = 0;
  S const* rope_cos = nullptr;  // (T, head_dim / 2)
  S const* rope_sin = nullptr;
  std::int32_t const* doc_start = nullptr;  // (B, T) or null
  StepTimings* timings = nullptr;           // optional per-op wall times
  double grad_scale = 1.0;                  // scale of the router losses' gradients (MoE)
  moe::RouterLosses* moe_losses = nullptr;  // MoE: the forward adds its router losses here when set
  bool light = false;  // light recomputation: ln1 and (dense) h live in the scratch; the backward recomputes them
};

/// One transformer block of configuration `Cfg` on `Backend` in precision `P` (a Precision policy or
/// one scalar type; core/precision.hpp). Stateless: it only sequences ops over the pointers it is
/// given, so every backend runs the same block.
template <auto Cfg, class Backend = Cpu, class P = float>
  requires models::TransformerConfigLike<decltype(Cfg)>
struct TransformerBlock {
  static_assert(models::check_config<Cfg>());
  using precision = precision_t<P>;
  using W = typename precision::param;  // weights
  using A = typename precision::act;    // activations and their gradients
  using S = typename precision::stat;   // rstd, lse, RoPE tables
  using G = typename precision::grad;   // weight gradients
  static_assert(supports_precision_v<Backend, precision>,
                "kumiki: this backend's ops do not compute in this precision policy (the CPU takes "
                "Precision<float> or Precision<double>: one type for every buffer)");
  static constexpr std::int64_t C = Cfg.hidden, F = Cfg.ffn_hidden, H = Cfg.num_heads, Groups = Cfg.num_query_groups;
  static constexpr std::int64_t hd = Cfg.head_dim(), KV = Cfg.kv_width(), QKV = C + 2 * KV;

  using Linear = ops::Linear<Backend>;
  using Norm = ops::RmsNorm<Backend>;
  /// q | k | v and gate | up: one GEMM each when the weights are adjacent (the model's arenas).
  static constexpr ops::LinearGroup<Backend, 3> qkv_group{{C, KV, KV}};
  static constexpr ops::LinearGroup<Backend, 2> gate_up_group{{F, F}};
  struct NoMoe {};
  using Moe = std::conditional_t<(Cfg.num_experts > 0), moe::MoeLayer<Cfg, Backend, precision>, NoMoe>;

  static ops::AttentionShape attention_shape(BlockContext<S> const& bc) {
    return ops::AttentionShape{bc.batch, bc.seq, H, Groups, hd, QKV, QKV, QKV, C};
  }
  static S attention_scale() { return static_cast<S>(1.0 / std::sqrt(static_cast<double>(hd))); }

  /// x_out (N, C) = block(x_in); fills `a`. x_out must not alias x_in.
  static void forward(ops::Ctx<Backend>& ctx, BlockWeights<W> const& w, BlockActivations<A, S> const& a,
                      BlockScratch<A, S> const& s, BlockContext<S> const& bc, A const* x_in, A* x_out) {
    StepTimings* const tm = bc.timings;
    using detail::timed;
    forward_with(ctx, w, a, s, bc.batch * bc.seq, tm, bc.moe_losses, x_in, x_out, [&] {
      timed(tm, &StepTimings::rope, [&] {
        ops::Rope<Backend>::apply(ctx, a.qkv, bc.batch, bc.seq, H, hd, QKV, bc.rope_cos, bc.rope_sin, false);
        ops::Rope<Backend>::apply(ctx, a.qkv + C, bc.batch, bc.seq, Groups, hd, QKV, bc.rope_cos, bc.rope_sin, false);
      });
      timed(tm, &StepTimings::attention, [&] {
        ops::Attention<Backend>::forward(ctx, attention_shape(bc), a.qkv, a.qkv + C, a.qkv + C + KV, a.att, a.lse,
                                         bc.doc_start, attention_scale());
      });
    });
  }

  /// The block's forward with its attention core supplied: `attend()` turns a.qkv (q | k | v of each of
  /// the N rows, before RoPE) into a.att (N, C). `forward` above attends over (batch, seq); the
  /// generator (nn/generator.hpp) attends per sequence against its key/value cache. Everything else,
  /// norms, projections, residuals and the MLP, is this one sequence of ops.
  template <class Attend>
  static void forward_with(ops::Ctx<Backend>& ctx, BlockWeights<W> const& w, BlockActivations<A, S> const& a,
                           BlockScratch<A, S> const& s, std::int64_t N, StepTimings* tm, moe::RouterLosses* moe_losses,
                           A const* x_in, A* x_out, Attend&& attend) {
    using detail::timed;
    timed(tm, &StepTimings::rmsnorm, [&] { Norm::forward(ctx, x_in, w.ln1, a.ln1, a.rstd1, N, C, Cfg.rms_eps); });
    timed(tm, &StepTimings::linear, [&] {
      qkv_group.forward(ctx, a.ln1, std::array{w.q, w.k, w.v}, a.qkv, N, C);
    });
    attend();
    timed(tm, &StepTimings::linear, [&] { Linear::forward(ctx, a.att, w.o, s.tmp, N, C, C); });
    timed(tm, &StepTimings::rmsnorm, [&] {  // x_mid = x_in + o(att); ln2 = norm(x_mid), one op
      ops::ResidualRmsNorm<Backend>::forward(ctx, x_in, s.tmp, a.x_mid, w.ln2, a.ln2, a.rstd2, N, C, Cfg.rms_eps);
    });
    if constexpr (Cfg.num_experts > 0) {
      timed(tm, &StepTimings::moe, [&] {
        moe::RouterLosses const r = Moe::forward(ctx, w.moe, a.moe, a.ln2, N, s.tmp);
        if (moe_losses != nullptr) moe_losses->aux += r.aux, moe_losses->z += r.z;
      });
    } else {
      timed(tm, &StepTimings::linear, [&] {
        gate_up_group.forward(ctx, a.ln2, std::array{w.gate, w.up}, a.gu, N, C);
      });
      timed(tm, &StepTimings::swiglu, [&] { ops::SwiGlu<Backend>::forward(ctx, a.gu, a.gu + F, 2 * F, a.h, F, N, F); });
      timed(tm, &StepTimings::linear, [&] { Linear::forward(ctx, a.h, w.down, s.tmp, N, F, C); });
    }
    timed(tm, &StepTimings::residual, [&] { ops::Residual<Backend>::forward(ctx, a.x_mid, s.tmp, x_out, N * C); });
  }

  /// d_res holds dL/dx_out on entry and dL/dx_in on return; weight gradients accumulate into `d_w`.
  static void backward(ops::Ctx<Backend>& ctx, BlockWeights<W> const& w, BlockWeights<G> const& d_w,
                       BlockActivations<A, S> const& a, BlockScratch<A, S> const& s, BlockContext<S> const& bc,
                       A const* x_in, A* d_res) {
    std::int64_t const N = bc.batch * bc.seq;
    StepTimings* const tm = bc.timings;
    using detail::timed;
    // MLP: x_out = x_mid + down(swiglu(gate(ln2), up(ln2))), or the MoE MLP of ln2
    if constexpr (Cfg.num_experts > 0) {
      timed(tm, &StepTimings::moe,
            [&] { Moe::backward(ctx, w.moe, d_w.moe, a.moe, s.moe, a.ln2, N, d_res, s.d_ln, bc.grad_scale); });
    } else {
      // Light recomputation: a.h is s.d_h, rewritten from the saved gate / up outputs (the same op, the
      // same bits) for the down projection's weight gradient, before d_h overwrites it.
      if (bc.light)
        timed(tm, &StepTimings::swiglu, [&] { ops::SwiGlu<Backend>::forward(ctx, a.gu, a.gu + F, 2 * F, a.h, F, N, F); });
      timed(tm, &StepTimings::linear, [&] {
        Linear::backward_weight(ctx, d_res, a.h, d_w.down, N, F, C);
        Linear::backward_input(ctx, d_res, w.down, s.d_h, N, F, C);
      });
      timed(tm, &StepTimings::swiglu, [&] {
        ops::SwiGlu<Backend>::backward(ctx, s.d_h, F, a.gu, a.gu + F, 2 * F, s.d_gu, s.d_gu + F, 2 * F, N, F);
      });
      timed(tm, &StepTimings::linear, [&] {
        gate_up_group.backward(ctx, s.d_gu, a.ln2, std::array{w.gate, w.up}, std::array{d_w.gate, d_w.up}, s.d_ln, N, C);
      });
    }
    timed(tm, &StepTimings::rmsnorm,
          [&] { Norm::backward(ctx, s.d_ln, a.x_mid, w.ln2, a.rstd2, d_res, d_w.ln2, N, C, true); });
    // Attention: x_mid = x_in + o(attn(rope(q(ln1)), rope(k(ln1)), v(ln1)))
    timed(tm, &StepTimings::linear, [&] {
      Linear::backward_input(ctx, d_res, w.o, s.d_att, N, C, C);
      Linear::backward_weight(ctx, d_res, a.att, d_w.o, N, C, C);
    });
    timed(tm, &StepTimings::attention, [&] {
      ops::Attention<Backend>::backward(ctx, attention_shape(bc), a.qkv, a.qkv + C, a.qkv + C + KV, a.att, s.d_att,
                                        a.lse, s.d_qkv, s.d_qkv + C, s.d_qkv + C + KV, bc.doc_start,
                                        attention_scale());
    });
    timed(tm, &StepTimings::rope, [&] {
      ops::Rope<Backend>::apply(ctx, s.d_qkv, bc.batch, bc.seq, H, hd, QKV, bc.rope_cos, bc.rope_sin, true);
      ops::Rope<Backend>::apply(ctx, s.d_qkv + C, bc.batch, bc.seq, Groups, hd, QKV, bc.rope_cos, bc.rope_sin, true);
    });
    // Light recomputation: a.ln1 is s.tmp, free in the backward; the norm rerun gives the same bits.
    if (bc.light)
      timed(tm, &StepTimings::rmsnorm, [&] { Norm::forward(ctx, x_in, w.ln1, a.ln1, a.rstd1, N, C, Cfg.rms_eps); });
    timed(tm, &StepTimings::linear, [&] {
      qkv_group.backward(ctx, s.d_qkv, a.ln1, std::array{w.q, w.k, w.v}, std::array{d_w.q, d_w.k, d_w.v}, s.d_ln, N, C);
    });
    timed(tm, &StepTimings::rmsnorm, [&] { Norm::backward(ctx, s.d_ln, x_in, w.ln1, a.rstd1, d_res, d_w.ln1, N, C, true); });
  }
};

}  // namespace nn
KUMIKI_NAMESPACE_END
