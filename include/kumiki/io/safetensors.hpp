// kumiki/io/safetensors.hpp: safetensors reader (validated, memory-mapped, zero-copy) and writer,
// single files and sharded directories with `model.safetensors.index.json`.
//
// Format (Hugging Face safetensors): u64 little-endian header length N, N bytes of JSON
//   {"__metadata__": {str: str}, name: {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...}
// then the data section; offsets are relative to its start, [b, e) half open.
//
// Validation follows the reference implementation's rules (and also rejects duplicate JSON keys,
// which parsers resolve differently), each failure a kumiki::InputError naming the file and the
// problem: the header length must fit in the file (and below 100 MB), the JSON must be well formed,
// an object, free of duplicate keys, each entry with a known dtype, a non-negative shape whose
// element and byte counts do not overflow (nor the non-zero extents of an empty tensor: stricter
// than the reference, which multiplies left to right), offsets with b <= e inside the data section
// and e - b equal to dtype size x numel; sorted by offset the tensors must tile the data section
// exactly: no overlaps, no holes, no trailing bytes (a file with gaps is what a truncated or
// hand-edited file looks like, and the reference library rejects it too). Nothing outside the given
// bytes is ever read.
//
// Alignment: the data section starts wherever the header ends, so a reader cannot assume tensors are
// aligned for their element type. `view()` returns the bytes as they lie (possibly unaligned, use
// memcpy-style access or `copy_to`); `get<T>()` returns a typed view and throws when the tensor is
// not aligned for T. Files kumiki writes are always aligned: the header is padded with spaces to a
// multiple of 8 (as the reference writer does) and tensors are ordered by element size, largest first.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "kumiki/config.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/dtype.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/json.hpp"
#include "kumiki/core/shape.hpp"
#include "kumiki/core/tensor.hpp"
#include "kumiki/core/atomic_file.hpp"
#include "kumiki/io/convert.hpp"
#include "kumiki/core/mmap.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace io {

static_assert(std::endian::native == std::endian::little, "kumiki's safetensors I/O assumes a little-endian host");

/// The `__metadata__` string map.
using Metadata = std::map<std::string, std::string>;

/// Headers above this many bytes are rejected as corrupt (the reference implementation's limit).
inline constexpr std::uint64_t safetensors_max_header_bytes = 100'000'000;

/// The safetensors name of a dtype ("F32", "BF16", ...).
constexpr std::string_view safetensors_dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::bf16: return "BF16";
    case DType::f16: return "F16";
    case DType::i8: return "I8";
    case DType::i16: return "I16";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
    case DType::u8: return "U8";
    case DType::u16: return "U16";
    case DType::u32: return "U32";
  }
  return "?";
}

/// The kumiki dtype of a safetensors dtype name; nullopt for names kumiki does not store
/// (BOOL, U64, F8_E4M3, F8_E5M2, ... and anything unknown).
constexpr std::optional<DType> dtype_from_safetensors(std::string_view s) {
  constexpr DType all[] = {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i8,  DType::i16,
                           DType::i32, DType::i64, DType::u8,   DType::u16, DType::u32};
  for (DType t : all)
    if (safetensors_dtype_name(t) == s) return t;
  return std::nullopt;
}

/// One tensor of a safetensors file. `begin`/`end` are byte offsets into the data section.
struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::f32;
  Shape shape{};
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
  std::size_t bytes() const { return static_cast<std::size_t>(end - begin); }
};

