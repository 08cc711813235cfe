// More op-harness cases (tests/ops/backend_ops.hpp) for Linear and LmHeadLoss: odd sizes, strides and
// accumulation, the mixed float / bf16 products of the MoE router, LLM-jp-4 widths, and the loss's
// edge cases (chunk not dividing the tokens, one token, every target ignored, forward only, a
// 99487-token vocabulary padded to 99584). Generic: the CPU runs them in double, a GPU in its policies.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "../../ops/backend_ops.hpp"

namespace kumiki_test::backend_ops {

namespace gemm_cases {

/// forward (accumulating into strided y and overwriting a dense y), backward_input (accumulating
/// into strided d_x) and backward_weight for one shape, outputs suffixed with `tag`. With `strided`,
/// x, y, d_y and d_x are the left parts of wider rows (their untouched columns keep their values).
/// d_w accumulates from random values, or from zeros with `zero_dw` (large shapes: the CPU reference
/// spends most of its time drawing inputs).
template <class B, class P>
void linear_shape(ops::Ctx<B>& ctx, Outputs& outs, std::string const& tag, std::int64_t n, std::int64_t in,
                  std::int64_t out, bool strided, std::uint64_t seed, bool zero_dw = false) {
  KUMIKI_CASE_TYPES(P);
  std::int64_t const ldx = strided ? in + 2 : in, ldy = strided ? out + 3 : out;
  std::int64_t const ld_dy = strided ? out + 2 : out, ld_dx = strided ? in + 1 : in;
  auto const sz = [](std::int64_t v) { return static_cast<std::size_t>(v); };
  Dev<B, T> x(uniform(sz(n * ldx), seed)), y(uniform(sz(n * ldy), seed + 1)), y_dense = Dev<B, T>::output(sz(n * out));
  Dev<B, T> d_y(uniform(sz(n * ld_dy), seed + 2)), d_x(uniform(sz(n * ld_dx), seed + 3));
  Dev<B, W> w(uniform(sz(out * in), seed + 4, -0.5, 0.5));
  Dev<B, G> d_w = zero_dw ? Dev<B, G>(sz(out * in)) : Dev<B, G>(uniform(sz(out * in), seed + 5));
  ops::Linear<B>::forward(ctx, x.data(), w.data(), y.data(), n, in, out, true, ldx, ldy);
  ops::Linear<B>::forward(ctx, x.data(), w.data(), y_dense.data(), n, in, out, false, ldx, 0);
  ops::Linear<B>::backward_input(ctx, d_y.data(), w.data(), d_x.data(), n, in, out, true, ld_dy, ld_dx);
  ops::Linear<B>::backward_weight(ctx, d_y.data(), x.data(), d_w.data(), n, in, out, ld_dy, ldx);
  synchronize(ctx);
  outs.push_back({"y += x W^T (strided) " + tag, y.host()});
  outs.push_back({"y = x W^T (dense) " + tag, y_dense.host()});
  outs.push_back({"d_x += d_y W " + tag, d_x.host()});
  outs.push_back({"d_w += d_y^T x " + tag, d_w.host()});
}

/// The MoE router's products: bf16 x and W into fp32 logits (the statistics type), fp32 d_logits
/// against bf16 W into the activation gradient (accumulated, as the layer does) and against bf16 x
/// into the fp32 weight gradient. In the mixed policy the last two are float x bf16.
template <class B, class P>
void router_shape(ops::Ctx<B>& ctx, Outputs& outs, std::string const& tag, std::int64_t n, std::int64_t in,
                  std::int64_t out, std::uint64_t seed) {
  KUMIKI_CASE_TYPES(P);
  auto const sz = [](std::int64_t v) { return static_cast<std::size_t>(v); };
  Dev<B, T> x(uniform(sz(n * in), seed)), d_x(uniform(sz(n * in), seed + 1));
  Dev<B, W> w(uniform(sz(out * in), seed + 2, -0.1, 0.1));
  Dev<B, S> logits = Dev<B, S>::output(sz(n * out)), d_logits(uniform(sz(n * out), seed + 3));
  Dev<B, G> d_w(uniform(sz(out * in), seed + 4));
  ops::Linear<B>::forward(ctx, x.data(), w.data(), logits.data(), n, in, out);
  ops::Linear<B>::backward_input(ctx, d_logits.data(), w.data(), d_x.data(), n, in, out, true);
  ops::Linear<B>::backward_weight(ctx, d_logits.data(), x.data(), d_w.data(), n, in, out);
  synchronize(ctx);
  outs.push_back({"logits " + tag, logits.host()});
  outs.push_back({"d_x += d_logits W " + tag, d_x.host()});
  outs.push_back({"d_w += d_logits^T x " + tag, d_w.host()});
}

/// Inputs of one LmHeadLoss call: x (N, C), w (V_pad, C), targets, mask.
struct LossInputs {
  std::vector<double> x, w, mask;
  std::vector<std::int32_t> targets;
};

/// Runs LmHeadLoss once (with logits out when `with_logits`, the mask when `with_mask`, gradients
/// when `with_grad`: d_x pure, d_w accumulated from `d_w0`), outputs suffixed with `tag`; returns the
/// result, whose losses are among the outputs unless a.defer (the caller reads and adds them).
template <class B, class P>
ops::LmHeadLossResult loss_run(ops::Ctx<B>& ctx, Outputs& outs, std::string const& tag, ops::LmHeadLossArgs const& a, LossInputs const& in,
              std::vector<double> const& d_w0, bool with_logits, bool with_mask, bool with_grad) {
  KUMIKI_CASE_TYPES(P);
  auto const sz = [](std::int64_t v) { return static_cast<std::size_t>(v); };
  DevInt<B, std::int32_t> tg(in.targets);
  Dev<B, T> x(in.x), m(in.mask), d_x = Dev<B, T>::output(sz(a.tokens * a.hidden));
  Dev<B, T> logits = Dev<B, T>::output(sz(a.tokens * a.padded_vocab));
  Dev<B, W> w(in.w);
  Dev<B, G> d_w(d_w0);
  Dev<B, S> scratch = Dev<B, S>::output(sz(ops::LmHeadLoss<B>::scratch_elems(a)));
  ops::LmHeadLossResult const r = ops::LmHeadLoss<B>::run(
      ctx, a, x.data(), w.data(), tg.data(), with_mask ? m.data() : static_cast<T const*>(nullptr),
      with_grad ? d_x.data() : static_cast<T*>(nullptr), with_grad ? d_w.data() : static_cast<G*>(nullptr),
      with_logits ? logits.data() : static_cast<T*>(nullptr), scratch.data());
  synchronize(ctx);
  if (!a.defer) outs.push_back({"loss, ce, z, weight " + tag, {r.loss, r.ce, r.z, r.weight}});
  if (with_logits) outs.push_back({"logits " + tag, logits.host()});
  if (with_grad) {
    outs.push_back({"d_x " + tag, d_x.host()});
    outs.push_back({"d_w " + tag, d_w.host()});
  }
  return r;
}

/// Targets (i * step + offset) % vocab, with the last real id and 0 among them.
inline std::vector<std::int32_t> spread_targets(std::int64_t n, std::int64_t vocab, std::int64_t step) {
  std::vector<std::int32_t> t(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) t[static_cast<std::size_t>(i)] = static_cast<std::int32_t>((i * step + 3) % vocab);
  if (n > 1) t[1] = static_cast<std::int32_t>(vocab - 1);
  if (n > 2) t[2] = 0;
  return t;
}

}  // namespace gemm_cases

struct LinearOddCase {
  static constexpr char const* name = "Linear odd sizes (n = 1, 5; in = 7; out = 13), strided and dense, accumulating";
  static constexpr double tol = 1e-5;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    Outputs outs;
    gemm_cases::linear_shape<B, P>(ctx, outs, "(n 1, strided)", 1, 7, 13, true, 100);
    gemm_cases::linear_shape<B, P>(ctx, outs, "(n 5, strided)", 5, 7, 13, true, 110);
    gemm_cases::linear_shape<B, P>(ctx, outs, "(n 3, in 1, out 1)", 3, 1, 1, false, 120);
    gemm_cases::linear_shape<B, P>(ctx, outs, "(n 2, in 33, out 130, strided)", 2, 33, 130, true, 130);
    return outs;
  }
};

