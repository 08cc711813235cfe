// kumiki/optim/cpu/adamw.hpp: AdamW on the host: one fused OpenMP pass over a range of the arena per
// step, fp32 master weights for bf16 models.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <omp.h>

#include "kumiki/config.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/bf16.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/core/dtype.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/optim/adamw.hpp"
#include "kumiki/optim/detail/adamw_kernel.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace optim {

/// AdamW on the host: one fused OpenMP pass over the whole arena per step.
///
/// Update for each element, with t = steps taken including this one, lr_t = lr * lr_mult and
/// wd_t = wd * wd_mult of the element's tensor:
///   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
///   p = p (1 - lr_t wd_t) - lr_t / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
/// which is Megatron's (apex / Transformer Engine FusedAdam, adam_w_mode) p -= lr (m_hat / (sqrt(v_hat)
/// + eps) + wd p), written in the operation order of torch.optim.AdamW (decay p first, then the
/// Adam step with the bias corrections applied to the scalars): the parity test compares to torch.
/// Scalars (bias corrections, 1 - lr wd) are computed in double, elements in fp32.
///
/// bf16 models: keep fp32 master weights in an arena of `master_layout(model_layout)`, fp32
/// gradients in the same layout, and call `step(master, grads, lr, wd, &bf16_params)`: the pass
/// updates the master and writes its round-to-nearest-even bf16 copy into the model arena.
template <>
class AdamW<Cpu> {
 public:
  /// `layout` is the layout of the (fp32) parameters the optimizer updates; every tensor must be f32.
  /// Tensors get their group's multipliers; 1-D tensors and biases get wd_mult 0 (Megatron).
  /// `range` restricts every step to those elements (a ZeRO-1 shard) and the moments are kept for those
  /// elements only, in shard_layout(layout, range) (the whole range: `layout` itself); shard_to_whole
  /// and whole_to_shard move them to and from the whole layout a checkpoint holds.
  explicit AdamW(ArenaLayout const& layout, AdamWConfig config = {}, std::vector<ParamGroup> const& groups = {},
                 FlatRange range = {})
      : config_(config), range_(detail::clamp_range(range, layout.numel())), m_(shard_layout(layout, range_)), v_(m_.layout()),
        layout_(layout) {
    for (auto const& e : layout.entries())
      KUMIKI_CHECK(e.dtype == DType::f32, "AdamW updates fp32 tensors; '", e.name, "' is ", dtype_name(e.dtype),
                   " (keep fp32 master weights: optim::master_layout)");
    KUMIKI_CHECK(config.beta1 >= 0.0f && config.beta1 < 1.0f && config.beta2 >= 0.0f && config.beta2 < 1.0f,
                 "AdamW betas must lie in [0, 1), got ", config.beta1, ", ", config.beta2);
    KUMIKI_CHECK(config.eps > 0.0f && config.weight_decay >= 0.0f, "AdamW needs eps > 0 and weight_decay >= 0");
    hyper_.resize(layout.size());
    for (std::size_t i = 0; i < layout.size(); ++i) {
      ArenaEntry const& e = layout[i];
      TensorHyper h;
      for (auto const& g : groups)
        if (g.match && g.match(e)) {
          h = TensorHyper{g.lr_mult, g.wd_mult};
          break;
        }
      if (megatron_no_decay(e)) h.wd_mult = 0.0f;
      hyper_[i] = h;
    }
    // Flat element ranges of the tensors (padding between them is skipped), for splitting the pass
    // evenly over threads whatever the tensor sizes.
    first_.resize(layout.size() + 1, 0);
    for (std::size_t i = 0; i < layout.size(); ++i) first_[i + 1] = first_[i] + layout[i].numel();
    moment_base_ = detail::moment_bases(layout, m_.layout(), range_);  // element k of tensor i: m_[base + k]
  }

  AdamWConfig const& config() const { return config_; }
  /// The layout of the parameters (and gradients) the optimizer updates.
  ArenaLayout const& layout() const { return layout_; }
  /// Multipliers in effect for tensor `i` (after groups and the no-decay rule).
  TensorHyper const& hyper(std::size_t i) const { return hyper_.at(i); }
  /// The elements each step updates.
  FlatRange range() const { return range_; }
  TensorHyper const& hyper(std::string_view name) const { return hyper_.at(layout().index_of(name)); }
  /// Overrides one tensor's multipliers (no no-decay rule applied).
  void set_hyper(std::string_view name, TensorHyper h) { hyper_.at(layout().index_of(name)) = h; }

