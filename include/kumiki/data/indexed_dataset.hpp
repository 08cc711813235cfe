// kumiki/data/indexed_dataset.hpp: Megatron's indexed dataset (.idx + .bin): a validating mmap reader
// and an atomic streaming writer. Layout: Megatron-LM's
// megatron/core/datasets/indexed_dataset.py (MMIDIDX version 1), described in docs/data.md.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/atomic_file.hpp"
#include "kumiki/core/mmap.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace data {

/// Token dtype codes of the .idx header (Megatron's DType enum).
enum class IndexDType : std::uint8_t {
  uint8 = 1, int8 = 2, int16 = 3, int32 = 4, int64 = 5, float64 = 6, float32 = 7, uint16 = 8
};

inline constexpr bool is_valid_index_dtype(std::uint8_t code) { return code >= 1 && code <= 8; }

inline constexpr std::size_t index_dtype_size(IndexDType t) {
  switch (t) {
    case IndexDType::uint8: case IndexDType::int8: return 1;
    case IndexDType::int16: case IndexDType::uint16: return 2;
    case IndexDType::int32: case IndexDType::float32: return 4;
    case IndexDType::int64: case IndexDType::float64: return 8;
  }
  return 0;
}

inline constexpr std::string_view index_dtype_name(IndexDType t) {
  switch (t) {
    case IndexDType::uint8: return "uint8";
    case IndexDType::int8: return "int8";
    case IndexDType::int16: return "int16";
    case IndexDType::int32: return "int32";
    case IndexDType::int64: return "int64";
    case IndexDType::float64: return "float64";
    case IndexDType::float32: return "float32";
    case IndexDType::uint16: return "uint16";
  }
  return "?";
}

/// The C++ type stored for each code.
template <IndexDType D> struct IndexDTypeTraits;
template <> struct IndexDTypeTraits<IndexDType::uint8> { using type = std::uint8_t; };
template <> struct IndexDTypeTraits<IndexDType::int8> { using type = std::int8_t; };
template <> struct IndexDTypeTraits<IndexDType::int16> { using type = std::int16_t; };
template <> struct IndexDTypeTraits<IndexDType::int32> { using type = std::int32_t; };
template <> struct IndexDTypeTraits<IndexDType::int64> { using type = std::int64_t; };
template <> struct IndexDTypeTraits<IndexDType::float64> { using type = double; };
template <> struct IndexDTypeTraits<IndexDType::float32> { using type = float; };
template <> struct IndexDTypeTraits<IndexDType::uint16> { using type = std::uint16_t; };

/// Megatron's choice for preprocessed token files: uint16 when the vocabulary is below 65500, else int32.
inline constexpr IndexDType token_dtype_for_vocab(std::int64_t vocab_size) {
  return vocab_size < 65500 ? IndexDType::uint16 : IndexDType::int32;
}

/// Calls f(std::type_identity<T>{}) with T the stored type of `t`.
template <class F>
decltype(auto) visit_index_dtype(IndexDType t, F&& f) {
  switch (t) {
    case IndexDType::uint8: return f(std::type_identity<std::uint8_t>{});
    case IndexDType::int8: return f(std::type_identity<std::int8_t>{});
    case IndexDType::int16: return f(std::type_identity<std::int16_t>{});
    case IndexDType::int32: return f(std::type_identity<std::int32_t>{});
    case IndexDType::int64: return f(std::type_identity<std::int64_t>{});
    case IndexDType::float64: return f(std::type_identity<double>{});
    case IndexDType::float32: return f(std::type_identity<float>{});
    case IndexDType::uint16: return f(std::type_identity<std::uint16_t>{});
  }
  KUMIKI_FAIL("unknown index dtype code ", static_cast<int>(t));
}

inline constexpr std::array<char, 9> index_magic = {'M', 'M', 'I', 'D', 'I', 'D', 'X', '\0', '\0'};
inline constexpr std::uint64_t index_version = 1;
inline constexpr std::size_t index_header_bytes = 34;  // magic 9 + version 8 + dtype 1 + N 8 + M 8

inline std::filesystem::path idx_path(std::filesystem::path const& prefix) {
  return std::filesystem::path(prefix.string() + ".idx");
}
inline std::filesystem::path bin_path(std::filesystem::path const& prefix) {
  return std::filesystem::path(prefix.string() + ".bin");
}

