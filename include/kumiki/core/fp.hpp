// kumiki/core/fp.hpp: scalar floating-point arithmetic that means the same on every CPU a binary is built for.
#pragma once

#include <type_traits>

#include "kumiki/config.hpp"

KUMIKI_NAMESPACE_BEGIN

/// `x`, rounded to its type and opaque to the optimizer: a multiply whose result goes through
/// `rounded` is never fused with the add that follows it. Under -march=native (FMA hardware) GCC and
/// Clang may contract `a + b * c` into one fused multiply-add, which rounds once instead of twice,
/// so scalar bookkeeping (schedules, blending indices) would change with the CPU the binary was built
/// for and stop matching Megatron-LM's Python/numpy arithmetic (which never fuses). Write
/// `a + rounded(b * c)` where a result must be reproducible bit for bit. Constant evaluation never
/// contracts, so there the value passes through unchanged.
template <class T>
  requires std::is_floating_point_v<T>
constexpr T rounded(T x) noexcept {
  if (std::is_constant_evaluated()) return x;
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && defined(__SSE2__)
  asm("" : "+x"(x));  // an SSE register: no spill to memory needed
#elif defined(__GNUC__) && defined(__aarch64__)
  asm("" : "+w"(x));
#elif defined(__GNUC__)
  asm("" : "+m"(x));
#else
  volatile T v = x;
  x = v;
#endif
  return x;
}

KUMIKI_NAMESPACE_END