/// LLM-jp-4 widths, a few rows each: the reduction over hidden 2048 (1.3B) and 4096 (7.7B), and the
/// q | k | v output width 6144 of 7.7B (4096 + 2 x 1024; also 3 x 2048).
struct LinearLlmJpCase {
  static constexpr char const* name = "Linear at LLM-jp-4 widths (in 2048, in 4096, out 6144)";
  static constexpr double tol = 1e-5;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    Outputs outs;
    gemm_cases::linear_shape<B, P>(ctx, outs, "(1.3B: n 16, in 2048, out 256)", 16, 2048, 256, false, 200, true);
    gemm_cases::linear_shape<B, P>(ctx, outs, "(7.7B: n 4, in 4096, out 128, strided)", 4, 4096, 128, true, 210, true);
    gemm_cases::linear_shape<B, P>(ctx, outs, "(q|k|v: n 8, in 64, out 6144)", 8, 64, 6144, false, 220, true);
    return outs;
  }
};

struct LinearRouterCase {
  static constexpr char const* name = "Linear as the MoE router: bf16 in, fp32 logits, fp32 d_logits back";
  static constexpr double tol = 1e-5;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    Outputs outs;
    gemm_cases::router_shape<B, P>(ctx, outs, "(LLM-jp-3 8x1.8B: n 16, C 2048, E 8)", 16, 2048, 8, 300);
    gemm_cases::router_shape<B, P>(ctx, outs, "(n 1, C 7, E 3)", 1, 7, 3, 310);
    gemm_cases::router_shape<B, P>(ctx, outs, "(n 9, C 33, E 5)", 9, 33, 5, 320);
    return outs;
  }
};

