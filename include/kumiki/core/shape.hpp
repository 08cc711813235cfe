// kumiki/core/shape.hpp: a small fixed-capacity row-major shape.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <string>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"

KUMIKI_NAMESPACE_BEGIN

/// Up to `max_rank` extents, outermost first (row-major, the last extent is contiguous).
class Shape {
 public:
  static constexpr int max_rank = 6;

  constexpr Shape() = default;
  constexpr Shape(std::initializer_list<std::int64_t> dims) {
    if (dims.size() > max_rank) throw Error("kumiki: Shape rank exceeds 6");
    for (std::int64_t d : dims) {
      if (d < 0) throw Error("kumiki: Shape extent must be non-negative");
      dims_[rank_++] = d;
    }
  }
  template <class It>
  static Shape from_range(It first, It last) {
    Shape s;
    for (; first != last; ++first) {
      KUMIKI_CHECK(s.rank_ < max_rank, "shape rank exceeds ", max_rank);
      KUMIKI_CHECK(*first >= 0, "negative extent ", *first);
      s.dims_[s.rank_++] = static_cast<std::int64_t>(*first);
    }
    return s;
  }

  constexpr int rank() const { return rank_; }
  constexpr std::int64_t operator[](int i) const { return dims_[static_cast<std::size_t>(i)]; }
  constexpr std::int64_t dim(int i) const {
    if (i < 0) i += rank_;
    if (i < 0 || i >= rank_) throw Error("kumiki: Shape dimension index out of range");
    return dims_[static_cast<std::size_t>(i)];
  }
  constexpr std::int64_t numel() const {
    std::int64_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= dims_[static_cast<std::size_t>(i)];
    return n;
  }
  /// Elements spanned by one step of dimension i (row-major).
  constexpr std::int64_t stride(int i) const {
    std::int64_t s = 1;
    for (int j = rank_ - 1; j > i; --j) s *= dims_[static_cast<std::size_t>(j)];
    return s;
  }
  constexpr Shape drop_front() const {
    Shape s;
    for (int i = 1; i < rank_; ++i) s.dims_[s.rank_++] = dims_[static_cast<std::size_t>(i)];
    return s;
  }

  friend constexpr bool operator==(Shape const& a, Shape const& b) {
    if (a.rank_ != b.rank_) return false;
    for (int i = 0; i < a.rank_; ++i)
      if (a.dims_[static_cast<std::size_t>(i)] != b.dims_[static_cast<std::size_t>(i)]) return false;
    return true;
  }

  std::string str() const {
    std::string s = "[";
    for (int i = 0; i < rank_; ++i) {
      if (i) s += ", ";
      s += std::to_string(dims_[static_cast<std::size_t>(i)]);
    }
    return s + "]";
  }
  friend std::ostream& operator<<(std::ostream& os, Shape const& s) { return os << s.str(); }

 private:
  std::array<std::int64_t, max_rank> dims_{};
  int rank_ = 0;
};

KUMIKI_NAMESPACE_END
