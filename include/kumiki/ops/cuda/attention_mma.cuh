// kumiki/ops/cuda/attention_mma.cuh: the tensor-core kernels of CUDA attention (bf16, head_dim 64 and
// 128; Attention<Cuda> in ops/cuda/attention.cuh picks them, the CUDA-core kernels there take fp32
// and the other head sizes). The same three passes and the same results up to rounding: forward
// with online softmax and the log-sum-exp saved, then d_k / d_v per key tile and d_q per query tile,
// each recomputing the probabilities from lse (no T x T matrix anywhere, no atomics).
//
// Decomposition (FlashAttention-2's, on mma.sync m16n8k16: ops/cuda/mma.cuh). A block is 4 warps
// over a 64 x 64 (query x key) tile pair; each warp owns 16 rows of the tile that stays put (query
// rows in the forward and dQ passes, key rows in the dK/dV pass) and computes, per step, a 16 x 64
// score strip S = A B^T with A and B read from bf16 shared tiles by ldmatrix. The strip's fp32
// accumulators are, rounded to bf16, the A operand of the next product (P V, dS K, P^T d_o,
// dS^T q): probabilities and score gradients never leave the registers. A lane holds rows g and
// g + 8 of its warp's strip (g = lane / 4), so a row's maximum and sum are reduced over the 4 lanes
// of a quad (shuffles 1 and 2, a fixed order).
//
// Numerics. bf16 products are exact and accumulate in fp32. Scores are taken in log2 units, x =
// s * scale * log2(e), and exponentials as exp2 (one multiply-add per score); lse is stored in
// natural units, lse = (m + log2 l) ln 2, as the CUDA-core kernels and the CPU store it. The
// probabilities (and dS) are rounded to bf16 as the second product's operand, as in
// FlashAttention-2; the row sums l use them in fp32. Every output element has one writer and every
// sum a fixed order: two runs are bitwise identical.
//
// Shared tiles are bf16, 64 rows of D + 8 elements (a row is 16 bytes longer than its data, so the
// 8 rows one ldmatrix phase reads fall in 8 different 4-bank groups: no conflicts). Per block:
//   forward  q, k, v tiles                  D = 128: 52 224 bytes   D = 64: 27 648
//   dQ       q, d_o, k, v tiles             D = 128: 69 632 bytes   D = 64: 36 864
//   dK / dV  k, v, q, d_o + lse, delta, doc D = 128: 70 400 bytes   D = 64: 37 632
// Registers of a lane (D = 128): the forward keeps o (64 floats) and a score strip (32); dQ keeps
// d_q (64) and the S and dP strips (32 + 32); dK/dV keeps d_k and d_v (128) and strips of 16 queries
// (8 + 8), walking each 64-query tile in four steps (two of 32 queries at D = 64).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kumiki/config.hpp"
#include "kumiki/core/bf16.hpp"
#include "kumiki/ops/cuda/attention_common.cuh"
#include "kumiki/ops/cuda/mma.cuh"