  /// Optimizer state: first and second moments (in shard_layout(layout(), range()): the parameters' own
  /// layout unless a range cuts it) and steps taken.
  Arena<Cpu> const& exp_avg() const { return m_; }
  Arena<Cpu> const& exp_avg_sq() const { return v_; }
  Arena<Cpu>& exp_avg() { return m_; }
  Arena<Cpu>& exp_avg_sq() { return v_; }
  std::int64_t step_count() const { return step_; }
  void set_step_count(std::int64_t s) {
    KUMIKI_CHECK(s >= 0, "AdamW step count must be >= 0, got ", s);
    step_ = s;
  }

  /// One update with the configured weight decay.
  void step(ops::Ctx<Cpu>& ctx, Arena<Cpu>& params, Arena<Cpu> const& grads, float lr) {
    step(ctx, params, grads, lr, config_.weight_decay);
  }

  /// One update with weight decay `wd` (e.g. from a sched::WeightDecaySchedule). When `model_bf16`
  /// is given, `params` are the fp32 master weights and the updated values are also written,
  /// rounded to nearest even, into that bf16 arena (same names and shapes, bf16 dtypes).
  void step(ops::Ctx<Cpu>& /*ctx*/, Arena<Cpu>& params, Arena<Cpu> const& grads, float lr, float wd,
            Arena<Cpu>* model_bf16 = nullptr) {
    ArenaLayout const& L = layout();
    KUMIKI_CHECK(params.layout() == L, "AdamW: the parameter arena's layout differs from the optimizer's");
    KUMIKI_CHECK(grads.layout() == L, "AdamW: the gradient arena's layout differs from the optimizer's");
    if (model_bf16 != nullptr) check_bf16_twin(model_bf16->layout());
    ++step_;
    // Per-tensor scalars in double, as torch computes them in Python floats.
    double const bc1 = 1.0 - std::pow(static_cast<double>(config_.beta1), static_cast<double>(step_));
    double const bc2 = 1.0 - std::pow(static_cast<double>(config_.beta2), static_cast<double>(step_));
    Scalars common;
    common.beta1 = config_.beta1;
    common.beta2 = config_.beta2;
    common.one_minus_beta1 = static_cast<float>(1.0 - static_cast<double>(config_.beta1));
    common.one_minus_beta2 = static_cast<float>(1.0 - static_cast<double>(config_.beta2));
    common.bc2_sqrt = static_cast<float>(std::sqrt(bc2));
    common.eps = config_.eps;
    scalars_.resize(L.size());
    for (std::size_t i = 0; i < L.size(); ++i) {
      double const lr_t = static_cast<double>(lr) * static_cast<double>(hyper_[i].lr_mult);
      double const wd_t = static_cast<double>(wd) * static_cast<double>(hyper_[i].wd_mult);
      scalars_[i] = common;
      scalars_[i].decay = static_cast<float>(1.0 - lr_t * wd_t);
      scalars_[i].neg_step_size = static_cast<float>(-(lr_t / bc1));
    }

    std::byte* const p_base = params.data();
    std::byte const* const g_base = grads.data();
    std::byte* const m_base = m_.data();
    std::byte* const v_base = v_.data();
    ArenaLayout const& PL = params.layout();
    ArenaLayout const& GL = grads.layout();
    std::byte* const b_base = model_bf16 ? model_bf16->data() : nullptr;
    ArenaLayout const* const BL = model_bf16 ? &model_bf16->layout() : nullptr;
    std::size_t const first = range_.begin, count = range_.end - range_.begin;

#pragma omp parallel
    {
      std::size_t const nt = static_cast<std::size_t>(omp_get_num_threads());
      std::size_t const t = static_cast<std::size_t>(omp_get_thread_num());
      // This thread's contiguous share of the range's elements, cut at 16-element boundaries.
      std::size_t lo = first + count * t / nt / 16 * 16;
      std::size_t hi = first + (t + 1 == nt ? count : count * (t + 1) / nt / 16 * 16);
      std::size_t i = static_cast<std::size_t>(std::upper_bound(first_.begin(), first_.end(), lo) - first_.begin()) - 1;
      for (; lo < hi && i < L.size(); ++i) {
        std::size_t const begin = std::max(lo, first_[i]) - first_[i];
        std::size_t const end = std::min(hi, first_[i + 1]) - first_[i];
        if (begin >= end) continue;
        // m_ and v_ share one layout; the index is taken whole, as the base may be negative on its own
        std::size_t const moments = static_cast<std::size_t>(moment_base_[i] + static_cast<std::int64_t>(begin)) * sizeof(float);
        bf16* const out = b_base ? reinterpret_cast<bf16*>(b_base + (*BL)[i].offset) : nullptr;
        detail::adamw_update(reinterpret_cast<float*>(p_base + PL[i].offset) + begin,
                             reinterpret_cast<float const*>(g_base + GL[i].offset) + begin,
                             reinterpret_cast<float*>(m_base + moments), reinterpret_cast<float*>(v_base + moments),
                             out ? out + begin : nullptr, end - begin, scalars_[i]);
        lo = first_[i] + end;
      }
    }
  }

