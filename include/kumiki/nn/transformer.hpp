// kumiki/nn/transformer.hpp: the LLaMA-style decoder (LLM-jp-4 family; Mixtral-style MoE when the
// config has experts) with parameters, gradients and activations each in one arena, Hugging Face
// Llama / Mixtral parameter names, Megatron init.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/core/dtype.hpp"
#include "kumiki/core/precision.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/models/hf_names.hpp"
#include "kumiki/models/transformer_config.hpp"
#include "kumiki/nn/activation_layout.hpp"
#include "kumiki/nn/transformer_block.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/ops/embedding.hpp"
#include "kumiki/ops/fill.hpp"
#include "kumiki/ops/lm_head_loss.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace nn {

/// Settings of one forward / forward-backward call.
struct StepOptions {
  bool recompute = false;             // keep only block inputs; rerun each block's forward in the backward
  bool light_recompute = false;       // keep neither ln1 nor the SwiGLU output of each block: recomputed in
                                      // the backward (elementwise, ~1% of a step); moot with `recompute`
  bool reset_attention_mask = false;  // document-causal attention (Megatron --reset-attention-mask)
  std::int32_t eod_token = -1;        // end-of-document id, required with reset_attention_mask
  std::int32_t ignore_index = -100;   // targets equal to it carry no loss
  std::int64_t loss_chunk = 256;      // tokens per LM-head chunk (scratch = chunk x padded vocab)
  double grad_scale = 1.0;            // gradients of grad_scale * loss accumulate (1 / accumulation steps)
  bool defer_loss = false;            // the loss may stay pending on the device until settle_losses()
  // Called during the backward with a byte offset of the gradient arena: from there to its end every
  // gradient of this call is written (the data-parallel overlap: dist::OverlappingCommunicator).
  std::function<void(std::size_t)> grads_ready;
  StepTimings* timings = nullptr;     // when set, per-op wall times are added to it
};

/// The losses of one call. `loss` (also the value of the implicit conversion) is the LM loss:
/// cross-entropy plus the LM head's z-loss. MoE models add, summed over layers, the load-balancing
/// loss `moe_aux` and the router z-loss `moe_z`; gradients are of `objective()`.
struct LossResult : ops::LmHeadLossResult {
  double moe_aux = 0.0;
  double moe_z = 0.0;
  constexpr double objective() const { return loss + moe_aux + moe_z; }
};

/// The decoder: embedding, Cfg.num_layers TransformerBlocks, final RMSNorm, untied LM head, fused loss.
/// \tparam Cfg     a TransformerConfig (compile-time; validated by models::check_config)
/// \tparam Backend device tag (`Cpu`, `Cuda`)
/// \tparam P       precision policy (core/precision.hpp) or one scalar type for every buffer: float;
///                 double for gradient checks
template <auto Cfg, class Backend = Cpu, class P = float>
  requires models::TransformerConfigLike<decltype(Cfg)>
class Transformer {
  static_assert(models::check_config<Cfg>());

 public:
  using precision = precision_t<P>;
  using param_type = typename precision::param;  // params()
  using grad_type = typename precision::grad;    // grads()
  using act_type = typename precision::act;      // activations, loss mask, logits
  using stat_type = typename precision::stat;    // rstd, lse, RoPE tables, router
  using Block = TransformerBlock<Cfg, Backend, precision>;
  using backend = Backend;
  static_assert(supports_precision_v<Backend, precision>,
                "kumiki: this backend's ops do not compute in this precision policy (the CPU takes "
                "Precision<float> or Precision<double>: one type for every buffer)");
  static constexpr auto config = Cfg;
  static constexpr std::int64_t L = Cfg.num_layers, C = Cfg.hidden, F = Cfg.ffn_hidden, H = Cfg.num_heads;
  static constexpr std::int64_t KV = Cfg.kv_width(), QKV = C + 2 * KV, V = Cfg.vocab_size, Vp = Cfg.padded_vocab();
  static constexpr std::int64_t hd = Cfg.head_dim();
  static constexpr std::int64_t E = Cfg.num_experts, K = Cfg.moe_top_k, Fe = Cfg.expert_ffn();
  /// Tensors per layer in the parameter arena: 2 norms, q, k, v, o and gate, up, down (dense) or the
  /// router and w1, w3, w2 of every expert (MoE).
  static constexpr std::size_t tensors_per_layer = Cfg.is_moe() ? 7 + 3 * static_cast<std::size_t>(E) : 9;