namespace detail {

/// Little-endian loads from possibly unaligned addresses (the int64 arrays of an .idx usually are).
template <class T>
inline T load_unaligned(std::byte const* p) {
  static_assert(std::is_trivially_copyable_v<T>);
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

template <class Dst, class Src>
inline void convert_tokens(Src const* src, std::size_t n, Dst* dst) {
  if constexpr (std::is_same_v<Src, Dst>) {
    std::memcpy(dst, src, n * sizeof(Dst));
  } else {
    for (std::size_t i = 0; i < n; ++i) dst[i] = static_cast<Dst>(src[i]);
  }
}

}  // namespace detail

/// Read-only view of a Megatron indexed dataset, memory-mapped. Opening validates the whole .idx
/// against the .bin (O(sequences)); afterwards every access is O(1) and bounds-checked by that
/// validation. Any malformed input is reported as kumiki::Error naming the file and the problem.
class IndexedDataset {
 public:
  IndexedDataset() = default;
  explicit IndexedDataset(std::filesystem::path const& prefix)
      : prefix_(prefix), idx_(idx_path(prefix)), bin_(bin_path(prefix)) {
    validate();
    bin_.advise_random();
  }

  std::filesystem::path const& prefix() const { return prefix_; }
  IndexDType dtype() const { return dtype_; }
  std::size_t itemsize() const { return itemsize_; }
  /// Number of sequences N (one per document unless the corpus was split into sentences).
  std::int64_t num_sequences() const { return n_; }
  /// Number of documents, M - 1.
  std::int64_t num_documents() const { return m_ - 1; }
  std::int64_t total_tokens() const { return total_tokens_; }

  std::int32_t sequence_length(std::int64_t i) const {
    return detail::load_unaligned<std::int32_t>(lengths_ + 4 * static_cast<std::size_t>(check_seq(i)));
  }
  std::int64_t sequence_pointer(std::int64_t i) const {
    return detail::load_unaligned<std::int64_t>(pointers_ + 8 * static_cast<std::size_t>(check_seq(i)));
  }
  /// Entry j of the document index (j in [0, M)): document d spans sequences [doc(d), doc(d+1)).
  std::int64_t document_index(std::int64_t j) const {
    KUMIKI_CHECK(j >= 0 && j < m_, "document index entry ", j, " outside [0, ", m_, ") in ", idx_.path());
    return detail::load_unaligned<std::int64_t>(doc_idx_ + 8 * static_cast<std::size_t>(j));
  }
  /// Sequences [first, last) of document d.
  std::pair<std::int64_t, std::int64_t> document_sequences(std::int64_t d) const {
    KUMIKI_CHECK(d >= 0 && d < m_ - 1, "document ", d, " outside [0, ", m_ - 1, ") in ", idx_.path());
    return {document_index(d), document_index(d + 1)};
  }

  /// Raw bytes of `count` tokens of sequence i starting at token `offset` (count < 0: to the end).
  std::span<std::byte const> sequence_bytes(std::int64_t i, std::int64_t offset = 0, std::int64_t count = -1) const {
    std::int64_t const len = sequence_length(i);
    if (count < 0) count = len - offset;
    KUMIKI_CHECK(offset >= 0 && count >= 0 && offset <= len && count <= len - offset, "tokens [", offset, ", ",
                 offset, "+", count, ") outside sequence ", i, " of length ", len, " in ", prefix_);
    auto const start = static_cast<std::size_t>(sequence_pointer(i)) + static_cast<std::size_t>(offset) * itemsize_;
    return {bin_.data() + start, static_cast<std::size_t>(count) * itemsize_};
  }

