// kumiki/ops/cuda/attention_common.cuh: what the CUDA-core kernels (ops/cuda/attention.cuh) and the
// tensor-core kernels (ops/cuda/attention_mma.cuh) of CUDA attention share: the tile edge, the
// problem every kernel reads, the element conversions, the tile-major block order and the mask.
#pragma once

#include <cstdint>
#include <limits>
#include <type_traits>

#include "kumiki/config.hpp"
#include "kumiki/core/bf16.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {
namespace attention_cuda {

inline constexpr int kTile = 64;  // query rows and key rows of one tile
inline constexpr int kMaxHeadDim = 128;
inline constexpr float kNegInf = -std::numeric_limits<float>::infinity();

/// What every attention kernel reads: sizes (as int, checked on the host), row strides, the scale,
/// whether the 8-element chunks of q, k, v (and d_o) may be read as 16-byte vectors, and doc_start.
struct Problem {
  int batch = 0, seq = 0, heads = 0, groups = 0, head_dim = 0, heads_per_group = 0, tiles = 0;
  std::int64_t ld_q = 0, ld_k = 0, ld_v = 0, ld_o = 0;
  float scale = 0.0f;
  bool vec = false;
  std::int32_t const* doc_start = nullptr;
};

__device__ __forceinline__ float widen(float x) { return x; }
__device__ __forceinline__ float widen(bf16 x) { return x.to_float(); }

/// x rounded once to the activation type.
template <class T>
__device__ __forceinline__ T narrow(float x) {
  if constexpr (std::is_same_v<T, float>)
    return x;
  else
    return T(x);
}

/// A block's place in a (tiles, units_y, units_z) grid read tile slowest: the linear block index
/// w = x + tiles (y + units_y z) gives the tile w / (units_y units_z) and the unit w % (units_y units_z).
/// The hardware starts blocks roughly in linear order, so every unit's tile 0 starts before any unit's
/// tile 1: the kernels map tile 0 to their longest work (the last query tile, the first key tile),
/// and the short blocks fill the tail. (Read as (x, y, z), the grid would start head after head, each
/// with its longest tile first, and the longest tiles of the last heads would end the pass alone:
/// at LLM-jp-4 8B, T = 4096, one sequence on 132 SMs, 549 tile steps on the busiest SM against 521
/// this way, the even share being 520.) Only the run time depends on the order.
struct TileMajor {
  int tile;
  int unit;
};
__device__ __forceinline__ TileMajor tile_major_block() {
  std::int64_t const units = static_cast<std::int64_t>(gridDim.y) * gridDim.z;
  std::int64_t const yz = blockIdx.y + static_cast<std::int64_t>(gridDim.y) * blockIdx.z;
  std::int64_t const w = blockIdx.x + gridDim.x * yz;
  return TileMajor{static_cast<int>(w / units), static_cast<int>(w % units)};
}

/// A block of the forward or dQ grid (tiles, heads, batch), read tile-major: query tile qt = tiles - 1
/// - i (the longest first) of head h (K/V group g) in sequence b; i0 its first row, tok0 the row of
/// token (b, 0), ds the sequence's document starts (null without documents).
struct QueryBlock {
  int qt, h, b, g, i0;
  std::int64_t tok0;
  std::int32_t const* ds;
};
__device__ __forceinline__ QueryBlock query_block(Problem const& p) {
  TileMajor const at = tile_major_block();
  int const qt = p.tiles - 1 - at.tile, h = at.unit % p.heads, b = at.unit / p.heads;
  std::int64_t const tok0 = static_cast<std::int64_t>(b) * p.seq;
  return QueryBlock{qt, h, b, h / p.heads_per_group, qt * kTile, tok0, p.doc_start ? p.doc_start + tok0 : nullptr};
}

/// A block of the dK/dV grid (tiles, groups * slices, batch), read tile-major (the unit is slice, then
/// group, then sequence): key tile kt, rows j0 .. key_end - 1, of K/V group g in sequence b, over the
/// query heads h0 .. h0 + heads_per_block - 1 of the group (slice `slice` of `slices`); tok0 and ds as
/// QueryBlock's, k_off and v_off the offsets of the sequence's rows of the group in k and v.
struct KeyBlock {
  int kt, slice, g, b, heads_per_block, h0, j0, key_end;
  std::int64_t tok0;
  std::int32_t const* ds;
  std::int64_t k_off, v_off;
};
__device__ __forceinline__ KeyBlock key_block(Problem const& p, int slices) {
  TileMajor const at = tile_major_block();
  int const slice = at.unit % slices, g = at.unit / slices % p.groups, b = at.unit / slices / p.groups;
  int const heads_per_block = p.heads_per_group / slices, j0 = at.tile * kTile;
  std::int64_t const tok0 = static_cast<std::int64_t>(b) * p.seq;
  return KeyBlock{at.tile,
                  slice,
                  g,
                  b,
                  heads_per_block,
                  g * p.heads_per_group + slice * heads_per_block,
                  j0,
                  min(p.seq, j0 + kTile),
                  tok0,
                  p.doc_start ? p.doc_start + tok0 : nullptr,
                  tok0 * p.ld_k + static_cast<std::int64_t>(g) * p.head_dim,
                  tok0 * p.ld_v + static_cast<std::int64_t>(g) * p.head_dim};
}

/// Where a split dK/dV block (slice `slice` of `slices`) writes its unscaled fp32 sums: key row `key` of
/// the sequence at k + key ld (d_k part) and v + key ld (d_v part) of
/// partial[((slice * batch * seq + b * seq + key) * groups + g) * head_dim + col], the d_v part
/// slices * batch * seq * groups * head_dim floats after the d_k part (dkdv_reduce_kernel's layout).
struct PartialRows {
  float* k;
  float* v;
  std::int64_t ld;
};
__device__ __forceinline__ PartialRows partial_rows(Problem const& p, float* partial, KeyBlock const& kb, int slices) {
  std::int64_t const plane = static_cast<std::int64_t>(p.batch) * p.seq * p.groups * p.head_dim;
  float* const k = partial + kb.slice * plane + (kb.tok0 * p.groups + kb.g) * p.head_dim;
  return PartialRows{k, k + slices * plane, static_cast<std::int64_t>(p.groups) * p.head_dim};
}

/// Whether query position t (row of a (seq) sequence) sees key position key: causal, and inside t's
/// document when `first` (t's doc_start, 0 without documents) says so; t < seq is checked here.
__device__ __forceinline__ bool visible(int t, int key, int first, int seq) {
  return t < seq && key <= t && key >= first;
}

}  // namespace attention_cuda
}  // namespace ops
KUMIKI_NAMESPACE_END
