// kumiki/ops/cuda/attention.cuh: CUDA causal GQA attention, flash-attention style: 64 x 64 tiles in
// shared memory, online softmax in the forward, recomputation from the saved log-sum-exp in the
// backward. The same function as ops/cpu/attention.hpp: causal mask, query head h reading K/V group
// h / (heads / groups) (K/V never repeated), the optional document mask, lse (B, heads, T) in fp32,
// rows `ld_*` elements apart. Two sets of kernels: bf16 with head_dim 64 or 128 (LLM-jp-4's) runs on
// tensor cores (ops/cuda/attention_mma.cuh, the default: Attention<Cuda>::tensor_cores); fp32, the
// other head sizes, and bf16 when asked run on the CUDA-core kernels of this file.
//
// CUDA-core kernels: fp32 FMA; every kernel runs 256 threads as a 16 x 16 grid (ty = thread / 16,
// tx = thread % 16) over a 64 x 64 tile: a thread owns the 4 tile rows ty * 4 + i and the 4 tile
// columns tx + 16 j (j < 4), and for a (64, head_dim) accumulator the columns tx + 16 n of its 4 rows.
// Tiles live in shared memory as fp32 (bf16 inputs are widened on load) with odd row strides
// (head_dim + 1, 64 + 1), so a warp walking a column hits 32 different banks. The 16 threads sharing
// a row are one half-warp: row maxima and sums are shuffle butterflies within it. Nothing is
// accumulated with atomics: each output element is owned by one thread and summed in a fixed order
// (where the dK/dV pass splits a group's heads over blocks, their fp32 partials are added in head
// order by one more kernel), so two runs are bitwise identical.
//
// Shared memory per block (floats of 4 bytes, D = the head-dim kernel, LD = D + 1):
//   forward  3 * 64 * LD + 64 * 65             D = 128: 115 712 bytes (two blocks per SM)
//   dK / dV  4 * 64 * LD + 2 * 64 * 65 + 3 * 64  D = 128: 166 144 bytes
//   dQ       4 * 64 * LD + 64 * 65             D = 128: 148 736 bytes
// (D = 64: 66 560, 100 608, 83 200 bytes). Kernels exist for D in {8, 16, 32, 64, 128}; another
// head_dim that is a multiple of 8 runs in the next larger one, its extra columns zero.
#pragma once

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <utility>

#include <cuda_runtime.h>

#include "kumiki/config.hpp"
#include "kumiki/core/bf16.hpp"
#include "kumiki/core/cuda/check.cuh"
#include "kumiki/core/device.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/precision.hpp"
#include "kumiki/ops/attention.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/ops/cuda/attention_common.cuh"
#include "kumiki/ops/cuda/attention_mma.cuh"
#include "kumiki/ops/cuda/context.cuh"

KUMIKI_NAMESPACE_BEGIN
namespace ops {
namespace attention_cuda {

inline constexpr int kThreads = 256;         // threads of every attention kernel
inline constexpr int kGrid = 16;             // the thread grid is kGrid x kGrid (tx, ty)
inline constexpr int kPer = 4;               // tile rows and tile columns per thread
inline constexpr int kScoreLd = kTile + 1;   // row stride of a score tile in shared memory
static_assert(kGrid * kGrid == kThreads && kGrid * kPer == kTile);

/// Row stride (floats) of a (64, D) tile in shared memory: odd, so column walks are conflict-free.
template <int D>
inline constexpr int row_ld = D + 1;
/// Accumulator columns per thread for a (64, D) output: tx + 16 n, n < head_cols.
template <int D>
inline constexpr int head_cols = (D + kGrid - 1) / kGrid;

/// Eight consecutive elements from src as float: one (bf16) or two (float) 16-byte loads when `vec`
/// (src then 16-byte aligned), else eight scalar loads.
template <class T>
__device__ __forceinline__ void load8(T const* src, bool vec, float (&out)[8]) {
  if (vec) {
    if constexpr (std::is_same_v<T, float>) {
      float4 const a = reinterpret_cast<float4 const*>(src)[0];
      float4 const b = reinterpret_cast<float4 const*>(src)[1];
      out[0] = a.x, out[1] = a.y, out[2] = a.z, out[3] = a.w;
      out[4] = b.x, out[5] = b.y, out[6] = b.z, out[7] = b.w;
    } else {
      // Little endian: element 2e is the low half of word e, element 2e + 1 the high half.
      uint4 const u = reinterpret_cast<uint4 const*>(src)[0];
      unsigned const w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        out[2 * e] = __uint_as_float(w[e] << 16);
        out[2 * e + 1] = __uint_as_float(w[e] & 0xffff0000u);
      }
    }
    return;
  }
#pragma unroll
  for (int e = 0; e < 8; ++e) out[e] = widen(src[e]);
}

/// Copies rows [row0, row0 + 64) x columns [0, D) of a (seq, head_dim) slice (row stride ld, row 0 at
/// src) into the shared tile dst (row stride row_ld<D>) as float; rows >= seq and columns >= head_dim
/// become 0, so products over the whole tile stay finite. Thread i takes 8-column chunks i, i + 256,
/// ...; consecutive threads read consecutive chunks of a row (coalesced). head_dim is a multiple of 8,
/// so a chunk is either inside the head or outside it.
template <int D, class T>
__device__ __forceinline__ void load_tile(float* dst, T const* src, std::int64_t ld, int row0, int seq, int head_dim,
                                          bool vec) {
  constexpr int chunks = D / 8;
  for (int idx = static_cast<int>(threadIdx.x); idx < kTile * chunks; idx += kThreads) {
    int const r = idx / chunks, d0 = (idx % chunks) * 8, t = row0 + r;
    float x[8];
    if (t < seq && d0 < head_dim) {
      load8(src + t * ld + d0, vec, x);
    } else {
#pragma unroll
      for (int e = 0; e < 8; ++e) x[e] = 0.0f;
    }
    float* const row = dst + r * row_ld<D> + d0;
#pragma unroll
    for (int e = 0; e < 8; ++e) row[e] = x[e];
  }
}

/// Maximum / sum over the 16 lanes of a half-warp (a fixed butterfly: every lane gets the same bits).
/// Called by all 32 lanes of the warp together.
__device__ __forceinline__ float half_warp_max(float x) {
#pragma unroll
  for (int off = kGrid / 2; off > 0; off /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, off));
  return x;
}
__device__ __forceinline__ float half_warp_sum(float x) {
#pragma unroll
  for (int off = kGrid / 2; off > 0; off /= 2) x += __shfl_xor_sync(0xffffffffu, x, off);
  return x;
}