namespace detail {

template <class... Args>
[[noreturn]] inline void st_fail(std::string const& source, Args const&... args) {
  KUMIKI_FAIL("safetensors '", source, "': ", args...);
}

struct ParsedHeader {
  Metadata metadata;
  std::vector<SafetensorsEntry> entries;  // sorted by data offset
  std::uint64_t data_start = 0;           // 8 + header length
};

// A JSON value must be a non-negative integer that fits in int64 (shapes, offsets).
inline std::uint64_t st_uint(nlohmann::json const& v, std::string const& source, std::string const& what) {
  if (v.is_number_unsigned()) {
    auto const x = v.get<std::uint64_t>();
    if (x > static_cast<std::uint64_t>(INT64_MAX)) st_fail(source, what, " is too large (", x, ")");
    return x;
  }
  if (v.is_number_integer()) st_fail(source, what, " is negative (", v.get<std::int64_t>(), ")");
  st_fail(source, what, " is not an integer (", v.dump(), ")");
}

inline nlohmann::json st_parse_json(char const* first, char const* last, std::string const& source) {
  // The callback rejects duplicate keys (JSON parsers differ on them: an attacker's second "dtype"
  // must not silently win) and nesting deeper than any valid header needs.
  std::vector<std::vector<std::string>> keys;
  auto cb = [&](int depth, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if ((ev == E::object_start || ev == E::array_start) && depth > 16)
      st_fail(source, "header JSON is nested deeper than 16 levels");
    if (ev == E::object_start) keys.emplace_back();
    if (ev == E::object_end && !keys.empty()) keys.pop_back();
    if (ev == E::key && !keys.empty()) {
      auto const& k = parsed.get_ref<std::string const&>();
      auto& seen = keys.back();
      if (std::find(seen.begin(), seen.end(), k) != seen.end()) st_fail(source, "duplicate key '", k, "' in header");
      seen.push_back(k);
    }
    return true;
  };
  try {
    return nlohmann::json::parse(first, last, cb);
  } catch (nlohmann::json::exception const& e) {
    st_fail(source, "malformed JSON header: ", e.what());
  }
}

inline ParsedHeader parse_header(std::span<std::byte const> file, std::string const& source) {
  if (file.size() < 8) st_fail(source, "file is ", file.size(), " bytes, shorter than the 8-byte header length");
  std::uint64_t n = 0;
  std::memcpy(&n, file.data(), 8);
  if (n > safetensors_max_header_bytes)
    st_fail(source, "header length ", n, " exceeds the ", safetensors_max_header_bytes, "-byte limit (corrupt file?)");
  if (n > file.size() - 8)
    st_fail(source, "header length ", n, " runs past the end of the file (", file.size(), " bytes)");
  ParsedHeader out;
  out.data_start = 8 + n;
  std::uint64_t const data_size = file.size() - out.data_start;
  auto const* text = reinterpret_cast<char const*>(file.data() + 8);
  nlohmann::json const header = st_parse_json(text, text + n, source);
  if (!header.is_object()) st_fail(source, "header is not a JSON object");

  for (auto const& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) st_fail(source, "__metadata__ is not a JSON object");
      for (auto const& [k, v] : value.items()) {
        if (!v.is_string()) st_fail(source, "__metadata__ value of '", k, "' is not a string");
        out.metadata.emplace(k, v.get<std::string>());
      }
      continue;
    }
    if (!value.is_object()) st_fail(source, "entry '", name, "' is not a JSON object");
    SafetensorsEntry e;
    e.name = name;

    auto const dt = value.find("dtype");
    if (dt == value.end()) st_fail(source, "tensor '", name, "' has no dtype");
    if (!dt->is_string()) st_fail(source, "dtype of tensor '", name, "' is not a string");
    auto const dtype = dtype_from_safetensors(dt->get_ref<std::string const&>());
    if (!dtype)
      st_fail(source, "tensor '", name, "' has unknown or unsupported dtype '", dt->get<std::string>(),
              "' (kumiki reads F64, F32, F16, BF16, I64, I32, I16, I8, U32, U16, U8)");
    e.dtype = *dtype;

    auto const sh = value.find("shape");
    if (sh == value.end()) st_fail(source, "tensor '", name, "' has no shape");
    if (!sh->is_array()) st_fail(source, "shape of tensor '", name, "' is not an array");
    if (sh->size() > static_cast<std::size_t>(Shape::max_rank))
      st_fail(source, "tensor '", name, "' has rank ", sh->size(), ", kumiki supports at most ", Shape::max_rank);
    std::int64_t dims[Shape::max_rank] = {};
    // The product of the non-zero extents must fit in int64, even for an empty tensor: Shape's
    // numel() and stride() multiply extents in int64 in any order, and an overflow there is
    // undefined behaviour. (An empty tensor with such extents has no use.)
    std::uint64_t nonzero = 1;
    bool overflow = false, has_zero = false;
    for (std::size_t i = 0; i < sh->size(); ++i) {
      std::uint64_t const d = st_uint((*sh)[i], source, "shape[" + std::to_string(i) + "] of tensor '" + name + "'");
      dims[i] = static_cast<std::int64_t>(d);
      has_zero = has_zero || d == 0;
      if (d != 0)
        overflow = overflow || __builtin_mul_overflow(nonzero, d, &nonzero) || nonzero > std::uint64_t{INT64_MAX};
    }
    std::uint64_t nbytes = 0;
    overflow = overflow || __builtin_mul_overflow(has_zero ? 0 : nonzero, dtype_size(e.dtype), &nbytes);
    if (overflow) st_fail(source, "shape of tensor '", name, "' overflows 64-bit byte counts");
    e.shape = Shape::from_range(dims, dims + sh->size());

