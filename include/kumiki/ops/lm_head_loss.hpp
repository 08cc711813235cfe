// kumiki/ops/lm_head_loss.hpp: fused LM head + softmax cross-entropy over the padded vocabulary, in token chunks.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/ops/context.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

/// Sizes and settings of one fused LM-head loss call.
struct LmHeadLossArgs {
  std::int64_t tokens = 0;          // N rows of x
  std::int64_t hidden = 0;          // C
  std::int64_t vocab = 0;           // real vocabulary V: targets must be < V
  std::int64_t padded_vocab = 0;    // rows of W (>= V): the softmax covers all of them (Megatron-LM)
  std::int64_t chunk = 256;         // tokens per chunk: the scratch holds chunk x padded_vocab logits
  std::int32_t ignore_index = -100; // targets equal to it contribute nothing
  double z_loss = 0.0;              // coefficient of mean(lse^2) added to the loss (PaLM z-loss)
  double grad_scale = 1.0;          // gradients are of grad_scale * loss (e.g. 1 / accumulation steps)
  bool defer = false;               // the backend may leave the result pending until collect() (below)
};

/// Loss over the tokens with positive weight (weight = loss-mask value, 0 for ignored targets):
/// ce = sum_i w_i (lse_i - logit_i[target_i]) / sum_i w_i; z = z_loss * sum_i w_i lse_i^2 / sum_i w_i;
/// loss = ce + z.
struct LmHeadLossResult {
  double loss = 0.0, ce = 0.0, z = 0.0, weight = 0.0;
  bool pending = false;  // LmHeadLossArgs::defer: the sums are still on the device (loss is NaN); see collect
  constexpr operator double() const { return loss; }  // NOLINT: `float l = model.forward(...)` reads the loss
};

/// The LmHeadLoss signature: scratch_elems (args), run (args, x, w, targets, loss_mask, d_x, d_w,
/// logits, scratch) -> LmHeadLossResult, and collect (ctx) -> the pending results, in call order. x, loss_mask, d_x and logits are activations, w a parameter,
/// d_w a weight gradient, and the logits chunk in `scratch` is of the statistics type (fp32 on a GPU).
template <class Op, class Backend, class X>
concept LmHeadLossOp = requires(Ctx<Backend>& ctx, LmHeadLossArgs const& a, act_of<X> const* c, act_of<X>* p,
                                param_of<X> const* w, grad_of<X>* dw, stat_of<X>* s, std::int32_t const* ci) {
  { Op::scratch_elems(a) } -> std::same_as<std::int64_t>;
  { Op::run(ctx, a, c, w, ci, c, p, dw, p, s) } -> std::same_as<LmHeadLossResult>;
  { Op::collect(ctx) } -> std::same_as<std::vector<LmHeadLossResult>>;
};

/// Fused output layer and loss: logits = x W^T chunk by chunk, softmax over the whole padded
/// vocabulary, cross-entropy with ignore index / loss mask, optional z-loss, and in the same pass the
/// gradients d_x and d_W. A full tokens x vocab tensor is never held.
///
/// Why the padded ids take part in the softmax: Megatron-LM computes its (vocab-parallel)
/// cross-entropy over the padded output layer, and Hugging Face's LlamaForCausalLM over all
/// `vocab_size` rows it is given. Training over the padded vocabulary pushes the padded logits down,
/// so the model trained here and the model exported to Hugging Face are the same function.
///
/// Deferred results: reading a loss computed on a device stalls the host until the device is done,
/// which a training step cannot afford once per micro-batch. With `LmHeadLossArgs::defer` a backend
/// may return a `pending` result (a GPU keeps its sums on the device and queues no host copy);
/// `collect(ctx)` then returns every pending result of that context, in call order, with one
/// synchronization, and forgets them. The CPU computes each result at once and never defers.
/// Specializations: ops/cpu/lm_head_loss.hpp (Cpu), ops/cuda/lm_head_loss.cuh (Cuda).
/// \tparam Backend device tag (`Cpu`, `Cuda`)
template <class Backend>
struct LmHeadLoss {
  static_assert(always_false<Backend>,
                "kumiki: no LmHeadLoss op for this backend; include kumiki/cpu.hpp (Cpu) or kumiki/cuda.cuh (Cuda)");
};

}  // namespace ops
KUMIKI_NAMESPACE_END