/// Forward. Grid (tiles, heads, batch), read tile-major (query_block): the block computes query tile
/// qt = tiles - 1 - i (the longest first) of head h of sequence b:
///   m_r = max_c s_rc, l_r = sum_c exp(s_rc - m_r), o_r = sum_c exp(s_rc - m_r) v_c / l_r,
///   lse_r = m_r + log l_r, with s_rc = scale q_r . k_c over the visible keys c of row r,
/// walking key tiles from the one holding doc_start[first row] (0 without documents) to the
/// diagonal, rescaling (m, l, o) per tile (online softmax). Thread (ty, tx) computes scores of rows
/// ty * 4 + i and keys tx + 16 j, and accumulates o for rows ty * 4 + i, columns tx + 16 n. Shared:
/// q, k, v tiles and the probability tile p. One writer per output element, fixed order.
template <int D, class T>
__global__ void __launch_bounds__(kThreads) forward_kernel(Problem p, T const* q, T const* k, T const* v, T* o,
                                                           float* lse) {
  constexpr int LD = row_ld<D>, NC = head_cols<D>;
  extern __shared__ float smem[];
  float* const q_s = smem;
  float* const k_s = q_s + kTile * LD;
  float* const v_s = k_s + kTile * LD;
  float* const p_s = v_s + kTile * LD;

  int const tx = static_cast<int>(threadIdx.x) % kGrid, ty = static_cast<int>(threadIdx.x) / kGrid;
  auto const [qt, h, b, g, i0, tok0, ds] = query_block(p);
  T const* const q_bh = q + tok0 * p.ld_q + static_cast<std::int64_t>(h) * p.head_dim;
  T const* const k_bg = k + tok0 * p.ld_k + static_cast<std::int64_t>(g) * p.head_dim;
  T const* const v_bg = v + tok0 * p.ld_v + static_cast<std::int64_t>(g) * p.head_dim;

  load_tile<D>(q_s, q_bh, p.ld_q, i0, p.seq, p.head_dim, p.vec);

  int t[kPer], first[kPer];
  float m[kPer], l[kPer], acc[kPer][NC];
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    t[i] = i0 + ty * kPer + i;
    first[i] = ds && t[i] < p.seq ? ds[t[i]] : 0;
    m[i] = kNegInf;
    l[i] = 0.0f;
#pragma unroll
    for (int n = 0; n < NC; ++n) acc[i][n] = 0.0f;
  }

  int const kt0 = ds ? ds[i0] / kTile : 0;
  for (int kt = kt0; kt <= qt; ++kt) {
    int const j0 = kt * kTile;
    __syncthreads();  // every thread is done with the previous k, v, p tiles (and q is loaded)
    load_tile<D>(k_s, k_bg, p.ld_k, j0, p.seq, p.head_dim, p.vec);
    load_tile<D>(v_s, v_bg, p.ld_v, j0, p.seq, p.head_dim, p.vec);
    __syncthreads();

    float s[kPer][kPer] = {};
#pragma unroll 8
    for (int d = 0; d < D; ++d) {
      float qv[kPer], kv[kPer];
#pragma unroll
      for (int i = 0; i < kPer; ++i) qv[i] = q_s[(ty * kPer + i) * LD + d];
#pragma unroll
      for (int j = 0; j < kPer; ++j) kv[j] = k_s[(tx + kGrid * j) * LD + d];
#pragma unroll
      for (int i = 0; i < kPer; ++i)
#pragma unroll
        for (int j = 0; j < kPer; ++j) s[i][j] = fmaf(qv[i], kv[j], s[i][j]);
    }

#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      float mx = kNegInf;
#pragma unroll
      for (int j = 0; j < kPer; ++j) {
        s[i][j] = visible(t[i], j0 + tx + kGrid * j, first[i], p.seq) ? p.scale * s[i][j] : kNegInf;
        mx = fmaxf(mx, s[i][j]);
      }
      mx = half_warp_max(mx);
      // A row with no visible key in this tile (or past the sequence) keeps m, l, o.
      float alpha = 1.0f, sum = 0.0f, pr[kPer] = {};
      if (mx != kNegInf) {
        float const m_new = fmaxf(m[i], mx);
        alpha = expf(m[i] - m_new);  // 0 on the row's first visible tile (m = -inf)
#pragma unroll
        for (int j = 0; j < kPer; ++j) {
          pr[j] = expf(s[i][j] - m_new);  // masked: exp(-inf) = 0
          sum += pr[j];
        }
        m[i] = m_new;
      }
      sum = half_warp_sum(sum);  // outside the branch: the other half-warp may have taken the other side
      l[i] = l[i] * alpha + sum;
#pragma unroll
      for (int n = 0; n < NC; ++n) acc[i][n] *= alpha;
#pragma unroll
      for (int j = 0; j < kPer; ++j) p_s[(ty * kPer + i) * kScoreLd + tx + kGrid * j] = pr[j];
    }
    __syncthreads();

#pragma unroll 4
    for (int c = 0; c < kTile; ++c) {
      float pv[kPer];
#pragma unroll
      for (int i = 0; i < kPer; ++i) pv[i] = p_s[(ty * kPer + i) * kScoreLd + c];
#pragma unroll
      for (int n = 0; n < NC; ++n) {
        int const col = tx + kGrid * n;
        if (D % kGrid == 0 || col < D) {
          float const vv = v_s[c * LD + col];
#pragma unroll
          for (int i = 0; i < kPer; ++i) acc[i][n] = fmaf(pv[i], vv, acc[i][n]);
        }
      }
    }
  }

  T* const o_bh = o + tok0 * p.ld_o + static_cast<std::int64_t>(h) * p.head_dim;
  float* const lse_bh = lse + (static_cast<std::int64_t>(b) * p.heads + h) * p.seq;
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    if (t[i] >= p.seq) continue;
#pragma unroll
    for (int n = 0; n < NC; ++n) {
      int const col = tx + kGrid * n;
      if (col < p.head_dim) o_bh[t[i] * p.ld_o + col] = narrow<T>(acc[i][n] / l[i]);
    }
    if (tx == 0) lse_bh[t[i]] = m[i] + logf(l[i]);
  }
}

