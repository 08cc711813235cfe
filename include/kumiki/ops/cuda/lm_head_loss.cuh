// kumiki/ops/cuda/lm_head_loss.cuh: CUDA fused LM head + softmax cross-entropy (+ z-loss), forward
// and backward in one chunked pass over the tokens: the function of ops/cpu/lm_head_loss.hpp.
//
// Per chunk of tokens: the logits chunk (chunk x V_pad, fp32, in the caller's `scratch`) = x_chunk W^T
// through Linear<Cuda>; one block per row computes max, log-sum-exp and the row's loss terms (into a
// per-row fp64 buffer, no atomics) and overwrites the row with dL/dlogits; then d_x_chunk = dlogits W
// and d_W += dlogits^T x_chunk. The loss is reduced at the end in a fixed order and copied to the host:
// the op returns it, so it synchronizes the stream once.
//
// dlogits in the GEMMs. cuBLASLt multiplies bf16 by bf16 but not fp32 by bf16, so with bf16 weights
// and activations the row kernel rounds dlogits to bf16 (relative error <= 2^-9 per element, i.e. the
// precision Megatron-LM's bf16 output layer backward runs at; accumulation stays fp32). The bf16 row
// is written in place at the start of its own fp32 row (leading dimension 2 V_pad), tile by tile: no
// extra memory. With fp32 everything stays fp32 in place.
#pragma once

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include <cuda_runtime.h>

#include "kumiki/config.hpp"
#include "kumiki/core/bf16.hpp"
#include "kumiki/core/cuda/check.cuh"
#include "kumiki/core/device.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/precision.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/ops/cuda/context.cuh"
#include "kumiki/ops/cuda/linear.cuh"
#include "kumiki/ops/lm_head_loss.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {
namespace lm_head_cuda {

constexpr int row_threads = 256;     // one block per logits row; also the tile width of the in-place write
constexpr int reduce_threads = 512;  // the single-block reductions over all tokens

/// What the device reports back: sums over all tokens and the first invalid position.
struct Summary {
  double weight;        // sum_i w_i
  double ce;            // sum_i w_i (lse_i - logit_i[target_i])
  double zz;            // sum_i w_i lse_i^2
  long long bad_pos;    // first position with a target outside [0, V) or a negative / NaN mask; -1 if none
  long long bad_target; // the target at bad_pos (read on the device: a deferred result outlives the batch)
  // The call's arguments that reading the record needs (a deferred record is read after the call).
  double z_loss;
  long long vocab;
  long long ignore_index;
};

using cublaslt::load_float;
using cublaslt::store_as;

/// A token's loss weight, as the CPU computes it: 0 for the ignore index, else the mask value (1 without
/// a mask). `bad`: the target is outside [0, V) or the mask is negative or NaN (weight 0 then).
struct TokenWeight {
  float w;
  bool bad;
};
template <class TM>
KUMIKI_DEVICE TokenWeight token_weight(std::int32_t t, TM const* mask, std::int64_t i, std::int32_t ignore_index,
                                       std::int64_t vocab) {
  if (t == ignore_index) return {0.0f, false};
  if (t < 0 || t >= vocab) return {0.0f, true};
  float const mw = mask != nullptr ? load_float(mask[i]) : 1.0f;
  if (!(mw >= 0.0f)) return {0.0f, true};
  return {mw, false};
}

struct MaxOp {
  KUMIKI_DEVICE float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct SumOp {
  template <class V>
  KUMIKI_DEVICE V operator()(V a, V b) const { return a + b; }
};
struct MinOp {
  KUMIKI_DEVICE long long operator()(long long a, long long b) const { return a < b ? a : b; }
};

/// Reduces one value per thread over the block (blockDim.x a multiple of 32, every thread calling) in a
/// fixed tree: shuffles within each warp, then warp 0 over the warps' results. The same inputs in the
/// same threads give the same bits every time. Every thread gets the result.
template <class V, class Op>
KUMIKI_DEVICE V block_reduce(V v, Op op, V identity) {
  __shared__ V warp_vals[32];
  __shared__ V result;
  int const lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  int const warps = static_cast<int>(blockDim.x) >> 5;
  for (int off = 16; off > 0; off >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, off));
  __syncthreads();  // the previous call's readers of warp_vals / result are done
  if (lane == 0) warp_vals[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < warps ? warp_vals[lane] : identity;
    for (int off = 16; off > 0; off >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, off));
    if (lane == 0) result = v;
  }
  __syncthreads();
  return result;
}

