// kumiki/optim/adamw.hpp: AdamW (decoupled weight decay, bias correction): hyper-parameters, parameter
// groups, the master-weight layout, and the primary template the backends specialize.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <istream>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/bf16.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/core/dtype.hpp"
#include "kumiki/core/error.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace optim {

/// Adam hyper-parameters; the defaults are LLM-jp's (Megatron --adam-beta1/2, --adam-eps, --weight-decay).
struct AdamWConfig {
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.1f;
};

/// Per-tensor multipliers of the step's lr and weight decay (Megatron's param-group lr_mult / wd_mult).
struct TensorHyper {
  float lr_mult = 1.0f;
  float wd_mult = 1.0f;
};

/// A parameter group: the tensors `match` selects get `lr_mult` and `wd_mult`; the first matching
/// group wins. Megatron's no-decay rule (1-D tensors and names ending in ".bias") still applies on top.
struct ParamGroup {
  std::string name;
  std::function<bool(ArenaEntry const&)> match;
  float lr_mult = 1.0f;
  float wd_mult = 1.0f;
};

/// Megatron's rule: no weight decay on 1-D parameters (norm weights) and on biases.
inline bool megatron_no_decay(ArenaEntry const& e) {
  std::string_view const n = e.name;
  return e.shape.rank() <= 1 || (n.size() >= 5 && n.substr(n.size() - 5) == ".bias");
}

/// The fp32 twin of a model layout (same names and shapes, every tensor f32): the layout of the
/// master weights, of fp32 gradients and of the optimizer moments for a bf16 model.
inline ArenaLayout master_layout(ArenaLayout const& model) {
  ArenaLayout out;
  for (auto const& e : model.entries()) out.add(e.name, DType::f32, e.shape);
  return out;
}

/// The layout of optimizer state kept for the elements `range` of `layout` only (a ZeRO-1 shard): the
/// tensors the range overlaps, in order, under their own names; a tensor wholly inside keeps its shape,
/// a tensor the range cuts becomes the 1-D piece [lo, hi) of its elements. The whole range gives
/// `layout` itself (same entries, same alignment).
inline ArenaLayout shard_layout(ArenaLayout const& layout, FlatRange range) {
  ArenaLayout out(layout.alignment());
  for_each_in_range(layout, range, [&](std::size_t i, std::size_t lo, std::size_t hi) {
    ArenaEntry const& e = layout[i];
    if (lo == 0 && hi == e.numel()) out.add(e.name, e.dtype, e.shape);
    else out.add(e.name, e.dtype, Shape{static_cast<std::int64_t>(hi - lo)});
  });
  return out;
}

namespace detail {
/// Calls f(tensor index, whole byte offset, shard byte offset, bytes) for each piece of `range` of `whole`, where
/// `shard` has shard_layout(whole, range) or whole's own layout (its offsets as allocated).
template <class F>
void for_each_shard_piece(ArenaLayout const& whole, ArenaLayout const& shard, FlatRange range, F&& f) {
  bool const same = shard == whole;
  std::size_t j = 0;
  for_each_in_range(whole, range, [&](std::size_t i, std::size_t lo, std::size_t hi) {
    ArenaEntry const& w = whole[i];
    ArenaEntry const& s = same ? shard[i] : shard[j++];
    KUMIKI_CHECK(s.name == w.name && w.dtype == s.dtype, "optimizer state piece '", s.name, "' does not match tensor '",
                 w.name, "'");
    std::size_t const size = dtype_size(w.dtype);
    std::size_t const shard_first = same ? lo : 0;  // a piece starts its own entry
    f(i, w.offset + lo * size, s.offset + shard_first * size, (hi - lo) * size);
  });
}

/// `range` within an arena of `numel` elements (FlatRange's default end is "to the end").
inline FlatRange clamp_range(FlatRange range, std::size_t numel) {
  range.end = std::min(range.end, numel);
  range.begin = std::min(range.begin, range.end);
  return range;
}

/// Per tensor of `whole`, the element index in the moment arena (layout `shard`, as for_each_shard_piece)
/// of the tensor's element 0: element k of tensor i has its moments at base[i] + k. A piece of a cut
/// tensor starts its own entry, so its base lies before that entry by its first element and may be
/// negative; tensors outside `range` get 0 (never read).
inline std::vector<std::int64_t> moment_bases(ArenaLayout const& whole, ArenaLayout const& shard, FlatRange range) {
  std::vector<std::int64_t> base(whole.size(), 0);
  for_each_shard_piece(whole, shard, range, [&](std::size_t i, std::size_t w, std::size_t s, std::size_t) {
    std::size_t const size = dtype_size(whole[i].dtype);
    base[i] = static_cast<std::int64_t>(s / size) - static_cast<std::int64_t>((w - whole[i].offset) / size);
  });
  return base;
}
}  // namespace detail

/// Copies optimizer state kept for `range` (`shard`: shard_layout(whole layout, range), or the whole
/// layout) into its place in `whole`, an arena of the whole layout; the rest of `whole` is untouched.
/// With every rank's range copied in, and the arenas gathered, `whole` is what one process would hold.
template <class Backend>
void shard_to_whole(Arena<Backend> const& shard, FlatRange range, Arena<Backend>& whole) {
  detail::for_each_shard_piece(whole.layout(), shard.layout(), range, [&](std::size_t, std::size_t w, std::size_t s, std::size_t n) {
    Copy<Backend, Backend>::bytes(whole.data() + w, shard.data() + s, n);
  });
}

/// The reverse: the elements `range` of `whole` (a checkpoint's state, read on every rank) into `shard`.
template <class Backend>
void whole_to_shard(Arena<Backend> const& whole, FlatRange range, Arena<Backend>& shard) {
  detail::for_each_shard_piece(whole.layout(), shard.layout(), range, [&](std::size_t, std::size_t w, std::size_t s, std::size_t n) {
    Copy<Backend, Backend>::bytes(shard.data() + s, whole.data() + w, n);
  });
}

/// AdamW on backend `Backend`, updating an fp32 parameter arena (the master weights of a bf16 model)
/// from a gradient arena of the same layout, over a FlatRange of it. The primary template only
/// names the interface; backends specialize it: optim/cpu/adamw.hpp (Cpu), optim/cuda/adamw.cuh (Cuda).
/// The interface (see AdamW<Cpu>): a constructor (layout, AdamWConfig, groups, FlatRange: the moments
/// are kept for that range only, in shard_layout(layout, range), on the Cpu);
/// step(ctx, params, grads, lr[, wd, bf16 model]); exp_avg(), exp_avg_sq(), step_count(),
/// set_step_count(); hyper(i), set_hyper(name, h). Checkpoints store the moments as exp_avg.<name> and
/// exp_avg_sq.<name> tensors with a step_count (train/checkpoint.hpp).
template <class Backend>
class AdamW {
  static_assert(always_false<Backend>, "kumiki: no AdamW for this backend; include kumiki/cpu.hpp (Cpu) or "
                                       "kumiki/cuda.cuh (Cuda)");
};

}  // namespace optim
KUMIKI_NAMESPACE_END
