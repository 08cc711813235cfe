// fp32 master weights as two 16-bit halves (optim/master.hpp), over every one of the 2^32 floats:
// joining the halves gives the float back bit for bit (NaNs stay NaNs); the high half is the float
// rounded to bf16 to nearest, as kumiki::bf16 (round to nearest even) rounds it everywhere except at
// exact ties, where it rounds away from zero; the array form (MasterSplit<Cpu>) does the same.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu_ctx.hpp"
#include "kumiki/cpu.hpp"
#include "kumiki/optim/master.hpp"

using namespace kumiki;
using kumiki_test::ctx;  // tests/cpu_ctx.hpp

namespace {
float from_bits(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
std::uint32_t to_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
}  // namespace

TEST_CASE("master halves: exact join and nearest rounding over all 2^32 floats", "[optim][master]") {
  std::int64_t join_wrong = 0, hi_not_nearest = 0, ties = 0, ties_differ_from_even = 0, nan_lost = 0, hi_to_inf = 0;
#pragma omp parallel for schedule(static) reduction(+ : join_wrong, hi_not_nearest, ties, ties_differ_from_even, nan_lost, hi_to_inf)
  for (std::int64_t k = 0; k < (std::int64_t{1} << 32); ++k) {
    auto const u = static_cast<std::uint32_t>(k);
    float const x = from_bits(u);
    optim::MasterHalves const h = optim::split_master(x);
    float const back = optim::join_master(h.hi, h.lo);
    if (std::isnan(x)) {
      nan_lost += !(std::isnan(back) && bf16::from_bits(h.hi).is_nan());
      continue;
    }
    join_wrong += to_bits(back) != u;
    std::uint16_t const even = bf16(x).bits;  // kumiki's round to nearest even (checked against CUDA's elsewhere)
    if ((u & 0xffffu) == 0x8000u) {
      ++ties;
      // away from zero: the high bits plus one (the magnitude's next bf16)
      hi_not_nearest += h.hi != static_cast<std::uint16_t>((u >> 16) + 1);
      ties_differ_from_even += h.hi != even;
    } else {
      hi_not_nearest += h.hi != even;
    }
    hi_to_inf += std::isinf(bf16::from_bits(h.hi).to_float()) && !std::isinf(x);
  }
  INFO("ties " << ties << " (of which rounded otherwise than to even: " << ties_differ_from_even << "), finite floats "
               << "whose high half is infinite: " << hi_to_inf);
  CHECK(join_wrong == 0);
  CHECK(hi_not_nearest == 0);
  CHECK(nan_lost == 0);
  CHECK(ties == (std::int64_t{1} << 16) - 2 * 128);        // every sign/exponent/7-bit pattern, less the NaN/inf exponent
  CHECK(ties_differ_from_even == ties / 2);                 // those whose high half is even: RNE rounds them down
  CHECK(hi_to_inf == 2 * ((std::int64_t{1} << 15)));       // +-(the top 2^15 floats of the largest binade), as RNE
}

TEST_CASE("master halves: MasterSplit<Cpu> arrays round-trip", "[optim][master]") {
  std::vector<float> x = {0.0f, -0.0f, 1.0f, -1.5f, 1e-40f, -1e-45f, 0x1.fffffep127f, -INFINITY, 3.14159f, 1.0f + 0x1p-8f};
  for (int i = 0; i < 1000; ++i) x.push_back(std::ldexp(static_cast<float>(i) - 500.25f, i % 60 - 30));
  auto const n = static_cast<std::int64_t>(x.size());
  std::vector<bf16> hi(x.size());
  std::vector<std::uint16_t> lo(x.size());
  std::vector<float> back(x.size());
  optim::MasterSplit<Cpu>::split(ctx, x.data(), hi.data(), lo.data(), n);
  optim::MasterSplit<Cpu>::join(ctx, hi.data(), lo.data(), back.data(), n);
  CHECK(std::memcmp(back.data(), x.data(), x.size() * sizeof(float)) == 0);
  for (std::size_t i = 0; i < x.size(); ++i)
    if ((to_bits(x[i]) & 0xffffu) != 0x8000u) REQUIRE(hi[i].bits == bf16(x[i]).bits);
  // Without low halves (a ZeRO-1 rank outside its part): the same high halves, nothing else written.
  std::vector<bf16> hi_only(x.size(), bf16::from_bits(0x7fc1));
  optim::MasterSplit<Cpu>::split(ctx, x.data(), hi_only.data(), nullptr, n);
  CHECK(std::memcmp(hi_only.data(), hi.data(), hi.size() * sizeof(bf16)) == 0);
}
