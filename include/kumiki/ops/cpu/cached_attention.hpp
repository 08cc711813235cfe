// kumiki/ops/cpu/cached_attention.hpp: CPU attention of new query rows against a sequence's key/value
// cache (kumiki/ops/cached_attention.hpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kumiki/ops/cpu/detail/eigen.hpp"

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/ops/cached_attention.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/ops/cpu/gemm.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

template <>
struct CachedAttention<Cpu> {
  /// Per (query row, head): the scores against keys 0 .. past + row (one Eigen matrix-vector product),
  /// a max-subtracted softmax in T, and the weighted sum of the values, in key order. Parallel over
  /// (row, head); each output row is computed by one task in a fixed order, so results do not depend on
  /// the thread count. Decoding reads the whole cache once per token: the cost is memory, not arithmetic.
  template <class T>
  static void forward(Ctx<Cpu>& /*ctx*/, CachedAttentionShape const& s, T const* q, T const* k, T const* v, T* o,
                      T scale) {
    using ops::cpu::detail::cmap;
    using ops::cpu::detail::mmap;
    using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;
    std::int64_t const hd = s.head_dim, hpg = s.heads / s.groups, tasks = s.rows * s.heads;
#pragma omp parallel
    {
      Vec p(s.past + s.rows);
#pragma omp for schedule(static)
      for (std::int64_t task = 0; task < tasks; ++task) {
        std::int64_t const i = task / s.heads, h = task % s.heads, g = h / hpg, n = s.past + i + 1;
        auto const Q = cmap(q + i * s.ld_q + h * hd, 1, hd, s.ld_q);
        auto const K = cmap(k + g * hd, n, hd, s.ld_kv);
        auto const V = cmap(v + g * hd, n, hd, s.ld_kv);
        auto pn = p.head(n);
        pn.noalias() = scale * (K * Q.transpose());
        T const mx = pn.maxCoeff();
        pn = (pn.array() - mx).exp().matrix();
        T const sum = pn.sum();
        auto O = mmap(o + i * s.ld_o + h * hd, 1, hd, s.ld_o);
        O.noalias() = (pn.transpose() * V) / sum;
      }
    }
  }
};

static_assert(CachedAttentionOp<CachedAttention<Cpu>, Cpu, float> && CachedAttentionOp<CachedAttention<Cpu>, Cpu, double>);

}  // namespace ops
KUMIKI_NAMESPACE_END