/// Pass 0, one block: sum_i w_i in fp64 and the first invalid position, over all N tokens. Thread t
/// sums positions t, t + B, ... in order, then block_reduce: a fixed order, deterministic.
template <class TM>
__global__ void __launch_bounds__(reduce_threads)
    weights_kernel(std::int32_t const* __restrict__ targets, TM const* __restrict__ mask, std::int64_t tokens,
                   std::int32_t ignore_index, std::int64_t vocab, double z_loss, Summary* __restrict__ summary) {
  double sum = 0.0;
  long long bad = LLONG_MAX;
  for (std::int64_t i = threadIdx.x; i < tokens; i += blockDim.x) {
    TokenWeight const tw = token_weight(targets[i], mask, i, ignore_index, vocab);
    if (tw.bad && i < bad) bad = i;
    sum += static_cast<double>(tw.w);
  }
  sum = block_reduce(sum, SumOp{}, 0.0);
  bad = block_reduce(bad, MinOp{}, LLONG_MAX);
  if (threadIdx.x == 0) {
    summary->weight = sum;
    summary->ce = 0.0;
    summary->zz = 0.0;
    summary->bad_pos = bad == LLONG_MAX ? -1 : bad;
    summary->z_loss = z_loss, summary->vocab = vocab, summary->ignore_index = ignore_index;
  }
}

/// Settings of one chunk's row kernel.
struct RowArgs {
  std::int64_t row0 = 0;           // first token of the chunk
  std::int64_t padded_vocab = 0;   // V_pad: row length of the logits chunk
  std::int64_t vocab = 0;          // V
  std::int32_t ignore_index = -100;
  float z_coeff = 0.0f;            // float(z_loss)
  double grad_scale = 1.0;
  bool grad = false;
};

