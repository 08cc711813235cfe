// bf16 conversions against bit patterns worked out from the IEEE-754 definition.
#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "kumiki/core/bf16.hpp"

using kumiki::bf16;

namespace {
std::uint16_t cvt(std::uint32_t float_bits) { return bf16(std::bit_cast<float>(float_bits)).bits; }
}  // namespace

TEST_CASE("bf16 exact values keep their upper half", "[core][bf16]") {
  CHECK(cvt(0x3f800000u) == 0x3f80);  // 1.0
  CHECK(cvt(0xbf800000u) == 0xbf80);  // -1.0
  CHECK(cvt(0x00000000u) == 0x0000);  // +0
  CHECK(cvt(0x80000000u) == 0x8000);  // -0
  CHECK(cvt(0x40490000u) == 0x4049);
}

TEST_CASE("bf16 rounds to nearest, ties to even", "[core][bf16]") {
  CHECK(cvt(0x3f807fffu) == 0x3f80);  // below half: down
  CHECK(cvt(0x3f808000u) == 0x3f80);  // tie, kept bit even: stays
  CHECK(cvt(0x3f808001u) == 0x3f81);  // above half: up
  CHECK(cvt(0x3f818000u) == 0x3f82);  // tie, kept bit odd: up to even
  CHECK(cvt(0x3f81ffffu) == 0x3f82);
  CHECK(cvt(0xbf818000u) == 0xbf82);  // sign does not matter
  CHECK(cvt(0x3fff8000u) == 0x4000);  // carry into the exponent
}

TEST_CASE("bf16 NaN stays NaN (canonical 0x7FFF as CUDA), infinities stay infinite", "[core][bf16]") {
  CHECK(cvt(0x7fc00000u) == 0x7fff);  // quiet NaN
  CHECK(cvt(0x7f800001u) == 0x7fff);  // signalling NaN whose payload is in the dropped bits
  CHECK(cvt(0xffc00000u) == 0x7fff);  // negative NaN
  CHECK(cvt(0x7fffffffu) == 0x7fff);
  CHECK(bf16(std::numeric_limits<float>::quiet_NaN()).is_nan());
  CHECK(std::isnan(bf16::from_bits(0x7fc1).to_float()));
  CHECK(cvt(0x7f800000u) == 0x7f80);  // +inf
  CHECK(cvt(0xff800000u) == 0xff80);  // -inf
  CHECK(bf16::from_bits(0x7f80).is_inf());
  CHECK(std::isinf(bf16::from_bits(0xff80).to_float()));
}

TEST_CASE("bf16 max finite and overflow", "[core][bf16]") {
  CHECK(cvt(0x7f7f0000u) == 0x7f7f);  // bf16 max finite, 3.38953139e38
  CHECK(bf16::from_bits(0x7f7f).to_float() == 3.38953139e38f);
  CHECK(cvt(0x7f7f7fffu) == 0x7f7f);  // just below the tie
  CHECK(cvt(0x7f7f8000u) == 0x7f80);  // tie with odd kept bit rounds to +inf
  CHECK(cvt(0x7f7fffffu) == 0x7f80);  // float max finite overflows to +inf
  CHECK(cvt(0xff7fffffu) == 0xff80);
}

TEST_CASE("bf16 subnormals round like any other value", "[core][bf16]") {
  CHECK(cvt(0x00010000u) == 0x0001);  // smallest bf16 subnormal 2^-133
  CHECK(bf16::from_bits(0x0001).to_float() == std::ldexp(1.0f, -133));
  CHECK(cvt(0x00000001u) == 0x0000);  // smallest float subnormal rounds to zero
  CHECK(cvt(0x00008000u) == 0x0000);  // tie to even zero
  CHECK(cvt(0x00008001u) == 0x0001);
  CHECK(cvt(0x00018000u) == 0x0002);  // tie, odd: up
  CHECK(cvt(0x807f8000u) == 0x8080);  // largest subnormals carry into the smallest normal
  CHECK(cvt(0x80010000u) == 0x8001);
}

TEST_CASE("bf16 to float is exact and round-trips every non-NaN pattern", "[core][bf16]") {
  for (std::uint32_t b = 0; b <= 0xffffu; ++b) {
    bf16 const h = bf16::from_bits(static_cast<std::uint16_t>(b));
    float const f = h.to_float();
    REQUIRE(std::bit_cast<std::uint32_t>(f) == (b << 16));
    if (!h.is_nan()) REQUIRE(bf16(f).bits == b);
  }
}

TEST_CASE("bf16 conversion is usable in constant expressions", "[core][bf16]") {
  static_assert(bf16(1.0f).bits == 0x3f80);
  static_assert(bf16::from_bits(0x4000).to_float() == 2.0f);
  static_assert(kumiki::round_to_bf16(1.00390625f) == 1.0f);  // 1 + 2^-8 is a tie: to even
  SUCCEED();
}
