// kumiki/ops/cpu/attention.hpp: CPU causal GQA attention, flash-attention style: 64 x 64 tiles of
// Eigen products, online softmax in the forward, recomputation from the saved log-sum-exp backward.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "kumiki/ops/cpu/detail/eigen.hpp"

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/ops/attention.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/ops/cpu/gemm.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

template <>
struct Attention<Cpu> {
  /// Tile edge along queries and keys.
  static constexpr std::int64_t block = 64;

  /// doc_start (B, T) for Megatron's reset-attention-mask: a document ends with (and includes) an
  /// end-of-document token; the next position starts a new one.
  static void document_starts(Ctx<Cpu>& /*ctx*/, std::int32_t const* tokens, std::int64_t batch, std::int64_t seq,
                              std::int32_t eod_token, std::int32_t* doc_start) {
    for (std::int64_t b = 0; b < batch; ++b) {
      std::int32_t start = 0;
      for (std::int64_t t = 0; t < seq; ++t) {
        doc_start[b * seq + t] = start;
        if (tokens[b * seq + t] == eod_token) start = static_cast<std::int32_t>(t + 1);
      }
    }
  }

  /// o = softmax(scale * q k^T + causal mask) v per head, query head h reading K/V group
  /// h / (heads / groups). lse (B, heads, T) receives the log-sum-exp of every score row.
  /// doc_start (B, T), optional: first position of each token's document (Megatron's
  /// reset-attention-mask); a query then sees keys in [doc_start[t], t] only. Parallel over
  /// (batch, head, query tile); each output is computed by one task in a fixed order.
  template <class T>
  static void forward(Ctx<Cpu>& /*ctx*/, AttentionShape const& s, T const* q, T const* k, T const* v, T* o, T* lse,
                      std::int32_t const* doc_start, T scale) {
    using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    using ops::cpu::detail::cmap;
    using ops::cpu::detail::mmap;
    std::int64_t const Tn = s.seq, hd = s.head_dim, hpg = s.heads / s.groups;
    std::int64_t const nblk = (Tn + block - 1) / block;
    std::int64_t const tasks = s.batch * s.heads * nblk;
    T const neg_inf = -std::numeric_limits<T>::infinity();
#pragma omp parallel
    {
      Mat S(block, block), P(block, block), acc(block, hd);
      Eigen::Array<T, Eigen::Dynamic, 1> m(block), l(block);
#pragma omp for schedule(dynamic, 1)
      for (std::int64_t task = 0; task < tasks; ++task) {
        // Largest tiles first: the last query tile of each (b, h) has the most key tiles.
        std::int64_t const ib = nblk - 1 - task % nblk, bh = task / nblk;
        std::int64_t const b = bh / s.heads, h = bh % s.heads, g = h / hpg;
        std::int64_t const i0 = ib * block, br = std::min(block, Tn - i0);
        std::int32_t const* ds = doc_start ? doc_start + b * Tn : nullptr;
        auto const Q = cmap(q + (b * Tn + i0) * s.ld_q + h * hd, br, hd, s.ld_q);
        m.head(br).setConstant(neg_inf);
        l.head(br).setZero();
        acc.topRows(br).setZero();
        std::int64_t const jb0 = ds ? ds[i0] / block : 0;
        for (std::int64_t jb = jb0; jb <= ib; ++jb) {
          std::int64_t const j0 = jb * block, bc = std::min(block, Tn - j0);
          auto const K = cmap(k + (b * Tn + j0) * s.ld_k + g * hd, bc, hd, s.ld_k);
          auto const V = cmap(v + (b * Tn + j0) * s.ld_v + g * hd, bc, hd, s.ld_v);
          auto Sb = S.topLeftCorner(br, bc);
          Sb.noalias() = scale * (Q * K.transpose());
          for (std::int64_t r = 0; r < br; ++r) {
            auto const [lo, hi] = valid_keys(i0 + r, j0, bc, ds);
            auto Pr = P.row(r).head(bc).array();
            if (hi <= lo) {
              Pr.setZero();
              continue;
            }
            T const mx = Sb.row(r).segment(lo, hi - lo).maxCoeff();
            T const m_new = std::max(m[r], mx);
            T const alpha = std::exp(m[r] - m_new);
            if (lo > 0) Pr.head(lo).setZero();
            if (hi < bc) Pr.tail(bc - hi).setZero();
            Pr.segment(lo, hi - lo) = (Sb.row(r).segment(lo, hi - lo).array() - m_new).exp();
            l[r] = l[r] * alpha + Pr.segment(lo, hi - lo).sum();
            m[r] = m_new;
            if (alpha != T(1)) acc.row(r) *= alpha;
          }
          acc.topRows(br).noalias() += P.topLeftCorner(br, bc) * V;
        }
        auto O = mmap(o + (b * Tn + i0) * s.ld_o + h * hd, br, hd, s.ld_o);
        T* lse_row = lse + (b * s.heads + h) * Tn + i0;
        for (std::int64_t r = 0; r < br; ++r) {
          O.row(r) = acc.row(r) / l[r];
          lse_row[r] = m[r] + std::log(l[r]);
        }
      }
    }
  }