  /// Parameter names and shapes in Hugging Face Llama / Mixtral order, in the parameter type.
  /// Within a layer q, k, v and gate, up (an expert's w1, w3) are adjacent, so each group runs as one GEMM.
  static ArenaLayout param_layout() { return models::hf::param_layout(Cfg, dtype_v<param_type>); }
  /// The same names and shapes in the gradient type.
  static ArenaLayout grad_layout() { return models::hf::param_layout(Cfg, dtype_v<grad_type>); }

  Transformer() : params_(param_layout()), grads_(grad_layout()) {
    KUMIKI_CHECK(static_cast<std::int64_t>(params_.layout().numel()) == Cfg.num_params(),
                 "parameter layout disagrees with the config's parameter count");
  }

  /// The backend context the model's ops run with (empty on the CPU; the stream, cuBLASLt handle and
  /// scratch on CUDA).
  ops::Ctx<Backend>& context() { return ctx_; }
  Arena<Backend>& params() { return params_; }
  Arena<Backend> const& params() const { return params_; }
  Arena<Backend>& grads() { return grads_; }
  Arena<Backend> const& grads() const { return grads_; }
  /// Activations and backward scratch of the last (B, T, recompute) shape; empty before the first call.
  Arena<Backend> const& activations() const { return acts_; }

  /// Megatron initialization from Philox, stream = parameter index in the arena, so values depend on
  /// (seed, tensor index, element index) only, never on threads: N(0, init_std) for embeddings, LM head, q/k/v, gate/up; N(0, init_std /
  /// sqrt(2 L)) for o_proj and down_proj; 1 for the norms. MoE: the router N(0, init_std), expert w1 /
  /// w3 N(0, init_std) and w2 (down) N(0, init_std / sqrt(2 L)), as Megatron's MoE layers.
  void init(std::uint64_t seed) {
    for (std::size_t i = 0; i < params_.layout().size(); ++i)
      init_tensor(ctx_, params_.template get<param_type>(i).data(), params_.layout()[i], i, seed);
  }

  /// Tensor `i` of the parameter layout (entry `e`, in any element type) initialized as init(seed)
  /// does, into `p` of element type T (the trainer's fp32 master weights of a bf16 model: the normals
  /// rounded once to T).
  template <class T>
  static void init_tensor(ops::Ctx<Backend>& ctx, T* p, ArenaEntry const& e, std::size_t i, std::uint64_t seed) {
    double const std0 = Cfg.init_std, std_out = Cfg.init_std / std::sqrt(2.0 * static_cast<double>(L));
    auto const n = static_cast<std::int64_t>(e.numel());
    if (e.shape.rank() == 1)
      ops::Fill<Backend>::constant(ctx, p, n, T(1));
    else if (models::hf::is_output_projection(e.name))
      ops::Fill<Backend>::normal(ctx, p, n, seed, i, 0.0, std_out);
    else
      ops::Fill<Backend>::normal(ctx, p, n, seed, i, 0.0, std0);
  }

  /// Clears the gradients (padding included) before a new accumulation.
  void zero_grad() { ops::Fill<Backend>::zero_bytes(ctx_, grads_.data(), grads_.total_bytes()); }

  /// Loss of tokens (B, T) against targets (B, T), and, added into grads(), the gradient of
  /// opt.grad_scale * loss. loss_mask (B, T), optional, weights each target. Token ids must lie in
  /// [0, vocab_size): they are checked where a batch is made (data::fill_batch, data::check_token_ids),
  /// not here, since on a device backend `tokens` is device memory.
  LossResult forward_backward(std::int32_t const* tokens, std::int32_t const* targets, std::int64_t batch,
                              std::int64_t seq, StepOptions const& opt = {}, act_type const* loss_mask = nullptr) {
    return run(tokens, targets, batch, seq, opt, loss_mask, nullptr, true);
  }