/// Backward, step 1: delta[b, h, t] = sum_d d_o[b, t, h, d] * o[b, t, h, d] in fp32 (the row term of
/// the softmax gradient). One warp per (b, t, h) row, lanes over d, then a fixed shuffle butterfly.
template <class T>
__global__ void __launch_bounds__(kThreads) row_dot_kernel(Problem p, T const* o, T const* d_o, float* delta) {
  constexpr int warps = kThreads / 32;
  std::int64_t const row = static_cast<std::int64_t>(blockIdx.x) * warps + threadIdx.x / 32;  // (b * seq + t) * heads + h
  int const lane = static_cast<int>(threadIdx.x % 32);
  if (row >= static_cast<std::int64_t>(p.batch) * p.seq * p.heads) return;  // the whole warp leaves together
  int const h = static_cast<int>(row % p.heads);
  std::int64_t const bt = row / p.heads;
  std::int64_t const at = bt * p.ld_o + static_cast<std::int64_t>(h) * p.head_dim;
  float acc = 0.0f;
  for (int d = lane; d < p.head_dim; d += 32) acc = fmaf(widen(d_o[at + d]), widen(o[at + d]), acc);
#pragma unroll
  for (int off = 16; off > 0; off /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, off);
  if (lane == 0) {
    std::int64_t const b = bt / p.seq, t = bt % p.seq;
    delta[(b * p.heads + h) * p.seq + t] = acc;
  }
}

/// Backward, step 2: d_k and d_v of one key tile kt of group g in sequence b, over `heads_per_group /
/// slices` consecutive heads of the group (slice `slice` of them, in order) and every query tile from
/// the diagonal on (in order; stopping where the query tile's first document starts after the key
/// tile):
///   p_rc = exp(scale q_r . k_c - lse_r) (0 where c is not visible to r),
///   ds_rc = p_rc (d_o_r . v_c - delta_r),
///   d_v_c = sum_r p_rc d_o_r,  d_k_c = scale sum_r ds_rc q_r.
/// Grid (tiles, groups * slices, batch), read tile-major (tile_major_block): key tile kt = the tile,
/// then from the unit the slice, the group and the sequence; key tile 0, which the most query tiles
/// see, is the longest work and starts first.
/// Thread (ty, tx) computes p and ds for keys ty * 4 + i and queries tx + 16 j, and accumulates
/// d_k, d_v for keys ty * 4 + i, columns tx + 16 n in registers. Shared: the block's k and v tiles,
/// the current q and d_o tiles, p and ds (key-major), and the query rows' lse, delta, doc_start.
/// Split false (slices 1): the block owns its d_k / d_v rows (all of the group's heads) and writes
/// them. Split true (slices > 1): it writes its slice's sums in fp32, unscaled, to its own rows of
/// `partial` (d_k part then d_v part, each (slices, batch * seq, groups, head_dim)), which
/// dkdv_reduce_kernel adds up. (Two kernels rather than a runtime branch: the branch costs
/// dkdv_kernel<32> 24 bytes of spills.) No atomics: every element has one writer and a fixed order.
template <int D, class T, bool Split>
__global__ void __launch_bounds__(kThreads) dkdv_kernel(Problem p, int slice_count, T const* q, T const* k,
                                                        T const* v, T const* d_o, float const* lse, float const* delta,
                                                        T* d_k, T* d_v, float* partial) {
  constexpr int LD = row_ld<D>, NC = head_cols<D>;
  extern __shared__ float smem[];
  float* const k_s = smem;
  float* const v_s = k_s + kTile * LD;
  float* const q_s = v_s + kTile * LD;
  float* const do_s = q_s + kTile * LD;
  float* const p_s = do_s + kTile * LD;        // p_s[key * kScoreLd + query]
  float* const ds_s = p_s + kTile * kScoreLd;  // ds_s[key * kScoreLd + query]
  float* const lse_s = ds_s + kTile * kScoreLd;
  float* const delta_s = lse_s + kTile;
  int* const first_s = reinterpret_cast<int*>(delta_s + kTile);

  int const tx = static_cast<int>(threadIdx.x) % kGrid, ty = static_cast<int>(threadIdx.x) / kGrid;
  int const slices = Split ? slice_count : 1;
  KeyBlock const kb = key_block(p, slices);
  auto const& [kt, slice, g, b, heads_per_block, h0, j0, key_end, tok0, ds, k_off, v_off] = kb;

  load_tile<D>(k_s, k + k_off, p.ld_k, j0, p.seq, p.head_dim, p.vec);
  load_tile<D>(v_s, v + v_off, p.ld_v, j0, p.seq, p.head_dim, p.vec);

  int key[kPer];
  float dk[kPer][NC], dv[kPer][NC];
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    key[i] = j0 + ty * kPer + i;
#pragma unroll
    for (int n = 0; n < NC; ++n) dk[i][n] = dv[i][n] = 0.0f;
  }

  for (int h = h0; h < h0 + heads_per_block; ++h) {
    T const* const q_bh = q + tok0 * p.ld_q + static_cast<std::int64_t>(h) * p.head_dim;
    T const* const do_bh = d_o + tok0 * p.ld_o + static_cast<std::int64_t>(h) * p.head_dim;
    float const* const lse_bh = lse + (static_cast<std::int64_t>(b) * p.heads + h) * p.seq;
    float const* const delta_bh = delta + (static_cast<std::int64_t>(b) * p.heads + h) * p.seq;
    for (int qt = kt; qt < p.tiles; ++qt) {
      int const i0 = qt * kTile;
      if (ds && ds[i0] >= key_end) break;  // documents start in order: no later query sees this tile
      __syncthreads();  // every thread is done with the previous q, d_o, p, ds tiles
      load_tile<D>(q_s, q_bh, p.ld_q, i0, p.seq, p.head_dim, p.vec);
      load_tile<D>(do_s, do_bh, p.ld_o, i0, p.seq, p.head_dim, p.vec);
      for (int r = static_cast<int>(threadIdx.x); r < kTile; r += kThreads) {
        int const t = i0 + r;
        bool const in = t < p.seq;
        lse_s[r] = in ? lse_bh[t] : 0.0f;
        delta_s[r] = in ? delta_bh[t] : 0.0f;
        first_s[r] = in && ds ? ds[t] : 0;
      }
      __syncthreads();

      float s[kPer][kPer] = {}, dp[kPer][kPer] = {};
#pragma unroll 4
      for (int d = 0; d < D; ++d) {
        float kv[kPer], vv[kPer], qv[kPer], ov[kPer];
#pragma unroll
        for (int i = 0; i < kPer; ++i) {
          kv[i] = k_s[(ty * kPer + i) * LD + d];
          vv[i] = v_s[(ty * kPer + i) * LD + d];
        }
#pragma unroll
        for (int j = 0; j < kPer; ++j) {
          qv[j] = q_s[(tx + kGrid * j) * LD + d];
          ov[j] = do_s[(tx + kGrid * j) * LD + d];
        }
#pragma unroll
        for (int i = 0; i < kPer; ++i)
#pragma unroll
          for (int j = 0; j < kPer; ++j) {
            s[i][j] = fmaf(kv[i], qv[j], s[i][j]);
            dp[i][j] = fmaf(vv[i], ov[j], dp[i][j]);
          }
      }
#pragma unroll
      for (int i = 0; i < kPer; ++i)
#pragma unroll
        for (int j = 0; j < kPer; ++j) {
          int const r = tx + kGrid * j;
          float const pr = visible(i0 + r, key[i], first_s[r], p.seq) ? expf(p.scale * s[i][j] - lse_s[r]) : 0.0f;
          p_s[(ty * kPer + i) * kScoreLd + r] = pr;
          ds_s[(ty * kPer + i) * kScoreLd + r] = pr * (dp[i][j] - delta_s[r]);
        }
      __syncthreads();

#pragma unroll 4
      for (int r = 0; r < kTile; ++r) {
        float pv[kPer], sv[kPer];
#pragma unroll
        for (int i = 0; i < kPer; ++i) {
          pv[i] = p_s[(ty * kPer + i) * kScoreLd + r];
          sv[i] = ds_s[(ty * kPer + i) * kScoreLd + r];
        }
#pragma unroll
        for (int n = 0; n < NC; ++n) {
          int const col = tx + kGrid * n;
          if (D % kGrid == 0 || col < D) {
            float const ov = do_s[r * LD + col], qv = q_s[r * LD + col];
#pragma unroll
            for (int i = 0; i < kPer; ++i) {
              dv[i][n] = fmaf(pv[i], ov, dv[i][n]);
              dk[i][n] = fmaf(sv[i], qv, dk[i][n]);
            }
          }
        }
      }
    }
  }

  // The block's rows: with Split, slice `slice`'s of `partial`, fp32 and unscaled (partial_rows); else
  // its own rows of d_k / d_v.
  [[maybe_unused]] PartialRows const part = Split ? partial_rows(p, partial, kb, slices) : PartialRows{};
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    if (key[i] >= p.seq) continue;
#pragma unroll
    for (int n = 0; n < NC; ++n) {
      int const col = tx + kGrid * n;
      if (col >= p.head_dim) continue;
      if constexpr (Split) {
        part.k[key[i] * part.ld + col] = dk[i][n];
        part.v[key[i] * part.ld + col] = dv[i][n];
      } else {
        d_k[k_off + key[i] * p.ld_k + col] = narrow<T>(p.scale * dk[i][n]);
        d_v[v_off + key[i] * p.ld_v + col] = narrow<T>(dv[i][n]);
      }
    }
  }
}

