// kumiki/ops/cpu/lm_head_loss.hpp: CPU fused LM head + softmax cross-entropy (+ z-loss), forward and
// backward in one chunked pass over the tokens.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kumiki/ops/cpu/detail/eigen.hpp"

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/ops/cpu/gemm.hpp"
#include "kumiki/ops/lm_head_loss.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

template <>
struct LmHeadLoss<Cpu> {
  /// Elements of the scratch buffer `run` needs.
  static std::int64_t scratch_elems(LmHeadLossArgs const& a) { return std::min(a.chunk, a.tokens) * a.padded_vocab; }

  /// x (N, C) final hidden states, w (V_pad, C) LM head, targets (N), loss_mask (N, optional, >= 0).
  /// When d_x is given, writes d_x (N, C) and adds into d_w (V_pad, C) the gradient of
  /// grad_scale * loss (padded rows included: they are part of the softmax). logits (N, V_pad),
  /// optional, receives the raw logits. scratch: scratch_elems(a) elements.
  /// Nothing is ever pending on the CPU: run() computes every result at once, defer or not.
  static std::vector<LmHeadLossResult> collect(Ctx<Cpu>& /*ctx*/) { return {}; }

  template <class T>
  static LmHeadLossResult run(Ctx<Cpu>& /*ctx*/, LmHeadLossArgs const& a, T const* x, T const* w, std::int32_t const* targets,
                              T const* loss_mask, T* d_x, T* d_w, T* logits, T* scratch) {
    std::int64_t const N = a.tokens, C = a.hidden, V = a.vocab, Vp = a.padded_vocab;
    KUMIKI_CHECK(0 < V && V <= Vp, "vocab ", V, " must be in (0, padded_vocab ", Vp, "]");
    KUMIKI_CHECK(a.chunk > 0, "chunk must be positive");
    KUMIKI_CHECK((d_x == nullptr) == (d_w == nullptr), "d_x and d_w are both given or both null");
    std::vector<T> weight(static_cast<std::size_t>(N));
    double wsum = 0.0;
    for (std::int64_t i = 0; i < N; ++i) {
      std::int32_t const t = targets[i];
      if (t == a.ignore_index) {
        weight[i] = T(0);
        continue;
      }
      KUMIKI_CHECK(t >= 0 && t < V, "target ", t, " at position ", i, " is outside the vocabulary of ", V,
                   " (ignore index ", a.ignore_index, ")");
      T const mw = loss_mask ? loss_mask[i] : T(1);
      KUMIKI_CHECK(mw >= T(0), "loss mask must not be negative (position ", i, ")");
      weight[i] = mw;
      wsum += static_cast<double>(mw);
    }
    std::vector<double> ce_row(static_cast<std::size_t>(N), 0.0), z_row(static_cast<std::size_t>(N), 0.0);
    bool const grad = d_x != nullptr;
    T const zc = static_cast<T>(a.z_loss);
    T const gscale = wsum > 0.0 ? static_cast<T>(a.grad_scale / wsum) : T(0);
    for (std::int64_t c0 = 0; c0 < N; c0 += a.chunk) {
      std::int64_t const nc = std::min(a.chunk, N - c0);
      T const* xc = x + c0 * C;
      cpu::gemm<T>(false, true, nc, Vp, C, T(1), xc, C, w, C, T(0), scratch, Vp);  // (nc, V_pad)
      if (logits) std::memcpy(logits + c0 * Vp, scratch, sizeof(T) * static_cast<std::size_t>(nc * Vp));
#pragma omp parallel for schedule(static)
      for (std::int64_t r = 0; r < nc; ++r) {
        std::int64_t const i = c0 + r;
        T const wi = weight[i];
        if (wi == T(0) && !grad) continue;
        Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>> z(scratch + r * Vp, Vp);
        T const mx = z.maxCoeff();
        T const target_logit = wi != T(0) ? z[targets[i]] : T(0);
        z = (z - mx).exp();  // unnormalized probabilities, in place
        T const sum = z.sum();
        T const lse = mx + std::log(sum);
        if (wi != T(0)) {
          ce_row[i] = static_cast<double>(wi) * static_cast<double>(lse - target_logit);
          z_row[i] = static_cast<double>(wi) * static_cast<double>(lse) * static_cast<double>(lse);
        }
        if (grad) {
          // d logit_j = gscale * w_i * (p_j (1 + 2 zc lse) - [j == target]), over all V_pad ids.
          T const g = gscale * wi;
          z *= g * (T(1) + T(2) * zc * lse) / sum;
          if (wi != T(0)) z[targets[i]] -= g;
        }
      }
      if (grad) {
        cpu::gemm<T>(false, false, nc, C, Vp, T(1), scratch, Vp, w, C, T(0), d_x + c0 * C, C);  // d_x = dL W
        cpu::gemm<T>(true, false, Vp, C, nc, T(1), scratch, Vp, xc, C, T(1), d_w, C);           // d_W += dL^T x
      }
    }
    LmHeadLossResult res;
    res.weight = wsum;
    if (wsum > 0.0) {
      double ce = 0.0, zz = 0.0;
      for (std::int64_t i = 0; i < N; ++i) {
        ce += ce_row[i];
        zz += z_row[i];
      }
      res.ce = ce / wsum;
      res.z = a.z_loss * zz / wsum;
      res.loss = res.ce + res.z;
    }
    return res;
  }
};

static_assert(LmHeadLossOp<LmHeadLoss<Cpu>, Cpu, float> && LmHeadLossOp<LmHeadLoss<Cpu>, Cpu, double>);

}  // namespace ops
KUMIKI_NAMESPACE_END