KUMIKI_NAMESPACE_BEGIN
namespace ops {
namespace attention_cuda {

inline constexpr int kMmaThreads = 128;  // 4 warps, 16 tile rows each
inline constexpr int kMmaWarpRows = 16;
inline constexpr float kLog2e = 1.4426950408889634f;
inline constexpr float kLn2 = 0.6931471805599453f;
static_assert(kMmaThreads / 32 * kMmaWarpRows == kTile);

/// Head sizes with tensor-core kernels.
inline constexpr bool mma_head_dim(std::int64_t head_dim) { return head_dim == 64 || head_dim == 128; }

/// Row stride (bf16 elements) of a shared (64, D) tile.
template <int D>
inline constexpr int mma_ld = D + 8;
template <int D>
inline constexpr std::size_t mma_tile_bytes = static_cast<std::size_t>(kTile) * mma_ld<D> * sizeof(bf16);

/// Shared memory bytes of each tensor-core kernel.
template <int D>
inline constexpr std::size_t forward_mma_smem = 3 * mma_tile_bytes<D>;
template <int D>
inline constexpr std::size_t dq_mma_smem = 4 * mma_tile_bytes<D>;
template <int D>
inline constexpr std::size_t dkdv_mma_smem = 4 * mma_tile_bytes<D> + 3 * kTile * sizeof(float);

/// 16 bytes: eight bf16.
struct alignas(16) Bf16x8 {
  std::uint32_t w[4];
};

/// Rows [row0, row0 + 64) of a (seq, D) bf16 slice (row stride ld, row 0 at src) into the shared tile
/// dst (row stride mma_ld<D>); rows >= seq become 0. Thread i copies the 16-byte chunks i, i + 128,
/// ...: consecutive threads read consecutive chunks of a row (coalesced); 16-byte loads when `vec`.
template <int D>
__device__ __forceinline__ void load_mma_tile(bf16* dst, bf16 const* src, std::int64_t ld, int row0, int seq,
                                              bool vec) {
  constexpr int chunks = D / 8;
  for (int idx = static_cast<int>(threadIdx.x); idx < kTile * chunks; idx += kMmaThreads) {
    int const r = idx / chunks, c8 = (idx % chunks) * 8, t = row0 + r;
    Bf16x8 x{{0u, 0u, 0u, 0u}};
    if (t < seq) {
      bf16 const* const from = src + t * ld + c8;
      if (vec) {
        x = *reinterpret_cast<Bf16x8 const*>(from);
      } else {
#pragma unroll
        for (int e = 0; e < 4; ++e)
          x.w[e] = static_cast<std::uint32_t>(from[2 * e].bits) | (static_cast<std::uint32_t>(from[2 * e + 1].bits) << 16);
      }
    }
    *reinterpret_cast<Bf16x8*>(dst + r * mma_ld<D> + c8) = x;
  }
}

/// s[n] += A B_n^T for the warp: A = rows [a0, a0 + 16) of shared tile a, B_n = rows [b0 + 8 n, b0 + 8 n
/// + 8) of shared tile b, both over columns [0, D). s[n] is the (16 x 8) accumulator of columns 8 n ..
/// 8 n + 7 of the strip (mma.cuh's D layout).
template <int D, int NT>
__device__ __forceinline__ void warp_scores(float (&s)[NT][4], bf16 const* a, int a0, bf16 const* b, int b0, int lane) {
  static_assert(NT % 2 == 0);
  constexpr int LD = mma_ld<D>;
  int const mat = lane >> 3, row = lane & 7;
#pragma unroll
  for (int k0 = 0; k0 < D; k0 += 16) {
    std::uint32_t af[4];
    mma::ldmatrix_x4<false>(af, a + (a0 + row + 8 * (mat & 1)) * LD + k0 + 8 * (mat >> 1));
#pragma unroll
    for (int n = 0; n < NT; n += 2) {
      std::uint32_t bf[4];
      mma::ldmatrix_x4<false>(bf, b + (b0 + 8 * n + row + 8 * (mat >> 1)) * LD + k0 + 8 * (mat & 1));
      std::uint32_t const lo[2] = {bf[0], bf[1]}, hi[2] = {bf[2], bf[3]};
      mma::bf16_16816(s[n], af, lo);
      mma::bf16_16816(s[n + 1], af, hi);
    }
  }
}

/// acc += P M for the warp: P (16 x 16 KS) in A registers (pa[kk] covers P's columns 16 kk ..
/// 16 kk + 15), M = rows [m0, m0 + 16 KS) x columns [0, D) of shared tile m; acc[n] holds columns
/// 8 n .. 8 n + 7 of the (16 x D) result.
template <int D, int KS>
__device__ __forceinline__ void warp_times_tile(float (&acc)[D / 8][4], std::uint32_t const (&pa)[KS][4],
                                                bf16 const* m, int m0, int lane) {
  constexpr int LD = mma_ld<D>;
  int const mat = lane >> 3, row = lane & 7;
#pragma unroll
  for (int kk = 0; kk < KS; ++kk) {
#pragma unroll
    for (int n = 0; n < D / 8; n += 2) {
      std::uint32_t bf[4];
      mma::ldmatrix_x4<true>(bf, m + (m0 + 16 * kk + row + 8 * (mat & 1)) * LD + 8 * n + 8 * (mat >> 1));
      std::uint32_t const lo[2] = {bf[0], bf[1]}, hi[2] = {bf[2], bf[3]};
      mma::bf16_16816(acc[n], pa[kk], lo);
      mma::bf16_16816(acc[n + 1], pa[kk], hi);
    }
  }
}

/// The strip s (16 x 8 NT, accumulator layout) rounded to bf16 as the A operand over its 8 NT columns.
template <int NT>
__device__ __forceinline__ void strip_to_a(float const (&s)[NT][4], std::uint32_t (&pa)[NT / 2][4]) {
#pragma unroll
  for (int kk = 0; kk < NT / 2; ++kk) {
    pa[kk][0] = mma::pack_bf16(s[2 * kk][0], s[2 * kk][1]);
    pa[kk][1] = mma::pack_bf16(s[2 * kk][2], s[2 * kk][3]);
    pa[kk][2] = mma::pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
    pa[kk][3] = mma::pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
  }
}

/// Max / sum over the 4 lanes of a quad (the lanes holding one strip row), a fixed butterfly.
__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

/// A thread's place in its warp's strip (every tensor-core kernel): its lane; its warp owns tile rows
/// w0 .. w0 + 15 (query or key rows), the lane holds rows row_g and row_g + 8 of them and strip columns 2 col_c, 2 col_c + 1 of every 8.
struct StripLane {
  int lane, row_g, col_c, w0;
};
__device__ __forceinline__ StripLane strip_lane() {
  int const lane = static_cast<int>(threadIdx.x) % 32, warp = static_cast<int>(threadIdx.x) / 32;
  return StripLane{lane, lane / 4, lane % 4, warp * kMmaWarpRows};
}

/// Stores two adjacent elements of a bf16 row.
__device__ __forceinline__ void store_pair(bf16* dst, float a, float b) {
  dst[0] = bf16(a);
  dst[1] = bf16(b);
}

/// Forward (tensor cores). Grid (tiles, heads, batch) read tile-major as forward_kernel's: query tile
/// qt = tiles - 1 - i of head h in sequence b. Warp w owns query rows 16 w .. 16 w + 15 of the tile;
/// per key tile (from the first row's document start to the diagonal) it computes its 16 x 64 score
/// strip x = (q k^T) scale log2(e), masks it where the tile needs a mask (the diagonal, or document
/// starts inside the tile), and updates m (running max), l and o (online softmax):
///   m' = max(m, max_c x_c), l' = l 2^(m - m') + sum_c 2^(x_c - m'), o' = o 2^(m - m') + P v,
/// P = 2^(x - m') in bf16. At the end o / l and lse = (m + log2 l) ln 2 per row.
template <int D>
__global__ void __launch_bounds__(kMmaThreads) forward_mma_kernel(Problem p, bf16 const* q, bf16 const* k,
                                                                  bf16 const* v, bf16* o, float* lse) {
  constexpr int NT = kTile / 8, ND = D / 8;
  extern __shared__ __align__(16) unsigned char mma_smem[];
  bf16* const q_s = reinterpret_cast<bf16*>(mma_smem);
  bf16* const k_s = q_s + kTile * mma_ld<D>;
  bf16* const v_s = k_s + kTile * mma_ld<D>;

  auto const [lane, row_g, col_c, w0] = strip_lane();
  auto const [qt, h, b, g, i0, tok0, ds] = query_block(p);
  bf16 const* const q_bh = q + tok0 * p.ld_q + static_cast<std::int64_t>(h) * p.head_dim;
  bf16 const* const k_bg = k + tok0 * p.ld_k + static_cast<std::int64_t>(g) * p.head_dim;
  bf16 const* const v_bg = v + tok0 * p.ld_v + static_cast<std::int64_t>(g) * p.head_dim;

  load_mma_tile<D>(q_s, q_bh, p.ld_q, i0, p.seq, p.vec);

  int const t_lo = i0 + w0 + row_g, t_hi = t_lo + 8;  // the lane's two rows
  int const first_lo = ds && t_lo < p.seq ? ds[t_lo] : 0, first_hi = ds && t_hi < p.seq ? ds[t_hi] : 0;
  float const sl2 = p.scale * kLog2e;
  float m_lo = kNegInf, m_hi = kNegInf, l_lo = 0.0f, l_hi = 0.0f;  // l: this lane's columns only
  float acc[ND][4];
#pragma unroll
  for (int n = 0; n < ND; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;

  int const kt0 = ds ? ds[i0] / kTile : 0;
  int const last_first = ds ? ds[min(i0 + kTile, p.seq) - 1] : 0;  // the tile's largest document start
  for (int kt = kt0; kt <= qt; ++kt) {
    int const j0 = kt * kTile;
    __syncthreads();  // every warp is done with the previous k, v tiles (and q is stored)
    load_mma_tile<D>(k_s, k_bg, p.ld_k, j0, p.seq, p.vec);
    load_mma_tile<D>(v_s, v_bg, p.ld_v, j0, p.seq, p.vec);
    __syncthreads();

    float s[NT][4];
#pragma unroll
    for (int n = 0; n < NT; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
    warp_scores<D, NT>(s, q_s, w0, k_s, 0, lane);

    bool const masked = kt == qt || last_first > j0;
    float mx_lo = kNegInf, mx_hi = kNegInf;
#pragma unroll
    for (int n = 0; n < NT; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = s[n][e] * sl2;
        if (masked) {
          int const key = j0 + 8 * n + 2 * col_c + (e & 1);
          bool const lo = e < 2;
          if (!visible(lo ? t_lo : t_hi, key, lo ? first_lo : first_hi, p.seq)) x = kNegInf;
        }
        s[n][e] = x;
      }
      mx_lo = fmaxf(mx_lo, fmaxf(s[n][0], s[n][1]));
      mx_hi = fmaxf(mx_hi, fmaxf(s[n][2], s[n][3]));
    }
    mx_lo = quad_max(mx_lo);
    mx_hi = quad_max(mx_hi);
    float const new_lo = fmaxf(m_lo, mx_lo), new_hi = fmaxf(m_hi, mx_hi);
    // A row with no visible key yet keeps m = -inf: subtract 0 there (every x is -inf: p = 0).
    float const base_lo = new_lo == kNegInf ? 0.0f : new_lo, base_hi = new_hi == kNegInf ? 0.0f : new_hi;
    float const alpha_lo = exp2f(m_lo - base_lo), alpha_hi = exp2f(m_hi - base_hi);  // 0 while m = -inf
    m_lo = new_lo, m_hi = new_hi;
    float sum_lo = 0.0f, sum_hi = 0.0f;
#pragma unroll
    for (int n = 0; n < NT; ++n) {
      s[n][0] = exp2f(s[n][0] - base_lo);
      s[n][1] = exp2f(s[n][1] - base_lo);
      s[n][2] = exp2f(s[n][2] - base_hi);
      s[n][3] = exp2f(s[n][3] - base_hi);
      sum_lo += s[n][0] + s[n][1];
      sum_hi += s[n][2] + s[n][3];
    }
    l_lo = l_lo * alpha_lo + sum_lo;
    l_hi = l_hi * alpha_hi + sum_hi;
#pragma unroll
    for (int n = 0; n < ND; ++n) {
      acc[n][0] *= alpha_lo, acc[n][1] *= alpha_lo;
      acc[n][2] *= alpha_hi, acc[n][3] *= alpha_hi;
    }
    std::uint32_t pa[NT / 2][4];
    strip_to_a<NT>(s, pa);
    warp_times_tile<D, NT / 2>(acc, pa, v_s, 0, lane);
  }

  l_lo = quad_sum(l_lo);
  l_hi = quad_sum(l_hi);
  bf16* const o_bh = o + tok0 * p.ld_o + static_cast<std::int64_t>(h) * p.head_dim;
  float* const lse_bh = lse + (static_cast<std::int64_t>(b) * p.heads + h) * p.seq;
  if (t_lo < p.seq) {
    float const inv = 1.0f / l_lo;
#pragma unroll
    for (int n = 0; n < ND; ++n) store_pair(o_bh + t_lo * p.ld_o + 8 * n + 2 * col_c, acc[n][0] * inv, acc[n][1] * inv);
    if (col_c == 0) lse_bh[t_lo] = (m_lo + log2f(l_lo)) * kLn2;
  }
  if (t_hi < p.seq) {
    float const inv = 1.0f / l_hi;
#pragma unroll
    for (int n = 0; n < ND; ++n) store_pair(o_bh + t_hi * p.ld_o + 8 * n + 2 * col_c, acc[n][2] * inv, acc[n][3] * inv);
    if (col_c == 0) lse_bh[t_hi] = (m_hi + log2f(l_hi)) * kLn2;
  }
}

/// Backward, step 3 (tensor cores): d_q of query tile qt = tiles - 1 - i of head h in sequence b, grid
/// and order as forward_mma_kernel. Per key tile (from the document start's to the diagonal, in
/// order) warp w computes its strips S = q k^T and dP = d_o v^T, then
///   P = 2^(S scale log2(e) - lse log2(e)) (0 where masked), dS = P (dP - delta), d_q += dS k,
/// dS rounded to bf16; at the end d_q scale per row. Shared: q, d_o, k, v tiles.
template <int D>
__global__ void __launch_bounds__(kMmaThreads) dq_mma_kernel(Problem p, bf16 const* q, bf16 const* k, bf16 const* v,
                                                             bf16 const* d_o, float const* lse, float const* delta,
                                                             bf16* d_q) {
  constexpr int NT = kTile / 8, ND = D / 8;
  extern __shared__ __align__(16) unsigned char mma_smem[];
  bf16* const q_s = reinterpret_cast<bf16*>(mma_smem);
  bf16* const do_s = q_s + kTile * mma_ld<D>;
  bf16* const k_s = do_s + kTile * mma_ld<D>;
  bf16* const v_s = k_s + kTile * mma_ld<D>;

  auto const [lane, row_g, col_c, w0] = strip_lane();
  auto const [qt, h, b, g, i0, tok0, ds] = query_block(p);
  std::int64_t const q_off = tok0 * p.ld_q + static_cast<std::int64_t>(h) * p.head_dim;
  bf16 const* const k_bg = k + tok0 * p.ld_k + static_cast<std::int64_t>(g) * p.head_dim;
  bf16 const* const v_bg = v + tok0 * p.ld_v + static_cast<std::int64_t>(g) * p.head_dim;
  float const* const lse_bh = lse + (static_cast<std::int64_t>(b) * p.heads + h) * p.seq;
  float const* const delta_bh = delta + (static_cast<std::int64_t>(b) * p.heads + h) * p.seq;

  load_mma_tile<D>(q_s, q + q_off, p.ld_q, i0, p.seq, p.vec);
  load_mma_tile<D>(do_s, d_o + tok0 * p.ld_o + static_cast<std::int64_t>(h) * p.head_dim, p.ld_o, i0, p.seq, p.vec);

  int const t_lo = i0 + w0 + row_g, t_hi = t_lo + 8;
  bool const in_lo = t_lo < p.seq, in_hi = t_hi < p.seq;
  int const first_lo = ds && in_lo ? ds[t_lo] : 0, first_hi = ds && in_hi ? ds[t_hi] : 0;
  float const lse_lo = in_lo ? lse_bh[t_lo] * kLog2e : 0.0f, lse_hi = in_hi ? lse_bh[t_hi] * kLog2e : 0.0f;
  float const delta_lo = in_lo ? delta_bh[t_lo] : 0.0f, delta_hi = in_hi ? delta_bh[t_hi] : 0.0f;
  float const sl2 = p.scale * kLog2e;
  float dq[ND][4];
#pragma unroll
  for (int n = 0; n < ND; ++n) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.0f;

  int const kt0 = ds ? ds[i0] / kTile : 0;
  int const last_first = ds ? ds[min(i0 + kTile, p.seq) - 1] : 0;
  for (int kt = kt0; kt <= qt; ++kt) {
    int const j0 = kt * kTile;
    __syncthreads();  // every warp is done with the previous k, v tiles (and q, d_o are stored)
    load_mma_tile<D>(k_s, k_bg, p.ld_k, j0, p.seq, p.vec);
    load_mma_tile<D>(v_s, v_bg, p.ld_v, j0, p.seq, p.vec);
    __syncthreads();

    float s[NT][4], dp[NT][4];
#pragma unroll
    for (int n = 0; n < NT; ++n) {
      s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
      dp[n][0] = dp[n][1] = dp[n][2] = dp[n][3] = 0.0f;
    }
    warp_scores<D, NT>(s, q_s, w0, k_s, 0, lane);
    warp_scores<D, NT>(dp, do_s, w0, v_s, 0, lane);

    bool const masked = kt == qt || last_first > j0;
#pragma unroll
    for (int n = 0; n < NT; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        bool const lo = e < 2;
        float pr = exp2f(s[n][e] * sl2 - (lo ? lse_lo : lse_hi));
        if (masked && !visible(lo ? t_lo : t_hi, j0 + 8 * n + 2 * col_c + (e & 1), lo ? first_lo : first_hi, p.seq))
          pr = 0.0f;
        s[n][e] = pr * (dp[n][e] - (lo ? delta_lo : delta_hi));  // dS
      }
    }
    std::uint32_t pa[NT / 2][4];
    strip_to_a<NT>(s, pa);
    warp_times_tile<D, NT / 2>(dq, pa, k_s, 0, lane);
  }

  if (in_lo) {
#pragma unroll
    for (int n = 0; n < ND; ++n)
      store_pair(d_q + q_off + t_lo * p.ld_q + 8 * n + 2 * col_c, p.scale * dq[n][0], p.scale * dq[n][1]);
  }
  if (in_hi) {
#pragma unroll
    for (int n = 0; n < ND; ++n)
      store_pair(d_q + q_off + t_hi * p.ld_q + 8 * n + 2 * col_c, p.scale * dq[n][2], p.scale * dq[n][3]);
  }
}

/// Queries per step of the dK/dV kernel's strips: a quarter of a query tile at D = 128 (d_k and d_v
/// take 128 registers of a lane; strips of 32 queries would spill), half of it at D = 64.
template <int D>
inline constexpr int dkdv_strip_queries = D > 64 ? 16 : 32;

/// Backward, step 2 (tensor cores): d_k and d_v of key tile kt of group g in sequence b over a slice
/// of the group's heads, grid, order, loops and Split exactly as dkdv_kernel's (the same partial
/// layout, summed by dkdv_reduce_kernel). Warp w owns key rows 16 w .. 16 w + 15; per query tile
/// and strip of it (dkdv_strip_queries) it computes the transposed strips S^T = k q^T and dP^T = v d_o^T,
///   P^T = 2^(S^T scale log2(e) - lse log2(e)) (0 where masked), dS^T = P^T (dP^T - delta),
///   d_v += P^T d_o, d_k += dS^T q  (P^T, dS^T rounded to bf16);
/// at the end d_k scale (or the unscaled fp32 partials with Split). Shared: k, v, q, d_o tiles and
/// the query rows' lse (log2 units), delta and document start.
template <int D, bool Split>
__global__ void __launch_bounds__(kMmaThreads, 2) dkdv_mma_kernel(Problem p, int slice_count, bf16 const* q,
                                                               bf16 const* k, bf16 const* v, bf16 const* d_o,
                                                               float const* lse, float const* delta, bf16* d_k,
                                                               bf16* d_v, float* partial) {
  constexpr int QS = dkdv_strip_queries<D>, NS = QS / 8, ND = D / 8;
  extern __shared__ __align__(16) unsigned char mma_smem[];
  bf16* const k_s = reinterpret_cast<bf16*>(mma_smem);
  bf16* const v_s = k_s + kTile * mma_ld<D>;
  bf16* const q_s = v_s + kTile * mma_ld<D>;
  bf16* const do_s = q_s + kTile * mma_ld<D>;
  float* const lse_s = reinterpret_cast<float*>(do_s + kTile * mma_ld<D>);
  float* const delta_s = lse_s + kTile;
  int* const first_s = reinterpret_cast<int*>(delta_s + kTile);

  auto const [lane, row_g, col_c, w0] = strip_lane();
  int const slices = Split ? slice_count : 1;
  KeyBlock const kb = key_block(p, slices);
  auto const& [kt, slice, g, b, heads_per_block, h0, j0, key_end, tok0, ds, k_off, v_off] = kb;

  load_mma_tile<D>(k_s, k + k_off, p.ld_k, j0, p.seq, p.vec);
  load_mma_tile<D>(v_s, v + v_off, p.ld_v, j0, p.seq, p.vec);

  int const key_lo = j0 + w0 + row_g, key_hi = key_lo + 8;  // the lane's two key rows
  float const sl2 = p.scale * kLog2e;
  float dk[ND][4], dv[ND][4];
#pragma unroll
  for (int n = 0; n < ND; ++n) {
    dk[n][0] = dk[n][1] = dk[n][2] = dk[n][3] = 0.0f;
    dv[n][0] = dv[n][1] = dv[n][2] = dv[n][3] = 0.0f;
  }

  for (int h = h0; h < h0 + heads_per_block; ++h) {
    bf16 const* const q_bh = q + tok0 * p.ld_q + static_cast<std::int64_t>(h) * p.head_dim;
    bf16 const* const do_bh = d_o + tok0 * p.ld_o + static_cast<std::int64_t>(h) * p.head_dim;
    float const* const lse_bh = lse + (static_cast<std::int64_t>(b) * p.heads + h) * p.seq;
    float const* const delta_bh = delta + (static_cast<std::int64_t>(b) * p.heads + h) * p.seq;
    for (int qt = kt; qt < p.tiles; ++qt) {
      int const i0 = qt * kTile;
      if (ds && ds[i0] >= key_end) break;  // documents start in order: no later query sees this tile
      __syncthreads();  // every warp is done with the previous q, d_o tiles and row values
      load_mma_tile<D>(q_s, q_bh, p.ld_q, i0, p.seq, p.vec);
      load_mma_tile<D>(do_s, do_bh, p.ld_o, i0, p.seq, p.vec);
      for (int r = static_cast<int>(threadIdx.x); r < kTile; r += kMmaThreads) {
        int const t = i0 + r;
        bool const in = t < p.seq;
        lse_s[r] = in ? lse_bh[t] * kLog2e : 0.0f;
        delta_s[r] = in ? delta_bh[t] : 0.0f;
        first_s[r] = in && ds ? ds[t] : 0;
      }
      __syncthreads();

      // A mask is needed on the diagonal, in the last query tile (rows past the sequence) and where
      // a query row's document starts after the tile's first key.
      bool const masked = qt == kt || qt == p.tiles - 1 || (ds && ds[min(i0 + kTile, p.seq) - 1] > j0);
#pragma unroll 1
      for (int r0 = 0; r0 < kTile; r0 += QS) {
        float s[NS][4], dp[NS][4];
#pragma unroll
        for (int n = 0; n < NS; ++n) {
          s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
          dp[n][0] = dp[n][1] = dp[n][2] = dp[n][3] = 0.0f;
        }
        warp_scores<D, NS>(s, k_s, w0, q_s, r0, lane);
        warp_scores<D, NS>(dp, v_s, w0, do_s, r0, lane);
#pragma unroll
        for (int n = 0; n < NS; ++n) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            int const r = r0 + 8 * n + 2 * col_c + (e & 1);  // the query row of this column
            float pr = exp2f(s[n][e] * sl2 - lse_s[r]);
            if (masked && !visible(i0 + r, e < 2 ? key_lo : key_hi, first_s[r], p.seq)) pr = 0.0f;
            s[n][e] = pr;
            dp[n][e] = pr * (dp[n][e] - delta_s[r]);  // dS^T
          }
        }
        std::uint32_t pa[NS / 2][4], pd[NS / 2][4];
        strip_to_a<NS>(s, pa);
        strip_to_a<NS>(dp, pd);
        warp_times_tile<D, NS / 2>(dv, pa, do_s, r0, lane);
        warp_times_tile<D, NS / 2>(dk, pd, q_s, r0, lane);
      }
    }
  }

  // The lane's rows, as dkdv_kernel writes them (partial_rows gives the partial layout).
  [[maybe_unused]] PartialRows const part = Split ? partial_rows(p, partial, kb, slices) : PartialRows{};
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    int const key = half == 0 ? key_lo : key_hi;
    if (key >= p.seq) continue;
#pragma unroll
    for (int n = 0; n < ND; ++n) {
      int const col = 8 * n + 2 * col_c;
      float const k0 = dk[n][2 * half], k1 = dk[n][2 * half + 1], v0 = dv[n][2 * half], v1 = dv[n][2 * half + 1];
      if constexpr (Split) {
        part.k[key * part.ld + col] = k0, part.k[key * part.ld + col + 1] = k1;
        part.v[key * part.ld + col] = v0, part.v[key * part.ld + col + 1] = v1;
      } else {
        store_pair(d_k + k_off + key * p.ld_k + col, p.scale * k0, p.scale * k1);
        store_pair(d_v + v_off + key * p.ld_v + col, v0, v1);
      }
    }
  }
}

}  // namespace attention_cuda
}  // namespace ops
KUMIKI_NAMESPACE_END
