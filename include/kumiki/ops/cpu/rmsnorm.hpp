// kumiki/ops/cpu/rmsnorm.hpp: CPU RMSNorm forward and backward (rows in parallel, weight gradient by
// fixed column blocks so it sums rows in one order for any thread count).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kumiki/ops/cpu/detail/eigen.hpp"

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/ops/rmsnorm.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

template <>
struct RmsNorm<Cpu> {
  template <class T>
  using Row = Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>>;
  template <class T>
  using ConstRow = Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic> const>;

  /// y (n, c) = x * rstd * w, rstd[i] = 1 / sqrt(mean_j x[i,j]^2 + eps), saved for the backward.
  template <class T>
  static void forward(Ctx<Cpu>& /*ctx*/, T const* x, T const* w, T* y, T* rstd, std::int64_t n, std::int64_t c, double eps) {
    ConstRow<T> const wr(w, c);
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) {
      ConstRow<T> const xr(x + i * c, c);
      T const r = T(1) / std::sqrt(xr.square().sum() / T(c) + T(eps));
      rstd[i] = r;
      Row<T>(y + i * c, c) = xr * r * wr;
    }
  }

  /// With g = w * d_y: d_x = rstd * g - x * rstd^3 * mean_j(g * x) (written, or added when
  /// accumulate, e.g. into a residual-stream gradient); d_w += sum_i d_y * x * rstd.
  template <class T>
  static void backward(Ctx<Cpu>& /*ctx*/, T const* d_y, T const* x, T const* w, T const* rstd, T* d_x, T* d_w, std::int64_t n,
                       std::int64_t c, bool accumulate) {
    ConstRow<T> const wr(w, c);
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) {
      ConstRow<T> const xr(x + i * c, c), dyr(d_y + i * c, c);
      T const r = rstd[i];
      T const dot = (dyr * wr * xr).sum() / T(c);
      Row<T> dx(d_x + i * c, c);
      if (accumulate)
        dx += r * (dyr * wr) - xr * (r * r * r * dot);
      else
        dx = r * (dyr * wr) - xr * (r * r * r * dot);
    }
    constexpr std::int64_t block = 64;
    std::int64_t const blocks = (c + block - 1) / block;
#pragma omp parallel for schedule(static)
    for (std::int64_t cb = 0; cb < blocks; ++cb) {
      std::int64_t const c0 = cb * block, len = std::min(c, c0 + block) - c0;
      Row<T> dw(d_w + c0, len);
      for (std::int64_t i = 0; i < n; ++i) dw += ConstRow<T>(d_y + i * c + c0, len) * ConstRow<T>(x + i * c + c0, len) * rstd[i];
    }
  }
};

static_assert(RmsNormOp<RmsNorm<Cpu>, Cpu, float> && RmsNormOp<RmsNorm<Cpu>, Cpu, double>);

}  // namespace ops
KUMIKI_NAMESPACE_END
