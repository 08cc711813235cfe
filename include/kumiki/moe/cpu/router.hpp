// kumiki/moe/cpu/router.hpp: CPU top-k router (softmax, selection, load-balancing and z losses).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/moe/router.hpp"
#include "kumiki/ops/context.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace moe {

template <>
struct Router<Cpu> {
  template <class T>
  static RouterLosses forward(ops::Ctx<Cpu>& /*ctx*/, RouterArgs const& a, T const* logits, T* probs, T* lse, std::int32_t* topk_idx, T* topk_w,
                              std::int64_t* counts) {
    std::int64_t const N = a.tokens, E = a.experts, K = a.top_k;
    KUMIKI_CHECK(N >= 0 && E > 0 && K >= 1 && K <= E, "router: bad sizes N=", N, " E=", E, " k=", K);
#pragma omp parallel for schedule(static)
    for (std::int64_t t = 0; t < N; ++t) {
      T const* l = logits + t * E;
      T* p = probs + t * E;
      T m = l[0];
      for (std::int64_t e = 1; e < E; ++e) m = std::max(m, l[e]);
      double sum = 0.0;
      for (std::int64_t e = 0; e < E; ++e) sum += std::exp(static_cast<double>(l[e] - m));
      lse[t] = static_cast<T>(static_cast<double>(m) + std::log(sum));
      for (std::int64_t e = 0; e < E; ++e) p[e] = static_cast<T>(std::exp(static_cast<double>(l[e] - m)) / sum);
      // Top-k by repeated selection (k is small): strictly greater wins, so ties go to the lower index.
      std::int32_t* idx = topk_idx + t * K;
      for (std::int64_t j = 0; j < K; ++j) {
        std::int64_t best = -1;
        for (std::int64_t e = 0; e < E; ++e) {
          bool taken = false;
          for (std::int64_t i = 0; i < j; ++i) taken = taken || idx[i] == e;
          if (!taken && (best < 0 || l[e] > l[best])) best = e;
        }
        idx[j] = static_cast<std::int32_t>(best);
      }
      T* w = topk_w + t * K;
      if (a.pre_softmax) {
        for (std::int64_t j = 0; j < K; ++j) w[j] = p[idx[j]];
      } else {  // softmax over the chosen logits, i.e. their probabilities renormalized
        double s = 0.0;
        for (std::int64_t j = 0; j < K; ++j) s += std::exp(static_cast<double>(l[idx[j]] - l[idx[0]]));
        for (std::int64_t j = 0; j < K; ++j) w[j] = static_cast<T>(std::exp(static_cast<double>(l[idx[j]] - l[idx[0]])) / s);
      }
    }
    // Serial reductions in a fixed order: bitwise independent of the thread count.
    std::fill(counts, counts + E, std::int64_t{0});
    for (std::int64_t i = 0; i < N * K; ++i) ++counts[topk_idx[i]];
    RouterLosses out;
    if (N == 0) return out;
    if (a.aux_coeff != 0.0) {
      std::vector<double> psum(static_cast<std::size_t>(E), 0.0);
      for (std::int64_t t = 0; t < N; ++t)
        for (std::int64_t e = 0; e < E; ++e) psum[e] += static_cast<double>(probs[t * E + e]);
      double s = 0.0;
      for (std::int64_t e = 0; e < E; ++e) s += static_cast<double>(counts[e]) * (psum[e] / static_cast<double>(N));
      out.aux = a.aux_coeff * static_cast<double>(E) / (static_cast<double>(N) * static_cast<double>(K)) * s;
    }
    if (a.z_coeff != 0.0) {
      double s = 0.0;
      for (std::int64_t t = 0; t < N; ++t) s += static_cast<double>(lse[t]) * static_cast<double>(lse[t]);
      out.z = a.z_coeff * s / static_cast<double>(N);
    }
    return out;
  }

  template <class T>
  static void backward(ops::Ctx<Cpu>& /*ctx*/, RouterArgs const& a, double grad_scale, T const* probs, T const* lse,
                       std::int32_t const* topk_idx, T const* topk_w, std::int64_t const* counts, T const* d_topk_w,
                       T* d_logits) {
    std::int64_t const N = a.tokens, E = a.experts, K = a.top_k;
    if (N == 0) return;
    // d aux / d probs[t, e] = aux_coeff * E * count_e / (N^2 k): the same for every token.
    double const aux_scale = grad_scale * a.aux_coeff * static_cast<double>(E) /
                             (static_cast<double>(N) * static_cast<double>(N) * static_cast<double>(K));
    double const z_scale = grad_scale * a.z_coeff * 2.0 / static_cast<double>(N);
#pragma omp parallel for schedule(static)
    for (std::int64_t t = 0; t < N; ++t) {
      T const* p = probs + t * E;
      std::int32_t const* idx = topk_idx + t * K;
      T const* w = topk_w + t * K;
      T const* dw = d_topk_w + t * K;
      T* dl = d_logits + t * E;
      // g: gradient with respect to probs (pre-softmax weights and aux loss) -> softmax backward.
      // Renormalized weights are a softmax over the k chosen logits: their backward is separate.
      double gp = 0.0;  // sum_e p_e g_e
      for (std::int64_t e = 0; e < E; ++e) dl[e] = static_cast<T>(aux_scale * static_cast<double>(counts[e]));
      if (a.pre_softmax)
        for (std::int64_t j = 0; j < K; ++j) dl[idx[j]] += dw[j];
      for (std::int64_t e = 0; e < E; ++e) gp += static_cast<double>(p[e]) * static_cast<double>(dl[e]);
      double const zc = z_scale * static_cast<double>(lse[t]);
      for (std::int64_t e = 0; e < E; ++e)
        dl[e] = static_cast<T>(static_cast<double>(p[e]) * (static_cast<double>(dl[e]) - gp + zc));
      if (!a.pre_softmax) {
        double wg = 0.0;
        for (std::int64_t j = 0; j < K; ++j) wg += static_cast<double>(w[j]) * static_cast<double>(dw[j]);
        for (std::int64_t j = 0; j < K; ++j)
          dl[idx[j]] += static_cast<T>(static_cast<double>(w[j]) * (static_cast<double>(dw[j]) - wg));
      }
    }
  }
};

static_assert(RouterOp<Router<Cpu>, Cpu, float> && RouterOp<Router<Cpu>, Cpu, double>);

}  // namespace moe
KUMIKI_NAMESPACE_END