    auto const off = value.find("data_offsets");
    if (off == value.end()) st_fail(source, "tensor '", name, "' has no data_offsets");
    if (!off->is_array() || off->size() != 2) st_fail(source, "data_offsets of tensor '", name, "' is not [begin, end]");
    e.begin = st_uint((*off)[0], source, "data_offsets[0] of tensor '" + name + "'");
    e.end = st_uint((*off)[1], source, "data_offsets[1] of tensor '" + name + "'");
    if (e.begin > e.end) st_fail(source, "data_offsets [", e.begin, ", ", e.end, "] of tensor '", name, "' end before they begin");
    if (e.end > data_size)
      st_fail(source, "data_offsets [", e.begin, ", ", e.end, "] of tensor '", name, "' run past the data section (",
              data_size, " bytes)");
    if (e.end - e.begin != nbytes)
      st_fail(source, "tensor '", name, "' has ", e.end - e.begin, " bytes but ", safetensors_dtype_name(e.dtype),
              " x ", e.shape, " needs ", nbytes);
    out.entries.push_back(std::move(e));
  }

  std::sort(out.entries.begin(), out.entries.end(), [](SafetensorsEntry const& a, SafetensorsEntry const& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  std::uint64_t covered = 0;
  for (std::size_t i = 0; i < out.entries.size(); ++i) {
    SafetensorsEntry const& e = out.entries[i];
    if (e.begin < covered)
      st_fail(source, "tensor '", e.name, "' [", e.begin, ", ", e.end, ") overlaps tensor '", out.entries[i - 1].name,
              "' which ends at ", covered);
    if (e.begin > covered)
      st_fail(source, "data bytes [", covered, ", ", e.begin, ") belong to no tensor (hole before '", e.name, "')");
    covered = e.end;
  }
  if (covered != data_size)
    st_fail(source, "data section has ", data_size - covered, " trailing bytes after the last tensor");
  return out;
}

}  // namespace detail

/// A validated safetensors image in memory owned by someone else (a map, a buffer). Views point into
/// that memory (no copy) and are read-only even though AnyView carries a non-const pointer.
class SafetensorsView {
 public:
  SafetensorsView() = default;
  /// Parses and validates `file`; `source` names it in error messages.
  SafetensorsView(std::span<std::byte const> file, std::string source) : file_(file), source_(std::move(source)) {
    detail::ParsedHeader h = detail::parse_header(file_, source_);
    metadata_ = std::move(h.metadata);
    entries_ = std::move(h.entries);
    data_start_ = h.data_start;
    for (std::size_t i = 0; i < entries_.size(); ++i) index_.emplace(entries_[i].name, i);
  }

  std::string const& source() const { return source_; }
  Metadata const& metadata() const { return metadata_; }
  /// Tensors in file (offset) order.
  std::vector<SafetensorsEntry> const& entries() const { return entries_; }
  /// Tensor names, in file order.
  std::vector<std::string> names() const {
    std::vector<std::string> n;
    n.reserve(entries_.size());
    for (auto const& e : entries_) n.push_back(e.name);
    return n;
  }
  std::size_t size() const { return entries_.size(); }
  /// Bytes before the data section: 8 + header length.
  std::uint64_t data_start() const { return data_start_; }
  bool contains(std::string_view name) const { return index_.contains(std::string(name)); }
  SafetensorsEntry const& entry(std::string_view name) const {
    auto it = index_.find(std::string(name));
    if (it == index_.end()) detail::st_fail(source_, "no tensor named '", name, "'");
    return entries_[it->second];
  }

