// kumiki/moe/cpu/dispatch.hpp: CPU dropless dispatch (counting sort, gather, weighted combine).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/moe/dispatch.hpp"
#include "kumiki/ops/context.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace moe {

template <>
struct Dispatch<Cpu> {
  /// Stable counting sort of topk_idx (N, k) by expert: rows of expert e are offsets[e] ..
  /// offsets[e + 1] - 1, in token order.
  static void plan(ops::Ctx<Cpu>& /*ctx*/, std::int32_t const* topk_idx, std::int64_t N, std::int64_t k, std::int64_t E, std::int64_t* offsets,
                   std::int32_t* row_token, std::int32_t* token_row) {
    std::fill(offsets, offsets + E + 1, std::int64_t{0});
    for (std::int64_t i = 0; i < N * k; ++i) {
      KUMIKI_CHECK(topk_idx[i] >= 0 && topk_idx[i] < E, "dispatch: expert index ", topk_idx[i], " outside 0..", E - 1);
      ++offsets[topk_idx[i] + 1];
    }
    for (std::int64_t e = 0; e < E; ++e) offsets[e + 1] += offsets[e];
    std::vector<std::int64_t> cursor(offsets, offsets + E);
    for (std::int64_t t = 0; t < N; ++t)
      for (std::int64_t j = 0; j < k; ++j) {
        std::int64_t const row = cursor[topk_idx[t * k + j]]++;
        row_token[row] = static_cast<std::int32_t>(t);
        token_row[t * k + j] = static_cast<std::int32_t>(row);
      }
  }

  /// xg (rows, C) = x[row_token].
  template <class T>
  static void gather(ops::Ctx<Cpu>& /*ctx*/, T const* x, std::int32_t const* row_token, std::int64_t rows, std::int64_t C, T* xg) {
#pragma omp parallel for schedule(static)
    for (std::int64_t r = 0; r < rows; ++r)
      std::memcpy(xg + r * C, x + static_cast<std::int64_t>(row_token[r]) * C, static_cast<std::size_t>(C) * sizeof(T));
  }

  /// d_x (N, C) (+)= sum_j d_xg[token_row[t, j]], j in order: the backward of gather.
  template <class T>
  static void scatter_add(ops::Ctx<Cpu>& /*ctx*/, T const* d_xg, std::int32_t const* token_row, std::int64_t N, std::int64_t k, std::int64_t C,
                          T* d_x, bool accumulate) {
#pragma omp parallel for schedule(static)
    for (std::int64_t t = 0; t < N; ++t) {
      T* dx = d_x + t * C;
      if (!accumulate) std::fill(dx, dx + C, T(0));
      for (std::int64_t j = 0; j < k; ++j) {
        T const* src = d_xg + static_cast<std::int64_t>(token_row[t * k + j]) * C;
        for (std::int64_t c = 0; c < C; ++c) dx[c] += src[c];
      }
    }
  }

  /// out (N, C) = sum_j w[t, j] * y[token_row[t, j]].
  template <class T>
  static void combine(ops::Ctx<Cpu>& /*ctx*/, T const* y, std::int32_t const* token_row, T const* w, std::int64_t N, std::int64_t k,
                      std::int64_t C, T* out) {
#pragma omp parallel for schedule(static)
    for (std::int64_t t = 0; t < N; ++t) {
      T* o = out + t * C;
      std::fill(o, o + C, T(0));
      for (std::int64_t j = 0; j < k; ++j) {
        T const wj = w[t * k + j];
        T const* src = y + static_cast<std::int64_t>(token_row[t * k + j]) * C;
        for (std::int64_t c = 0; c < C; ++c) o[c] += wj * src[c];
      }
    }
  }

  /// Backward of combine: d_y[token_row[t, j]] = w[t, j] * d_out[t], d_w[t, j] = <d_out[t], y[row]>.
  template <class T>
  static void combine_backward(ops::Ctx<Cpu>& /*ctx*/, T const* d_out, T const* y, std::int32_t const* token_row, T const* w, std::int64_t N,
                               std::int64_t k, std::int64_t C, T* d_y, T* d_w) {
#pragma omp parallel for schedule(static)
    for (std::int64_t t = 0; t < N; ++t) {
      T const* g = d_out + t * C;
      for (std::int64_t j = 0; j < k; ++j) {
        std::int64_t const row = token_row[t * k + j];
        T const wj = w[t * k + j];
        T const* yr = y + row * C;
        T* dy = d_y + row * C;
        double dot = 0.0;
        for (std::int64_t c = 0; c < C; ++c) {
          dy[c] = wj * g[c];
          dot += static_cast<double>(g[c]) * static_cast<double>(yr[c]);
        }
        d_w[t * k + j] = static_cast<T>(dot);
      }
    }
  }
};

static_assert(DispatchOp<Dispatch<Cpu>, Cpu, float> && DispatchOp<Dispatch<Cpu>, Cpu, double>);

}  // namespace moe
KUMIKI_NAMESPACE_END