  /// Copies `count` tokens of sequence i from token `offset` into out, converting to T. A float32 /
  /// float64 file read as integers must hold values an integer T can represent (converting NaN, an
  /// infinity or an out-of-range value is undefined behaviour in C++): any other is an error.
  template <class T>
  void read(std::int64_t i, std::int64_t offset, std::int64_t count, T* out) const {
    std::span<std::byte const> const b = sequence_bytes(i, offset, count);
    visit_index_dtype(dtype_, [&](auto tag) {
      using S = typename decltype(tag)::type;
      auto const n = b.size() / sizeof(S);
      if constexpr (std::is_same_v<S, T>) {
        if (n) std::memcpy(out, b.data(), b.size());
      } else if constexpr (std::is_floating_point_v<S> && std::is_integral_v<T>) {
        // T's range as doubles: lo = min (0 or -2^k) and hi = max + 1 (2^k), both exact.
        constexpr double lo = static_cast<double>(std::numeric_limits<T>::min());
        constexpr double hi =
            std::is_signed_v<T> ? -lo : 2.0 * static_cast<double>(std::numeric_limits<T>::max() / 2 + 1);
        for (std::size_t k = 0; k < n; ++k) {
          double const x = std::trunc(static_cast<double>(detail::load_unaligned<S>(b.data() + k * sizeof(S))));
          if (!(x >= lo && x < hi))  // NaN fails too
            KUMIKI_FAIL("indexed dataset ", bin_.path(), ": sequence ", i, " holds the ", index_dtype_name(dtype_),
                        " value ", x, " at token ", offset + static_cast<std::int64_t>(k), ", which is not a valid ",
                        sizeof(T) * 8, "-bit integer token id");
          out[k] = static_cast<T>(x);
        }
      } else {
        for (std::size_t k = 0; k < n; ++k) out[k] = static_cast<T>(detail::load_unaligned<S>(b.data() + k * sizeof(S)));
      }
    });
  }

  /// Whole sequence i as a vector of T.
  template <class T = std::int32_t>
  std::vector<T> sequence(std::int64_t i) const {
    std::vector<T> v(static_cast<std::size_t>(sequence_length(i)));
    read(i, 0, static_cast<std::int64_t>(v.size()), v.data());
    return v;
  }

  /// All tokens of document d (its sequences concatenated).
  template <class T = std::int32_t>
  std::vector<T> document(std::int64_t d) const {
    auto const [a, b] = document_sequences(d);
    std::vector<T> v;
    for (std::int64_t s = a; s < b; ++s) {
      std::size_t const at = v.size();
      v.resize(at + static_cast<std::size_t>(sequence_length(s)));
      read(s, 0, sequence_length(s), v.data() + at);
    }
    return v;
  }

  /// Whether the .idx carries the optional int8 sequence-mode array (multimodal datasets).
  bool has_sequence_modes() const { return has_modes_; }

 private:
  std::int64_t check_seq(std::int64_t i) const {
    KUMIKI_CHECK(i >= 0 && i < n_, "sequence ", i, " outside [0, ", n_, ") in ", prefix_);
    return i;
  }

  std::int64_t sequence_pointer_unchecked(std::int64_t i) const {
    return detail::load_unaligned<std::int64_t>(pointers_ + 8 * i);
  }
  std::int32_t sequence_length_unchecked(std::int64_t i) const {
    return detail::load_unaligned<std::int32_t>(lengths_ + 4 * i);
  }

  template <class... Args>
  [[noreturn]] void bad_idx(Args const&... what) const {
    KUMIKI_FAIL("invalid indexed dataset ", idx_.path(), ": ", what...);
  }

  void validate() {
    std::byte const* p = idx_.data();
    std::size_t const size = idx_.size();
    if (size < index_header_bytes)
      bad_idx("truncated .idx: the header needs ", index_header_bytes, " bytes, the file has ", size);
    if (std::memcmp(p, index_magic.data(), index_magic.size()) != 0)
      bad_idx("wrong magic (expected \"MMIDIDX\\0\\0\"; not a Megatron indexed dataset)");
    auto const version = detail::load_unaligned<std::uint64_t>(p + 9);
    if (version != index_version) bad_idx("unknown version ", version, " (only version 1 is defined)");
    auto const code = static_cast<std::uint8_t>(p[17]);
    if (!is_valid_index_dtype(code)) bad_idx("unknown dtype code ", static_cast<int>(code), " (valid codes are 1..8)");
    dtype_ = static_cast<IndexDType>(code);
    itemsize_ = index_dtype_size(dtype_);
    auto const n = detail::load_unaligned<std::uint64_t>(p + 18);
    auto const m = detail::load_unaligned<std::uint64_t>(p + 26);
    // Sizes in unsigned arithmetic guarded against overflow: N and M come from the file.
    std::uint64_t const room = size - index_header_bytes;
    if (n > room / 12) bad_idx("truncated .idx: sequence count ", n, " needs ", n, " x 12 bytes, only ", room, " follow the header");
    std::uint64_t const after_seq = room - 12 * n;
    if (m > after_seq / 8)
      bad_idx("truncated .idx: document count ", m, " needs ", m, " x 8 bytes after the sequence arrays, only ", after_seq, " remain");
    std::uint64_t const trailing = after_seq - 8 * m;
    if (trailing == n && n > 0) {
      has_modes_ = true;
    } else if (trailing != 0) {
      bad_idx("unexpected ", trailing, " trailing bytes (neither empty nor an int8 mode per sequence; N = ", n, ", M = ", m, ")");
    }
    if (m < 1) bad_idx("document count is 0: the document index must hold at least its leading 0");
    if (n > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max() / 16)) bad_idx("sequence count ", n, " too large");
    n_ = static_cast<std::int64_t>(n);
    m_ = static_cast<std::int64_t>(m);
    lengths_ = p + index_header_bytes;
    pointers_ = lengths_ + 4 * n;
    doc_idx_ = pointers_ + 8 * n;

