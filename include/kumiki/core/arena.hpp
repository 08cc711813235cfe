// kumiki/core/arena.hpp: many named tensors carved out of one allocation (parameters, gradients,
// activations, optimizer state each live in one arena).
#pragma once

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

/// The plan of an arena, independent of any memory: names, dtypes, shapes and 64-byte aligned
/// offsets in insertion order. The same layout can back several arenas (parameters and their
/// gradients), and a sharded optimizer can split it by byte range.
class ArenaLayout {
 public:
  /// Appends a tensor and returns its index (stable; usable as a per-tensor RNG stream id).
  std::size_t add(std::string name, DType dtype, Shape shape) {
    KUMIKI_CHECK(!name.empty(), "arena tensor needs a name");
    KUMIKI_CHECK(!index_.contains(name), "arena already holds a tensor named '", name, "'");
    std::size_t const bytes = static_cast<std::size_t>(shape.numel()) * dtype_size(dtype);
    std::size_t const offset = total_;
    total_ = offset + (bytes + host_alignment - 1) / host_alignment * host_alignment;
    index_.emplace(name, entries_.size());
    entries_.push_back(ArenaEntry{std::move(name), dtype, shape, offset, bytes});
    return entries_.size() - 1;
  }

  std::vector<ArenaEntry> const& entries() const { return entries_; }
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
};

/// An arena: a layout plus one buffer on device `D` that holds all of its tensors, zero-filled.
template <DeviceTag D>
class Arena {
 public:
  Arena() = default;
  explicit Arena(ArenaLayout layout) : layout_(std::move(layout)), buffer_(layout_.total_bytes()) { buffer_.zero(); }

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

KUMIKI_NAMESPACE_END