/// One block per row r of the chunk (token i = row0 + r), row z = chunk + r V_pad (fp32 logits):
///   pass 1: m = max_j z_j (and logits[i, j] = z_j when asked);
///   pass 2: s = sum_j exp(z_j - m), lse = m + log s; ce_row[i] = w_i (lse - z_t), z_row[i] = w_i lse^2;
///   pass 3 (grad): dz_j = exp(z_j - m) * g (1 + 2 zc lse) / s - [j == t] g, g = grad_scale / W * w_i,
///   written as TD at (TD*)chunk + r * ld_d, ld_d = V_pad * 4 / sizeof(TD).
/// The float math is the CPU's operation for operation. Rows with w_i = 0 and no gradient stop after
/// pass 1 (the CPU skips them). Thread t handles j = t, t + B, ... in order and every sum goes through
/// block_reduce: deterministic.
///
/// In-place narrowing (TD = bf16): pass 3 walks the row in tiles of B = blockDim.x elements. Tile k
/// reads its fp32 elements into registers, syncs, then writes bf16 elements kB .. kB + B - 1, i.e.
/// bytes [2kB, 2(k+1)B), which overlap only fp32 elements below (k+1)B / 2 <= (k+1)B: tiles 0 .. k,
/// all read before this tile's sync. Writes never reach elements a later tile still reads.
template <class TM, class TL, class TD>
__global__ void __launch_bounds__(row_threads)
    row_kernel(RowArgs args, float* chunk, TL* __restrict__ logits, TM const* __restrict__ mask,
               std::int32_t const* __restrict__ targets, Summary const* __restrict__ summary, double* __restrict__ ce_row,
               double* __restrict__ z_row) {
  std::int64_t const r = blockIdx.x, i = args.row0 + r, Vp = args.padded_vocab;
  int const tid = static_cast<int>(threadIdx.x), B = static_cast<int>(blockDim.x);
  float const* z = chunk + r * Vp;
  std::int32_t const t = targets[i];
  float const wi = token_weight(t, mask, i, args.ignore_index, args.vocab).w;  // invalid tokens: 0 (reported by pass 0)

  // Pass 1: max (and the raw logits out).
  float m = -INFINITY;
  TL* const lrow = logits != nullptr ? logits + i * Vp : nullptr;
  for (std::int64_t j = tid; j < Vp; j += B) {
    float const v = z[j];
    if (lrow != nullptr) lrow[j] = store_as<TL>(v);
    m = fmaxf(m, v);
  }
  m = block_reduce(m, MaxOp{}, -INFINITY);
  if (wi == 0.0f && !args.grad) {
    if (tid == 0) ce_row[i] = 0.0, z_row[i] = 0.0;
    return;  // uniform over the block
  }
  // Read before pass 2's block_reduce: every pass-3 write comes after it.
  float const target_logit = (tid == 0 && wi != 0.0f) ? z[t] : 0.0f;

  // Pass 2: sum of exp, lse, the row's loss terms.
  float s = 0.0f;
  for (std::int64_t j = tid; j < Vp; j += B) s += expf(z[j] - m);
  s = block_reduce(s, SumOp{}, 0.0f);
  float const lse = m + logf(s);
  if (tid == 0) {
    ce_row[i] = wi != 0.0f ? static_cast<double>(wi) * static_cast<double>(lse - target_logit) : 0.0;
    z_row[i] = wi != 0.0f ? static_cast<double>(wi) * static_cast<double>(lse) * static_cast<double>(lse) : 0.0;
  }
  if (!args.grad) return;

  // Pass 3: dL/dlogits, tile by tile (see above), rounded once to TD.
  double const wsum = summary->weight;
  float const gscale = wsum > 0.0 ? static_cast<float>(args.grad_scale / wsum) : 0.0f;
  float const g = gscale * wi;
  float const factor = g * (1.0f + 2.0f * args.z_coeff * lse) / s;
  std::int64_t const ld_d = Vp * static_cast<std::int64_t>(sizeof(float) / sizeof(TD));
  TD* const drow = reinterpret_cast<TD*>(chunk) + r * ld_d;
  for (std::int64_t j0 = 0; j0 < Vp; j0 += B) {
    std::int64_t const j = j0 + tid;
    float const v = j < Vp ? z[j] : 0.0f;
    if constexpr (sizeof(TD) < sizeof(float)) __syncthreads();  // the whole tile is read before any write
    if (j < Vp) {
      float d = expf(v - m) * factor;
      if (wi != 0.0f && j == t) d -= g;
      drow[j] = store_as<TD>(d);
    }
  }
}

/// Last pass, one block: sum_i ce_row[i] and sum_i z_row[i] in fp64, thread-strided then block_reduce
/// (fixed order, deterministic), into the summary. (A template, Acc = double, so that every translation
/// unit including this header may emit it.)
template <class Acc>
__global__ void __launch_bounds__(reduce_threads)
    finish_kernel(Acc const* __restrict__ ce_row, Acc const* __restrict__ z_row, std::int64_t tokens,
                  std::int32_t const* __restrict__ targets, Summary* __restrict__ summary) {
  Acc ce = 0.0, zz = 0.0;
  for (std::int64_t i = threadIdx.x; i < tokens; i += blockDim.x) {
    ce += ce_row[i];
    zz += z_row[i];
  }
  ce = block_reduce(ce, SumOp{}, Acc(0));
  zz = block_reduce(zz, SumOp{}, Acc(0));
  if (threadIdx.x == 0) {
    summary->ce = ce, summary->zz = zz;
    long long const bad = summary->bad_pos;
    summary->bad_target = bad >= 0 ? targets[bad] : 0;
  }
}

inline std::size_t round_up_256(std::size_t bytes) { return (bytes + 255) / 256 * 256; }

}  // namespace lm_head_cuda

template <>
struct LmHeadLoss<Cuda> {
  /// Elements of the scratch buffer `run` needs (the fp32 logits chunk): as the CPU.
  static std::int64_t scratch_elems(LmHeadLossArgs const& a) { return std::min(a.chunk, a.tokens) * a.padded_vocab; }

