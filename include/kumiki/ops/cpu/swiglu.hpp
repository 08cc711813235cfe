// kumiki/ops/cpu/swiglu.hpp: CPU SwiGLU activation and its backward.
#pragma once

#include <cstdint>

#include "kumiki/ops/cpu/detail/eigen.hpp"

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/ops/swiglu.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

template <>
struct SwiGlu<Cpu> {
  template <class T>
  using Row = Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>>;
  template <class T>
  using ConstRow = Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic> const>;

  /// h (n, f) = silu(gate) * up; gate and up rows have stride ld_in (they may be the two halves of one
  /// fused (n, 2f) projection), h rows stride ld_h.
  template <class T>
  static void forward(Ctx<Cpu>& /*ctx*/, T const* gate, T const* up, std::int64_t ld_in, T* h, std::int64_t ld_h, std::int64_t n,
                      std::int64_t f) {
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) {
      ConstRow<T> const g(gate + i * ld_in, f), u(up + i * ld_in, f);
      Row<T>(h + i * ld_h, f) = g / (T(1) + (-g).exp()) * u;
    }
  }

  /// With s = sigmoid(gate): d_up = d_h * gate * s, d_gate = d_h * up * s * (1 + gate * (1 - s)).
  /// d_gate / d_up rows stride ld_d; they must not alias the inputs.
  template <class T>
  static void backward(Ctx<Cpu>& /*ctx*/, T const* d_h, std::int64_t ld_h, T const* gate, T const* up, std::int64_t ld_in, T* d_gate,
                       T* d_up, std::int64_t ld_d, std::int64_t n, std::int64_t f) {
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) {
      ConstRow<T> const g(gate + i * ld_in, f), u(up + i * ld_in, f), dh(d_h + i * ld_h, f);
      Row<T> du(d_up + i * ld_d, f);
      du = T(1) / (T(1) + (-g).exp());  // sigmoid(gate), staged in d_up's row
      Row<T>(d_gate + i * ld_d, f) = dh * u * du * (T(1) + g * (T(1) - du));
      du = dh * g * du;
    }
  }
};

static_assert(SwiGluOp<SwiGlu<Cpu>, Cpu, float> && SwiGluOp<SwiGlu<Cpu>, Cpu, double>);

}  // namespace ops
KUMIKI_NAMESPACE_END