  /// The raw bytes of a tensor inside the image.
  std::span<std::byte const> bytes(std::string_view name) const { return bytes(entry(name)); }
  std::span<std::byte const> bytes(SafetensorsEntry const& e) const {
    return file_.subspan(static_cast<std::size_t>(data_start_ + e.begin), e.bytes());
  }
  /// An untyped view of the tensor where it lies: read-only, and possibly not aligned for its dtype.
  AnyView view(std::string_view name) const { return view(entry(name)); }
  AnyView view(SafetensorsEntry const& e) const {
    return AnyView{const_cast<std::byte*>(bytes(e).data()), e.dtype, e.shape, DeviceKind::cpu};
  }
  /// Whether the tensor's first byte is aligned for its element type.
  bool aligned(std::string_view name) const {
    SafetensorsEntry const& e = entry(name);
    return reinterpret_cast<std::uintptr_t>(bytes(e).data()) % dtype_size(e.dtype) == 0;
  }
  /// A typed zero-copy view; throws when the dtype differs or the data is not aligned for T
  /// (then use `copy_to`).
  template <class T>
  TensorView<T const> get(std::string_view name) const {
    SafetensorsEntry const& e = entry(name);
    if (e.dtype != dtype_v<std::remove_const_t<T>>)
      detail::st_fail(source_, "tensor '", name, "' is ", safetensors_dtype_name(e.dtype), ", requested ",
                      safetensors_dtype_name(dtype_v<std::remove_const_t<T>>));
    auto const* p = bytes(e).data();
    if (reinterpret_cast<std::uintptr_t>(p) % alignof(T) != 0)
      detail::st_fail(source_, "tensor '", name, "' is not ", alignof(T), "-byte aligned in the file; use copy_to");
    return TensorView<T const>(reinterpret_cast<T const*>(p), e.shape);
  }
  /// Copies the tensor into `dst` (host memory of the same shape), converting between floating
  /// dtypes if they differ (bf16 file -> f32 arena). Works for unaligned data.
  void copy_to(std::string_view name, AnyView dst) const {
    SafetensorsEntry const& e = entry(name);
    if (!(dst.shape == e.shape))
      detail::st_fail(source_, "tensor '", name, "' has shape ", e.shape, ", destination has ", dst.shape);
    convert(view(e), dst);
  }

 private:
  std::span<std::byte const> file_;
  std::string source_;
  Metadata metadata_;
  std::vector<SafetensorsEntry> entries_;
  std::unordered_map<std::string, std::size_t> index_;
  std::uint64_t data_start_ = 0;
};

namespace detail {
struct MapHolder {
  MappedFile map_;
};
}  // namespace detail

/// A safetensors file, memory-mapped and validated; all SafetensorsView accessors apply, and the
/// views stay valid as long as this object (moving it keeps them valid).
class SafetensorsFile : private detail::MapHolder, public SafetensorsView {
 public:
  SafetensorsFile() = default;
  explicit SafetensorsFile(std::filesystem::path const& path)
      : detail::MapHolder{MappedFile(path)}, SafetensorsView(map_.bytes(), path.string()) {}
  std::filesystem::path const& path() const { return map_.path(); }
};

// ---- writing --------------------------------------------------------------------------------

/// A tensor to write: its name and host memory.
struct NamedTensor {
  std::string name;
  AnyView view;
};

/// The tensors of a host arena under their layout names, in layout order.
inline std::vector<NamedTensor> named_tensors(Arena<Cpu> const& arena) {
  std::vector<NamedTensor> out;
  out.reserve(arena.layout().size());
  for (std::size_t i = 0; i < arena.layout().size(); ++i) out.push_back({arena.layout()[i].name, arena.view(i)});
  return out;
}

/// How tensors are stored.
struct WriteOptions {
  /// When set, floating tensors (f32, f64, bf16, f16) are stored in this dtype, converted while
  /// writing in small chunks (round to nearest even; see io/convert.hpp), so exporting f32
  /// parameters as bf16 needs no second copy of the model. Integer tensors are stored as they are.
  std::optional<DType> floating_dtype;
};

namespace detail {

// The dtype a tensor is stored in.
inline DType st_stored_dtype(AnyView const& v, WriteOptions const& opt) {
  return opt.floating_dtype && is_floating(v.dtype) ? *opt.floating_dtype : v.dtype;
}
inline std::uint64_t st_stored_bytes(AnyView const& v, WriteOptions const& opt) {
  return static_cast<std::uint64_t>(v.shape.numel()) * dtype_size(st_stored_dtype(v, opt));
}

// The order tensors take in a file: stored element size descending (keeps every tensor aligned to
// its element size after the 8-aligned header), then name; the reference writer orders the same way.
inline std::vector<std::size_t> st_file_order(std::span<NamedTensor const> tensors, WriteOptions const& opt) {
  std::vector<std::size_t> order(tensors.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    std::size_t const sa = dtype_size(st_stored_dtype(tensors[a].view, opt));
    std::size_t const sb = dtype_size(st_stored_dtype(tensors[b].view, opt));
    return sa != sb ? sa > sb : tensors[a].name < tensors[b].name;
  });
  return order;
}

