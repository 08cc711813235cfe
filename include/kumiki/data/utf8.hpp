// kumiki/data/utf8.hpp: UTF-8 validation (Unicode 15 table 3-7: no overlongs, surrogates or code
// points above U+10FFFF) and repair with U+FFFD per maximal invalid subpart.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "kumiki/config.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace data {

namespace detail {

/// Length of the valid UTF-8 sequence starting at s[i], or 0 when s[i] starts an invalid one; in that
/// case `bad` is set to the length of the maximal subpart to replace (>= 1).
inline std::size_t utf8_sequence(std::string_view s, std::size_t i, std::size_t& bad) {
  auto const b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char const c = b(i);
  bad = 1;
  if (c < 0x80) return 1;
  std::size_t need;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) need = 1;
  else if (c == 0xE0) { need = 2; lo = 0xA0; }
  else if (c >= 0xE1 && c <= 0xEC) need = 2;
  else if (c == 0xED) { need = 2; hi = 0x9F; }  // no surrogates
  else if (c >= 0xEE && c <= 0xEF) need = 2;
  else if (c == 0xF0) { need = 3; lo = 0x90; }
  else if (c >= 0xF1 && c <= 0xF3) need = 3;
  else if (c == 0xF4) { need = 3; hi = 0x8F; }
  else return 0;
  for (std::size_t k = 1; k <= need; ++k) {
    if (i + k >= s.size()) { bad = k; return 0; }
    unsigned char const x = b(i + k);
    bool const ok = k == 1 ? (x >= lo && x <= hi) : (x >= 0x80 && x <= 0xBF);
    if (!ok) { bad = k; return 0; }
  }
  return need + 1;
}

}  // namespace detail

/// Byte offset of the first invalid UTF-8 sequence, or npos when `s` is valid.
inline std::size_t find_invalid_utf8(std::string_view s) {
  std::size_t i = 0, bad = 0;
  while (i < s.size()) {
    // ASCII fast path, 8 bytes at a time.
    while (i + 8 <= s.size()) {
      std::uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      if (w & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= s.size()) break;
    std::size_t const n = detail::utf8_sequence(s, i, bad);
    if (n == 0) return i;
    i += n;
  }
  return std::string_view::npos;
}

/// `s` with every maximal invalid subpart replaced by U+FFFD (EF BF BD).
inline std::string replace_invalid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0, bad = 0;
  while (i < s.size()) {
    std::size_t const n = detail::utf8_sequence(s, i, bad);
    if (n > 0) {
      out.append(s.data() + i, n);
      i += n;
    } else {
      out.append("\xEF\xBF\xBD");
      i += bad;
    }
  }
  return out;
}

}  // namespace data
KUMIKI_NAMESPACE_END
