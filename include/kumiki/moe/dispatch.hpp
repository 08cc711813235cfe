// kumiki/moe/dispatch.hpp: dropless token dispatch of a mixture-of-experts layer: sorting the
// (token, slot) assignments by expert, gathering token rows into per-expert blocks, and the
// weighted combine back, each with its backward.
#pragma once

#include <cstdint>

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace moe {

/// Dispatch of N tokens with k assignments each (no capacity limit, nothing dropped):
///   plan:    a stable counting sort of the N*k assignments by expert: offsets (E + 1) delimit each
///            expert's rows, row_token (N*k) names the token of each sorted row, token_row (N, k) the
///            sorted row of each assignment;
///   gather:  xg (N*k, C) = x[row_token]                       (its backward: scatter_add)
///   combine: out[t] = sum_j w[t, j] * y[token_row[t, j]]      (backward: d_y and d_w)
/// Every result is a fixed-order sum, bitwise independent of the thread count.
/// Specializations: moe/cpu/dispatch.hpp (Cpu).
/// \tparam Backend device tag (`Cpu`, `Cuda`)
template <class Backend>
struct Dispatch {
  static_assert(always_false<Backend>,
                "kumiki: no MoE Dispatch for this backend; include kumiki/moe/cpu/dispatch.hpp (Cpu) or the CUDA header");
};

}  // namespace moe
KUMIKI_NAMESPACE_END
