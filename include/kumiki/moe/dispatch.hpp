// kumiki/moe/dispatch.hpp: dropless token dispatch of a mixture-of-experts layer: sorting the
// (token, slot) assignments by expert, gathering token rows into per-expert blocks, and the
// weighted combine back, each with its backward.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/ops/context.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace moe {

/// The Dispatch signature: plan (topk_idx, N, k, E, offsets, row_token, token_row), gather (x, row_token,
/// rows, C, xg), scatter_add (d_xg, token_row, N, k, C, d_x, accumulate), combine (y, token_row, w, N, k,
/// C, out) and combine_backward (d_out, y, token_row, w, N, k, C, d_y, d_w); rows are activations of
/// the activation type, the routing weights w and d_w the router's statistics type.
template <class Op, class Backend, class X>
concept DispatchOp = requires(ops::Ctx<Backend>& ctx, act_of<X> const* c, act_of<X>* p, stat_of<X> const* cs,
                              stat_of<X>* s, std::int32_t const* ci, std::int32_t* pi, std::int64_t* pl, std::int64_t n,
                              bool acc) {
  { Op::plan(ctx, ci, n, n, n, pl, pi, pi) } -> std::same_as<void>;
  { Op::gather(ctx, c, ci, n, n, p) } -> std::same_as<void>;
  { Op::scatter_add(ctx, c, ci, n, n, n, p, acc) } -> std::same_as<void>;
  { Op::combine(ctx, c, ci, cs, n, n, n, p) } -> std::same_as<void>;
  { Op::combine_backward(ctx, c, c, ci, cs, n, n, n, p, s) } -> std::same_as<void>;
};

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
                "kumiki: no MoE Dispatch for this backend; include kumiki/cpu.hpp (Cpu) or kumiki/cuda.cuh (Cuda)");
};

}  // namespace moe
KUMIKI_NAMESPACE_END
