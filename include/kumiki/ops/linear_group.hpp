// kumiki/ops/linear_group.hpp: projections whose outputs sit side by side in one row (q | k | v,
// gate | up), run as one GEMM when their weights are adjacent in memory.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "kumiki/config.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/ops/linear.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

/// K bias-free projections of one input x (n, in) with weights W_j (out_j, in), written side by side:
/// y (n, sum_j out_j) = x [W_0; W_1; ...]^T. The model's arenas place each group's weights back to back
/// (q, k, v; gate, up; an expert's w1, w3), so the group is one (out_0 + ... , in) matrix and runs as
/// one GEMM; weights from elsewhere (a test, a user's arena) run as K GEMMs into the strided columns.
/// Generic over the backend: it only sequences `Linear<Backend>`.
template <class Backend, std::size_t K>
struct LinearGroup {
  std::array<std::int64_t, K> out{};  // out_j, the width of each projection

  std::int64_t total() const {
    std::int64_t t = 0;
    for (std::int64_t o : out) t += o;
    return t;
  }
  /// W_{j+1} starts where W_j ends, for every j.
  template <class T>
  bool adjacent(std::array<T*, K> const& w, std::int64_t in) const {
    for (std::size_t j = 0; j + 1 < K; ++j)
      if (w[j + 1] != w[j] + out[j] * in) return false;
    return true;
  }

  /// y (n, total) = x W^T, row stride of y `total`. T: activations, W: weights.
  template <class T, class W>
  void forward(Ctx<Backend>& ctx, T const* x, std::array<W*, K> const& w, T* y, std::int64_t n, std::int64_t in) const {
    std::int64_t const t = total();
    if (adjacent(w, in)) {
      Linear<Backend>::forward(ctx, x, w[0], y, n, in, t);
      return;
    }
    std::int64_t off = 0;
    for (std::size_t j = 0; j < K; ++j) {
      Linear<Backend>::forward(ctx, x, w[j], y + off, n, in, out[j], false, 0, t);
      off += out[j];
    }
  }

  /// d_x (n, in) = sum_j d_y_j W_j (written), d_W_j += d_y_j^T x, with d_y (n, total). One GEMM each
  /// when both the weights and their gradients are adjacent. T: activations, W: weights, G: weight
  /// gradients.
  template <class T, class W, class G>
  void backward(Ctx<Backend>& ctx, T const* d_y, T const* x, std::array<W*, K> const& w, std::array<G*, K> const& d_w,
                T* d_x, std::int64_t n, std::int64_t in) const {
    std::int64_t const t = total();
    if (adjacent(w, in) && adjacent(d_w, in)) {
      Linear<Backend>::backward_input(ctx, d_y, w[0], d_x, n, in, t);
      Linear<Backend>::backward_weight(ctx, d_y, x, d_w[0], n, in, t);
      return;
    }
    std::int64_t off = 0;
    for (std::size_t j = 0; j < K; ++j) {
      Linear<Backend>::backward_input(ctx, d_y + off, w[j], d_x, n, in, out[j], j > 0, t);
      off += out[j];
    }
    off = 0;
    for (std::size_t j = 0; j < K; ++j) {
      Linear<Backend>::backward_weight(ctx, d_y + off, x, d_w[j], n, in, out[j], t);
      off += out[j];
    }
  }
};

}  // namespace ops
KUMIKI_NAMESPACE_END