  /// The losses of calls made with StepOptions::defer_loss, in `results` (those calls' return values,
  /// in call order), read from the device: on a GPU one copy and one synchronization for all of them
  /// instead of one per micro-batch, so that the host runs ahead of the device through a whole step.
  /// Every pending result of the model's context must be among `results`.
  void settle_losses(std::span<LossResult> results) {
    std::vector<ops::LmHeadLossResult> const read = ops::LmHeadLoss<Backend>::collect(ctx_);
    std::size_t k = 0;
    for (LossResult& r : results) {
      if (!r.pending) continue;
      KUMIKI_CHECK(k < read.size(), "settle_losses: more pending losses than the context holds (", read.size(), ")");
      static_cast<ops::LmHeadLossResult&>(r) = read[k++];
    }
    KUMIKI_CHECK(k == read.size(), "settle_losses: the context holds ", read.size(), " pending losses, ", k, " were given");
  }

  /// Loss only; logits (B, T, V_pad), optional, receives the raw LM-head outputs.
  LossResult forward(std::int32_t const* tokens, std::int32_t const* targets, std::int64_t batch, std::int64_t seq,
                     StepOptions const& opt = {}, act_type const* loss_mask = nullptr, act_type* logits = nullptr) {
    return run(tokens, targets, batch, seq, opt, loss_mask, logits, false);
  }

  /// Layer l's tensors of the parameter arena (U = param_type) or the gradient arena (U = grad_type).
  template <class U>
  static BlockWeights<U> block_weights(Arena<Backend> const& a, std::int64_t l) {
    std::size_t const base = 1 + static_cast<std::size_t>(l) * tensors_per_layer;
    auto at = [&](std::size_t k) { return a.template get<U>(base + k).data(); };
    if constexpr (Cfg.is_moe()) {
      BlockWeights<U> w{at(0), at(1), at(2), at(3), at(4), at(5), nullptr, nullptr, nullptr};
      // Every expert has the same three shapes, so consecutive experts are a constant stride apart.
      std::int64_t const stride = E > 1 ? at(10) - at(7) : 0;
      w.moe = moe::MoeWeights<U>{at(6), at(7), at(8), at(9), stride};
      return w;
    } else {
      return BlockWeights<U>{at(0), at(1), at(2), at(3), at(4), at(5), at(6), at(7), at(8)};
    }
  }

 private:
  /// Activation arena for (B, T) and the recompute setting: nn::activation_layout's plan.
  void ensure_activations(std::int64_t B, std::int64_t Tn, StepOptions const& opt) {
    std::int64_t const chunk = std::min(opt.loss_chunk, B * Tn);
    bool const light = opt.light_recompute && !opt.recompute;
    if (acts_.total_bytes() && B == B_ && Tn == T_ && opt.recompute == recompute_ && light == light_ && chunk == chunk_)
      return;
    ArenaLayout l = activation_layout(Cfg, B, Tn, opt.recompute, chunk, dtype_v<act_type>, dtype_v<stat_type>,
                                      host_alignment, light);
    // The old arena goes first (freeing device memory waits for the work using it), so that a new shape
    // (a stage with a longer sequence) never needs both at once: the memory plan counts one.
    acts_ = Arena<Backend>();
    acts_ = Arena<Backend>(std::move(l));
    B_ = B, T_ = Tn, recompute_ = opt.recompute, light_ = light, chunk_ = chunk;
    resolve_views();
    ops::Rope<Backend>::tables(ctx_, views_.rope_cos, views_.rope_sin, Tn, hd, Cfg.rope_base);
  }

  using A = act_type;
  using S = stat_type;

  /// Every activation and scratch pointer of the current arena, looked up by name once per shape
  /// (not per call): block inputs, each slot's saved activations, the shared scratch, the head.
  struct ActivationViews {
    std::vector<A*> x;                          // x.0 .. x.L: block inputs (x.L: the final norm's input)
    std::vector<BlockActivations<A, S>> blocks; // L slots, or 1 when recomputing
    BlockScratch<A, S> scratch{};
    A *final_ln = nullptr, *d_res = nullptr;
    S *final_rstd = nullptr, *loss_scratch = nullptr, *rope_cos = nullptr, *rope_sin = nullptr;
    std::int32_t* doc_start = nullptr;
  };

  void resolve_views() {
    ActivationViews v;
    for (std::int64_t i = 0; i <= L; ++i) v.x.push_back(act<A>("x." + std::to_string(i)));
    for (std::int64_t i = 0; i < (recompute_ ? 1 : L); ++i) v.blocks.push_back(lookup_block_acts(i));
    v.scratch = lookup_block_scratch();
    v.final_ln = act<A>("final.ln"), v.final_rstd = act<S>("final.rstd"), v.d_res = act<A>("scratch.d_res");
    v.loss_scratch = act<S>("scratch.loss"), v.rope_cos = act<S>("rope.cos"), v.rope_sin = act<S>("rope.sin");
    v.doc_start = act<std::int32_t>("doc_start");
    views_ = std::move(v);
  }

