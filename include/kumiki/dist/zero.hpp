// kumiki/dist/zero.hpp: ZeRO-1 (Rajbhandari et al., 2020, stage 1: optimizer states partitioned) over
// the data-parallel ranks: which elements of an fp32 arena each rank owns, and what a communicator must
// do for it.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/bf16.hpp"
#include "kumiki/core/dtype.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/ops/context.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace dist {

/// The ZeRO-1 partition of an fp32 arena (gradients, parameters: one layout) over `ranks` ranks.
/// Rank r owns the elements [elements[r], elements[r + 1]) in element order (the padding between
/// tensors skipped: a FlatRange, what AdamW and the gradient norm take) and the arena's floats
/// [floats[r], floats[r + 1]) (padding included: what a reduce-scatter or all-gather moves). The
/// elements are split evenly in multiples of `granule` (the last rank takes the remainder); a float
/// bound is its element bound's position in the arena (the padding after a tensor goes with the tensor).
struct ZeroPartition {
  static constexpr std::size_t granule = 64;  // a cache line's worth of floats on either side of a cut

  std::vector<std::size_t> elements;  // ranks + 1 bounds, elements.front() = 0, elements.back() = numel
  std::vector<std::int64_t> floats;   // ranks + 1 bounds, floats.front() = 0, floats.back() = total floats

  int ranks() const { return static_cast<int>(elements.size()) - 1; }
  FlatRange range(int r) const { return FlatRange{elements.at(static_cast<std::size_t>(r)), elements.at(static_cast<std::size_t>(r) + 1)}; }
};

/// The positions, in elements of the arena's one dtype (padding included), of the element bounds
/// `elements` (flat, padding-free numbering, ascending) in an arena with `layout`: a bound inside tensor
/// i at its element k is at layout[i].offset / size + k, the padding after a tensor going with the
/// tensor; a bound at the end is the arena's whole length. The fp32 gradients and the bf16 weights of
/// one model get the same cuts this way, each in its own units.
inline std::vector<std::int64_t> arena_bounds(ArenaLayout const& layout, std::span<std::size_t const> elements) {
  KUMIKI_CHECK(layout.size() > 0, "arena_bounds: an empty layout");
  std::size_t const size = dtype_size(layout[0].dtype);
  for (auto const& e : layout.entries())
    KUMIKI_CHECK(dtype_size(e.dtype) == size, "arena_bounds: '", e.name, "' is ", dtype_name(e.dtype), ", '",
                 layout[0].name, "' ", dtype_name(layout[0].dtype), " (one element size per arena)");
  KUMIKI_CHECK(layout.total_bytes() % size == 0, "arena_bounds: the arena is not a whole number of elements");
  std::vector<std::int64_t> out(elements.size());
  std::size_t first = 0, i = 0;  // tensor i's first flat element
  for (std::size_t r = 0; r < elements.size(); ++r) {
    std::size_t const e = elements[r];
    KUMIKI_CHECK(e <= layout.numel() && (r == 0 || e >= elements[r - 1]), "arena_bounds: bound ", r, " (", e,
                 ") is out of order or past the arena's ", layout.numel(), " elements");
    while (i < layout.size() && first + layout[i].numel() <= e) first += layout[i++].numel();
    out[r] = i < layout.size() ? static_cast<std::int64_t>(layout[i].offset / size + (e - first))
                               : static_cast<std::int64_t>(layout.total_bytes() / size);
  }
  return out;
}

/// The partition of an fp32 arena with `layout` (its offsets as allocated: pass the arena's own
/// layout) over `ranks` ranks.
inline ZeroPartition zero_partition(ArenaLayout const& layout, int ranks) {
  KUMIKI_CHECK(ranks >= 1, "zero_partition: ranks must be >= 1, got ", ranks);
  for (auto const& e : layout.entries())
    KUMIKI_CHECK(e.dtype == DType::f32, "ZeRO-1 partitions fp32 arenas; '", e.name, "' is ", dtype_name(e.dtype));
  std::size_t const numel = layout.numel();
  std::size_t const granules = (numel + ZeroPartition::granule - 1) / ZeroPartition::granule;
  std::size_t const d = static_cast<std::size_t>(ranks);
  ZeroPartition p;
  p.elements.resize(d + 1);
  for (std::size_t r = 0; r <= d; ++r) p.elements[r] = std::min(numel, granules * r / d * ZeroPartition::granule);
  p.floats = arena_bounds(layout, p.elements);
  return p;
}

/// f(rank q, begin, end) for each rank whose part [bounds[q], bounds[q + 1]) meets the elements
/// [first, last): the piece they share (never empty), in rank order. A communicator's reduction of a
/// gradient bucket to the ranks that own it goes piece by piece.
template <class F>
void for_each_part_piece(std::span<std::int64_t const> bounds, std::int64_t first, std::int64_t last, F&& f) {
  for (std::size_t q = 0; q + 1 < bounds.size(); ++q) {
    std::int64_t const begin = std::max(first, bounds[q]), end = std::min(last, bounds[q + 1]);
    if (end > begin) f(static_cast<int>(q), begin, end);
  }
}

/// A communicator that can run ZeRO-1 on backend `Backend` (beside dist::Communicator):
///   reduce_scatter_sum(ctx, data, bounds)   data: every rank's floats summed over the ranks into this
///                                           rank's [bounds[rank], bounds[rank + 1]) of it, in place;
///                                           the rest of data is left undefined;
///   all_gather(ctx, data, bounds)           each rank r's [bounds[r], bounds[r + 1]) of data to every rank,
///                                           for float data and for bf16 data (the weights of a bf16
///                                           model, bounds from arena_bounds of their arena);
///   set_owners(bounds)                      the parts of the gradient arena: an overlapping
///                                           communicator's buckets (gradients_ready) then go to
///                                           their owners, and reduce_scatter_sum finishes them;
///   gather(ctx, mine, whole, bounds, root)  each rank's part (`mine`: its bounds[rank + 1] - bounds[rank]
///                                           floats) into [bounds[r], bounds[r + 1]) of `whole` on rank
///                                           `root` only (elsewhere `whole` is unused; on root, `mine`
///                                           may be its own place in `whole`): the optimizer state
///                                           brought to the rank that writes the checkpoint.
/// `data` is backend memory (host for MpiComm, device for NcclComm); bounds has size() + 1 entries,
/// from 0 to the buffer's length (ZeroPartition::floats, or ::elements of a packed buffer).
template <class C, class Backend>
concept ZeroCommunicator = requires(C& c, ops::Ctx<Backend>& ctx, float* data, float const* mine, bf16* weights,
                                    std::span<std::int64_t const> bounds) {
  { c.reduce_scatter_sum(ctx, data, bounds) } -> std::same_as<void>;
  { c.all_gather(ctx, data, bounds) } -> std::same_as<void>;
  { c.all_gather(ctx, weights, bounds) } -> std::same_as<void>;
  { c.set_owners(bounds) } -> std::same_as<void>;
  { c.gather(ctx, mine, data, bounds, 0) } -> std::same_as<void>;
};

}  // namespace dist
KUMIKI_NAMESPACE_END
