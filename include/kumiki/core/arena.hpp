// kumiki/core/arena.hpp: many named tensors carved out of one allocation (parameters, gradients,
// activations, optimizer state each live in one arena).
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/buffer.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/core/dtype.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/shape.hpp"
#include "kumiki/core/tensor.hpp"

KUMIKI_NAMESPACE_BEGIN

/// One tensor's place in an arena.
struct ArenaEntry {
  std::string name;
  DType dtype;
  Shape shape;
  std::size_t offset;  // bytes from the arena start, a multiple of host_alignment
  std::size_t bytes;
  std::size_t numel() const { return static_cast<std::size_t>(shape.numel()); }
};

/// The plan of an arena, independent of any memory: names, dtypes, shapes and offsets aligned to
/// `alignment()` bytes (64 by default, the host's) in insertion order. The same layout can back
/// several arenas (parameters and their gradients), and a sharded optimizer can split it by element
/// range. An arena on a device with a coarser alignment (256 bytes for CUDA) re-plans the offsets
/// (`with_alignment`); layouts compare equal by names, dtypes and shapes, whatever their offsets.
class ArenaLayout {
 public:
  explicit ArenaLayout(std::size_t alignment = host_alignment) : alignment_(alignment) {
    KUMIKI_CHECK(alignment > 0 && (alignment & (alignment - 1)) == 0, "arena alignment ", alignment,
                 " is not a power of two");
  }

  /// Appends a tensor and returns its index (stable; usable as a per-tensor RNG stream id).
  std::size_t add(std::string name, DType dtype, Shape shape) {
    KUMIKI_CHECK(!name.empty(), "arena tensor needs a name");
    KUMIKI_CHECK(!index_.contains(name), "arena already holds a tensor named '", name, "'");
    std::size_t const bytes = static_cast<std::size_t>(shape.numel()) * dtype_size(dtype);
    std::size_t const offset = total_;
    total_ = offset + (bytes + alignment_ - 1) / alignment_ * alignment_;
    index_.emplace(name, entries_.size());
    entries_.push_back(ArenaEntry{std::move(name), dtype, shape, offset, bytes});
    return entries_.size() - 1;
  }

  std::vector<ArenaEntry> const& entries() const { return entries_; }
  std::size_t alignment() const { return alignment_; }
  /// The same tensors with offsets aligned to `alignment` bytes.
  ArenaLayout with_alignment(std::size_t alignment) const {
    ArenaLayout out(alignment);
    for (ArenaEntry const& e : entries_) out.add(e.name, e.dtype, e.shape);
    return out;
  }
  std::size_t size() const { return entries_.size(); }
  /// Bytes the arena needs, padding included.
  std::size_t total_bytes() const { return total_; }
  bool contains(std::string_view name) const { return index_.contains(std::string(name)); }
  std::size_t index_of(std::string_view name) const {
    auto it = index_.find(std::string(name));
    KUMIKI_CHECK(it != index_.end(), "arena has no tensor named '", name, "'");
    return it->second;
  }
  ArenaEntry const& entry(std::string_view name) const { return entries_[index_of(name)]; }
  ArenaEntry const& operator[](std::size_t i) const {
    KUMIKI_CHECK(i < entries_.size(), "arena index ", i, " out of range (", entries_.size(), " tensors)");
    return entries_[i];
  }
  /// Total elements over all tensors (padding excluded).
  std::size_t numel() const {
    std::size_t n = 0;
    for (auto const& e : entries_) n += e.numel();
    return n;
  }

  friend bool operator==(ArenaLayout const& a, ArenaLayout const& b) {
    if (a.entries_.size() != b.entries_.size()) return false;
    for (std::size_t i = 0; i < a.entries_.size(); ++i) {
      auto const &x = a.entries_[i], &y = b.entries_[i];
      if (x.name != y.name || x.dtype != y.dtype || !(x.shape == y.shape)) return false;
    }
    return true;
  }

 private:
  std::vector<ArenaEntry> entries_;
  std::unordered_map<std::string, std::size_t> index_;
  std::size_t total_ = 0;
  std::size_t alignment_ = host_alignment;
};

/// A contiguous range of elements [begin, end) of an arena, counting the elements of its tensors in
/// layout order and skipping the padding between them: what one data-parallel rank updates under
/// ZeRO-1. The default is the whole arena.
struct FlatRange {
  std::size_t begin = 0;
  std::size_t end = static_cast<std::size_t>(-1);  // clamped to the arena's element count
};

/// Calls f(tensor index, first element, end element) for each tensor of `layout` that overlaps `range`,
/// in layout order, with element indices inside that tensor.
template <class F>
void for_each_in_range(ArenaLayout const& layout, FlatRange range, F&& f) {
  std::size_t first = 0;
  for (std::size_t i = 0; i < layout.size(); ++i) {
    std::size_t const n = layout[i].numel();
    std::size_t const lo = std::max(range.begin, first), hi = std::min(range.end, first + n);
    if (lo < hi) f(i, lo - first, hi - first);
    first += n;
  }
}

/// An arena: a layout plus one buffer on device `D` that holds all of its tensors, zero-filled.
template <DeviceTag D>
class Arena {
 public:
  Arena() = default;
  /// An arena planned by `layout`, its offsets re-aligned when the device needs coarser alignment.
  explicit Arena(ArenaLayout layout)
      : layout_(layout.alignment() % Allocator<D>::alignment == 0 ? std::move(layout)
                                                                   : layout.with_alignment(Allocator<D>::alignment)),
        buffer_(layout_.total_bytes()) {
    buffer_.zero();
  }

  ArenaLayout const& layout() const { return layout_; }
  std::byte* data() const { return buffer_.data(); }
  std::size_t total_bytes() const { return buffer_.size(); }
  void zero() { buffer_.zero(); }

  AnyView view(std::size_t i) const {
    ArenaEntry const& e = layout_[i];
    return AnyView{buffer_.data() + e.offset, e.dtype, e.shape, D::kind};
  }
  AnyView view(std::string_view name) const { return view(layout_.index_of(name)); }

  template <class T>
  TensorView<T, D> get(std::string_view name) const {
    return view(name).template as<T, D>();
  }
  template <class T>
  TensorView<T, D> get(std::size_t i) const {
    return view(i).template as<T, D>();
  }

 private:
  ArenaLayout layout_;
  Buffer<D> buffer_;
};

/// Copies every tensor of `src` into `dst` (same tensors required), across devices when they differ:
/// one copy when both have the same offsets, else one per tensor.
template <DeviceTag Dst, DeviceTag Src>
void copy(Arena<Dst>& dst, Arena<Src> const& src) {
  ArenaLayout const &d = dst.layout(), &s = src.layout();
  KUMIKI_CHECK(d == s, "arena copy between different layouts");
  if (d.alignment() == s.alignment()) {
    Copy<Dst, Src>::bytes(dst.data(), src.data(), src.total_bytes());
    return;
  }
  for (std::size_t i = 0; i < s.size(); ++i) Copy<Dst, Src>::bytes(dst.data() + d[i].offset, src.data() + s[i].offset, s[i].bytes);
}

KUMIKI_NAMESPACE_END
