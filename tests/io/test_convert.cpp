// Floating dtype conversions for import/export: binary16 decode/encode against the IEEE definition,
// f32 -> bf16 round-to-nearest-even, unaligned sources, whole arenas.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "kumiki/core/philox.hpp"
#include "kumiki/io/convert.hpp"

using namespace kumiki;

namespace {
// binary16 value from its definition, in double.
double half_value(std::uint16_t h) {
  int const s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double const sign = s ? -1.0 : 1.0;
  if (e == 0) return sign * std::ldexp(m, -24);
  if (e == 31) return m ? std::numeric_limits<double>::quiet_NaN() : sign * HUGE_VAL;
  return sign * std::ldexp(1024 + m, e - 25);
}
std::uint32_t bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float from_bits(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
}  // namespace

TEST_CASE("binary16 decode is exact for all 65536 bit patterns", "[io][convert]") {
  for (std::uint32_t h = 0; h < 65536; ++h) {
    float const f = io::half_bits_to_float(static_cast<std::uint16_t>(h));
    double const want = half_value(static_cast<std::uint16_t>(h));
    if (std::isnan(want)) {
      REQUIRE(std::isnan(f));
    } else {
      REQUIRE(static_cast<double>(f) == want);
      REQUIRE(std::signbit(f) == ((h & 0x8000) != 0));
    }
  }
}

TEST_CASE("binary16 encode rounds to nearest even at every boundary", "[io][convert]") {
  // Each finite half round-trips; the midpoint to the next half ties to the even one, and one float
  // ulp either side of the midpoint goes to the nearer neighbour (this also covers the subnormal
  // range, the normal/subnormal boundary, overflow to infinity at 65520 and the smallest values).
  for (std::uint32_t h = 0; h < 0x7c00; ++h) {
    for (std::uint32_t sign : {0u, 0x8000u}) {
      auto const lo = static_cast<std::uint16_t>(h | sign), hi = static_cast<std::uint16_t>((h + 1) | sign);
      float const x = io::half_bits_to_float(lo);
      REQUIRE(io::float_to_half_bits(x) == lo);
      double const mid_d = (half_value(lo) + half_value(h + 1 == 0x7c00 ? 0 : hi)) / 2;
      float const mid = h + 1 == 0x7c00 ? (sign ? -65520.0f : 65520.0f) : static_cast<float>(mid_d);
      REQUIRE(static_cast<double>(mid) == (h + 1 == 0x7c00 ? (sign ? -65520.0 : 65520.0) : mid_d));  // exact in float
      std::uint16_t const even = (h & 1) ? hi : lo;
      REQUIRE(io::float_to_half_bits(mid) == even);
      float const toward_zero = std::nextafter(mid, 0.0f);
      float const away = std::nextafter(mid, sign ? -INFINITY : INFINITY);
      REQUIRE(io::float_to_half_bits(toward_zero) == lo);
      REQUIRE(io::float_to_half_bits(away) == hi);
    }
  }
  CHECK(io::float_to_half_bits(INFINITY) == 0x7c00);
  CHECK(io::float_to_half_bits(-INFINITY) == 0xfc00);
  CHECK(io::float_to_half_bits(1e30f) == 0x7c00);
  CHECK(io::float_to_half_bits(std::ldexp(1.0f, -25)) == 0x0000);                          // tie to even (zero)
  CHECK(io::float_to_half_bits(std::nextafter(std::ldexp(1.0f, -25), 1.0f)) == 0x0001);
  CHECK(io::float_to_half_bits(-0.0f) == 0x8000);
  std::uint16_t const qnan = io::float_to_half_bits(std::numeric_limits<float>::quiet_NaN());
  CHECK((qnan & 0x7c00) == 0x7c00);
  CHECK((qnan & 0x03ff) != 0);
  CHECK((io::float_to_half_bits(from_bits(0x7f800001u)) & 0x03ff) != 0);  // a NaN with only low payload bits stays NaN
}

TEST_CASE("f32 -> bf16 conversion rounds to nearest even, also from unaligned memory", "[io][convert]") {
  std::size_t const n = 4099;
  std::vector<std::byte> src(1 + n * 4);  // + 1: the floats start at an odd address
  std::vector<float> vals(n);
  PhiloxStream const s{3, 0};
  for (std::size_t i = 0; i < n; ++i) {
    std::uint32_t u = s.u32(i);
    if (i % 3 == 0) u = (u & 0xffff0000u) | 0x8000u;  // exact ties
    if ((u & 0x7f800000u) == 0x7f800000u) u &= 0xbfffffffu;  // keep finite
    vals[i] = from_bits(u);
  }
  std::memcpy(src.data() + 1, vals.data(), n * 4);
  std::vector<std::uint16_t> out(n);
  io::convert(AnyView{src.data() + 1, DType::f32, {static_cast<std::int64_t>(n)}, DeviceKind::cpu},
              AnyView{out.data(), DType::bf16, {static_cast<std::int64_t>(n)}, DeviceKind::cpu});
  for (std::size_t i = 0; i < n; ++i) {
    // Independent expectation: the nearer of the two bf16 neighbours (truncated and next up in magnitude), ties to even.
    std::uint32_t const u = bits(vals[i]);
    std::uint32_t const down = u & 0xffff0000u, up = down + 0x10000u;
    double const d = std::fabs(static_cast<double>(vals[i]) - from_bits(down));
    double const e = std::fabs(from_bits(up) - static_cast<double>(vals[i]));
    std::uint16_t const want = static_cast<std::uint16_t>(
        (d < e ? down : e < d ? up : ((down >> 16) & 1u) ? up : down) >> 16);
    REQUIRE(out[i] == want);
  }
}

TEST_CASE("convert and convert_arena: dtypes, shapes and errors", "[io][convert]") {
  ArenaLayout layout;
  layout.add("w", DType::f32, {4, 3});
  layout.add("ids", DType::i32, {5});
  layout.add("h", DType::f16, {2});
  Arena<Cpu> a(layout);
  for (int i = 0; i < 12; ++i) a.get<float>("w").data()[i] = 0.1f * static_cast<float>(i) - 0.5f;
  for (int i = 0; i < 5; ++i) a.get<std::int32_t>("ids").data()[i] = 1000 * i - 7;
  std::uint16_t const hv[2] = {0x3c00, 0xc500};  // 1.0, -5.0
  std::memcpy(a.view("h").data, hv, 4);

  Arena<Cpu> const b = io::convert_arena(a, DType::bf16);
  REQUIRE(b.layout().size() == 3);
  CHECK(b.layout()[0].name == "w");
  CHECK(b.layout()[0].dtype == DType::bf16);
  CHECK(b.layout()[0].shape == Shape{4, 3});
  CHECK(b.layout()[1].dtype == DType::i32);  // integers untouched
  CHECK(b.layout()[2].dtype == DType::bf16);
  for (int i = 0; i < 12; ++i) CHECK(b.get<bf16>("w").data()[i].bits == bf16(a.get<float>("w").data()[i]).bits);
  for (int i = 0; i < 5; ++i) CHECK(b.get<std::int32_t>("ids").data()[i] == 1000 * i - 7);
  CHECK(b.get<bf16>("h").data()[0].to_float() == 1.0f);
  CHECK(b.get<bf16>("h").data()[1].to_float() == -5.0f);

  // Back to f32 is exact for bf16 values; f64 works both ways.
  Arena<Cpu> const c = io::convert_arena(b, DType::f32);
  for (int i = 0; i < 12; ++i) CHECK(c.get<float>("w").data()[i] == round_to_bf16(a.get<float>("w").data()[i]));
  Arena<Cpu> const d = io::convert_arena(a, DType::f64);
  CHECK(d.get<double>("w").data()[3] == static_cast<double>(a.get<float>("w").data()[3]));

  float f[5];
  CHECK_THROWS_WITH(io::convert(a.view("ids"), AnyView{f, DType::f32, {5}, DeviceKind::cpu}),
                    Catch::Contains("no conversion from i32 to f32"));
  CHECK_THROWS_WITH(io::convert(a.view("w"), AnyView{f, DType::f32, {5}, DeviceKind::cpu}),
                    Catch::Contains("changes the element count"));
  CHECK_THROWS_WITH(io::convert_arena(a, DType::i32), Catch::Contains("must be a floating dtype"));
}

TEST_CASE("bf16 -> f32 and f16 -> f32 array conversion is exact for every bit pattern", "[io][convert]") {
  std::vector<std::uint16_t> all(65536);
  for (std::uint32_t i = 0; i < 65536; ++i) all[i] = static_cast<std::uint16_t>(i);
  std::vector<std::byte> out(1 + 65536 * 4);  // unaligned destination
  AnyView const dst{out.data() + 1, DType::f32, {65536}, DeviceKind::cpu};
  io::convert(AnyView{all.data(), DType::bf16, {65536}, DeviceKind::cpu}, dst);
  for (std::uint32_t i = 0; i < 65536; ++i) {
    std::uint32_t u;
    std::memcpy(&u, out.data() + 1 + i * 4, 4);
    REQUIRE(u == i << 16);  // bf16 is the top half of binary32, NaN payloads included
  }
  io::convert(AnyView{all.data(), DType::f16, {65536}, DeviceKind::cpu}, dst);
  for (std::uint32_t i = 0; i < 65536; ++i) {
    float f;
    std::memcpy(&f, out.data() + 1 + i * 4, 4);
    double const want = half_value(static_cast<std::uint16_t>(i));
    if (std::isnan(want))
      REQUIRE(std::isnan(f));
    else
      REQUIRE(static_cast<double>(f) == want);
  }
}