/// Backward, step 2b (slices > 1 only): d_k, d_v of element e = ((b * seq + t) * groups + g) *
/// head_dim + d (one thread each) as the fp32 sums of dkdv_kernel's `slices` partials in slice order
/// 0, 1, ..., slices - 1 (the group's heads in order), d_k then times scale, each rounded once to T.
/// A fixed order and one writer: bitwise reproducible (for a given slice count).
template <class T>
__global__ void __launch_bounds__(kThreads) dkdv_reduce_kernel(Problem p, int slices, float const* partial, T* d_k,
                                                               T* d_v) {
  std::int64_t const plane = static_cast<std::int64_t>(p.batch) * p.seq * p.groups * p.head_dim;
  std::int64_t const e = static_cast<std::int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (e >= plane) return;
  float const* const part_k = partial + e;
  float const* const part_v = partial + slices * plane + e;
  float sk = part_k[0], sv = part_v[0];
  for (int s = 1; s < slices; ++s) {
    sk += part_k[s * plane];
    sv += part_v[s * plane];
  }
  int const d = static_cast<int>(e % p.head_dim);
  std::int64_t const row = e / p.head_dim;  // tok * groups + g
  int const g = static_cast<int>(row % p.groups);
  std::int64_t const tok = row / p.groups;
  d_k[tok * p.ld_k + static_cast<std::int64_t>(g) * p.head_dim + d] = narrow<T>(p.scale * sk);
  d_v[tok * p.ld_v + static_cast<std::int64_t>(g) * p.head_dim + d] = narrow<T>(sv);
}

