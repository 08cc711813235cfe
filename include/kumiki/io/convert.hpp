// kumiki/io/convert.hpp: element conversions between stored floating dtypes (f32, bf16, f16, f64),
// for import (bf16/f16 files into f32 arenas) and export (f32 arenas into bf16 files).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kumiki/config.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/bf16.hpp"
#include "kumiki/core/dtype.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/tensor.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace io {

/// IEEE-754 binary16 bits -> float, exact for every input (subnormals included; NaN payloads kept).
constexpr float half_bits_to_float(std::uint16_t h) {
  std::uint32_t const sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  std::uint32_t const exp = (h >> 10) & 0x1fu;
  std::uint32_t const mant = h & 0x3ffu;
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24, exact in float.
    float const v = static_cast<float>(mant) * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  if (exp == 31) return kumiki::detail::bits_float(sign | 0x7f800000u | (mant << 13));
  return kumiki::detail::bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

/// float -> IEEE-754 binary16 bits, round to nearest, ties to even (as numpy's astype(float16) and
/// CUDA's __float2half_rn); overflow gives infinity; a NaN stays a NaN with its top payload bits.
constexpr std::uint16_t float_to_half_bits(float f) {
  std::uint32_t const u = kumiki::detail::float_bits(f);
  auto const sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  std::uint32_t const a = u & 0x7fffffffu;
  if (a > 0x7f800000u) {
    std::uint32_t const payload = (a & 0x007fffffu) >> 13;
    return static_cast<std::uint16_t>(sign | 0x7c00u | (payload ? payload : 1u));
  }
  if (a >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // >= 65520 rounds to inf
  if (a <= 0x33000000u) return sign;                                         // <= 2^-25 rounds to 0
  auto round_shift = [](std::uint32_t m, std::uint32_t shift) {
    std::uint32_t r = m >> shift;
    std::uint32_t const rem = m & ((1u << shift) - 1u);
    std::uint32_t const half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (r & 1u))) ++r;  // a carry into the exponent is still correct
    return r;
  };
  if (a < 0x38800000u) {  // below 2^-14: a binary16 subnormal, in units of 2^-24
    std::uint32_t const e = a >> 23;
    std::uint32_t const m = (a & 0x007fffffu) | 0x00800000u;
    return static_cast<std::uint16_t>(sign | round_shift(m, 126u - e));
  }
  return static_cast<std::uint16_t>(sign | round_shift(a - (112u << 23), 13u));
}

/// True for the dtypes `convert` can translate between.
constexpr bool is_floating(DType t) {
  return t == DType::f32 || t == DType::f64 || t == DType::bf16 || t == DType::f16;
}

namespace detail {

// Loads element i of a (possibly unaligned) array of dtype t as double (f64) or float (others).
inline double load_floating(std::byte const* p, DType t, std::size_t i) {
  switch (t) {
    case DType::f32: {
      float v;
      std::memcpy(&v, p + i * 4, 4);
      return v;
    }
    case DType::f64: {
      double v;
      std::memcpy(&v, p + i * 8, 8);
      return v;
    }
    case DType::bf16: {
      std::uint16_t b;
      std::memcpy(&b, p + i * 2, 2);
      return bf16::from_bits(b).to_float();
    }
    case DType::f16: {
      std::uint16_t b;
      std::memcpy(&b, p + i * 2, 2);
      return half_bits_to_float(b);
    }
    default: break;
  }
  KUMIKI_FAIL("not a floating dtype: ", dtype_name(t));
}

inline void store_floating(std::byte* p, DType t, std::size_t i, double v) {
  switch (t) {
    case DType::f32: {
      auto const f = static_cast<float>(v);
      std::memcpy(p + i * 4, &f, 4);
      return;
    }
    case DType::f64: std::memcpy(p + i * 8, &v, 8); return;
    case DType::bf16: {
      std::uint16_t const b = bf16(static_cast<float>(v)).bits;
      std::memcpy(p + i * 2, &b, 2);
      return;
    }
    case DType::f16: {
      std::uint16_t const b = float_to_half_bits(static_cast<float>(v));
      std::memcpy(p + i * 2, &b, 2);
      return;
    }
    default: break;
  }
  KUMIKI_FAIL("not a floating dtype: ", dtype_name(t));
}

}  // namespace detail