  template <class U>
  U* act(std::string_view name) const { return acts_.template get<U>(name).data(); }

  BlockActivations<A, S> const& block_acts(std::int64_t l) const {
    return views_.blocks[static_cast<std::size_t>(recompute_ ? 0 : l)];
  }

  BlockActivations<A, S> lookup_block_acts(std::int64_t slot) const {
    std::string const p = "block." + std::to_string(slot) + ".";
    // Light recomputation: ln1 and h in the backward scratch (activation_layout), rewritten there.
    A* const ln1 = light_ ? act<A>("scratch.tmp") : act<A>(p + "ln1");
    BlockActivations<A, S> a{ln1,                 act<S>(p + "rstd1"), act<A>(p + "qkv"), act<A>(p + "att"),
                             act<S>(p + "lse"),   act<A>(p + "x_mid"), act<A>(p + "ln2"), act<S>(p + "rstd2")};
    if constexpr (Cfg.is_moe()) {
      std::string const m = p + "moe.";
      a.moe = moe::MoeActivations<A, S>{act<S>(m + "logits"), act<S>(m + "probs"), act<S>(m + "lse"),
                                        act<std::int32_t>(m + "topk_idx"), act<S>(m + "topk_w"),
                                        act<std::int64_t>(m + "counts"), act<std::int64_t>(m + "offsets"),
                                        act<std::int32_t>(m + "row_token"), act<std::int32_t>(m + "token_row"),
                                        act<A>(m + "xg"), act<A>(m + "gu"), act<A>(m + "h"), act<A>(m + "y")};
    } else {
      a.gu = act<A>(p + "gu");
      a.h = light_ ? act<A>("scratch.d_h") : act<A>(p + "h");
    }
    return a;
  }

  BlockScratch<A, S> lookup_block_scratch() const {
    BlockScratch<A, S> s{act<A>("scratch.tmp"), act<A>("scratch.d_ln"), act<A>("scratch.d_att"),
                         act<A>("scratch.d_qkv")};
    if constexpr (Cfg.is_moe()) {
      s.moe = moe::MoeScratch<A, S>{act<A>("scratch.moe.d_y"),  act<A>("scratch.moe.d_h"),
                                    act<A>("scratch.moe.d_gu"), act<A>("scratch.moe.d_xg"),
                                    act<S>("scratch.moe.d_w"),  act<S>("scratch.moe.d_logits")};
    } else {
      s.d_h = act<A>("scratch.d_h");
      s.d_gu = act<A>("scratch.d_gu");
    }
    return s;
  }

