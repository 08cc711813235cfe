// kumiki/ops/cpu/rope.hpp: CPU rotary position embedding (rotate-half, identical to Hugging Face Llama).
#pragma once

#include <cmath>
#include <cstdint>

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/ops/rope.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

template <>
struct Rope<Cpu> {
  /// cos / sin tables (seq, head_dim / 2): angle(t, i) = t * base^(-2i / head_dim), evaluated in double
  /// and rounded once (Hugging Face computes the same angles in fp32; the values agree to rounding).
  template <class T>
  static void tables(Ctx<Cpu>& /*ctx*/, T* cos_t, T* sin_t, std::int64_t seq, std::int64_t head_dim, double base) {
    std::int64_t const half = head_dim / 2;
    for (std::int64_t t = 0; t < seq; ++t)
      for (std::int64_t i = 0; i < half; ++i) {
        double const inv_freq = std::pow(base, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
        double const a = static_cast<double>(t) * inv_freq;
        cos_t[t * half + i] = static_cast<T>(std::cos(a));
        sin_t[t * half + i] = static_cast<T>(std::sin(a));
      }
  }

  /// In-place rotation of x laid out (B, T, heads, head_dim) with row stride ld per token (so q and
  /// k can sit inside one fused qkv buffer); position = t. With x = [x1, x2] halves:
  /// forward: [x1 cos - x2 sin, x2 cos + x1 sin]; backward (inverse = true) applies the transpose,
  /// [d1 cos + d2 sin, d2 cos - d1 sin], which maps d_out to d_in.
  template <class T>
  static void apply(Ctx<Cpu>& /*ctx*/, T* x, std::int64_t batch, std::int64_t seq, std::int64_t heads, std::int64_t head_dim,
                    std::int64_t ld, T const* cos_t, T const* sin_t, bool inverse) {
    std::int64_t const half = head_dim / 2;
    T const sgn = inverse ? T(-1) : T(1);
#pragma omp parallel for schedule(static)
    for (std::int64_t bt = 0; bt < batch * seq; ++bt) {
      std::int64_t const t = bt % seq;
      T const* cs = cos_t + t * half;
      T const* sn = sin_t + t * half;
      T* row = x + bt * ld;
      for (std::int64_t h = 0; h < heads; ++h) {
        T* x1 = row + h * head_dim;
        T* x2 = x1 + half;
#pragma omp simd
        for (std::int64_t i = 0; i < half; ++i) {
          T const a = x1[i], b = x2[i], s = sgn * sn[i];
          x1[i] = a * cs[i] - b * s;
          x2[i] = b * cs[i] + a * s;
        }
      }
    }
  }
};

static_assert(RopeOp<Rope<Cpu>, Cpu, float> && RopeOp<Rope<Cpu>, Cpu, double>);

}  // namespace ops
KUMIKI_NAMESPACE_END