    // Document index: starts at 0, never decreases, ends at N.
    std::int64_t prev = detail::load_unaligned<std::int64_t>(doc_idx_);
    if (prev != 0) bad_idx("document indices must start at 0, first entry is ", prev);
    for (std::int64_t j = 1; j < m_; ++j) {
      std::int64_t const cur = detail::load_unaligned<std::int64_t>(doc_idx_ + 8 * j);
      if (cur < prev) bad_idx("document indices not monotonic: entry ", j, " = ", cur, " < entry ", j - 1, " = ", prev);
      prev = cur;
    }
    if (prev != n_) bad_idx("document indices must end at the sequence count ", n_, ", last entry is ", prev);

    // Sequences: non-negative lengths, pointers inside .bin.
    std::uint64_t const bin_size = bin_.size();
    if (bin_size % itemsize_ != 0)
      KUMIKI_FAIL("invalid indexed dataset ", bin_.path(), ": truncated .bin: size ", bin_size,
                  " is not a multiple of the ", index_dtype_name(dtype_), " item size ", itemsize_);
    // A .bin shorter than a contiguous layout says "truncated"; any other escape names the sequence.
    std::uint64_t expected_ptr = 0;
    bool contiguous = true;
    std::int64_t first_outside = -1;
    std::uint64_t total = 0;
    for (std::int64_t i = 0; i < n_; ++i) {
      std::int32_t const len = detail::load_unaligned<std::int32_t>(lengths_ + 4 * i);
      std::int64_t const ptr = detail::load_unaligned<std::int64_t>(pointers_ + 8 * i);
      if (len < 0) bad_idx("sequence ", i, " has negative length ", len);
      if (ptr < 0) bad_idx("sequence ", i, " has negative pointer ", ptr, " (outside .bin)");
      auto const uptr = static_cast<std::uint64_t>(ptr);
      std::uint64_t const bytes = static_cast<std::uint64_t>(len) * itemsize_;
      if (uptr != expected_ptr) contiguous = false;
      if (first_outside < 0 && (uptr > bin_size || bytes > bin_size - uptr)) first_outside = i;
      if (uptr % itemsize_ != 0) bad_idx("sequence ", i, ": pointer ", ptr, " is not a multiple of the item size ", itemsize_);
      expected_ptr = uptr + bytes;  // no overflow: both parts are below 2^63
      total += static_cast<std::uint64_t>(len);
    }
    if (first_outside >= 0) {
      if (contiguous)
        KUMIKI_FAIL("invalid indexed dataset ", bin_.path(), ": truncated .bin: the .idx describes ", expected_ptr,
                    " bytes but the .bin has ", bin_size);
      std::int64_t const i = first_outside;
      bad_idx("sequence ", i, ": pointer ", sequence_pointer_unchecked(i), " + length ", sequence_length_unchecked(i),
              " x ", itemsize_, " bytes runs outside .bin (", bin_size, " bytes)");
    }
    total_tokens_ = static_cast<std::int64_t>(total);
  }

  std::filesystem::path prefix_;
  MappedFile idx_;
  MappedFile bin_;
  IndexDType dtype_ = IndexDType::uint16;
  std::size_t itemsize_ = 2;
  std::int64_t n_ = 0, m_ = 1, total_tokens_ = 0;
  bool has_modes_ = false;
  std::byte const* lengths_ = nullptr;
  std::byte const* pointers_ = nullptr;
  std::byte const* doc_idx_ = nullptr;
};