  /// x (N, C) final hidden states, w (V_pad, C) LM head, targets (N, device), loss_mask (N, optional,
  /// >= 0). When d_x is given, writes d_x (N, C) and adds into d_w (V_pad, C) the gradient of
  /// grad_scale * loss (padded rows included). logits (N, V_pad), optional, receives the raw logits.
  /// scratch: scratch_elems(a) floats. Extra device temporaries (2 N doubles) come from ctx scratch.
  /// Without a.defer the result is read at once (one 40-byte copy to the host and one stream
  /// synchronization); with it the sums stay in a record of ctx's deferred memory, the result is
  /// pending and collect() reads it later, with the other pending ones. Targets outside [0, V) (other
  /// than the ignore index) and negative masks are reported when the result is read, as kumiki::Error
  /// naming the first position (d_w may then hold a partial update). Launches: pass 0 <<<1, 512>>>;
  /// per chunk a GEMM, row_kernel <<<rows, 256>>> and two GEMMs; finish <<<1, 512>>>.
  template <class T, class W, class G, class S>
  static LmHeadLossResult run(Ctx<Cuda>& ctx, LmHeadLossArgs const& a, T const* x, W const* w, std::int32_t const* targets,
                              std::type_identity_t<T> const* loss_mask, std::type_identity_t<T>* d_x, G* d_w,
                              std::type_identity_t<T>* logits, S* scratch) {
    static_assert(std::is_same_v<S, float>, "kumiki: the CUDA LM-head loss keeps its logits chunk in fp32");
    static_assert(std::is_same_v<T, W>, "kumiki: the CUDA LM-head loss takes activations and LM-head weights of one type");
    // dlogits are stored as W: each GEMM below is one cuBLASLt call, none uses ctx scratch (which holds
    // this op's per-row buffers).
    static_assert(cublaslt::direct_v<W, T, S> && cublaslt::direct_v<W, W, T> && cublaslt::direct_v<T, W, G>,
                  "kumiki: the LM-head GEMMs must be direct cuBLASLt products");
    using namespace lm_head_cuda;
    std::int64_t const N = a.tokens, C = a.hidden, V = a.vocab, Vp = a.padded_vocab;
    KUMIKI_CHECK(0 < V && V <= Vp, "vocab ", V, " must be in (0, padded_vocab ", Vp, "]");
    KUMIKI_CHECK(a.chunk > 0, "chunk must be positive");
    KUMIKI_CHECK((d_x == nullptr) == (d_w == nullptr), "d_x and d_w are both given or both null");
    KUMIKI_CHECK(N >= 0 && C >= 0, "LmHeadLoss: negative size, tokens ", N, " hidden ", C);
    KUMIKI_CHECK(std::min(a.chunk, N) <= INT_MAX, "LmHeadLoss: chunk ", a.chunk, " exceeds the grid");
    LmHeadLossResult res;
    if (N == 0) return res;
    bool const grad = d_x != nullptr;

    std::size_t const row_bytes = round_up_256(sizeof(double) * static_cast<std::size_t>(N));
    std::size_t const summary_bytes = round_up_256(sizeof(Summary));
    std::byte* const tmp = ctx.scratch_at_least(2 * row_bytes + summary_bytes);
    auto* const ce_row = reinterpret_cast<double*>(tmp);
    auto* const z_row = reinterpret_cast<double*>(tmp + row_bytes);
    auto* const summary =
        reinterpret_cast<Summary*>(a.defer ? ctx.defer_record(summary_bytes) : tmp + 2 * row_bytes);

    weights_kernel<T><<<1, reduce_threads, 0, ctx.stream>>>(targets, loss_mask, N, a.ignore_index, V, a.z_loss, summary);
    KUMIKI_CUDA_CHECK(cudaGetLastError());

    RowArgs ra;
    ra.padded_vocab = Vp, ra.vocab = V, ra.ignore_index = a.ignore_index;
    ra.z_coeff = static_cast<float>(a.z_loss), ra.grad_scale = a.grad_scale, ra.grad = grad;
    std::int64_t const ld_d = Vp * static_cast<std::int64_t>(sizeof(float) / sizeof(W));  // dlogits row stride, in W
    for (std::int64_t c0 = 0; c0 < N; c0 += a.chunk) {
      std::int64_t const nc = std::min(a.chunk, N - c0);
      T const* xc = x + c0 * C;
      Linear<Cuda>::forward(ctx, xc, w, scratch, nc, C, Vp);  // (nc, V_pad) fp32
      ra.row0 = c0;
      row_kernel<T, T, W><<<static_cast<unsigned>(nc), row_threads, 0, ctx.stream>>>(ra, scratch, logits, loss_mask,
                                                                                     targets, summary, ce_row, z_row);
      KUMIKI_CUDA_CHECK(cudaGetLastError());
      if (grad) {
        W const* dl = reinterpret_cast<W const*>(scratch);
        Linear<Cuda>::backward_input(ctx, dl, w, d_x + c0 * C, nc, C, Vp, false, ld_d, 0);  // d_x = dL W
        Linear<Cuda>::backward_weight(ctx, dl, xc, d_w, nc, C, Vp, ld_d, 0);                // d_W += dL^T x
      }
    }
    finish_kernel<double><<<1, reduce_threads, 0, ctx.stream>>>(ce_row, z_row, N, targets, summary);
    KUMIKI_CUDA_CHECK(cudaGetLastError());
    if (a.defer) {
      res.pending = true;
      res.loss = res.ce = res.z = res.weight = std::numeric_limits<double>::quiet_NaN();
      return res;
    }
    Summary h{};
    KUMIKI_CUDA_CHECK(cudaMemcpyAsync(&h, summary, sizeof h, cudaMemcpyDeviceToHost, ctx.stream));
    KUMIKI_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
    return read(h);
  }

