// kumiki/moe/moe_layer.hpp: a mixture-of-experts MLP (Mixtral / Megatron MoE, dropless token-choice
// top-k) sequenced from the router, the dispatch and the SwiGLU expert FFNs, forward and backward
// over caller-owned buffers. The transformer block uses it in place of the dense MLP when
// Cfg.num_experts > 0.
#pragma once

#include <array>
#include <cstdint>
#include <limits>

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/core/precision.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/models/transformer_config.hpp"
#include "kumiki/moe/dispatch.hpp"
#include "kumiki/moe/router.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/ops/linear.hpp"
#include "kumiki/ops/linear_group.hpp"
#include "kumiki/ops/swiglu.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace moe {

/// An MoE layer's weights (W = the parameter type) or gradients (W = the gradient type), HF Mixtral layouts: router (E, C); expert e's w1 (gate,
/// (Fe, C)), w3 (up, (Fe, C)) and w2 (down, (C, Fe)) at w1 + e * stride, w3 + e * stride, w2 + e * stride.
template <class W>
struct MoeWeights {
  W* router = nullptr;
  W* w1 = nullptr;
  W* w3 = nullptr;
  W* w2 = nullptr;
  std::int64_t stride = 0;  // elements from one expert's tensors to the next one's
};

/// What the forward saves for the backward (N tokens, R = N * k routed rows): the expert path in the
/// activation type A, the router in the statistics type S (Megatron's --moe-router-dtype fp32).
template <class A, class S = A>
struct MoeActivations {
  S* logits = nullptr;               // (N, E) router logits
  S* probs = nullptr;                // (N, E) softmax
  S* lse = nullptr;                  // (N) logsumexp of the logits
  std::int32_t* topk_idx = nullptr;  // (N, k)
  S* topk_w = nullptr;               // (N, k) routing weights
  std::int64_t* counts = nullptr;    // (E) assignments per expert
  std::int64_t* offsets = nullptr;   // (E + 1) sorted-row ranges per expert
  std::int32_t* row_token = nullptr; // (R)
  std::int32_t* token_row = nullptr; // (N, k)
  A* xg = nullptr;                   // (R, C) gathered inputs
  A* gu = nullptr;                   // (R, 2 Fe) w1 | w3 outputs
  A* h = nullptr;                    // (R, Fe) silu(w1 x) * w3 x
  A* y = nullptr;                    // (R, C) expert outputs
};

/// Backward scratch: expert path in A, router gradients in S.
template <class A, class S = A>
struct MoeScratch {
  A* d_y = nullptr;       // (R, C)
  A* d_h = nullptr;       // (R, Fe)
  A* d_gu = nullptr;      // (R, 2 Fe)
  A* d_xg = nullptr;      // (R, C)
  S* d_w = nullptr;       // (N, k)
  S* d_logits = nullptr;  // (N, E)
};

/// The MoE MLP of configuration `Cfg` on `Backend` in precision `P` (a Precision policy or one scalar
/// type). Stateless, like TransformerBlock.
template <auto Cfg, class Backend = Cpu, class P = float>
  requires models::TransformerConfigLike<decltype(Cfg)>
struct MoeLayer {
  static_assert(Cfg.num_experts > 0, "kumiki: MoeLayer needs a configuration with num_experts > 0");
  using precision = precision_t<P>;
  using W = typename precision::param;
  using A = typename precision::act;
  using S = typename precision::stat;
  using G = typename precision::grad;
  static_assert(supports_precision_v<Backend, precision>,
                "kumiki: this backend's ops do not compute in this precision policy (the CPU takes "
                "Precision<float> or Precision<double>: one type for every buffer)");
  static constexpr std::int64_t C = Cfg.hidden, E = Cfg.num_experts, K = Cfg.moe_top_k, Fe = Cfg.expert_ffn();

  using Linear = ops::Linear<Backend>;

  static RouterArgs router_args(std::int64_t N) {
    return RouterArgs{N, E, K, Cfg.moe_pre_softmax, Cfg.moe_aux_loss_coeff, Cfg.moe_z_loss_coeff};
  }
  /// An expert's w1 | w3 (gate | up): one GEMM when adjacent (the model's arenas).
  static constexpr ops::LinearGroup<Backend, 2> w13_group{{Fe, Fe}};

