// kumiki/core/dtype.hpp: runtime element types, their sizes and names, and the C++ type mapping.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "kumiki/config.hpp"
#include "kumiki/core/bf16.hpp"
#include "kumiki/core/error.hpp"

KUMIKI_NAMESPACE_BEGIN

/// Element types kumiki stores. f16 is storage only (safetensors interop).
enum class DType : std::uint8_t { f32, f64, bf16, f16, i8, i16, i32, i64, u8, u16, u32 };

constexpr std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::i8:
    case DType::u8: return 1;
    case DType::bf16:
    case DType::f16:
    case DType::i16:
    case DType::u16: return 2;
    case DType::f32:
    case DType::i32:
    case DType::u32: return 4;
    case DType::f64:
    case DType::i64: return 8;
  }
  return 0;
}

constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
    case DType::i8: return "i8";
    case DType::i16: return "i16";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
    case DType::u8: return "u8";
    case DType::u16: return "u16";
    case DType::u32: return "u32";
  }
  return "?";
}

/// The DType of a C++ element type; a type without one fails to compile with a readable message.
template <class T>
struct dtype_of {
  static_assert(always_false<T>, "kumiki: this element type has no DType");
};
template <> struct dtype_of<float> { static constexpr DType value = DType::f32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::f64; };
template <> struct dtype_of<bf16> { static constexpr DType value = DType::bf16; };
template <> struct dtype_of<std::int8_t> { static constexpr DType value = DType::i8; };
template <> struct dtype_of<std::int16_t> { static constexpr DType value = DType::i16; };
template <> struct dtype_of<std::int32_t> { static constexpr DType value = DType::i32; };
template <> struct dtype_of<std::int64_t> { static constexpr DType value = DType::i64; };
template <> struct dtype_of<std::uint8_t> { static constexpr DType value = DType::u8; };
template <> struct dtype_of<std::uint16_t> { static constexpr DType value = DType::u16; };
template <> struct dtype_of<std::uint32_t> { static constexpr DType value = DType::u32; };

template <class T>
inline constexpr DType dtype_v = dtype_of<std::remove_cv_t<T>>::value;

KUMIKI_NAMESPACE_END
