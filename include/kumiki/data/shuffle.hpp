// kumiki/data/shuffle.hpp: the documented, platform-independent RNG uses of the data pipeline: bounded
// integers and Fisher-Yates shuffles drawn from Philox4x32-10, plus a 64-bit hash for cache keys.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <utility>

#include "kumiki/config.hpp"
#include "kumiki/core/philox.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace data {

/// Sequential 64-bit draws from a PhiloxStream: draw k is (u32(2k) << 32) | u32(2k + 1).
class PhiloxDraws {
 public:
  explicit PhiloxDraws(PhiloxStream s) : s_(s) {}

  std::uint64_t next_u64() {
    if (i_ % 2 == 0) block_ = s_.block(i_ / 2);
    auto const* w = block_.data() + 2 * (i_ % 2);
    ++i_;
    return (static_cast<std::uint64_t>(w[0]) << 32) | w[1];
  }

  /// Uniform integer in [0, n) for n >= 1, without bias: Lemire's multiply-shift with rejection
  /// ("Fast random integer generation in an interval", 2019).
  std::uint64_t below(std::uint64_t n) {
    unsigned __int128 m = static_cast<unsigned __int128>(next_u64()) * n;
    auto lo = static_cast<std::uint64_t>(m);
    if (lo < n) {
      std::uint64_t const threshold = (0 - n) % n;
      while (lo < threshold) {
        m = static_cast<unsigned __int128>(next_u64()) * n;
        lo = static_cast<std::uint64_t>(m);
      }
    }
    return static_cast<std::uint64_t>(m >> 64);
  }

 private:
  PhiloxStream s_;
  std::uint64_t i_ = 0;
  Philox4x32::Counter block_{};
};

/// Fisher-Yates (Durstenfeld): for i = n-1 down to 1 swap a[i] with a[j], j = below(i + 1). The
/// result depends only on (n, seed, stream), never on the standard library (unlike std::shuffle).
template <class T>
void philox_shuffle(T* a, std::size_t n, PhiloxStream s) {
  PhiloxDraws draws(s);
  for (std::size_t i = n; i > 1; --i) {
    auto const j = static_cast<std::size_t>(draws.below(i));
    using std::swap;
    swap(a[i - 1], a[j]);
  }
}

namespace detail {

inline constexpr std::uint64_t rotl64(std::uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

inline constexpr std::uint64_t fmix64(std::uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

/// A fast non-cryptographic 64-bit hash (MurmurHash3-style mixing of 8-byte words) for cache keys
/// and cache checksums; `h` chains calls.
inline std::uint64_t hash_bytes(void const* data, std::size_t n, std::uint64_t h = 0x6b756d696b69ULL) {
  auto const* p = static_cast<unsigned char const*>(data);
  std::size_t const words = n / 8;
  for (std::size_t i = 0; i < words; ++i) {
    std::uint64_t k;
    std::memcpy(&k, p + 8 * i, 8);
    k *= 0x87c37b91114253d5ULL;
    k = rotl64(k, 31);
    k *= 0x4cf5ad432745937fULL;
    h ^= k;
    h = rotl64(h, 27) * 5 + 0x52dce729;
  }
  std::uint64_t tail = 0;
  if (n % 8 != 0) std::memcpy(&tail, p + 8 * words, n % 8);
  h ^= fmix64(tail ^ (static_cast<std::uint64_t>(n) << 3));
  return fmix64(h);
}

inline std::uint64_t hash_string(std::string_view s, std::uint64_t h = 0x6b756d696b69ULL) {
  return hash_bytes(s.data(), s.size(), h);
}

}  // namespace detail
}  // namespace data
KUMIKI_NAMESPACE_END