  /// out (N, C) = sum over each token's k experts of weight * expert(x); returns the router losses.
  static RouterLosses forward(ops::Ctx<Backend>& ctx, MoeWeights<W> const& w, MoeActivations<A, S> const& a, A const* x,
                              std::int64_t N, A* out) {
    KUMIKI_CHECK(N * K < std::numeric_limits<std::int32_t>::max(), "MoE layer: ", N, " tokens x top-", K,
                 " routed rows exceed the 32-bit row index");
    Linear::forward(ctx, x, w.router, a.logits, N, C, E);
    RouterLosses const losses = Router<Backend>::forward(ctx, router_args(N), a.logits, a.probs, a.lse, a.topk_idx, a.topk_w, a.counts);
    Dispatch<Backend>::plan(ctx, a.topk_idx, N, K, E, a.offsets, a.row_token, a.token_row);
    std::int64_t const R = N * K;
    Dispatch<Backend>::gather(ctx, x, a.row_token, R, C, a.xg);
    for_each_expert(a, [&](std::int64_t e, std::int64_t r0, std::int64_t n) {
      w13_group.forward(ctx, a.xg + r0 * C, std::array{w.w1 + e * w.stride, w.w3 + e * w.stride}, a.gu + r0 * 2 * Fe, n, C);
    });
    ops::SwiGlu<Backend>::forward(ctx, a.gu, a.gu + Fe, 2 * Fe, a.h, Fe, R, Fe);
    for_each_expert(a, [&](std::int64_t e, std::int64_t r0, std::int64_t n) {
      Linear::forward(ctx, a.h + r0 * Fe, w.w2 + e * w.stride, a.y + r0 * C, n, Fe, C);
    });
    Dispatch<Backend>::combine(ctx, a.y, a.token_row, a.topk_w, N, K, C, out);
    return losses;
  }

  /// d_x (N, C) = dL/dx for d_out = dL/dout, including the router losses' gradients scaled by
  /// grad_scale; weight gradients accumulate into d_w.
  static void backward(ops::Ctx<Backend>& ctx, MoeWeights<W> const& w, MoeWeights<G> const& d_w,
                       MoeActivations<A, S> const& a, MoeScratch<A, S> const& s, A const* x, std::int64_t N,
                       A const* d_out, A* d_x, double grad_scale) {
    std::int64_t const R = N * K;
    Dispatch<Backend>::combine_backward(ctx, d_out, a.y, a.token_row, a.topk_w, N, K, C, s.d_y, s.d_w);
    for_each_expert(a, [&](std::int64_t e, std::int64_t r0, std::int64_t n) {
      Linear::backward_input(ctx, s.d_y + r0 * C, w.w2 + e * w.stride, s.d_h + r0 * Fe, n, Fe, C);
      Linear::backward_weight(ctx, s.d_y + r0 * C, a.h + r0 * Fe, d_w.w2 + e * d_w.stride, n, Fe, C);
    });
    ops::SwiGlu<Backend>::backward(ctx, s.d_h, Fe, a.gu, a.gu + Fe, 2 * Fe, s.d_gu, s.d_gu + Fe, 2 * Fe, R, Fe);
    for_each_expert(a, [&](std::int64_t e, std::int64_t r0, std::int64_t n) {
      A const* dgu = s.d_gu + r0 * 2 * Fe;
      A const* xg = a.xg + r0 * C;
      A* dxg = s.d_xg + r0 * C;
      w13_group.backward(ctx, dgu, xg, std::array{w.w1 + e * w.stride, w.w3 + e * w.stride},
                         std::array{d_w.w1 + e * d_w.stride, d_w.w3 + e * d_w.stride}, dxg, n, C);
    });
    Dispatch<Backend>::scatter_add(ctx, s.d_xg, a.token_row, N, K, C, d_x, false);
    Router<Backend>::backward(ctx, router_args(N), grad_scale, a.probs, a.lse, a.topk_idx, a.topk_w, a.counts, s.d_w,
                              s.d_logits);
    Linear::backward_input(ctx, s.d_logits, w.router, d_x, N, C, E, true);
    Linear::backward_weight(ctx, s.d_logits, x, d_w.router, N, C, E);
  }

 private:
  /// Calls f(expert, first sorted row, rows) for every expert that received tokens. The offsets live
  /// in host memory on the CPU backend; a device backend keeps a host copy of them.
  template <class F>
  static void for_each_expert(MoeActivations<A, S> const& a, F&& f) {
    for (std::int64_t e = 0; e < E; ++e) {
      std::int64_t const r0 = a.offsets[e], n = a.offsets[e + 1] - r0;
      if (n > 0) f(e, r0, n);
    }
  }
};

}  // namespace moe
KUMIKI_NAMESPACE_END
