// kumiki/ops/cpu/linear.hpp: CPU linear layers on the tiled Eigen GEMM (no transposed copies).
#pragma once

#include <cstdint>

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/ops/cpu/gemm.hpp"
#include "kumiki/ops/linear.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

template <>
struct Linear<Cpu> {
  /// y (n, out) = x (n, in) W^T (+ y when accumulate); W is (out, in). ldx / ldy are row strides
  /// (0: dense). Deterministic for any thread count.
  template <class T>
  static void forward(Ctx<Cpu>& /*ctx*/, T const* x, T const* w, T* y, std::int64_t n, std::int64_t in, std::int64_t out,
                      bool accumulate = false, std::int64_t ldx = 0, std::int64_t ldy = 0) {
    cpu::gemm<T>(false, true, n, out, in, T(1), x, ldx ? ldx : in, w, in, accumulate ? T(1) : T(0), y,
                 ldy ? ldy : out);
  }
  /// d_x (n, in) = d_y (n, out) W (+ d_x when accumulate).
  template <class T>
  static void backward_input(Ctx<Cpu>& /*ctx*/, T const* d_y, T const* w, T* d_x, std::int64_t n, std::int64_t in, std::int64_t out,
                             bool accumulate = false, std::int64_t ld_dy = 0, std::int64_t ld_dx = 0) {
    cpu::gemm<T>(false, false, n, in, out, T(1), d_y, ld_dy ? ld_dy : out, w, in, accumulate ? T(1) : T(0), d_x,
                 ld_dx ? ld_dx : in);
  }
  /// d_W (out, in) += d_y^T (out, n) x (n, in): gradients accumulate across micro-batches.
  template <class T>
  static void backward_weight(Ctx<Cpu>& /*ctx*/, T const* d_y, T const* x, T* d_w, std::int64_t n, std::int64_t in, std::int64_t out,
                              std::int64_t ld_dy = 0, std::int64_t ldx = 0) {
    cpu::gemm<T>(true, false, out, in, n, T(1), d_y, ld_dy ? ld_dy : out, x, ldx ? ldx : in, T(1), d_w, in);
  }
};

static_assert(LinearOp<Linear<Cpu>, Cpu, float> && LinearOp<Linear<Cpu>, Cpu, double>);

}  // namespace ops
KUMIKI_NAMESPACE_END