  /// Gradients d_q, d_k, d_v (overwritten; same layouts and strides as q, k, v) from d_o, recomputing
  /// the probabilities tile by tile from lse. Parallel over (batch, query group): a task owns the
  /// d_k / d_v rows of its group and the d_q rows of the group's heads, and accumulates them in a
  /// fixed order, so the result is bitwise the same for any thread count.
  template <class T>
  static void backward(Ctx<Cpu>& /*ctx*/, AttentionShape const& s, T const* q, T const* k, T const* v, T const* o, T const* d_o,
                       T const* lse, T* d_q, T* d_k, T* d_v, std::int32_t const* doc_start, T scale) {
    using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    using ops::cpu::detail::cmap;
    using ops::cpu::detail::mmap;
    std::int64_t const Tn = s.seq, hd = s.head_dim, hpg = s.heads / s.groups;
    std::int64_t const nblk = (Tn + block - 1) / block;
    std::int64_t const tasks = s.batch * s.groups;
#pragma omp parallel
    {
      Mat S(block, block), P(block, block), dP(block, block), dk_acc(block, hd), dv_acc(block, hd);
      Eigen::Array<T, Eigen::Dynamic, 1> D(Tn);
#pragma omp for schedule(dynamic, 1)
      for (std::int64_t task = 0; task < tasks; ++task) {
        std::int64_t const b = task / s.groups, g = task % s.groups;
        std::int32_t const* ds = doc_start ? doc_start + b * Tn : nullptr;
        mmap(d_k + b * Tn * s.ld_k + g * hd, Tn, hd, s.ld_k).setZero();
        mmap(d_v + b * Tn * s.ld_v + g * hd, Tn, hd, s.ld_v).setZero();
        for (std::int64_t h = g * hpg; h < (g + 1) * hpg; ++h) {
          auto const Oh = cmap(o + b * Tn * s.ld_o + h * hd, Tn, hd, s.ld_o);
          auto const dOh = cmap(d_o + b * Tn * s.ld_o + h * hd, Tn, hd, s.ld_o);
          D = (Oh.array() * dOh.array()).rowwise().sum();
          mmap(d_q + b * Tn * s.ld_q + h * hd, Tn, hd, s.ld_q).setZero();
          T const* lse_h = lse + (b * s.heads + h) * Tn;
          for (std::int64_t jb = 0; jb < nblk; ++jb) {
            std::int64_t const j0 = jb * block, bc = std::min(block, Tn - j0);
            auto const K = cmap(k + (b * Tn + j0) * s.ld_k + g * hd, bc, hd, s.ld_k);
            auto const V = cmap(v + (b * Tn + j0) * s.ld_v + g * hd, bc, hd, s.ld_v);
            dk_acc.topRows(bc).setZero();
            dv_acc.topRows(bc).setZero();
            for (std::int64_t ib = jb; ib < nblk; ++ib) {
              std::int64_t const i0 = ib * block, br = std::min(block, Tn - i0);
              if (ds && ds[i0] >= j0 + bc) break;  // every later query's document starts after this tile
              auto const Q = cmap(q + (b * Tn + i0) * s.ld_q + h * hd, br, hd, s.ld_q);
              auto const dO = cmap(d_o + (b * Tn + i0) * s.ld_o + h * hd, br, hd, s.ld_o);
              auto dQ = mmap(d_q + (b * Tn + i0) * s.ld_q + h * hd, br, hd, s.ld_q);
              auto Sb = S.topLeftCorner(br, bc);
              auto Pb = P.topLeftCorner(br, bc);
              auto dPb = dP.topLeftCorner(br, bc);
              Sb.noalias() = scale * (Q * K.transpose());
              for (std::int64_t r = 0; r < br; ++r) {
                auto const [lo, hi] = valid_keys(i0 + r, j0, bc, ds);
                auto Pr = Pb.row(r).array();
                if (hi <= lo) {
                  Pr.setZero();
                  continue;
                }
                if (lo > 0) Pr.head(lo).setZero();
                if (hi < bc) Pr.tail(bc - hi).setZero();
                Pr.segment(lo, hi - lo) = (Sb.row(r).segment(lo, hi - lo).array() - lse_h[i0 + r]).exp();
              }
              dv_acc.topRows(bc).noalias() += Pb.transpose() * dO;
              dPb.noalias() = dO * V.transpose();
              for (std::int64_t r = 0; r < br; ++r)
                dPb.row(r).array() = Pb.row(r).array() * (dPb.row(r).array() - D[i0 + r]);  // dS
              dQ.noalias() += scale * (dPb * K);
              dk_acc.topRows(bc).noalias() += scale * (dPb.transpose() * Q);
            }
            mmap(d_k + (b * Tn + j0) * s.ld_k + g * hd, bc, hd, s.ld_k) += dk_acc.topRows(bc);
            mmap(d_v + (b * Tn + j0) * s.ld_v + g * hd, bc, hd, s.ld_v) += dv_acc.topRows(bc);
          }
        }
      }
    }
  }

 private:
  /// Keys [lo, hi) of the tile starting at j0 (width bc) that query position t may attend to.
  struct KeyRange {
    std::int64_t lo, hi;
  };
  static KeyRange valid_keys(std::int64_t t, std::int64_t j0, std::int64_t bc, std::int32_t const* ds) {
    std::int64_t const lo = ds ? std::max<std::int64_t>(0, ds[t] - j0) : 0;
    std::int64_t const hi = std::min<std::int64_t>(bc, t - j0 + 1);
    return {lo, hi};
  }
};

static_assert(AttentionOp<Attention<Cpu>, Cpu, float> && AttentionOp<Attention<Cpu>, Cpu, double>);

}  // namespace ops
KUMIKI_NAMESPACE_END