inline void st_check_writable(std::span<NamedTensor const> tensors, WriteOptions const& opt, std::string const& target) {
  KUMIKI_CHECK(!opt.floating_dtype || is_floating(*opt.floating_dtype), "safetensors '", target,
               "': floating_dtype must be f32, f64, bf16 or f16");
  std::unordered_map<std::string_view, int> seen;
  for (NamedTensor const& t : tensors) {
    KUMIKI_CHECK(!t.name.empty(), "safetensors '", target, "': tensor with an empty name");
    KUMIKI_CHECK(t.name != "__metadata__", "safetensors '", target, "': '__metadata__' cannot name a tensor");
    KUMIKI_CHECK(seen.emplace(t.name, 0).second, "safetensors '", target, "': duplicate tensor name '", t.name, "'");
    KUMIKI_CHECK(t.view.device == DeviceKind::cpu, "safetensors '", target, "': tensor '", t.name,
                 "' is on ", device_name(t.view.device), "; copy it to the host first");
    KUMIKI_CHECK(t.view.data != nullptr || t.view.bytes() == 0, "safetensors '", target, "': tensor '", t.name,
                 "' has no data");
  }
}

// Appends a tensor's stored bytes, converting in chunks when the stored dtype differs.
inline void st_write_data(AtomicFile& f, AnyView const& v, DType stored) {
  if (stored == v.dtype) {
    f.write(v.data, v.bytes());
    return;
  }
  constexpr std::size_t chunk = std::size_t{1} << 16;  // elements
  std::vector<std::byte> buf(chunk * dtype_size(stored));
  std::size_t const n = static_cast<std::size_t>(v.shape.numel());
  auto const* src = static_cast<std::byte const*>(v.data);
  for (std::size_t i = 0; i < n; i += chunk) {
    std::size_t const k = n - i < chunk ? n - i : chunk;
    auto const m = static_cast<std::int64_t>(k);
    convert(AnyView{const_cast<std::byte*>(src + i * dtype_size(v.dtype)), v.dtype, {m}, DeviceKind::cpu},
            AnyView{buf.data(), stored, {m}, DeviceKind::cpu});
    f.write(buf.data(), k * dtype_size(stored));
  }
}

}  // namespace detail

