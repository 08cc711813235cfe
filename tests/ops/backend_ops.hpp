// The op harness (as ggml's test-backend-ops): every op, run on a backend in a precision policy,
// compared with the CPU backend in double on the same random inputs. Each case states its inputs
// (host doubles), runs one op sequence on any backend through the op contract only (ops::Name<B>
// with an ops::Ctx<B>), and returns its outputs as host doubles, so a new backend joins by
// instantiating the cases for itself (a CUDA test TU: run<Cuda, float> and
// run<Cuda, Precision<bf16, bf16, float, float, float>> against run<Cpu, double>, the latter computed
// in a host TU). Buffers take the policy's types: activations act_of<P>, weights param_of<P>, weight
// gradients grad_of<P>, statistics stat_of<P>. Pure outputs start as NaN, so an element an op fails
// to write shows; accumulated outputs start from given values. This header includes only generic
// kumiki headers.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <string>
#include <utility>
#include <vector>

#include "kumiki/core/bf16.hpp"
#include "kumiki/core/buffer.hpp"
#include "kumiki/core/philox.hpp"
#include "kumiki/core/precision.hpp"
#include "kumiki/moe/dispatch.hpp"
#include "kumiki/moe/router.hpp"
#include "kumiki/ops/attention.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/ops/embedding.hpp"
#include "kumiki/ops/linear.hpp"
#include "kumiki/ops/lm_head_loss.hpp"
#include "kumiki/ops/residual.hpp"
#include "kumiki/ops/residual_rmsnorm.hpp"
#include "kumiki/ops/rmsnorm.hpp"
#include "kumiki/ops/rope.hpp"
#include "kumiki/ops/swiglu.hpp"

namespace kumiki_test::backend_ops {

using namespace kumiki;

inline double to_double(double v) { return v; }
inline double to_double(float v) { return v; }
inline double to_double(bf16 v) { return v.to_float(); }
template <class T>
T from_double(double v) {
  if constexpr (std::is_same_v<T, bf16>)
    return bf16(static_cast<float>(v));
  else
    return static_cast<T>(v);
}

/// Waits for the backend's queued work (a no-op on the CPU).
template <class B>
void synchronize(ops::Ctx<B>& ctx) {
  if constexpr (requires { ctx.synchronize(); }) ctx.synchronize();
}

/// A quiet NaN of T (what pure outputs start as).
template <class T>
T nan_of() {
  if constexpr (std::is_same_v<T, bf16>)
    return bf16::from_bits(0x7fc0);
  else
    return std::numeric_limits<T>::quiet_NaN();
}

/// n elements of T on backend B, uploaded from / downloaded to host doubles. Dev(n) is an
/// accumulator starting at zero; Dev<B, T>::output(n) a pure output starting as NaN.
template <class B, class T>
class Dev {
 public:
  explicit Dev(std::size_t n) : n_(n), buf_(n * sizeof(T)) { buf_.zero(); }
  static Dev output(std::size_t n) {
    Dev d(n);
    std::vector<T> t(n, nan_of<T>());
    Copy<B, Cpu>::bytes(d.buf_.data(), t.data(), n * sizeof(T));
    return d;
  }
  explicit Dev(std::vector<double> const& host) : Dev(host.size()) {
    std::vector<T> t(n_);
    for (std::size_t i = 0; i < n_; ++i) t[i] = from_double<T>(host[i]);
    Copy<B, Cpu>::bytes(buf_.data(), t.data(), n_ * sizeof(T));
  }
  T* data() const { return reinterpret_cast<T*>(buf_.data()); }
  std::vector<double> host() const {
    std::vector<T> t(n_);
    Copy<Cpu, B>::bytes(t.data(), buf_.data(), n_ * sizeof(T));
    std::vector<double> out(n_);
    for (std::size_t i = 0; i < n_; ++i) out[i] = to_double(t[i]);
    return out;
  }

 private:
  std::size_t n_;
  Buffer<B> buf_;
};

/// Integers (token ids, expert indices, offsets) on backend B, copied exactly. DevInt(n) starts as
/// -1 everywhere (no valid id, offset or count), so an element an op fails to write shows.
template <class B, class I>
class DevInt {
 public:
  explicit DevInt(std::size_t n) : n_(n), buf_(n * sizeof(I)) {
    std::vector<I> t(n, I(-1));
    Copy<B, Cpu>::bytes(buf_.data(), t.data(), n * sizeof(I));
  }
  explicit DevInt(std::vector<I> const& host) : DevInt(host.size()) {
    Copy<B, Cpu>::bytes(buf_.data(), host.data(), n_ * sizeof(I));
  }
  I* data() const { return reinterpret_cast<I*>(buf_.data()); }
  std::vector<double> host() const {
    std::vector<I> t(n_);
    Copy<Cpu, B>::bytes(t.data(), buf_.data(), n_ * sizeof(I));
    return std::vector<double>(t.begin(), t.end());
  }