/// Backward, step 3: grid (tiles, heads, batch) read tile-major as the forward's; d_q of query tile
/// qt = tiles - 1 - i (the longest first) of head h in sequence b (unit h + heads b), over the
/// key tiles from the document start's to the diagonal (in order):
///   d_q_r = scale sum_c ds_rc k_c, with ds_rc as in step 2.
/// Thread (ty, tx) computes ds for rows ty * 4 + i and keys tx + 16 j, and accumulates d_q for rows
/// ty * 4 + i, columns tx + 16 n in registers. Shared: q, d_o, k, v tiles and ds. One writer per
/// element, fixed order.
template <int D, class T>
__global__ void __launch_bounds__(kThreads) dq_kernel(Problem p, T const* q, T const* k, T const* v, T const* d_o,
                                                      float const* lse, float const* delta, T* d_q) {
  constexpr int LD = row_ld<D>, NC = head_cols<D>;
  extern __shared__ float smem[];
  float* const q_s = smem;
  float* const do_s = q_s + kTile * LD;
  float* const k_s = do_s + kTile * LD;
  float* const v_s = k_s + kTile * LD;
  float* const ds_s = v_s + kTile * LD;  // ds_s[query * kScoreLd + key]

  int const tx = static_cast<int>(threadIdx.x) % kGrid, ty = static_cast<int>(threadIdx.x) / kGrid;
  auto const [qt, h, b, g, i0, tok0, ds] = query_block(p);
  std::int64_t const q_off = tok0 * p.ld_q + static_cast<std::int64_t>(h) * p.head_dim;
  T const* const do_bh = d_o + tok0 * p.ld_o + static_cast<std::int64_t>(h) * p.head_dim;
  T const* const k_bg = k + tok0 * p.ld_k + static_cast<std::int64_t>(g) * p.head_dim;
  T const* const v_bg = v + tok0 * p.ld_v + static_cast<std::int64_t>(g) * p.head_dim;
  float const* const lse_bh = lse + (static_cast<std::int64_t>(b) * p.heads + h) * p.seq;
  float const* const delta_bh = delta + (static_cast<std::int64_t>(b) * p.heads + h) * p.seq;

  load_tile<D>(q_s, q + q_off, p.ld_q, i0, p.seq, p.head_dim, p.vec);
  load_tile<D>(do_s, do_bh, p.ld_o, i0, p.seq, p.head_dim, p.vec);

  int t[kPer], first[kPer];
  float lse_r[kPer], delta_r[kPer], dq[kPer][NC];
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    t[i] = i0 + ty * kPer + i;
    bool const in = t[i] < p.seq;
    first[i] = in && ds ? ds[t[i]] : 0;
    lse_r[i] = in ? lse_bh[t[i]] : 0.0f;
    delta_r[i] = in ? delta_bh[t[i]] : 0.0f;
#pragma unroll
    for (int n = 0; n < NC; ++n) dq[i][n] = 0.0f;
  }

  int const kt0 = ds ? ds[i0] / kTile : 0;
  for (int kt = kt0; kt <= qt; ++kt) {
    int const j0 = kt * kTile;
    __syncthreads();  // every thread is done with the previous k, v, ds tiles (and q, d_o are loaded)
    load_tile<D>(k_s, k_bg, p.ld_k, j0, p.seq, p.head_dim, p.vec);
    load_tile<D>(v_s, v_bg, p.ld_v, j0, p.seq, p.head_dim, p.vec);
    __syncthreads();

    float s[kPer][kPer] = {}, dp[kPer][kPer] = {};
#pragma unroll 4
    for (int d = 0; d < D; ++d) {
      float qv[kPer], ov[kPer], kv[kPer], vv[kPer];
#pragma unroll
      for (int i = 0; i < kPer; ++i) {
        qv[i] = q_s[(ty * kPer + i) * LD + d];
        ov[i] = do_s[(ty * kPer + i) * LD + d];
      }
#pragma unroll
      for (int j = 0; j < kPer; ++j) {
        kv[j] = k_s[(tx + kGrid * j) * LD + d];
        vv[j] = v_s[(tx + kGrid * j) * LD + d];
      }
#pragma unroll
      for (int i = 0; i < kPer; ++i)
#pragma unroll
        for (int j = 0; j < kPer; ++j) {
          s[i][j] = fmaf(qv[i], kv[j], s[i][j]);
          dp[i][j] = fmaf(ov[i], vv[j], dp[i][j]);
        }
    }
#pragma unroll
    for (int i = 0; i < kPer; ++i)
#pragma unroll
      for (int j = 0; j < kPer; ++j) {
        int const c = tx + kGrid * j;
        float const pr = visible(t[i], j0 + c, first[i], p.seq) ? expf(p.scale * s[i][j] - lse_r[i]) : 0.0f;
        ds_s[(ty * kPer + i) * kScoreLd + c] = pr * (dp[i][j] - delta_r[i]);
      }
    __syncthreads();

#pragma unroll 4
    for (int c = 0; c < kTile; ++c) {
      float sv[kPer];
#pragma unroll
      for (int i = 0; i < kPer; ++i) sv[i] = ds_s[(ty * kPer + i) * kScoreLd + c];
#pragma unroll
      for (int n = 0; n < NC; ++n) {
        int const col = tx + kGrid * n;
        if (D % kGrid == 0 || col < D) {
          float const kv = k_s[c * LD + col];
#pragma unroll
          for (int i = 0; i < kPer; ++i) dq[i][n] = fmaf(sv[i], kv, dq[i][n]);
        }
      }
    }
  }

#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    if (t[i] >= p.seq) continue;
#pragma unroll
    for (int n = 0; n < NC; ++n) {
      int const col = tx + kGrid * n;
      if (col < p.head_dim) d_q[q_off + t[i] * p.ld_q + col] = narrow<T>(p.scale * dq[i][n]);
    }
  }
}

inline constexpr int kDocThreads = 256;

/// doc_start of sequence b = x: one block; thread i scans the contiguous segment i of the sequence.
/// Pass 1: the position after the segment's last EOD (0 if none); an inclusive max-scan over the
/// threads in shared memory (Hillis-Steele); pass 2: each thread walks its segment from the start the
/// scan gives it (the position after the last EOD before the segment). Integers: exact.
static __global__ void __launch_bounds__(kDocThreads) document_starts_kernel(std::int32_t const* tokens, std::int64_t seq,
                                                                      std::int32_t eod_token, std::int32_t* doc_start) {
  __shared__ std::int32_t scan[kDocThreads];
  std::int64_t const base = static_cast<std::int64_t>(blockIdx.x) * seq;
  std::int64_t const per = (seq + kDocThreads - 1) / kDocThreads;
  std::int64_t const begin = min(seq, static_cast<std::int64_t>(threadIdx.x) * per), end = min(seq, begin + per);
  std::int32_t last = 0;
  for (std::int64_t t = begin; t < end; ++t)
    if (tokens[base + t] == eod_token) last = static_cast<std::int32_t>(t + 1);
  int const tid = static_cast<int>(threadIdx.x);
  scan[tid] = last;
  __syncthreads();
  for (int off = 1; off < kDocThreads; off *= 2) {
    std::int32_t const other = tid >= off ? scan[tid - off] : 0;
    __syncthreads();
    scan[tid] = max(scan[tid], other);
    __syncthreads();
  }
  std::int32_t start = tid > 0 ? scan[tid - 1] : 0;
  for (std::int64_t t = begin; t < end; ++t) {
    doc_start[base + t] = start;  // an EOD belongs to the document it ends
    if (tokens[base + t] == eod_token) start = static_cast<std::int32_t>(t + 1);
  }
}