/// Streams sequences into `prefix.bin` and writes `prefix.idx` at finalize(); both appear under their
/// final names only then (temporary files, fsync, rename: .bin first, the .idx last as the marker of a
/// complete dataset). Destroying an unfinalized writer removes its temporaries.
class IndexedDatasetWriter {
 public:
  IndexedDatasetWriter(std::filesystem::path const& prefix, IndexDType dtype)
      : prefix_(prefix), dtype_(dtype), bin_(bin_path(prefix)) {
    KUMIKI_CHECK(is_valid_index_dtype(static_cast<std::uint8_t>(dtype)), "unknown dtype code ", static_cast<int>(dtype));
    doc_idx_.push_back(0);
  }

  IndexDType dtype() const { return dtype_; }
  std::int64_t num_sequences() const { return static_cast<std::int64_t>(lengths_.size()); }
  std::int64_t num_documents() const { return static_cast<std::int64_t>(doc_idx_.size()) - 1; }

  /// Appends one sequence; integer tokens must fit the file's dtype.
  template <class T>
  void add_sequence(std::span<T const> tokens) {
    KUMIKI_CHECK(!finalized_, "add_sequence after finalize on ", prefix_);
    KUMIKI_CHECK(tokens.size() <= static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()),
                 "sequence of ", tokens.size(), " tokens exceeds the int32 length field");
    visit_index_dtype(dtype_, [&](auto tag) {
      using D = typename decltype(tag)::type;
      if constexpr (std::is_same_v<D, T>) {
        bin_.write(tokens.data(), tokens.size_bytes());
      } else {
        std::vector<D>& buf = scratch<D>();
        buf.resize(tokens.size());
        for (std::size_t k = 0; k < tokens.size(); ++k) {
          if constexpr (std::is_integral_v<D> && std::is_integral_v<T>) {
            KUMIKI_CHECK(std::in_range<D>(tokens[k]), "token ", +tokens[k], " does not fit the dataset dtype ",
                         index_dtype_name(dtype_), " of ", prefix_);
          }
          buf[k] = static_cast<D>(tokens[k]);
        }
        bin_.write(buf.data(), buf.size() * sizeof(D));
      }
    });
    lengths_.push_back(static_cast<std::int32_t>(tokens.size()));
    pointers_.push_back(static_cast<std::int64_t>(next_ptr_));
    next_ptr_ += tokens.size() * index_dtype_size(dtype_);
  }
  template <class T>
  void add_sequence(std::vector<T> const& tokens) {
    add_sequence(std::span<T const>(tokens));
  }

  /// Closes the current document (its sequences are those added since the last call).
  void end_document() { doc_idx_.push_back(static_cast<std::int64_t>(lengths_.size())); }

  /// One document of one sequence.
  template <class T>
  void add_document(std::span<T const> tokens) {
    add_sequence(tokens);
    end_document();
  }
  template <class T>
  void add_document(std::vector<T> const& tokens) {
    add_document(std::span<T const>(tokens));
  }

  /// Writes the .idx and moves both files to their final names.
  void finalize() {
    KUMIKI_CHECK(!finalized_, "finalize twice on ", prefix_);
    KUMIKI_CHECK(doc_idx_.back() == num_sequences(), "finalize of ", prefix_,
                 " with sequences after the last end_document()");
    AtomicFile idx(idx_path(prefix_));
    idx.write(index_magic.data(), index_magic.size());
    idx.write_value(index_version);
    idx.write_value(static_cast<std::uint8_t>(dtype_));
    idx.write_value(static_cast<std::uint64_t>(lengths_.size()));
    idx.write_value(static_cast<std::uint64_t>(doc_idx_.size()));
    idx.write(lengths_.data(), lengths_.size() * sizeof(std::int32_t));
    idx.write(pointers_.data(), pointers_.size() * sizeof(std::int64_t));
    idx.write(doc_idx_.data(), doc_idx_.size() * sizeof(std::int64_t));
    bin_.commit();
    idx.commit();
    finalized_ = true;
  }

 private:
  template <class D>
  std::vector<D>& scratch() {
    static thread_local std::vector<D> buf;
    return buf;
  }

  std::filesystem::path prefix_;
  IndexDType dtype_;
  AtomicFile bin_;
  std::vector<std::int32_t> lengths_;
  std::vector<std::int64_t> pointers_;
  std::vector<std::int64_t> doc_idx_;
  std::uint64_t next_ptr_ = 0;
  bool finalized_ = false;
};

}  // namespace data
KUMIKI_NAMESPACE_END