  /// Every pending result of `ctx` (deferred runs, in call order): one copy of their records to the
  /// host and one stream synchronization for all of them.
  static std::vector<LmHeadLossResult> collect(Ctx<Cuda>& ctx) {
    using lm_head_cuda::Summary;
    std::vector<std::byte> const bytes = ctx.take_deferred();
    std::size_t const stride = lm_head_cuda::round_up_256(sizeof(Summary));
    KUMIKI_CHECK(bytes.size() % stride == 0, "LmHeadLoss: ", bytes.size(), " bytes of deferred records, not a multiple of ",
                 stride, " (another op deferred records on this context)");
    std::vector<LmHeadLossResult> out(bytes.size() / stride);
    for (std::size_t k = 0; k < out.size(); ++k) {
      Summary h{};
      std::memcpy(&h, bytes.data() + k * stride, sizeof h);
      out[k] = read(h);
    }
    return out;
  }

 private:
  /// The result of one record; throws the CPU's message for the first invalid position: the target
  /// outside the vocabulary, or else the loss mask negative (or NaN).
  static LmHeadLossResult read(lm_head_cuda::Summary const& h) {
    if (h.bad_pos >= 0) {
      KUMIKI_CHECK(h.bad_target >= 0 && h.bad_target < h.vocab, "target ", h.bad_target, " at position ", h.bad_pos,
                   " is outside the vocabulary of ", h.vocab, " (ignore index ", h.ignore_index, ")");
      ::kumiki::detail::fail("check failed: mw >= T(0)", __FILE__, __LINE__, "loss mask must not be negative (position ",
                             h.bad_pos, ")");
    }
    LmHeadLossResult r;
    r.weight = h.weight;
    if (h.weight > 0.0) {
      r.ce = h.ce / h.weight;
      r.z = h.z_loss * h.zz / h.weight;
      r.loss = r.ce + r.z;
    }
    return r;
  }
};

static_assert(LmHeadLossOp<LmHeadLoss<Cuda>, Cuda, float> &&
              LmHeadLossOp<LmHeadLoss<Cuda>, Cuda, Precision<bf16, bf16, float, float, float>>);

}  // namespace ops
KUMIKI_NAMESPACE_END