/// Shared memory bytes of each kernel for head-dim kernel D (see the file comment).
template <int D>
inline constexpr std::size_t forward_smem = (3 * kTile * row_ld<D> + kTile * kScoreLd) * sizeof(float);
template <int D>
inline constexpr std::size_t dkdv_smem = (4 * kTile * row_ld<D> + 2 * kTile * kScoreLd + 3 * kTile) * sizeof(float);
template <int D>
inline constexpr std::size_t dq_smem = (4 * kTile * row_ld<D> + kTile * kScoreLd) * sizeof(float);

/// The dK/dV pass splits the heads of each group over more blocks while its grid of one block per
/// (key tile, group, sequence) has fewer than kDkdvWaves blocks per block slot of the GPU (SMs times
/// the blocks that fit on one): see Attention<Cuda>::dkdv_slices.
inline constexpr int kDkdvWaves = 4;

/// One set of attention kernels for element type T: the forward, the dK/dV pass (unsplit and split),
/// the dQ pass, their shared-memory bytes and their block size.
template <class T>
struct Passes {
  void (*forward)(Problem, T const*, T const*, T const*, T*, float*);
  void (*dkdv)(Problem, int, T const*, T const*, T const*, T const*, float const*, float const*, T*, T*, float*);
  void (*dkdv_split)(Problem, int, T const*, T const*, T const*, T const*, float const*, float const*, T*, T*, float*);
  void (*dq)(Problem, T const*, T const*, T const*, T const*, float const*, float const*, T*);
  std::size_t forward_smem, dkdv_smem, dq_smem;
  int threads;
};

/// The CUDA-core kernels for head-dim kernel D (this file).
template <int D, class T>
inline Passes<T> cuda_core_passes() {
  return {forward_kernel<D, T>, dkdv_kernel<D, T, false>, dkdv_kernel<D, T, true>, dq_kernel<D, T>,
          forward_smem<D>,      dkdv_smem<D>,             dq_smem<D>,              kThreads};
}

/// The tensor-core kernels for head_dim D = 64 or 128 (attention_mma.cuh), bf16 only.
template <int D>
inline Passes<bf16> tensor_core_passes() {
  return {forward_mma_kernel<D>, dkdv_mma_kernel<D, false>, dkdv_mma_kernel<D, true>, dq_mma_kernel<D>,
          forward_mma_smem<D>,   dkdv_mma_smem<D>,          dq_mma_smem<D>,           kMmaThreads};
}

/// Whether 8-element chunks at x + row * ld + (multiple of 8) are 16-byte aligned.
template <class T>
inline bool vec_aligned(T const* x, std::int64_t ld) {
  return reinterpret_cast<std::uintptr_t>(x) % 16 == 0 && ld % 8 == 0;
}

/// The shape checked and narrowed to the kernels' Problem (Attention<Cuda>'s host side; the host emulator
/// test, tests/cuda_emulator, sets its problems up with it too).
inline Problem make_problem(AttentionShape const& s, std::int32_t const* doc_start, float scale, bool vec) {
  KUMIKI_CHECK(s.batch >= 0 && s.seq >= 0 && s.heads > 0 && s.groups > 0 && s.heads % s.groups == 0,
               "Attention<Cuda>: batch ", s.batch, ", seq ", s.seq, ", heads ", s.heads, ", groups ", s.groups);
  KUMIKI_CHECK(s.head_dim > 0 && s.head_dim <= kMaxHeadDim && s.head_dim % 8 == 0,
               "Attention<Cuda>: head_dim ", s.head_dim,
               " is not supported (a multiple of 8 up to 128; kernels for 8, 16, 32, 64, 128)");
  KUMIKI_CHECK(s.batch <= 65535 && s.heads <= 65535 && s.seq <= INT_MAX - kTile,
               "Attention<Cuda>: grid too large: batch ", s.batch, ", heads ", s.heads, ", seq ", s.seq);
  KUMIKI_CHECK(s.ld_q >= s.heads * s.head_dim && s.ld_k >= s.groups * s.head_dim && s.ld_v >= s.groups * s.head_dim &&
                   s.ld_o >= s.heads * s.head_dim,
               "Attention<Cuda>: row strides ", s.ld_q, ", ", s.ld_k, ", ", s.ld_v, ", ", s.ld_o, " below the rows");
  Problem p;
  p.batch = static_cast<int>(s.batch), p.seq = static_cast<int>(s.seq);
  p.heads = static_cast<int>(s.heads), p.groups = static_cast<int>(s.groups);
  p.head_dim = static_cast<int>(s.head_dim), p.heads_per_group = static_cast<int>(s.heads / s.groups);
  p.tiles = static_cast<int>((s.seq + kTile - 1) / kTile);
  p.ld_q = s.ld_q, p.ld_k = s.ld_k, p.ld_v = s.ld_v, p.ld_o = s.ld_o;
  p.scale = scale;
  p.vec = vec;
  p.doc_start = doc_start;
  return p;
}

/// A kernel's launch facts on one device (Attention<Cuda>::setup): the SM count and how many of its
/// blocks fit on an SM at once.
struct KernelSetup {
  int sms = 0;
  int blocks_per_sm = 0;
};

}  // namespace attention_cuda

template <>
struct Attention<Cuda> {
  /// Tile edge along queries and keys.
  static constexpr std::int64_t block = attention_cuda::kTile;

  /// doc_start (B, T) for Megatron's reset-attention-mask: a document ends with (and includes) an
  /// end-of-document token; the next position starts a new one. One block per sequence (see
  /// document_starts_kernel); integer results, deterministic.
  static void document_starts(Ctx<Cuda>& ctx, std::int32_t const* tokens, std::int64_t batch, std::int64_t seq,
                              std::int32_t eod_token, std::int32_t* doc_start) {
    KUMIKI_CHECK(batch >= 0 && seq >= 0 && batch <= INT_MAX && seq <= INT32_MAX, "Attention<Cuda>: batch ", batch,
                 ", seq ", seq);
    if (batch == 0 || seq == 0) return;
    attention_cuda::document_starts_kernel<<<static_cast<unsigned>(batch), attention_cuda::kDocThreads, 0,
                                             ctx.stream>>>(tokens, seq, eod_token, doc_start);
    KUMIKI_CUDA_CHECK(cudaGetLastError());
  }

