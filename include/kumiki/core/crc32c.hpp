// kumiki/core/crc32c.hpp: CRC-32C (Castagnoli), the checksum of checkpoint manifests; SSE4.2
// instruction when compiled for it, a table-driven fallback otherwise (same result).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#if defined(__SSE4_2__)
#include <nmmintrin.h>
#endif

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"

KUMIKI_NAMESPACE_BEGIN

namespace detail {
inline constexpr std::array<std::uint32_t, 256> crc32c_table = [] {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;  // reflected polynomial
    t[i] = c;
  }
  return t;
}();
}  // namespace detail

inline namespace KUMIKI_CPU_ISA {  // SSE4.2 instruction or table: same values, different code
/// Continues a CRC-32C over `n` bytes; start with crc = 0. crc32c("123456789") == 0xE3069283.
inline std::uint32_t crc32c(void const* data, std::size_t n, std::uint32_t crc = 0) {
  auto const* p = static_cast<unsigned char const*>(data);
  std::uint32_t c = ~crc;
#if defined(__SSE4_2__)
  std::uint64_t c64 = c;
  for (; n >= 8; n -= 8, p += 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    c64 = _mm_crc32_u64(c64, w);
  }
  c = static_cast<std::uint32_t>(c64);
  for (; n > 0; --n, ++p) c = _mm_crc32_u8(c, *p);
#else
  for (; n > 0; --n, ++p) c = detail::crc32c_table[(c ^ *p) & 0xFFu] ^ (c >> 8);
#endif
  return ~c;
}
}  // namespace KUMIKI_CPU_ISA

/// CRC-32C of a whole file, read in 4 MiB blocks.
inline std::uint32_t crc32c_file(std::filesystem::path const& path) {
  std::ifstream in(path, std::ios::binary);
  KUMIKI_CHECK(in.good(), "cannot open '", path.string(), "' to checksum it");
  std::vector<char> buf(std::size_t{4} << 20);
  std::uint32_t crc = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    crc = crc32c(buf.data(), static_cast<std::size_t>(in.gcount()), crc);
  }
  KUMIKI_CHECK(in.eof(), "read error while checksumming '", path.string(), "'");
  return crc;
}

KUMIKI_NAMESPACE_END
