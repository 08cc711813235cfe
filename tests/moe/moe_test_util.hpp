// tests/moe/moe_test_util.hpp: buffers for one MoE layer call and a naive per-token reference.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "kumiki/cpu.hpp"
#include "kumiki/ops/cpu/detail/eigen.hpp"

#include "kumiki/moe/moe_layer.hpp"

namespace kumiki_test {

/// 64-byte aligned storage, as arenas give: Eigen's elementwise kernels (SwiGLU's exp) run their
/// unaligned head in scalar code, so bitwise comparisons need buffers aligned the same way each run.
template <class T>
using AVec = std::vector<T, Eigen::aligned_allocator<T>>;

/// Owns every buffer a MoeLayer<Cfg, Cpu, T> call needs for N tokens; weights and gradients are
/// one vector each (router, then per expert w1 | w3 | w2, fused adjacent).
template <auto Cfg, class T>
struct MoeBuffers {
  static constexpr std::int64_t C = Cfg.hidden, E = Cfg.num_experts, K = Cfg.moe_top_k, Fe = Cfg.expert_ffn();
  std::int64_t N;
  std::int64_t gap;     // elements between w1 and w3 (0: adjacent, one fused GEMM)
  std::int64_t stride;  // elements from one expert to the next
  AVec<T> weights, grads;
  AVec<T> logits, probs, lse, topk_w, xg, gu, h, y;
  std::vector<std::int32_t> topk_idx, row_token, token_row;
  std::vector<std::int64_t> counts, offsets;
  AVec<T> d_y, d_h, d_gu, d_xg, d_w, d_logits;

  explicit MoeBuffers(std::int64_t n, std::int64_t w_gap = 0)
      : N(n), gap(w_gap), stride(3 * Fe * C + w_gap),
        weights(static_cast<std::size_t>(E * C + E * stride)), grads(weights.size()) {
    auto sz = [](std::int64_t k) { return static_cast<std::size_t>(k); };
    std::int64_t const R = N * K;
    logits.resize(sz(N * E)), probs.resize(sz(N * E)), lse.resize(sz(N)), topk_w.resize(sz(N * K));
    xg.resize(sz(R * C)), gu.resize(sz(R * 2 * Fe)), h.resize(sz(R * Fe)), y.resize(sz(R * C));
    topk_idx.resize(sz(N * K)), row_token.resize(sz(R)), token_row.resize(sz(N * K));
    counts.resize(sz(E)), offsets.resize(sz(E + 1));
    d_y.resize(sz(R * C)), d_h.resize(sz(R * Fe)), d_gu.resize(sz(R * 2 * Fe)), d_xg.resize(sz(R * C));
    d_w.resize(sz(N * K)), d_logits.resize(sz(N * E));
  }
  kumiki::moe::MoeWeights<T> view(AVec<T>& w) const {
    T* base = w.data() + E * C;
    return kumiki::moe::MoeWeights<T>{w.data(), base, base + Fe * C + gap, base + 2 * Fe * C + gap, stride};
  }
  kumiki::moe::MoeActivations<T> acts() {
    return kumiki::moe::MoeActivations<T>{logits.data(), probs.data(), lse.data(), topk_idx.data(), topk_w.data(),
                                  counts.data(), offsets.data(), row_token.data(), token_row.data(), xg.data(),
                                  gu.data(), h.data(), y.data()};
  }
  kumiki::moe::MoeScratch<T> scratch() {
    return kumiki::moe::MoeScratch<T>{d_y.data(), d_h.data(), d_gu.data(), d_xg.data(), d_w.data(), d_logits.data()};
  }
  T* router() { return weights.data(); }
  T* w1(std::int64_t e) { return weights.data() + E * C + e * stride; }
  T* w3(std::int64_t e) { return w1(e) + Fe * C + gap; }
  T* w2(std::int64_t e) { return w1(e) + 2 * Fe * C + gap; }
};

/// Naive per-token MoE forward in double: softmax, stable sort by probability, top-k, weights
/// (renormalized unless pre_softmax), experts applied one token at a time. Also the router losses.
template <auto Cfg, class T, class Vec>
std::vector<double> naive_moe(MoeBuffers<Cfg, T>& b, Vec const& x, double* aux, double* z) {
  using Bf = MoeBuffers<Cfg, T>;
  std::int64_t const N = b.N, C = Bf::C, E = Bf::E, K = Bf::K, Fe = Bf::Fe;
  std::vector<double> out(static_cast<std::size_t>(N * C), 0.0), psum(static_cast<std::size_t>(E), 0.0);
  std::vector<double> count(static_cast<std::size_t>(E), 0.0);
  double zsum = 0.0;
  for (std::int64_t t = 0; t < N; ++t) {
    T const* xt = x.data() + t * C;
    std::vector<double> l(static_cast<std::size_t>(E)), p(static_cast<std::size_t>(E));
    for (std::int64_t e = 0; e < E; ++e) {
      double s = 0.0;
      for (std::int64_t c = 0; c < C; ++c) s += double(b.router()[e * C + c]) * double(xt[c]);
      l[e] = s;
    }
    double const m = *std::max_element(l.begin(), l.end());
    double se = 0.0;
    for (double v : l) se += std::exp(v - m);
    for (std::int64_t e = 0; e < E; ++e) p[e] = std::exp(l[e] - m) / se, psum[e] += p[e];
    zsum += std::pow(m + std::log(se), 2);
    std::vector<std::int64_t> order(static_cast<std::size_t>(E));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](auto i, auto j) { return p[i] > p[j]; });
    double ps = 0.0;
    for (std::int64_t j = 0; j < K; ++j) ps += p[order[j]];
    for (std::int64_t j = 0; j < K; ++j) {
      std::int64_t const e = order[j];
      count[e] += 1;
      double const w = Cfg.moe_pre_softmax ? p[e] : p[e] / ps;
      std::vector<double> hh(static_cast<std::size_t>(Fe));
      for (std::int64_t f = 0; f < Fe; ++f) {
        double g = 0.0, u = 0.0;
        for (std::int64_t c = 0; c < C; ++c) g += double(b.w1(e)[f * C + c]) * xt[c], u += double(b.w3(e)[f * C + c]) * xt[c];
        hh[f] = g / (1.0 + std::exp(-g)) * u;
      }
      for (std::int64_t c = 0; c < C; ++c) {
        double s = 0.0;
        for (std::int64_t f = 0; f < Fe; ++f) s += double(b.w2(e)[c * Fe + f]) * hh[f];
        out[t * C + c] += w * s;
      }
    }
  }
  double a = 0.0;
  for (std::int64_t e = 0; e < E; ++e) a += count[e] * psum[e] / double(N);
  *aux = Cfg.moe_aux_loss_coeff * double(E) / (double(N) * double(K)) * a;
  *z = Cfg.moe_z_loss_coeff * zsum / double(N);
  return out;
}

/// Smallest gap, over tokens, between the k-th and (k+1)-th largest router logit: finite
/// differences are only meaningful when no perturbation can flip a selection.
inline double min_topk_gap(double const* logits, std::int64_t N, std::int64_t E, std::int64_t K) {
  double gap = 1e300;
  for (std::int64_t t = 0; t < N && K < E; ++t) {
    std::vector<double> l(logits + t * E, logits + (t + 1) * E);
    std::sort(l.begin(), l.end(), std::greater<>());
    gap = std::min(gap, l[K - 1] - l[K]);
  }
  return gap;
}

}  // namespace kumiki_test