 private:
  std::size_t n_;
  Buffer<B> buf_;
};

/// Named outputs of one case run, as host doubles.
using Outputs = std::vector<std::pair<std::string, std::vector<double>>>;

/// n values uniform in (lo, hi) from Philox stream (seed, stream), with 53 random bits each: the same
/// inputs on every backend, and none exactly representable in float, so a float run differs from the
/// double reference in every output (which the harness checks: it really compared two computations).
inline std::vector<double> uniform(std::size_t n, std::uint64_t stream, double lo = -1.0, double hi = 1.0) {
  PhiloxStream const s{0x6b756d696b69ULL, stream};
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::uint64_t const k = 2 * static_cast<std::uint64_t>(i);
    v[i] = lo + (hi - lo) * PhiloxStream::to_unit_double(s.u32(k), s.u32(k + 1));
  }
  return v;
}

// ---- the cases ---------------------------------------------------------------------------------
// Each: name, tolerance (max |got - ref| / max |ref| per output, for float against double), and
// run<B, P>(ctx) returning its outputs (P a precision policy or one scalar type). Shapes are small
// but cross every tiling boundary the CPU kernels have (64-wide tiles and column blocks) and use row
// strides where the model does.

/// The four buffer types of policy P, for a case's body.
#define KUMIKI_CASE_TYPES(P)                         \
  using T [[maybe_unused]] = ::kumiki::act_of<P>;    \
  using W [[maybe_unused]] = ::kumiki::param_of<P>;  \
  using S [[maybe_unused]] = ::kumiki::stat_of<P>;   \
  using G [[maybe_unused]] = ::kumiki::grad_of<P>

struct EmbeddingCase {
  static constexpr char const* name = "Embedding forward + backward";
  static constexpr double tol = 1e-6;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    KUMIKI_CASE_TYPES(P);
    std::int64_t const V = 11, C = 70, N = 9;
    DevInt<B, std::int32_t> tok(std::vector<std::int32_t>{3, 0, 10, 3, 7, 3, 1, 0, 9});
    Dev<B, W> table(uniform(V * C, 1));
    Dev<B, T> d_out(uniform(N * C, 2)), out = Dev<B, T>::output(N * C);
    Dev<B, G> d_table(V * C);
    ops::Embedding<B>::forward(ctx, tok.data(), table.data(), out.data(), N, C, V);
    ops::Embedding<B>::backward(ctx, tok.data(), d_out.data(), d_table.data(), N, C);
    synchronize(ctx);
    return {{"out", out.host()}, {"d_table", d_table.host()}};
  }
};

struct RmsNormCase {
  static constexpr char const* name = "RmsNorm forward + backward";
  static constexpr double tol = 2e-6;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    KUMIKI_CASE_TYPES(P);
    std::int64_t const N = 13, C = 130;
    std::vector<double> w = uniform(C, 4, 0.5, 1.5);
    Dev<B, T> x(uniform(N * C, 3)), d_y(uniform(N * C, 5)), y = Dev<B, T>::output(N * C), d_x(uniform(N * C, 6));
    Dev<B, W> wd(w);
    Dev<B, S> rstd = Dev<B, S>::output(N);
    Dev<B, G> d_w(C);
    ops::RmsNorm<B>::forward(ctx, x.data(), wd.data(), y.data(), rstd.data(), N, C, 1e-5);
    ops::RmsNorm<B>::backward(ctx, d_y.data(), x.data(), wd.data(), rstd.data(), d_x.data(), d_w.data(), N, C, true);
    synchronize(ctx);
    return {{"y", y.host()}, {"rstd", rstd.host()}, {"d_x (accumulated)", d_x.host()}, {"d_w", d_w.host()}};
  }
};

