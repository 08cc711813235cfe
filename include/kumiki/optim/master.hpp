// kumiki/optim/master.hpp: fp32 master weights kept as two 16-bit halves, so that a bf16 model trains
// with exact fp32 master weights in 16 bytes a parameter (2 + 2 + 4 gradient + 8 moments) instead of
// Megatron's 18 (a bf16 copy beside a whole fp32 master).
//
// The high half is the model's own bf16 weight: x rounded to bf16, to nearest with ties away from zero;
// the low half is x's low 16 bits. Write u = bits(x), lo = u & 0xffff:
//   hi = (u + 0x8000) >> 16        (the high 16 bits, plus the carry of rounding when lo >= 0x8000)
//   u  = ((hi - (lo >> 15)) << 16) | lo
// so joining is exact for every finite x (and infinities), with no table and no case analysis. The
// weight the forward reads is the correctly rounded bf16 of the master, as in Megatron's bf16 recipe,
// except at exact ties (lo == 0x8000, one value in 65536), where it rounds away from zero instead of to
// even: one bf16 ulp apart there. A carry out of the largest finite binade gives +-inf, as IEEE rounding
// does. NaN masters keep a NaN high half (quieted) and join to a NaN (its payload is not kept).
#pragma once

#include <cstdint>

#include "kumiki/config.hpp"
#include "kumiki/core/bf16.hpp"
#include "kumiki/core/device.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace optim {

/// The two halves of one fp32 master weight.
struct MasterHalves {
  std::uint16_t hi;  ///< bf16 bits: the weight the model computes with
  std::uint16_t lo;  ///< the low 16 bits of the fp32 master
};

/// x as (hi, lo); join_master(split_master(x)) == x bit for bit unless x is a NaN.
KUMIKI_HOST_DEVICE KUMIKI_FORCEINLINE constexpr MasterHalves split_master(float x) {
  std::uint32_t const u = kumiki::detail::float_bits(x);
  auto const lo = static_cast<std::uint16_t>(u & 0xffffu);
  if ((u & 0x7fffffffu) > 0x7f800000u) return {static_cast<std::uint16_t>((u >> 16) | 0x0040u), lo};  // NaN
  return {static_cast<std::uint16_t>((u + 0x8000u) >> 16), lo};
}

/// The fp32 master weight of halves (hi, lo).
KUMIKI_HOST_DEVICE KUMIKI_FORCEINLINE constexpr float join_master(std::uint16_t hi, std::uint16_t lo) {
  if ((hi & 0x7fffu) > 0x7f80u) return kumiki::detail::bits_float((std::uint32_t{hi} << 16) | lo);  // NaN stays NaN
  auto const top = static_cast<std::uint16_t>(hi - (lo >> 15));
  return kumiki::detail::bits_float((std::uint32_t{top} << 16) | lo);
}

/// Moves whole arrays between fp32 and halves on backend `Backend` (the trainer's initialization and
/// checkpoints of a bf16 model): split(ctx, x, hi, lo, n) and join(ctx, hi, lo, x, n), queued on the
/// context's stream. split with lo == nullptr writes the high halves only (a ZeRO-1 rank keeps the low
/// halves of its own part). Specialized in optim/cpu/master.hpp and optim/cuda/master.cuh.
template <class Backend>
struct MasterSplit {
  static_assert(always_false<Backend>, "kumiki: no MasterSplit for this backend; include kumiki/cpu.hpp (Cpu) or "
                                       "kumiki/cuda.cuh (Cuda)");
};

}  // namespace optim
KUMIKI_NAMESPACE_END