/// The header a file with these tensors gets: compact JSON, `__metadata__` first (when not empty),
/// then the tensors in file order, padded with spaces to a multiple of 8 bytes.
inline std::string safetensors_header(std::span<NamedTensor const> tensors, Metadata const& metadata = {},
                                      WriteOptions const& opt = {}) {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (auto const& [k, v] : metadata) m[k] = v;
    h["__metadata__"] = std::move(m);
  }
  std::uint64_t offset = 0;
  for (std::size_t i : detail::st_file_order(tensors, opt)) {
    NamedTensor const& t = tensors[i];
    std::vector<std::int64_t> shape;
    for (int d = 0; d < t.view.shape.rank(); ++d) shape.push_back(t.view.shape[d]);
    std::uint64_t const end = offset + detail::st_stored_bytes(t.view, opt);
    h[t.name] = {{"dtype", safetensors_dtype_name(detail::st_stored_dtype(t.view, opt))},
                 {"shape", shape},
                 {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string text;
  try {
    text = h.dump();
  } catch (nlohmann::json::exception const& e) {
    KUMIKI_FAIL("cannot encode safetensors header (names and metadata must be UTF-8): ", e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

/// Writes one safetensors file atomically (temporary file, fsync, rename; see io/atomic_file.hpp).
/// Returns the number of bytes written.
inline std::uint64_t write_safetensors(std::filesystem::path const& path, std::span<NamedTensor const> tensors,
                                       Metadata const& metadata = {}, WriteOptions const& opt = {}) {
  detail::st_check_writable(tensors, opt, path.string());
  std::string const header = safetensors_header(tensors, metadata, opt);
  AtomicFile f(path);
  std::uint64_t const n = header.size();
  f.write(&n, 8);
  f.write(header);
  for (std::size_t i : detail::st_file_order(tensors, opt))
    detail::st_write_data(f, tensors[i].view, detail::st_stored_dtype(tensors[i].view, opt));
  std::uint64_t const total = f.bytes_written();
  f.commit();
  return total;
}
inline std::uint64_t write_safetensors(std::filesystem::path const& path, std::vector<NamedTensor> const& tensors,
                                       Metadata const& metadata = {}, WriteOptions const& opt = {}) {
  return write_safetensors(path, std::span<NamedTensor const>(tensors), metadata, opt);
}
/// Writes every tensor of a host arena under its layout name.
inline std::uint64_t write_safetensors(std::filesystem::path const& path, Arena<Cpu> const& arena,
                                       Metadata const& metadata = {}, WriteOptions const& opt = {}) {
  return write_safetensors(path, named_tensors(arena), metadata, opt);
}

/// Sharding of a model directory (Hugging Face conventions).
struct ShardOptions {
  /// A shard is closed before a tensor that would take it past this many stored tensor bytes; a
  /// tensor larger than the limit gets a shard of its own. Hugging Face's default is 5 GB.
  std::uint64_t max_shard_bytes = 5'000'000'000;
  /// File names: `<prefix>.safetensors`, or `<prefix>-00001-of-00003.safetensors` and
  /// `<prefix>.safetensors.index.json` when there is more than one shard.
  std::string prefix = "model";
  /// Storage dtype (WriteOptions::floating_dtype applies to every shard).
  WriteOptions write{};
};

inline std::string shard_file_name(std::string const& prefix, std::size_t i, std::size_t n) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "-%05zu-of-%05zu", i + 1, n);
  return prefix + buf + ".safetensors";
}

/// Writes `tensors` into directory `dir` (created if missing): one `<prefix>.safetensors` when they
/// fit in one shard, else shards in the given order plus the index {"metadata": {"total_size": N},
/// "weight_map": {name: file}}, N being the stored tensor bytes. Every shard carries `metadata`.
/// Shards are written first and the index last, each atomically; a stale index (or single file)
/// left by an earlier write of the other kind is removed at the end so it cannot shadow the new
/// files. Returns the files written, the index last.
inline std::vector<std::filesystem::path> write_safetensors_sharded(std::filesystem::path const& dir,
                                                                    std::span<NamedTensor const> tensors,
                                                                    Metadata const& metadata = {},
                                                                    ShardOptions const& opt = {}) {
  KUMIKI_CHECK(opt.max_shard_bytes > 0, "max_shard_bytes must be positive");
  KUMIKI_CHECK(!opt.prefix.empty() && opt.prefix.find('/') == std::string::npos, "bad shard prefix '", opt.prefix, "'");
  detail::st_check_writable(tensors, opt.write, dir.string());
  std::filesystem::create_directories(dir);
  std::vector<std::vector<NamedTensor>> shards(1);
  std::uint64_t shard_bytes = 0, total = 0;
  for (NamedTensor const& t : tensors) {
    std::uint64_t const b = detail::st_stored_bytes(t.view, opt.write);
    if (!shards.back().empty() && shard_bytes + b > opt.max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(t);
    shard_bytes += b;
    total += b;
  }
  std::vector<std::filesystem::path> written;
  std::filesystem::path const single = dir / (opt.prefix + ".safetensors");
  std::filesystem::path const index = dir / (opt.prefix + ".safetensors.index.json");
  if (shards.size() == 1) {
    write_safetensors(single, shards[0], metadata, opt.write);
    written.push_back(single);
    std::filesystem::remove(index);
    return written;
  }
  nlohmann::json weight_map = nlohmann::json::object();
  for (std::size_t s = 0; s < shards.size(); ++s) {
    std::string const name = shard_file_name(opt.prefix, s, shards.size());
    write_safetensors(dir / name, shards[s], metadata, opt.write);
    written.push_back(dir / name);
    for (NamedTensor const& t : shards[s]) weight_map[t.name] = name;
  }
  nlohmann::json const doc = {{"metadata", {{"total_size", total}}}, {"weight_map", std::move(weight_map)}};
  write_file_atomic(index, doc.dump(2) + "\n");
  written.push_back(index);
  std::filesystem::remove(single);
  return written;
}
inline std::vector<std::filesystem::path> write_safetensors_sharded(std::filesystem::path const& dir,
                                                                    Arena<Cpu> const& arena,
                                                                    Metadata const& metadata = {},
                                                                    ShardOptions const& opt = {}) {
  std::vector<NamedTensor> const t = named_tensors(arena);
  return write_safetensors_sharded(dir, std::span<NamedTensor const>(t), metadata, opt);
}

// ---- reading a model (single file or sharded directory) ---------------------------------------

/// The tensors of a model stored as one safetensors file or a directory holding either
/// `<prefix>.safetensors` (preferred when both exist, as Hugging Face transformers does) or
/// `<prefix>.safetensors.index.json` with its shards. Every shard is mapped and validated on opening; the index must name
/// exactly the tensors the shards hold, each in the file that holds it, and no tensor may appear in
/// two shards. Shard names in the index must be plain file names inside the directory.
class SafetensorsModel {
 public:
  explicit SafetensorsModel(std::filesystem::path const& path, std::string const& prefix = "model") : path_(path) {
    namespace fs = std::filesystem;
    if (!fs::is_directory(path)) {
      open_file(path);
      return;
    }
    fs::path const index = path / (prefix + ".safetensors.index.json");
    fs::path const single = path / (prefix + ".safetensors");
    if (fs::exists(single)) {
      open_file(single);
    } else if (fs::exists(index)) {
      open_index(index);
    } else {
      KUMIKI_FAIL("'", path.string(), "' holds neither ", single.filename().string(), " nor ", index.filename().string());
    }
  }

  std::filesystem::path const& path() const { return path_; }
  std::string source() const { return path_.string(); }
  std::vector<SafetensorsFile> const& files() const { return files_; }
  /// The `__metadata__` of the first file (in file name order).
  Metadata const& metadata() const { return files_.front().metadata(); }
  /// Tensor names, sorted.
  std::vector<std::string> names() const {
    std::vector<std::string> n;
    n.reserve(where_.size());
    for (auto const& [name, loc] : where_) n.push_back(name);
    return n;
  }
  std::size_t size() const { return where_.size(); }
  /// Total tensor bytes over all files.
  std::uint64_t total_bytes() const {
    std::uint64_t n = 0;
    for (auto const& f : files_)
      for (auto const& e : f.entries()) n += e.bytes();
    return n;
  }
  bool contains(std::string_view name) const { return where_.contains(std::string(name)); }
  SafetensorsFile const& file_of(std::string_view name) const {
    auto it = where_.find(std::string(name));
    if (it == where_.end()) KUMIKI_FAIL("model '", path_.string(), "' has no tensor named '", name, "'");
    return files_[it->second];
  }
  SafetensorsEntry const& entry(std::string_view name) const { return file_of(name).entry(name); }
  AnyView view(std::string_view name) const { return file_of(name).view(name); }
  template <class T>
  TensorView<T const> get(std::string_view name) const {
    return file_of(name).template get<T>(name);
  }
  void copy_to(std::string_view name, AnyView dst) const { file_of(name).copy_to(name, dst); }

 private:
  void open_file(std::filesystem::path const& file) {
    files_.emplace_back(file);
    for (auto const& e : files_.back().entries()) where_.emplace(e.name, 0);
  }

  void open_index(std::filesystem::path const& index) {
    std::string const src = index.string();
    MappedFile const text(index);
    // Strict: a weight_map naming one tensor twice is ambiguous (parsers keep different copies).
    nlohmann::json const doc = ::kumiki::detail::parse_json_strict(
        std::string_view(reinterpret_cast<char const*>(text.data()), text.size()), "index '" + src + "'");
    if (!doc.is_object()) KUMIKI_FAIL("index '", src, "' is not a JSON object");
    auto const wm = doc.find("weight_map");
    if (wm == doc.end() || !wm->is_object()) KUMIKI_FAIL("index '", src, "' has no weight_map object");
    std::map<std::string, std::size_t> file_ix;  // shard name -> index into files_, opened in name order
    std::vector<std::pair<std::string, std::string>> mapping;
    for (auto const& [name, file] : wm->items()) {
      if (!file.is_string()) KUMIKI_FAIL("index '", src, "': weight_map entry '", name, "' is not a file name");
      auto const& f = file.get_ref<std::string const&>();
      if (f.empty() || f == "." || f == ".." || f.find('/') != std::string::npos || f.find('\\') != std::string::npos)
        KUMIKI_FAIL("index '", src, "': weight_map entry '", name, "' names '", f, "', not a file in the directory");
      file_ix.emplace(f, 0);
      mapping.emplace_back(name, f);
    }
    if (file_ix.empty()) KUMIKI_FAIL("index '", src, "' maps no tensors");
    for (auto& [f, i] : file_ix) {
      i = files_.size();
      files_.emplace_back(index.parent_path() / f);
    }
    for (std::size_t i = 0; i < files_.size(); ++i)
      for (auto const& e : files_[i].entries()) {
        auto const [it, fresh] = where_.emplace(e.name, i);
        if (!fresh)
          KUMIKI_FAIL("index '", src, "': tensor '", e.name, "' is in both ", files_[it->second].path().filename().string(),
                      " and ", files_[i].path().filename().string());
      }
    for (auto const& [name, f] : mapping) {
      auto const it = where_.find(name);
      if (it == where_.end() || it->second != file_ix.at(f))
        KUMIKI_FAIL("index '", src, "' maps '", name, "' to ", f, " but that file has no such tensor");
    }
    if (mapping.size() != where_.size()) {
      for (auto const& [name, i] : where_)
        if (!wm->contains(name))
          KUMIKI_FAIL("index '", src, "': tensor '", name, "' in ", files_[i].path().filename().string(),
                      " is missing from weight_map");
    }
  }

  std::filesystem::path path_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, std::size_t> where_;  // name -> index into files_
};

/// How `fill_arena` reads tensors into an arena.
struct FillOptions {
  std::string prefix;         ///< the file's tensor for arena tensor `n` is prefix + n (e.g. "exp_avg.")
  bool convert_dtype = false; ///< floating file dtypes (F32, BF16, F16) convert into the arena's; else equal dtypes
  bool allow_unused = false;  ///< file tensors the arena has no place for are skipped instead of refused
  /// Unused file tensors that are never an error (e.g. the rotary inv_freq buffers of some exports).
  std::function<bool(std::string_view)> ignorable;
  /// Rows the file stores for an arena tensor, when fewer than the arena's (an unpadded vocabulary):
  /// the arena's remaining rows are copies of the last stored row. Unset or <= 0: all rows.
  std::function<std::int64_t(ArenaEntry const&)> stored_rows;
  std::string kind = "model";       ///< the file in errors: "<kind> '<source>' has no tensor ..."
  std::string owner = "the arena";  ///< the destination in errors: "... which <owner> has no place for"
};

/// Fills every tensor of the host `arena` from `src` (a SafetensorsView / SafetensorsFile or a sharded
/// SafetensorsModel): the one way kumiki reads tensors into an arena (checkpoints, optimizer moments,
/// Hugging Face weights). Every tensor must be present with its shape (and dtype unless converting);
/// file tensors the arena has no place for are refused unless allowed or ignorable. Each problem is a
/// kumiki::InputError naming the file and the tensor.
template <class Source>
void fill_arena(Source const& src, Arena<Cpu>& arena, FillOptions const& opt = {}) {
  std::string const source = src.source();
  std::string_view const kind = opt.kind;
  std::string_view const tensor_kind = kind.substr(0, kind.find(' '));  // "optimizer file" -> "optimizer"
  for (ArenaEntry const& e : arena.layout().entries()) {
    std::string const name = opt.prefix + e.name;
    KUMIKI_REQUIRE(src.contains(name), kind, " '", source, "' has no tensor '", name, "' (expected ", e.shape, ")");
    SafetensorsEntry const& se = src.entry(name);
    std::int64_t const rows = opt.stored_rows ? opt.stored_rows(e) : 0;
    bool const pad = rows > 0 && e.shape.rank() == 2 && rows < e.shape[0];
    Shape const expected = pad ? Shape{rows, e.shape[1]} : e.shape;
    KUMIKI_REQUIRE(se.shape == expected, kind, " '", source, "': tensor '", name, "' is ", se.shape, ", expected ", expected);
    if (opt.convert_dtype)
      KUMIKI_REQUIRE(se.dtype == DType::f32 || se.dtype == DType::bf16 || se.dtype == DType::f16, kind, " '", source,
                     "': tensor '", name, "' is ", dtype_name(se.dtype), " (weights must be F32, BF16 or F16)");
    else
      KUMIKI_REQUIRE(se.dtype == e.dtype, tensor_kind, " tensor '", name, "' in '", source, "' is ", dtype_name(se.dtype),
                     " ", se.shape, ", ", opt.owner, " expects ", dtype_name(e.dtype), " ", e.shape);
    AnyView dst = arena.view(e.name);
    dst.shape = expected;  // the stored rows; padded rows are filled below
    src.copy_to(name, dst);
    if (pad) {
      auto* base = reinterpret_cast<std::byte*>(dst.data);
      std::size_t const row_bytes = static_cast<std::size_t>(e.shape[1]) * dtype_size(e.dtype);
      for (std::int64_t r = rows; r < e.shape[0]; ++r)
        std::memcpy(base + static_cast<std::size_t>(r) * row_bytes, base + static_cast<std::size_t>(rows - 1) * row_bytes,
                    row_bytes);
    }
  }
  if (opt.allow_unused) return;
  for (std::string const& n : src.names()) {
    bool const ours = n.size() >= opt.prefix.size() && n.compare(0, opt.prefix.size(), opt.prefix) == 0 &&
                      arena.layout().contains(std::string_view(n).substr(opt.prefix.size()));
    KUMIKI_REQUIRE(ours || (opt.ignorable && opt.ignorable(n)), kind, " '", source, "' holds tensor '", n, "' which ",
                   opt.owner, " has no place for");
  }
}

/// Fills every tensor of `arena` from the model tensor of the same name and shape, converting
/// floating dtypes (a bf16 model into an f32 arena). Missing tensors are an error; so are model
/// tensors the arena does not hold, unless `allow_unused` (then they are skipped).
inline void load_arena(SafetensorsModel const& model, Arena<Cpu>& arena, bool allow_unused = false) {
  FillOptions o;
  o.convert_dtype = true;
  o.allow_unused = allow_unused;
  fill_arena(model, arena, o);
}

}  // namespace io
KUMIKI_NAMESPACE_END
