// CRC-32C against the standard check value and a bitwise reference written here from the definition.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "kumiki/core/crc32c.hpp"

namespace {
// Bit-at-a-time CRC-32C straight from the definition (reflected, poly 0x1EDC6F41 -> 0x82F63B78).
std::uint32_t crc_bitwise(std::vector<unsigned char> const& d) {
  std::uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : d) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
  }
  return ~c;
}
}  // namespace

TEST_CASE("crc32c check value and incremental use", "[core][crc32c]") {
  std::string const s = "123456789";
  CHECK(kumiki::crc32c(s.data(), s.size()) == 0xE3069283u);
  CHECK(kumiki::crc32c(nullptr, 0) == 0u);
  std::vector<unsigned char> d(1000);
  for (std::size_t i = 0; i < d.size(); ++i) d[i] = static_cast<unsigned char>(i * 131 + 7);
  for (std::size_t n : {1u, 7u, 8u, 9u, 63u, 1000u}) {
    std::vector<unsigned char> part(d.begin(), d.begin() + static_cast<long>(n));
    CHECK(kumiki::crc32c(part.data(), n) == crc_bitwise(part));
  }
  std::uint32_t const whole = kumiki::crc32c(d.data(), d.size());
  std::uint32_t const split = kumiki::crc32c(d.data() + 333, 667, kumiki::crc32c(d.data(), 333));
  CHECK(whole == split);
}
