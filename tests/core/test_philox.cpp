// Philox4x32-10 against the Random123 known-answer vectors, and sampling properties.
#include <catch2/catch.hpp>
#include <omp.h>

#include <cmath>
#include <vector>

#include "kumiki/ops/cpu/fill.hpp"  // philox_fill_*: host fills
#include "kumiki/core/philox.hpp"

using kumiki::Philox4x32;
using kumiki::PhiloxStream;

TEST_CASE("Philox4x32-10 matches Random123 kat_vectors", "[core][philox]") {
  // Random123 tests/kat_vectors: "philox4x32 10 <ctr x4> <key x2> <expected x4>".
  CHECK(Philox4x32::block<10>({0, 0, 0, 0}, {0, 0}) == Philox4x32::Counter{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8});
  CHECK(Philox4x32::block<10>({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}) ==
        Philox4x32::Counter{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd});
  CHECK(Philox4x32::block<10>({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}) ==
        Philox4x32::Counter{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1});
  // Same vector evaluated at compile time.
  static_assert(Philox4x32::block<10>({0, 0, 0, 0}, {0, 0})[0] == 0x6627e8d5u);
}

TEST_CASE("Philox stream addresses words by index", "[core][philox]") {
  PhiloxStream s{0xa4093822299f31d0ull, 0};
  auto const b = Philox4x32::block<10>({3, 0, 0, 0}, {0x299f31d0, 0xa4093822});
  for (int k = 0; k < 4; ++k) CHECK(s.u32(12 + k) == b[static_cast<std::size_t>(k)]);
  PhiloxStream other{s.seed, 1};
  CHECK(other.u32(0) != s.u32(0));
}

TEST_CASE("Philox uniform lies in (0,1) and normal has mean 0, variance 1", "[core][philox]") {
  PhiloxStream s{1234, 7};
  constexpr int n = 200000;
  double sum = 0, sum2 = 0, usum = 0, sum4 = 0;
  for (int i = 0; i < n; ++i) {
    float const u = s.uniform(static_cast<std::uint64_t>(i));
    REQUIRE(u > 0.0f);
    REQUIRE(u < 1.0f);
    usum += u;
    double const z = s.normal(static_cast<std::uint64_t>(i));
    REQUIRE(std::isfinite(z));
    sum += z;
    sum2 += z * z;
    sum4 += z * z * z * z;
  }
  // Standard errors: mean 1/sqrt(n) ~ 0.0022, variance sqrt(2/n) ~ 0.0032, uniform mean ~ 0.00065.
  CHECK(std::abs(usum / n - 0.5) < 0.004);
  CHECK(std::abs(sum / n) < 0.012);
  CHECK(std::abs(sum2 / n - 1.0) < 0.02);
  CHECK(std::abs(sum4 / n - 3.0) < 0.1);  // Gaussian kurtosis
}

TEST_CASE("Philox fills are independent of the thread count", "[core][philox]") {
  constexpr std::size_t n = 300001;  // above the parallel threshold, odd length
  std::vector<float> a(n), b(n);
  PhiloxStream s{42, 3};
  int const saved = omp_get_max_threads();
  omp_set_num_threads(1);
  kumiki::philox_fill_normal(a.data(), n, s, 0.0f, 0.02f);
  omp_set_num_threads(2);
  kumiki::philox_fill_normal(b.data(), n, s, 0.0f, 0.02f);
  omp_set_num_threads(saved);
  CHECK(a == b);
  // An offset fill continues the same sequence.
  std::vector<float> c(10);
  kumiki::philox_fill_normal(c.data(), c.size(), s, 0.0f, 0.02f, 1000);
  for (std::size_t i = 0; i < c.size(); ++i) CHECK(c[i] == a[1000 + i]);
}
