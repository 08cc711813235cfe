// kumiki/core/bf16.hpp: bfloat16 storage type, bit-compatible with CUDA's __nv_bfloat16.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

#include "kumiki/config.hpp"

KUMIKI_NAMESPACE_BEGIN

namespace detail {

KUMIKI_HOST_DEVICE KUMIKI_FORCEINLINE constexpr std::uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  return std::bit_cast<std::uint32_t>(f);
#endif
}

KUMIKI_HOST_DEVICE KUMIKI_FORCEINLINE constexpr float bits_float(std::uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  return std::bit_cast<float>(u);
#endif
}

}  // namespace detail

/// bfloat16: the upper 16 bits of an IEEE-754 binary32. Conversion from float rounds to nearest,
/// ties to even (as `__float2bfloat16_rn` and `cvt.rn.bf16.f32`); every NaN becomes the canonical
/// quiet NaN 0x7FFF, as CUDA produces; infinities and subnormals convert exactly like normal values.
struct bf16 {
  std::uint16_t bits;

  bf16() = default;
  KUMIKI_HOST_DEVICE constexpr explicit bf16(float f) : bits(from_float_bits(f)) {}

  KUMIKI_HOST_DEVICE static constexpr bf16 from_bits(std::uint16_t b) {
    bf16 r{};
    r.bits = b;
    return r;
  }

  KUMIKI_HOST_DEVICE constexpr explicit operator float() const { return to_float(); }
  KUMIKI_HOST_DEVICE constexpr float to_float() const {
    return detail::bits_float(static_cast<std::uint32_t>(bits) << 16);
  }

  KUMIKI_HOST_DEVICE static constexpr std::uint16_t from_float_bits(float f) {
    std::uint32_t const u = detail::float_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fffu;  // NaN: canonical quiet NaN
    // Adding 0x7fff rounds up exactly when the dropped half exceeds 0x8000; the low kept bit turns
    // the exact tie into round-to-even. Overflow carries into the exponent (max finite -> inf) as IEEE wants.
    std::uint32_t const bias = 0x7fffu + ((u >> 16) & 1u);
    return static_cast<std::uint16_t>((u + bias) >> 16);
  }

  KUMIKI_HOST_DEVICE constexpr bool is_nan() const { return (bits & 0x7fffu) > 0x7f80u; }
  KUMIKI_HOST_DEVICE constexpr bool is_inf() const { return (bits & 0x7fffu) == 0x7f80u; }

  friend KUMIKI_HOST_DEVICE constexpr bool bitwise_equal(bf16 a, bf16 b) { return a.bits == b.bits; }
};

static_assert(sizeof(bf16) == 2 && alignof(bf16) == 2, "bf16 must match __nv_bfloat16's layout");

/// Round-to-nearest-even float -> bf16 -> float, for emulating bf16 storage in fp32 code.
KUMIKI_HOST_DEVICE constexpr float round_to_bf16(float f) { return bf16(f).to_float(); }

KUMIKI_NAMESPACE_END