 private:
  using Scalars = detail::AdamWScalars;

  void check_bf16_twin(ArenaLayout const& b) const {
    ArenaLayout const& L = layout();
    KUMIKI_CHECK(b.size() == L.size(), "AdamW: the bf16 model arena has ", b.size(), " tensors, the master ", L.size());
    for (std::size_t i = 0; i < L.size(); ++i) {
      KUMIKI_CHECK(b[i].name == L[i].name && b[i].shape == L[i].shape, "AdamW: bf16 model tensor ", i, " ('", b[i].name,
                   "') does not match master tensor '", L[i].name, "'");
      KUMIKI_CHECK(b[i].dtype == DType::bf16, "AdamW: model tensor '", b[i].name, "' is ", dtype_name(b[i].dtype),
                   ", expected bf16");
    }
  }

  AdamWConfig config_;
  FlatRange range_;
  Arena<Cpu> m_, v_;
  ArenaLayout layout_;
  std::int64_t step_ = 0;
  std::vector<TensorHyper> hyper_;
  std::vector<std::size_t> first_;  // element index of each tensor's first element (+ the total)
  std::vector<std::int64_t> moment_base_;    // per tensor: element index in m_ / v_ of its element 0
  std::vector<Scalars> scalars_;
};

namespace detail {
/// dst[i] = convert(src[i]) for every element of every tensor of two twin arenas (same names and
/// shapes; Src and Dst the element types each must hold). `what` names the caller in errors.
template <class Src, class Dst, class Convert>
void convert_twin(Arena<Cpu> const& src, Arena<Cpu>& dst, char const* what, Convert convert) {
  ArenaLayout const &S = src.layout(), &D = dst.layout();
  KUMIKI_CHECK(S.size() == D.size(), what, ": ", S.size(), " source tensors vs ", D.size(), " destination tensors");
  for (std::size_t i = 0; i < S.size(); ++i) {
    KUMIKI_CHECK(S[i].name == D[i].name && S[i].shape == D[i].shape && S[i].dtype == dtype_v<Src> &&
                     D[i].dtype == dtype_v<Dst>,
                 what, ": tensor '", S[i].name, "' must be ", dtype_name(dtype_v<Src>), " in the source and ",
                 dtype_name(dtype_v<Dst>), " with the same name and shape in the destination");
    Src const* const in = src.get<Src>(i).data();
    Dst* const out = dst.get<Dst>(i).data();
    auto const n = static_cast<std::int64_t>(S[i].numel());
#pragma omp parallel for schedule(static)
    for (std::int64_t k = 0; k < n; ++k) out[k] = convert(in[k]);
  }
}
}  // namespace detail

/// Copies a bf16 model arena into its fp32 master twin (exact: bf16 -> f32 widening).
inline void copy_to_master(Arena<Cpu> const& model_bf16, Arena<Cpu>& master) {
  detail::convert_twin<bf16, float>(model_bf16, master, "copy_to_master", [](bf16 x) { return x.to_float(); });
}

/// Rounds the fp32 master weights into the bf16 model arena (round to nearest, ties to even).
inline void cast_to_model(Arena<Cpu> const& master, Arena<Cpu>& model_bf16) {
  detail::convert_twin<float, bf16>(master, model_bf16, "cast_to_model", [](float x) { return bf16(x); });
}

}  // namespace optim
KUMIKI_NAMESPACE_END