struct LmHeadLossOddCase {
  static constexpr char const* name = "LmHeadLoss odd sizes: 23 tokens in chunks of 10, hidden 37, vocab 77 -> 128";
  static constexpr double tol = 2e-5;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    ops::LmHeadLossArgs a;
    a.tokens = 23, a.hidden = 37, a.vocab = 77, a.padded_vocab = 128, a.chunk = 10;
    a.ignore_index = -1, a.z_loss = 1e-3, a.grad_scale = 0.25;
    gemm_cases::LossInputs in;
    in.x = uniform(23 * 37, 400), in.w = uniform(128 * 37, 401, -0.3, 0.3), in.mask = uniform(23, 402, 0.0, 2.0);
    in.targets = gemm_cases::spread_targets(23, 77, 11);
    in.targets[5] = -1, in.targets[22] = -1, in.mask[7] = 0.0, in.mask[0] = 0.0;
    Outputs outs;
    // d_w accumulates onto values of the gradient's order (its entries are about 1e-3): a start of
    // order 1 would hide a wrong gradient inside the bf16 tolerance.
    gemm_cases::loss_run<B, P>(ctx, outs, "(mask, logits)", a, in, uniform(128 * 37, 403, -0.01, 0.01), true, true, true);
    a.chunk = 23;  // one chunk, no mask, no logits
    gemm_cases::loss_run<B, P>(ctx, outs, "(one chunk, no mask)", a, in, uniform(128 * 37, 404, -0.01, 0.01), false, false,
                               true);
    return outs;
  }
};

struct LmHeadLossOneTokenCase {
  static constexpr char const* name = "LmHeadLoss one token (chunk 256 > tokens), no mask, no logits";
  static constexpr double tol = 2e-5;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    ops::LmHeadLossArgs a;
    a.tokens = 1, a.hidden = 16, a.vocab = 50, a.padded_vocab = 64, a.chunk = 256;
    gemm_cases::LossInputs in;
    in.x = uniform(16, 410), in.w = uniform(64 * 16, 411, -0.5, 0.5), in.mask = {1.0}, in.targets = {49};
    Outputs outs;
    gemm_cases::loss_run<B, P>(ctx, outs, "(one token)", a, in, std::vector<double>(64 * 16, 0.0), false, false, true);
    return outs;
  }
};

/// Every target ignored or masked (total weight 0): the CPU returns zeros, writes d_x = 0 and leaves
/// d_w as it was; and forward-only calls (no gradients), with and without weight.
struct LmHeadLossIgnoredCase {
  static constexpr char const* name = "LmHeadLoss every target ignored or masked, and forward only";
  static constexpr double tol = 2e-5;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    ops::LmHeadLossArgs a;
    a.tokens = 9, a.hidden = 12, a.vocab = 40, a.padded_vocab = 48, a.chunk = 4, a.z_loss = 1e-2, a.grad_scale = 2.0;
    gemm_cases::LossInputs in;
    in.x = uniform(9 * 12, 420), in.w = uniform(48 * 12, 421, -0.5, 0.5), in.mask = std::vector<double>(9, 1.0);
    in.targets = std::vector<std::int32_t>(9, a.ignore_index);
    in.mask[3] = 0.0, in.targets[3] = 7;  // a real target with mask 0
    std::vector<double> const d_w0 = uniform(48 * 12, 422);
    Outputs outs;
    gemm_cases::loss_run<B, P>(ctx, outs, "(all ignored)", a, in, d_w0, true, true, true);
    gemm_cases::loss_run<B, P>(ctx, outs, "(all ignored, forward only)", a, in, d_w0, true, true, false);
    in.targets = gemm_cases::spread_targets(9, 40, 5);
    in.targets[6] = a.ignore_index;
    in.mask = uniform(9, 423, 0.0, 1.0);
    gemm_cases::loss_run<B, P>(ctx, outs, "(forward only)", a, in, d_w0, true, true, false);
    return outs;
  }
};