  /// o = softmax(scale * q k^T + causal mask) v per head, query head h reading K/V group
  /// h / (heads / groups). lse (B, heads, T), fp32, receives the log-sum-exp of every score row.
  /// doc_start (B, T), optional (nondecreasing along each sequence, doc_start[t] <= t, as
  /// document_starts makes it): a query sees keys in [doc_start[t], t] only. Grid (query tiles,
  /// heads, batch) of forward_kernel (forward_mma_kernel on tensor cores); each output element has one
  /// writer and a fixed order.
  template <class T>
  static void forward(Ctx<Cuda>& ctx, AttentionShape const& s, T const* q, T const* k, T const* v, T* o, float* lse,
                      std::int32_t const* doc_start, float scale) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, bf16>, "Attention<Cuda>: activations are float or bf16");
    bool const vec = attention_cuda::vec_aligned(q, s.ld_q) && attention_cuda::vec_aligned(k, s.ld_k) &&
                     attention_cuda::vec_aligned(v, s.ld_v);
    attention_cuda::Problem const p = attention_cuda::make_problem(s, doc_start, scale, vec);
    if (p.batch == 0 || p.seq == 0) return;
    with_passes<T>(s.head_dim, [&](attention_cuda::Passes<T> const& run) {
      launch(run.forward, dim3(p.tiles, p.heads, p.batch), run.threads, run.forward_smem, ctx, p, q, k, v, o, lse);
    });
  }

  /// Gradients d_q, d_k, d_v (overwritten; same layouts and strides as q, k, v) from d_o, recomputing
  /// the probabilities tile by tile from lse. Kernels on ctx.stream: row_dot_kernel (delta =
  /// rowsum(d_o * o), fp32, in ctx scratch), dkdv_kernel, dkdv_reduce_kernel where the heads are
  /// split, and dq_kernel (grid (query tiles, heads, batch)); dkdv_mma_kernel and dq_mma_kernel in
  /// their places on tensor cores.
  ///
  /// dK / dV: a block per (key tile, slice of the group's heads, group, sequence), the heaviest key
  /// tiles first. With one slice (a large grid: dkdv_slices) a block loops over all the group's
  /// heads and writes its d_k / d_v rows. A small grid leaves SMs idle: with fewer blocks than SMs
  /// some get none, and with a few per SM the longest blocks (key tile 0 sees every query tile: at
  /// LLM-jp-4 8B, T = 4096, 4 heads x 64 tile steps, one block per SM) end the pass alone. So there
  /// the heads of a group are split into `slices` runs (heads_per_group / slices heads each, in
  /// order), a block each: it writes its run's fp32 sums to scratch, and dkdv_reduce_kernel adds the
  /// slices in slice order and writes d_k / d_v. Every element has one writer and every sum a fixed
  /// order (the slice count depends on the shape, the kernel and the GPU's SM count only): no
  /// atomics, bitwise reproducible run to run.
  /// The split changes the order of the head sum, so its results differ from the unsplit pass's in
  /// the last bits. Scratch: delta, 4 B T heads bytes; with slices > 1 also the partials, 8 B T groups
  /// slices head_dim bytes (<= 8 B T heads head_dim). The split is taken only while tiles x groups x
  /// B < kDkdvWaves x slots (slots: SMs x blocks per SM), so the partials stay below 2 KiB x slots x
  /// slices x head_dim (132 slots, 4 slices, head_dim 128: 138 MB); LLM-jp-4 8B, T = 4096, one
  /// sequence on an H100 / H200: on CUDA cores (dkdv_kernel<128>, one block per SM) 2 slices, 64 MiB;
  /// on tensor cores (dkdv_mma_kernel<128>, two blocks per SM) 4 slices, 128 MiB, and 2 at batch 2
  /// (1.3B at batch 8: no split).
  template <class T>
  static void backward(Ctx<Cuda>& ctx, AttentionShape const& s, T const* q, T const* k, T const* v, T const* o,
                       T const* d_o, float const* lse, T* d_q, T* d_k, T* d_v, std::int32_t const* doc_start,
                       float scale) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, bf16>, "Attention<Cuda>: activations are float or bf16");
    bool const vec = attention_cuda::vec_aligned(q, s.ld_q) && attention_cuda::vec_aligned(k, s.ld_k) &&
                     attention_cuda::vec_aligned(v, s.ld_v) && attention_cuda::vec_aligned(d_o, s.ld_o);
    attention_cuda::Problem const p = attention_cuda::make_problem(s, doc_start, scale, vec);
    if (p.batch == 0 || p.seq == 0) return;
    std::int64_t const rows = s.batch * s.seq * s.heads;
    constexpr int rows_per_block = attention_cuda::kThreads / 32;
    std::int64_t const blocks = (rows + rows_per_block - 1) / rows_per_block;
    KUMIKI_CHECK(blocks <= INT_MAX, "Attention<Cuda>: ", rows, " rows");
    with_passes<T>(s.head_dim, [&](attention_cuda::Passes<T> const& run) {
      int const slices = dkdv_slices(p, setup(run.dkdv, run.dkdv_smem, run.threads));
      auto* const dkdv = slices > 1 ? run.dkdv_split : run.dkdv;
      // One scratch request (a growth frees the old scratch): delta, then the partials if split.
      std::int64_t const plane = s.batch * s.seq * s.groups * s.head_dim;  // elements of d_k (or d_v)
      std::int64_t const reduce_blocks = (plane + attention_cuda::kThreads - 1) / attention_cuda::kThreads;
      KUMIKI_CHECK(reduce_blocks <= INT_MAX, "Attention<Cuda>: ", plane, " d_k elements");
      std::size_t const delta_bytes = (static_cast<std::size_t>(rows) * sizeof(float) + 255) / 256 * 256;
      std::size_t const partial_bytes = slices > 1 ? 2 * static_cast<std::size_t>(slices * plane) * sizeof(float) : 0;
      std::byte* const scratch = ctx.scratch_at_least(delta_bytes + partial_bytes);
      auto* const delta = reinterpret_cast<float*>(scratch);
      float* const partial = slices > 1 ? reinterpret_cast<float*>(scratch + delta_bytes) : nullptr;
      attention_cuda::row_dot_kernel<T>
          <<<static_cast<unsigned>(blocks), attention_cuda::kThreads, 0, ctx.stream>>>(p, o, d_o, delta);
      KUMIKI_CUDA_CHECK(cudaGetLastError());
      launch(dkdv, dim3(p.tiles, p.groups * slices, p.batch), run.threads, run.dkdv_smem, ctx, p, slices, q, k, v, d_o,
             static_cast<float const*>(lse), static_cast<float const*>(delta), d_k, d_v, partial);
      if (slices > 1) {
        attention_cuda::dkdv_reduce_kernel<T><<<static_cast<unsigned>(reduce_blocks), attention_cuda::kThreads, 0,
                                                ctx.stream>>>(p, slices, static_cast<float const*>(partial), d_k, d_v);
        KUMIKI_CUDA_CHECK(cudaGetLastError());
      }
      launch(run.dq, dim3(p.tiles, p.heads, p.batch), run.threads, run.dq_smem, ctx, p, q, k, v, d_o,
             static_cast<float const*>(lse), static_cast<float const*>(delta), d_q);
    });
  }

  /// Test hook: when > 0 (a divisor of heads / groups), the slices of the dK/dV pass instead of
  /// dkdv_slices' choice, so that tests take both paths on any GPU; 0 (the default): the choice.
  static inline std::atomic<int> dkdv_slices_for_tests{0};

  /// Whether bf16 attention with head_dim 64 or 128 runs on the tensor-core kernels (the default);
  /// false sends it to the CUDA-core kernels, which tests and benchmarks compare it with.
  static inline std::atomic<bool> tensor_cores{true};

 private:
  /// Calls f(std::integral_constant<int, D>) for the smallest kernel D in {8, 16, 32, 64, 128}
  /// holding head_dim (checked by make_problem).
  template <class F>
  static void with_head_dim(std::int64_t head_dim, F&& f) {
    if (head_dim <= 8)
      f(std::integral_constant<int, 8>{});
    else if (head_dim <= 16)
      f(std::integral_constant<int, 16>{});
    else if (head_dim <= 32)
      f(std::integral_constant<int, 32>{});
    else if (head_dim <= 64)
      f(std::integral_constant<int, 64>{});
    else
      f(std::integral_constant<int, 128>{});
  }

  /// Calls f(passes) with the kernels for head_dim and T: the tensor-core ones for bf16 with head_dim
  /// 64 or 128 while tensor_cores is on, else the CUDA-core ones for the smallest D holding head_dim.
  template <class T, class F>
  static void with_passes(std::int64_t head_dim, F&& f) {
    with_head_dim(head_dim, [&](auto dim) {
      constexpr int D = decltype(dim)::value;
      if constexpr (std::is_same_v<T, bf16> && attention_cuda::mma_head_dim(D)) {
        if (tensor_cores.load() && head_dim == D) return f(attention_cuda::tensor_core_passes<D>());
      }
      f(attention_cuda::cuda_core_passes<D, T>());
    });
  }

  /// The head slices of the dK/dV pass (backward): 1 while the grid of one block per (key tile,
  /// group, sequence) has at least kDkdvWaves blocks per block slot of the GPU (there the longest-
  /// first order balances the SMs); below, the smallest divisor of heads_per_group that brings the
  /// grid there, else heads_per_group (a block per head). LLM-jp-4 8B at T = 4096 (dkdv_kernel<128>:
  /// one block per SM), one sequence, 132 SMs: 512 blocks < 4 x 132, so 2 slices (1024 blocks of up
  /// to 2 x 64 tile steps); batch 2 or LLM-jp-4 1.3B at batch 8: 1.
  static int dkdv_slices(attention_cuda::Problem const& p, attention_cuda::KernelSetup const& kernel) {
    int const per_group = p.heads_per_group;
    if (int const forced = dkdv_slices_for_tests.load(); forced > 0) {
      KUMIKI_CHECK(per_group % forced == 0, "Attention<Cuda>: ", forced, " dK/dV slices for ", per_group,
                   " heads per group");
      return forced;
    }
    std::int64_t const blocks = static_cast<std::int64_t>(p.tiles) * p.groups * p.batch;
    std::int64_t const target =
        static_cast<std::int64_t>(attention_cuda::kDkdvWaves) * kernel.sms * kernel.blocks_per_sm;
    int slices = 1;
    while (slices < per_group && blocks * slices < target) {
      ++slices;
      while (per_group % slices != 0) ++slices;
    }
    return slices;
  }

  /// `kernel`'s launch facts on the current device, found once per (kernel, smem, device) and kept
  /// (the attributes stay set): its dynamic shared-memory limit raised to smem (above 48 KiB it must
  /// be opted into) and its preferred shared-memory carveout at the maximum (the rest of the unified
  /// L1 stays cache), so that two forward_kernel<128> blocks, 2 x (115 712 + 1 024 reserved) bytes,
  /// fill the 228 KiB of an H100 / H200 SM; then the SM count and how many blocks fit on an SM.
  template <class... Params>
  static attention_cuda::KernelSetup setup(void (*kernel)(Params...), std::size_t smem, int threads) {
    int device = 0;
    KUMIKI_CUDA_CHECK(cudaGetDevice(&device));
    using Key = std::tuple<void const*, std::size_t, int>;
    Key const key{reinterpret_cast<void const*>(kernel), smem, device};
    static std::mutex mutex;
    static std::map<Key, attention_cuda::KernelSetup> known;
    std::lock_guard<std::mutex> const lock(mutex);
    if (auto const it = known.find(key); it != known.end()) return it->second;
    KUMIKI_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    KUMIKI_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared));
    attention_cuda::KernelSetup r;
    KUMIKI_CUDA_CHECK(cudaDeviceGetAttribute(&r.sms, cudaDevAttrMultiProcessorCount, device));
    KUMIKI_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&r.blocks_per_sm, kernel, threads,
                                                                    smem));
    r.sms = std::max(r.sms, 1), r.blocks_per_sm = std::max(r.blocks_per_sm, 1);
    known.emplace(key, r);
    return r;
  }

  /// Launches `kernel` with `threads` threads and `smem` bytes of dynamic shared memory on ctx.stream
  /// (its attributes set up once: setup).
  template <class... Params, class... Args>
  static void launch(void (*kernel)(Params...), dim3 grid, int threads, std::size_t smem, Ctx<Cuda>& ctx,
                     Args const&... args) {
    (void)setup(kernel, smem, threads);
    kernel<<<grid, threads, smem, ctx.stream>>>(args...);
    KUMIKI_CUDA_CHECK(cudaGetLastError());
  }
};

static_assert(AttentionOp<Attention<Cuda>, Cuda, float> &&
              AttentionOp<Attention<Cuda>, Cuda, Precision<bf16, bf16, float, float, float>>);

}  // namespace ops
KUMIKI_NAMESPACE_END
