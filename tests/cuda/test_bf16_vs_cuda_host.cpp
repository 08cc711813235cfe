// kumiki::bf16 against CUDA's __float2bfloat16_rn / __bfloat162float evaluated on the host.
#include <catch2/catch.hpp>
#include <cuda_bf16.h>

#include <bit>
#include <cstdint>
#include <cstring>

#include "kumiki/core/bf16.hpp"

namespace {
std::uint16_t cuda_bits(float f) {
  __nv_bfloat16 const h = __float2bfloat16_rn(f);
  std::uint16_t b;
  std::memcpy(&b, &h, 2);
  return b;
}
}  // namespace

TEST_CASE("bf16 layout equals __nv_bfloat16", "[cuda][bf16]") {
  STATIC_REQUIRE(sizeof(kumiki::bf16) == sizeof(__nv_bfloat16));
  STATIC_REQUIRE(alignof(kumiki::bf16) == alignof(__nv_bfloat16));
}

TEST_CASE("float -> bf16 is bit-identical to CUDA's round-to-nearest-even", "[cuda][bf16]") {
  // Every upper half (all signs, exponents, mantissas, NaN and Inf) with the low halves that decide
  // rounding: zero, one, just below / at / just above the tie, all ones, and a few others.
  std::uint32_t const lows[] = {0x0000, 0x0001, 0x3fff, 0x7fff, 0x8000, 0x8001, 0xc000, 0xfffe, 0xffff, 0x1234};
  std::size_t mismatches = 0;
  for (std::uint32_t hi = 0; hi <= 0xffffu; ++hi)
    for (std::uint32_t lo : lows) {
      float const f = std::bit_cast<float>((hi << 16) | lo);
      if (kumiki::bf16(f).bits != cuda_bits(f)) ++mismatches;
    }
  CHECK(mismatches == 0);
  for (std::uint32_t b = 0; b <= 0xffffu; ++b) {
    __nv_bfloat16_raw raw;
    raw.x = static_cast<unsigned short>(b);
    float const ref = __bfloat162float(__nv_bfloat16(raw));
    float const ours = kumiki::bf16::from_bits(static_cast<std::uint16_t>(b)).to_float();
    REQUIRE(std::memcmp(&ref, &ours, 4) == 0);
  }
}
