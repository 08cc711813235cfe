// kumiki/core/philox.hpp: Philox4x32-10 counter-based RNG (Salmon et al., SC'11; Random123), with
// uniform and normal sampling addressed by element index, on host and device.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

#include "kumiki/config.hpp"

KUMIKI_NAMESPACE_BEGIN

/// The raw Philox4x32 bijection: 4 x 32-bit counter, 2 x 32-bit key, R rounds (10 is the standard).
struct Philox4x32 {
  using Counter = std::array<std::uint32_t, 4>;
  using Key = std::array<std::uint32_t, 2>;

  static constexpr std::uint32_t m0 = 0xD2511F53u, m1 = 0xCD9E8D57u;  // round multipliers
  static constexpr std::uint32_t w0 = 0x9E3779B9u, w1 = 0xBB67AE85u;  // Weyl key increments

  template <int Rounds = 10>
  KUMIKI_HOST_DEVICE static constexpr Counter block(Counter c, Key k) {
    KUMIKI_UNROLL
    for (int r = 0; r < Rounds; ++r) {
      if (r > 0) {
        k[0] += w0;
        k[1] += w1;
      }
      std::uint64_t const p0 = static_cast<std::uint64_t>(m0) * c[0];
      std::uint64_t const p1 = static_cast<std::uint64_t>(m1) * c[2];
      c = Counter{static_cast<std::uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<std::uint32_t>(p1),
                  static_cast<std::uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<std::uint32_t>(p0)};
    }
    return c;
  }
};

/// A stream of random numbers addressed by index: value i depends only on (seed, stream, i), never on
/// the order or the thread that asks. Models give every parameter tensor its own stream id, so
/// initialization is the same for any thread count and on CPU and GPU.
///   counter = (block lo, block hi, stream lo, stream hi), key = (seed lo, seed hi).
struct PhiloxStream {
  std::uint64_t seed = 0;
  std::uint64_t stream = 0;

  KUMIKI_HOST_DEVICE constexpr Philox4x32::Counter block(std::uint64_t b) const {
    return Philox4x32::block<10>(
        {static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(b >> 32), static_cast<std::uint32_t>(stream),
         static_cast<std::uint32_t>(stream >> 32)},
        {static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)});
  }

  /// The i-th 32-bit word of the stream (four per Philox block).
  KUMIKI_HOST_DEVICE constexpr std::uint32_t u32(std::uint64_t i) const { return block(i / 4)[i % 4]; }

  /// The i-th uniform float in the open interval (0, 1): 24 random bits, centred in their cell.
  KUMIKI_HOST_DEVICE constexpr float uniform(std::uint64_t i) const { return to_unit_float(u32(i)); }

  /// The i-th standard normal sample. Block i/2 gives two 53-bit uniforms (u1, u2), and Box-Muller
  /// gives r*cos(2 pi u2) for even i and r*sin(2 pi u2) for odd i, computed in double and rounded to float.
  KUMIKI_HOST_DEVICE float normal(std::uint64_t i) const {
    Philox4x32::Counter const x = block(i / 2);
    double const u1 = to_unit_double(x[0], x[1]);
    double const u2 = to_unit_double(x[2], x[3]);
    double const r = sqrt(-2.0 * log(u1));
    double const theta = 6.283185307179586476925286766559 * u2;
    return static_cast<float>((i % 2 == 0) ? r * cos(theta) : r * sin(theta));
  }

  KUMIKI_HOST_DEVICE static constexpr float to_unit_float(std::uint32_t x) {
    return (static_cast<float>(x >> 8) + 0.5f) * (1.0f / 16777216.0f);
  }
  KUMIKI_HOST_DEVICE static constexpr double to_unit_double(std::uint32_t hi, std::uint32_t lo) {
    std::uint64_t const m = ((static_cast<std::uint64_t>(hi) << 32) | lo) >> 11;  // 53 bits
    return (static_cast<double>(m) + 0.5) * (1.0 / 9007199254740992.0);
  }
};

KUMIKI_NAMESPACE_END
