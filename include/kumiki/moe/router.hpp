// kumiki/moe/router.hpp: the token-choice top-k router of a mixture-of-experts layer (Mixtral /
// Megatron MoE): softmax probabilities, top-k selection and weights, the Switch load-balancing loss
// and the router z-loss, forward and backward.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/ops/context.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace moe {

/// Sizes and loss settings of one router call.
struct RouterArgs {
  std::int64_t tokens = 0;    // N
  std::int64_t experts = 0;   // E
  std::int64_t top_k = 0;     // k
  bool pre_softmax = false;   // weights = top-k of softmax over all E (no renormalization)
  double aux_coeff = 0.0;     // Switch load balancing: aux_coeff * E / (N k) * sum_e count_e * P_e
  double z_coeff = 0.0;       // router z-loss: z_coeff * mean_t logsumexp(logits_t)^2
};

/// The two router losses of one call (already multiplied by their coefficients).
struct RouterLosses {
  double aux = 0.0;
  double z = 0.0;
};

/// The Router signature: forward (args, logits, probs, lse, topk_idx, topk_w, counts) -> RouterLosses and
/// backward (args, grad_scale, probs, lse, topk_idx, topk_w, counts, d_topk_w, d_logits); every
/// floating-point buffer is of the statistics type (the router runs in fp32 beside bf16 activations).
template <class Op, class Backend, class X>
concept RouterOp = requires(ops::Ctx<Backend>& ctx, RouterArgs const& a, stat_of<X> const* c, stat_of<X>* p, std::int32_t const* ci,
                            std::int32_t* pi, std::int64_t const* cl, std::int64_t* pl, double g) {
  { Op::forward(ctx, a, c, p, p, pi, p, pl) } -> std::same_as<RouterLosses>;
  { Op::backward(ctx, a, g, c, c, ci, c, cl, c, p) } -> std::same_as<void>;
};

/// The router. Given logits (N, E) = x W_router^T (a Linear op), `forward` computes
///   probs (N, E) = softmax(logits), lse (N) = logsumexp(logits),
///   topk_idx (N, k): the k most probable experts in decreasing probability (ties: lower index),
///   topk_w (N, k): their probabilities renormalized to sum 1 (Mixtral; Megatron's default top-k then
///                  softmax is the same function), or unrenormalized with pre_softmax,
///   counts (E): assignments per expert,
/// and returns the load-balancing and z losses. Megatron's aux loss treats count_e as a constant, so
/// only P_e = mean_t probs[t, e] carries gradient. `backward` turns d_topk_w (N, k), the gradient of
/// the routing weights, into d_logits (N, E), adding the gradients of grad_scale * (aux + z).
/// Specializations: moe/cpu/router.hpp (Cpu).
/// \tparam Backend device tag (`Cpu`, `Cuda`)
template <class Backend>
struct Router {
  static_assert(always_false<Backend>,
                "kumiki: no MoE Router for this backend; include kumiki/cpu.hpp (Cpu) or kumiki/cuda.cuh (Cuda)");
};

}  // namespace moe
KUMIKI_NAMESPACE_END