/// Copies `src` into `dst` (host memory, same element count), converting between floating dtypes:
/// narrowing rounds to nearest even (f32 -> bf16 matches kumiki::bf16 and torch; f32 -> f16 matches
/// numpy), widening is exact. f64 narrows through f32 (two roundings). Equal dtypes are a plain
/// byte copy (any dtype). Neither side needs to be aligned: safetensors data often is not.
inline void convert(AnyView src, AnyView dst) {
  KUMIKI_CHECK(src.device == DeviceKind::cpu && dst.device == DeviceKind::cpu, "convert works on host memory");
  KUMIKI_CHECK(src.shape.numel() == dst.shape.numel(), "convert from shape ", src.shape, " to ", dst.shape,
               " changes the element count");
  std::size_t const n = static_cast<std::size_t>(src.shape.numel());
  if (n == 0) return;
  auto const* s = static_cast<std::byte const*>(src.data);
  auto* d = static_cast<std::byte*>(dst.data);
  if (src.dtype == dst.dtype) {
    std::memcpy(d, s, src.bytes());
    return;
  }
  KUMIKI_CHECK(is_floating(src.dtype) && is_floating(dst.dtype), "no conversion from ", dtype_name(src.dtype),
               " to ", dtype_name(dst.dtype), " (only between f32, f64, bf16 and f16)");
  // The import/export hot paths get their own loops (simple enough for the compiler to vectorize).
  if (src.dtype == DType::f32 && dst.dtype == DType::bf16) {
    for (std::size_t i = 0; i < n; ++i) {
      float v;
      std::memcpy(&v, s + i * 4, 4);
      std::uint16_t const b = bf16::from_float_bits(v);
      std::memcpy(d + i * 2, &b, 2);
    }
    return;
  }
  if (src.dtype == DType::bf16 && dst.dtype == DType::f32) {
    for (std::size_t i = 0; i < n; ++i) {
      std::uint16_t b;
      std::memcpy(&b, s + i * 2, 2);
      std::uint32_t const u = static_cast<std::uint32_t>(b) << 16;
      std::memcpy(d + i * 4, &u, 4);
    }
    return;
  }
  if (src.dtype == DType::f16 && dst.dtype == DType::f32) {
    for (std::size_t i = 0; i < n; ++i) {
      std::uint16_t b;
      std::memcpy(&b, s + i * 2, 2);
      float const v = half_bits_to_float(b);
      std::memcpy(d + i * 4, &v, 4);
    }
    return;
  }
  for (std::size_t i = 0; i < n; ++i) detail::store_floating(d, dst.dtype, i, detail::load_floating(s, src.dtype, i));
}

/// A copy of `src` in which every floating tensor is converted to `to` (e.g. f32 parameters -> bf16
/// for export); integer tensors are copied unchanged. Names, order and shapes are kept.
inline Arena<Cpu> convert_arena(Arena<Cpu> const& src, DType to) {
  KUMIKI_CHECK(is_floating(to), "convert_arena target must be a floating dtype, got ", dtype_name(to));
  ArenaLayout layout;
  for (ArenaEntry const& e : src.layout().entries()) layout.add(e.name, is_floating(e.dtype) ? to : e.dtype, e.shape);
  Arena<Cpu> out(std::move(layout));
  for (std::size_t i = 0; i < out.layout().size(); ++i) convert(src.view(i), out.view(i));
  return out;
}

}  // namespace io
KUMIKI_NAMESPACE_END
