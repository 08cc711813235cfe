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

/// The partition of an fp32 arena with `layout` (its offsets as allocated: pass the arena's own
/// layout) over `ranks` ranks.
inline ZeroPartition zero_partition(ArenaLayout const& layout, int ranks) {
  KUMIKI_CHECK(ranks >= 1, "zero_partition: ranks must be >= 1, got ", ranks);
  for (auto const& e : layout.entries())
    KUMIKI_CHECK(e.dtype == DType::f32, "ZeRO-1 partitions fp32 arenas; '", e.name, "' is ", dtype_name(e.dtype));
  KUMIKI_CHECK(layout.total_bytes() % sizeof(float) == 0, "zero_partition: the arena is not a whole number of floats");
  std::size_t const numel = layout.numel();
  std::size_t const granules = (numel + ZeroPartition::granule - 1) / ZeroPartition::granule;
  std::size_t const d = static_cast<std::size_t>(ranks);
  ZeroPartition p;
  p.elements.resize(d + 1);
  p.floats.resize(d + 1);
  for (std::size_t r = 0; r <= d; ++r) p.elements[r] = std::min(numel, granules * r / d * ZeroPartition::granule);
  // Element bound -> float bound: the bound's tensor is the first whose elements reach past it.
  std::size_t first = 0, i = 0;
  for (std::size_t r = 0; r <= d; ++r) {
    std::size_t const e = p.elements[r];
    while (i < layout.size() && first + layout[i].numel() <= e) first += layout[i++].numel();
    p.floats[r] = i < layout.size() ? static_cast<std::int64_t>((layout[i].offset / sizeof(float)) + (e - first))
                                    : static_cast<std::int64_t>(layout.total_bytes() / sizeof(float));
  }
  return p;
}

/// A communicator that can run ZeRO-1 on backend `Backend` (beside dist::Communicator):
///   reduce_scatter_sum(ctx, data, bounds)   data: every rank's floats summed over the ranks into this
///                                           rank's [bounds[rank], bounds[rank + 1]) of it, in place;
///                                           the rest of data is left undefined;
///   all_gather(ctx, data, bounds)           each rank r's [bounds[r], bounds[r + 1]) of data to every rank;
///   gather(ctx, mine, whole, bounds, root)  each rank's part (`mine`: its bounds[rank + 1] - bounds[rank]
///                                           floats) into [bounds[r], bounds[r + 1]) of `whole` on rank
///                                           `root` only (elsewhere `whole` is unused; on root, `mine`
///                                           may be its own place in `whole`): the optimizer state
///                                           brought to the rank that writes the checkpoint.
/// `data` is backend memory (host for MpiComm, device for NcclComm); bounds has size() + 1 entries,
/// from 0 to the buffer's length (ZeroPartition::floats, or ::elements of a packed buffer).
template <class C, class Backend>
concept ZeroCommunicator = requires(C& c, ops::Ctx<Backend>& ctx, float* data, float const* mine,
                                    std::span<std::int64_t const> bounds) {
  { c.reduce_scatter_sum(ctx, data, bounds) } -> std::same_as<void>;
  { c.all_gather(ctx, data, bounds) } -> std::same_as<void>;
  { c.gather(ctx, mine, data, bounds, 0) } -> std::same_as<void>;
};

}  // namespace dist
KUMIKI_NAMESPACE_END