/// LLM-jp's vocabulary (99487 ids padded to a multiple of 128: 99584) with few tokens and a small
/// hidden size, so the CPU reference stays fast.
struct LmHeadLossLlmJpVocabCase {
  static constexpr char const* name = "LmHeadLoss LLM-jp vocabulary 99487 -> 99584, 5 tokens in chunks of 3, hidden 8";
  static constexpr double tol = 2e-5;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    ops::LmHeadLossArgs a;
    a.tokens = 5, a.hidden = 8, a.vocab = 99487, a.padded_vocab = 99584, a.chunk = 3, a.z_loss = 1e-4;
    gemm_cases::LossInputs in;
    in.x = uniform(5 * 8, 430), in.w = uniform(99584 * 8, 431, -1.0, 1.0), in.mask = uniform(5, 432, 0.5, 1.0);
    in.targets = gemm_cases::spread_targets(5, 99487, 31337);
    in.targets[3] = a.ignore_index;
    Outputs outs;
    gemm_cases::loss_run<B, P>(ctx, outs, "(99584)", a, in, std::vector<double>(99584 * 8, 0.0), true, true, true);
    return outs;
  }
};

/// The LM head at LLM-jp-4 1.3B's hidden size 2048 (small vocabulary).
struct LmHeadLossHiddenCase {
  static constexpr char const* name = "LmHeadLoss hidden 2048, vocab 250 -> 256, 6 tokens in chunks of 4";
  static constexpr double tol = 2e-5;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    ops::LmHeadLossArgs a;
    a.tokens = 6, a.hidden = 2048, a.vocab = 250, a.padded_vocab = 256, a.chunk = 4, a.z_loss = 1e-4, a.grad_scale = 0.5;
    gemm_cases::LossInputs in;
    in.x = uniform(6 * 2048, 440), in.w = uniform(256 * 2048, 441, -0.05, 0.05), in.mask = uniform(6, 442, 0.0, 1.0);
    in.targets = gemm_cases::spread_targets(6, 250, 17);
    Outputs outs;
    gemm_cases::loss_run<B, P>(ctx, outs, "(C 2048)", a, in, std::vector<double>(256 * 2048, 0.0), true, true, true);
    return outs;
  }
};

/// Deferred results (LmHeadLossArgs::defer): three calls queued without reading their losses (their
/// inputs freed before the read), then one collect, which must return them in call order; the CPU
/// computes each at once and has nothing pending. The losses equal the CPU's immediate ones.
struct LmHeadLossDeferredCase {
  static constexpr char const* name = "LmHeadLoss deferred: three calls, one collect, results in call order";
  static constexpr double tol = 2e-5;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    ops::LmHeadLossArgs a;
    a.tokens = 11, a.hidden = 24, a.vocab = 60, a.padded_vocab = 64, a.chunk = 4, a.z_loss = 1e-3, a.defer = true;
    Outputs outs;
    std::vector<ops::LmHeadLossResult> results;
    for (int k = 0; k < 3; ++k) {
      gemm_cases::LossInputs in;
      std::uint64_t const seed = 450 + 10 * static_cast<std::uint64_t>(k);
      in.x = uniform(11 * 24, seed), in.w = uniform(64 * 24, seed + 1, -0.5, 0.5), in.mask = uniform(11, seed + 2, 0.0, 1.0);
      in.targets = gemm_cases::spread_targets(11, 60, 7 + 2 * k);
      a.grad_scale = 1.0 / (k + 1);
      results.push_back(gemm_cases::loss_run<B, P>(ctx, outs, "(deferred " + std::to_string(k) + ")", a, in,
                                                   std::vector<double>(64 * 24, 0.0), k == 1, true, k != 2));
    }
    std::vector<ops::LmHeadLossResult> const read = ops::LmHeadLoss<B>::collect(ctx);
    std::size_t j = 0;
    for (ops::LmHeadLossResult& r : results)
      if (r.pending) r = read.at(j++);
    outs.push_back({"every pending result read, none left", {j == read.size() ? 1.0 : 0.0}});
    for (std::size_t k = 0; k < results.size(); ++k) {
      ops::LmHeadLossResult const& r = results[k];
      outs.push_back({"loss, ce, z, weight (deferred " + std::to_string(k) + ")", {r.loss, r.ce, r.z, r.weight}});
    }
    return outs;
  }
};

}  // namespace kumiki_test::backend_ops