struct ResidualRmsNormCase {
  static constexpr char const* name = "ResidualRmsNorm forward";
  static constexpr double tol = 2e-6;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    KUMIKI_CASE_TYPES(P);
    std::int64_t const N = 7, C = 96;
    Dev<B, T> a(uniform(N * C, 7)), b(uniform(N * C, 8)), sum = Dev<B, T>::output(N * C), y = Dev<B, T>::output(N * C);
    Dev<B, W> w(uniform(C, 9, 0.5, 1.5));
    Dev<B, S> rstd = Dev<B, S>::output(N);
    ops::ResidualRmsNorm<B>::forward(ctx, a.data(), b.data(), sum.data(), w.data(), y.data(), rstd.data(), N, C, 1e-6);
    synchronize(ctx);
    return {{"sum", sum.host()}, {"y", y.host()}, {"rstd", rstd.host()}};
  }
};

struct ResidualCase {
  static constexpr char const* name = "Residual forward + accumulate";
  static constexpr double tol = 1e-6;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    KUMIKI_CASE_TYPES(P);
    std::int64_t const n = 1000;
    Dev<B, T> a(uniform(n, 10)), b(uniform(n, 11)), out = Dev<B, T>::output(n);
    ops::Residual<B>::forward(ctx, a.data(), b.data(), out.data(), n);
    ops::Residual<B>::accumulate(ctx, a.data(), b.data(), n);
    synchronize(ctx);
    return {{"out", out.host()}, {"a + b (accumulated)", a.host()}};
  }
};

struct LinearCase {
  static constexpr char const* name = "Linear forward, backward_input, backward_weight (strided)";
  static constexpr double tol = 1e-5;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    KUMIKI_CASE_TYPES(P);
    std::int64_t const n = 37, in = 70, out = 45, ldy = 2 * out;  // y and d_y are the left half of wider rows
    Dev<B, T> x(uniform(n * in, 12)), y(uniform(n * ldy, 14)), d_y(uniform(n * ldy, 15)), d_x = Dev<B, T>::output(n * in);
    Dev<B, W> w(uniform(out * in, 13));
    Dev<B, G> d_w(uniform(out * in, 16));
    ops::Linear<B>::forward(ctx, x.data(), w.data(), y.data(), n, in, out, false, 0, ldy);
    ops::Linear<B>::backward_input(ctx, d_y.data(), w.data(), d_x.data(), n, in, out, false, ldy, 0);
    ops::Linear<B>::backward_weight(ctx, d_y.data(), x.data(), d_w.data(), n, in, out, ldy, 0);
    synchronize(ctx);
    return {{"y", y.host()}, {"d_x", d_x.host()}, {"d_w (accumulated)", d_w.host()}};
  }
};

struct RopeCase {
  static constexpr char const* name = "Rope tables, apply and its inverse";
  static constexpr double tol = 2e-6;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    KUMIKI_CASE_TYPES(P);
    std::int64_t const Bn = 2, Tn = 9, H = 3, hd = 16, ld = H * hd + 8;
    Dev<B, S> cos_t = Dev<B, S>::output(Tn * hd / 2), sin_t = Dev<B, S>::output(Tn * hd / 2);
    Dev<B, T> x(uniform(Bn * Tn * ld, 17)), d(uniform(Bn * Tn * ld, 18));
    ops::Rope<B>::tables(ctx, cos_t.data(), sin_t.data(), Tn, hd, 10000.0);
    ops::Rope<B>::apply(ctx, x.data(), Bn, Tn, H, hd, ld, cos_t.data(), sin_t.data(), false);
    ops::Rope<B>::apply(ctx, d.data(), Bn, Tn, H, hd, ld, cos_t.data(), sin_t.data(), true);
    synchronize(ctx);
    return {{"cos", cos_t.host()}, {"sin", sin_t.host()}, {"rotated", x.host()}, {"inverse", d.host()}};
  }
};

struct SwiGluCase {
  static constexpr char const* name = "SwiGlu forward + backward";
  static constexpr double tol = 2e-6;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    KUMIKI_CASE_TYPES(P);
    std::int64_t const n = 11, f = 50;
    Dev<B, T> gu(uniform(n * 2 * f, 19, -3.0, 3.0)), h = Dev<B, T>::output(n * f), d_h(uniform(n * f, 20));
    Dev<B, T> d_gu = Dev<B, T>::output(n * 2 * f);
    ops::SwiGlu<B>::forward(ctx, gu.data(), gu.data() + f, 2 * f, h.data(), f, n, f);
    ops::SwiGlu<B>::backward(ctx, d_h.data(), f, gu.data(), gu.data() + f, 2 * f, d_gu.data(), d_gu.data() + f, 2 * f, n, f);
    synchronize(ctx);
    return {{"h", h.host()}, {"d_gate | d_up", d_gu.host()}};
  }
};