  LossResult run(std::int32_t const* tokens, std::int32_t const* targets, std::int64_t B, std::int64_t Tn,
                 StepOptions const& opt, A const* loss_mask, A* logits, bool backward) {
    KUMIKI_CHECK(B > 0 && Tn > 0, "batch and sequence length must be positive, got ", B, " x ", Tn);
    KUMIKI_CHECK(Tn <= Cfg.max_seq_len, "sequence length ", Tn, " exceeds the config's max_seq_len ",
                 Cfg.max_seq_len);
    KUMIKI_CHECK(tokens != nullptr && targets != nullptr, "tokens and targets are required");
    KUMIKI_CHECK(opt.loss_chunk > 0, "loss_chunk must be positive, got ", opt.loss_chunk);
    KUMIKI_CHECK(!opt.reset_attention_mask || opt.eod_token >= 0,
                 "reset_attention_mask needs the end-of-document token id (eod_token)");
    std::int64_t const N = B * Tn;
    ensure_activations(B, Tn, opt);

    moe::RouterLosses router_losses;
    BlockContext<S> bc{B, Tn, views_.rope_cos, views_.rope_sin, nullptr, opt.timings, opt.grad_scale, &router_losses, light_};
    StepTimings* const tm = opt.timings;
    using detail::timed;
    if (opt.reset_attention_mask) {
      std::int32_t* ds = views_.doc_start;
      ops::Attention<Backend>::document_starts(ctx_, tokens, B, Tn, opt.eod_token, ds);
      bc.doc_start = ds;
    }
    BlockScratch<A, S> const& s = views_.scratch;
    auto x = [&](std::int64_t i) { return views_.x[static_cast<std::size_t>(i)]; };

    using Wt = param_type;
    using G = grad_type;
    Wt const* embed = params_.template get<Wt>(0).data();
    timed(tm, &StepTimings::embedding, [&] { ops::Embedding<Backend>::forward(ctx_, tokens, embed, x(0), N, C, Vp); });
    for (std::int64_t l = 0; l < L; ++l) Block::forward(ctx_, block_weights<Wt>(params_, l), block_acts(l), s, bc, x(l), x(l + 1));

    std::size_t const i_norm = 1 + static_cast<std::size_t>(L) * tensors_per_layer, i_head = i_norm + 1;
    Wt const* w_norm = params_.template get<Wt>(i_norm).data();
    Wt const* w_head = params_.template get<Wt>(i_head).data();
    timed(tm, &StepTimings::rmsnorm, [&] {
      ops::RmsNorm<Backend>::forward(ctx_, x(L), w_norm, views_.final_ln, views_.final_rstd, N, C, Cfg.rms_eps);
    });

    ops::LmHeadLossArgs la;
    la.tokens = N, la.hidden = C, la.vocab = V, la.padded_vocab = Vp, la.chunk = chunk_;
    la.ignore_index = opt.ignore_index, la.z_loss = Cfg.z_loss, la.grad_scale = opt.grad_scale;
    la.defer = opt.defer_loss;
    A* d_res = views_.d_res;
    A* d_ln = s.d_ln;
    LossResult res;
    res.moe_aux = router_losses.aux;
    res.moe_z = router_losses.z;
    timed(tm, &StepTimings::lm_head_loss, [&] {
      static_cast<ops::LmHeadLossResult&>(res) = ops::LmHeadLoss<Backend>::run(ctx_, la, views_.final_ln, w_head, targets, loss_mask, backward ? d_ln : nullptr,
                                          backward ? grads_.template get<G>(i_head).data() : nullptr, logits,
                                          views_.loss_scratch);
    });
    if (!backward) return res;

    timed(tm, &StepTimings::rmsnorm, [&] {
      ops::RmsNorm<Backend>::backward(ctx_, d_ln, x(L), w_norm, views_.final_rstd, d_res,
                                      grads_.template get<G>(i_norm).data(), N, C, false);
    });
    auto const ready = [&](std::size_t tensor) {
      if (opt.grads_ready) opt.grads_ready(grads_.layout().entries()[tensor].offset);
    };
    ready(i_norm);  // the final norm's and the LM head's
    bc.moe_losses = nullptr;  // a recomputed forward must not count its router losses twice
    for (std::int64_t l = L - 1; l >= 0; --l) {
      BlockWeights<Wt> const w = block_weights<Wt>(params_, l);
      BlockActivations<A, S> const& a = block_acts(l);
      if (recompute_) Block::forward(ctx_, w, a, s, bc, x(l), x(l + 1));
      Block::backward(ctx_, w, block_weights<G>(grads_, l), a, s, bc, x(l), d_res);
      ready(1 + static_cast<std::size_t>(l) * tensors_per_layer);
    }
    timed(tm, &StepTimings::embedding,
          [&] { ops::Embedding<Backend>::backward(ctx_, tokens, d_res, grads_.template get<G>(0).data(), N, C); });
    ready(0);
    return res;
  }

  ops::Ctx<Backend> ctx_;
  Arena<Backend> params_;
  Arena<Backend> grads_;
  Arena<Backend> acts_;
  ActivationViews views_;
  std::int64_t B_ = 0, T_ = 0, chunk_ = 0;
  bool recompute_ = false, light_ = false;
};

/// A model on a backend whose ops this translation unit lacks (ops::backend_available): a Cuda model
/// in a file the host compiler builds. It is empty, so the one error is this static_assert.
template <auto Cfg, class Backend, class P>
  requires models::TransformerConfigLike<decltype(Cfg)> && (!ops::backend_available<Backend>)
class Transformer<Cfg, Backend, P> {
  static_assert(always_false<Backend>,
                "kumiki: nn::Transformer<Cfg, Cuda> needs the CUDA backend, which this translation unit does "
                "not include: build the file with nvcc (a .cu file) and include kumiki/cuda.cuh");
};

}  // namespace nn
KUMIKI_NAMESPACE_END