/// Causal GQA attention over a fused q | k | v buffer, forward and backward; with `documents`, the
/// reset-attention-mask form (an EOD token in the middle of each row).
template <bool documents>
struct AttentionCase {
  static constexpr char const* name = documents ? "Attention forward + backward, document mask" : "Attention forward + backward";
  static constexpr double tol = 2e-5;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    KUMIKI_CASE_TYPES(P);
    std::int64_t const Bn = 2, Tn = 70, H = 4, Groups = 2, hd = 8, C = H * hd, KV = Groups * hd, QKV = C + 2 * KV;
    ops::AttentionShape const s{Bn, Tn, H, Groups, hd, QKV, QKV, QKV, C};
    Dev<B, T> qkv(uniform(Bn * Tn * QKV, 21)), o = Dev<B, T>::output(Bn * Tn * C), d_o(uniform(Bn * Tn * C, 22));
    Dev<B, S> lse = Dev<B, S>::output(Bn * H * Tn);
    Dev<B, T> d_qkv = Dev<B, T>::output(Bn * Tn * QKV);
    std::vector<std::int32_t> tokens(static_cast<std::size_t>(Bn * Tn), 5);
    tokens[20] = 0, tokens[Tn + 45] = 0;  // EOD id 0
    DevInt<B, std::int32_t> tok(tokens), doc_start(Bn * Tn);
    if (documents) ops::Attention<B>::document_starts(ctx, tok.data(), Bn, Tn, 0, doc_start.data());
    std::int32_t const* ds = documents ? doc_start.data() : nullptr;
    S const scale = from_double<S>(1.0 / std::sqrt(static_cast<double>(hd)));
    T* q = qkv.data();
    ops::Attention<B>::forward(ctx, s, q, q + C, q + C + KV, o.data(), lse.data(), ds, scale);
    T* dq = d_qkv.data();
    ops::Attention<B>::backward(ctx, s, q, q + C, q + C + KV, o.data(), d_o.data(), lse.data(), dq, dq + C, dq + C + KV, ds,
                                scale);
    synchronize(ctx);
    Outputs r{{"o", o.host()}, {"lse", lse.host()}, {"d_q | d_k | d_v", d_qkv.host()}};
    if (documents) r.push_back({"doc_start", doc_start.host()});
    return r;
  }
};

struct LmHeadLossCase {
  static constexpr char const* name = "LmHeadLoss (padded vocabulary, mask, ignore index, z-loss)";
  static constexpr double tol = 2e-5;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    KUMIKI_CASE_TYPES(P);
    ops::LmHeadLossArgs a;
    a.tokens = 19, a.hidden = 24, a.vocab = 50, a.padded_vocab = 64, a.chunk = 8, a.z_loss = 1e-4, a.grad_scale = 0.5;
    std::vector<std::int32_t> targets(19);
    for (std::int32_t i = 0; i < 19; ++i) targets[static_cast<std::size_t>(i)] = (i * 7) % 50;
    targets[4] = a.ignore_index;
    std::vector<double> mask = uniform(19, 23, 0.0, 1.0);
    mask[9] = 0.0;
    DevInt<B, std::int32_t> tg(targets);
    Dev<B, T> x(uniform(19 * 24, 24)), m(mask), d_x = Dev<B, T>::output(19 * 24), logits = Dev<B, T>::output(19 * 64);
    Dev<B, W> w(uniform(64 * 24, 25, -0.3, 0.3));
    Dev<B, G> d_w(uniform(64 * 24, 32, -0.01, 0.01));  // as small as the gradient, which a large start would hide
    Dev<B, S> scratch = Dev<B, S>::output(static_cast<std::size_t>(ops::LmHeadLoss<B>::scratch_elems(a)));
    ops::LmHeadLossResult const r = ops::LmHeadLoss<B>::run(ctx, a, x.data(), w.data(), tg.data(), m.data(), d_x.data(),
                                                             d_w.data(), logits.data(), scratch.data());
    synchronize(ctx);
    return {{"loss, ce, z, weight", {r.loss, r.ce, r.z, r.weight}},
            {"logits", logits.host()},
            {"d_x", d_x.host()},
            {"d_w", d_w.host()}};
  }
};

struct RouterCase {
  static constexpr char const* name = "MoE Router forward + backward";
  static constexpr double tol = 2e-5;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    KUMIKI_CASE_TYPES(P);
    moe::RouterArgs const a{29, 8, 2, false, 0.01, 0.001};
    Dev<B, S> logits(uniform(29 * 8, 26, -2.0, 2.0)), probs = Dev<B, S>::output(29 * 8), lse = Dev<B, S>::output(29);
    Dev<B, S> topk_w = Dev<B, S>::output(29 * 2), d_w(uniform(29 * 2, 27)), d_logits = Dev<B, S>::output(29 * 8);
    DevInt<B, std::int32_t> topk_idx(29 * 2);
    DevInt<B, std::int64_t> counts(8);
    moe::RouterLosses const l = moe::Router<B>::forward(ctx, a, logits.data(), probs.data(), lse.data(), topk_idx.data(),
                                                        topk_w.data(), counts.data());
    moe::Router<B>::backward(ctx, a, 0.5, probs.data(), lse.data(), topk_idx.data(), topk_w.data(), counts.data(),
                             d_w.data(), d_logits.data());
    synchronize(ctx);
    return {{"aux, z", {l.aux, l.z}},    {"probs", probs.host()},       {"lse", lse.host()},
            {"topk_idx", topk_idx.host()}, {"topk_w", topk_w.host()},   {"counts", counts.host()},
            {"d_logits", d_logits.host()}};
  }
};

struct DispatchCase {
  static constexpr char const* name = "MoE Dispatch plan, gather, combine and their backwards";
  static constexpr double tol = 1e-6;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    KUMIKI_CASE_TYPES(P);
    std::int64_t const N = 17, K = 2, E = 5, C = 12, R = N * K;
    std::vector<std::int32_t> idx(static_cast<std::size_t>(R));
    for (std::int64_t t = 0; t < N; ++t) idx[static_cast<std::size_t>(2 * t)] = static_cast<std::int32_t>(t % E),
                                         idx[static_cast<std::size_t>(2 * t + 1)] = static_cast<std::int32_t>((3 * t + 1) % E);
    DevInt<B, std::int32_t> topk(idx), row_token(R), token_row(R);
    DevInt<B, std::int64_t> offsets(E + 1);
    Dev<B, T> x(uniform(N * C, 28)), xg = Dev<B, T>::output(R * C), y(uniform(R * C, 29)), out = Dev<B, T>::output(N * C);
    Dev<B, S> w(uniform(R, 30, 0.0, 1.0)), d_w = Dev<B, S>::output(R);
    Dev<B, T> d_out(uniform(N * C, 31)), d_y = Dev<B, T>::output(R * C), d_x = Dev<B, T>::output(N * C);
    moe::Dispatch<B>::plan(ctx, topk.data(), N, K, E, offsets.data(), row_token.data(), token_row.data());
    moe::Dispatch<B>::gather(ctx, x.data(), row_token.data(), R, C, xg.data());
    moe::Dispatch<B>::combine(ctx, y.data(), token_row.data(), w.data(), N, K, C, out.data());
    moe::Dispatch<B>::combine_backward(ctx, d_out.data(), y.data(), token_row.data(), w.data(), N, K, C, d_y.data(), d_w.data());
    moe::Dispatch<B>::scatter_add(ctx, xg.data(), token_row.data(), N, K, C, d_x.data(), false);
    synchronize(ctx);
    return {{"offsets", offsets.host()}, {"row_token", row_token.host()}, {"token_row", token_row.host()},
            {"gathered", xg.host()},     {"combined", out.host()},        {"d_y", d_y.host()},
            {"d_w", d_w.host()},         {"scatter_add", d_x.host()}};
  }
};

/// max |got - ref| / max |ref| (absolute when the reference is all zeros).
inline double relative_error(std::vector<double> const& got, std::vector<double> const& ref) {
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    diff = std::max(diff, std::abs(got[i] - ref[i]));
    scale = std::max(scale, std::abs(ref[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

/// Outputs holding integers (ids, offsets, counts, document starts): compared exactly, never with a
/// tolerance, and equal in every precision.
inline bool integer_output(std::string const& name) {
  return name == "doc_start" || name == "topk_idx" || name == "counts" || name == "offsets" ||
         name == "row_token" || name == "token_row";
}

/// ||got - ref||_2 / ||ref||_2 (absolute when the reference is all zeros); NaN anywhere in `got`
/// (an element never written) gives NaN, which fails every comparison with a tolerance.
inline double relative_l2(std::vector<double> const& got, std::vector<double> const& ref) {
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    diff += (got[i] - ref[i]) * (got[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

}  // namespace kumiki_test::backend_ops
