// kumiki/train/checkpoint_dir.hpp: checkpoint directories that appear complete or not at all.
// Files are written into a temporary directory, each fsynced; a manifest with every file's size and
// CRC-32C is written last; the directory is fsynced and renamed to its final name. Readers verify the
// manifest, so a partial or corrupt checkpoint is reported and never loaded.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "kumiki/config.hpp"
#include "kumiki/core/crc32c.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/json.hpp"
#include "kumiki/core/atomic_file.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace train {

namespace fs = std::filesystem;

inline constexpr char const checkpoint_manifest[] = "manifest.json";
inline constexpr char const checkpoint_format[] = "kumiki-checkpoint";
inline constexpr int checkpoint_version = 1;

/// "step_000001234": zero-padded so names sort by step.
inline std::string checkpoint_name(std::int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step_%09lld", static_cast<long long>(step));
  return buf;
}

/// The step of a checkpoint directory name, or nullopt for anything else (temporaries included).
inline std::optional<std::int64_t> checkpoint_step(fs::path const& dir) {
  std::string const name = dir.filename().string();
  if (name.size() != 14 || name.rfind("step_", 0) != 0) return std::nullopt;
  std::int64_t step = 0;
  for (char c : name.substr(5)) {
    if (c < '0' || c > '9') return std::nullopt;
    step = step * 10 + (c - '0');
  }
  return step;
}

/// A file as the manifest records it.
struct ManifestEntry {
  std::uint64_t bytes = 0;
  std::string crc32c;  ///< 8 lowercase hex digits as written
};

/// What a verified manifest lists: every file of the checkpoint, each checked against its size and
/// CRC-32C. `require` refuses a file the manifest does not list: it was never verified.
struct CheckpointManifest {
  std::filesystem::path dir;
  std::optional<std::int64_t> step;  ///< the manifest's "step", when it has one
  std::map<std::string, ManifestEntry> files;

  bool contains(std::string const& name) const { return files.contains(name); }
  void require(std::string const& name) const {
    KUMIKI_REQUIRE(contains(name), "checkpoint '", dir.string(), "': its ", checkpoint_manifest, " does not list '",
                   name, "', so that file is unverified; the checkpoint is incomplete or was edited by hand");
  }
};

namespace detail {

using ::kumiki::detail::json_describe;
using ::kumiki::detail::json_quote;
using ::kumiki::detail::parse_json_strict;

/// Manifest entries name files at the top of the checkpoint directory (the writer lists exactly
/// those): a path separator, "." or ".." or a NUL would let a manifest point kumiki at a file
/// elsewhere, so none is accepted.
inline bool is_plain_file_name(std::string_view name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find_first_of(std::string_view("/\\\0", 3)) == std::string_view::npos;
}

/// Reads and type-checks manifest.json (no file is touched but the manifest itself).
inline CheckpointManifest read_manifest(fs::path const& dir) {
  fs::path const mpath = dir / checkpoint_manifest;
  std::string const src = "checkpoint manifest '" + mpath.string() + "'";
  std::error_code ec;
  KUMIKI_REQUIRE(fs::is_regular_file(mpath, ec), "checkpoint '", dir.string(), "' has no ", checkpoint_manifest,
                 " (incomplete write)");
  std::ifstream in(mpath, std::ios::binary);
  KUMIKI_REQUIRE(in.good(), "cannot read ", src);
  std::string const text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  nlohmann::json const m = parse_json_strict(text, src);
  KUMIKI_REQUIRE(m.is_object(), src, " is ", json_describe(m), ", not a JSON object");

  auto const format = m.find("format");
  KUMIKI_REQUIRE(format != m.end(), src, " has no \"format\" (not a kumiki checkpoint)");
  KUMIKI_REQUIRE(format->is_string() && *format == checkpoint_format, src, ": \"format\" is ", json_describe(*format),
                 ", expected \"", checkpoint_format, "\" (not a kumiki checkpoint)");
  auto const version = m.find("version");
  KUMIKI_REQUIRE(version != m.end(), src, " has no \"version\"");
  KUMIKI_REQUIRE(version->is_number_integer() && *version == checkpoint_version, src, ": \"version\" is ",
                 json_describe(*version), "; this kumiki reads checkpoint version ", checkpoint_version);

  CheckpointManifest out;
  out.dir = dir;
  if (auto const step = m.find("step"); step != m.end()) {
    KUMIKI_REQUIRE(step->is_number_unsigned() && step->get<std::uint64_t>() <= std::uint64_t{INT64_MAX}, src,
                   ": \"step\" is ", json_describe(*step), ", expected a non-negative integer");
    out.step = step->get<std::int64_t>();
  }
  auto const files = m.find("files");
  KUMIKI_REQUIRE(files != m.end(), src, " lists no files (no \"files\")");
  KUMIKI_REQUIRE(files->is_object(), src, ": \"files\" is ", json_describe(*files),
                 ", expected an object {name: {\"bytes\": N, \"crc32c\": \"hex\"}}");
  for (auto const& [name, info] : files->items()) {
    std::string const entry = src + ": file " + json_quote(name);
    KUMIKI_REQUIRE(is_plain_file_name(name), entry,
                   " is not a plain file name inside the checkpoint directory (no '/', '\\', '.', '..' or NUL)");
    KUMIKI_REQUIRE(info.is_object(), entry, " is ", json_describe(info),
                   ", expected an object {\"bytes\": N, \"crc32c\": \"hex\"}");
    auto const bytes = info.find("bytes");
    KUMIKI_REQUIRE(bytes != info.end(), entry, " has no \"bytes\"");
    KUMIKI_REQUIRE(bytes->is_number_unsigned(), entry, ": \"bytes\" is ", json_describe(*bytes),
                   ", expected a non-negative integer");
    auto const crc = info.find("crc32c");
    KUMIKI_REQUIRE(crc != info.end(), entry, " has no \"crc32c\"");
    KUMIKI_REQUIRE(crc->is_string(), entry, ": \"crc32c\" is ", json_describe(*crc),
                   ", expected a string of 8 hex digits");
    out.files.emplace(name, ManifestEntry{bytes->get<std::uint64_t>(), crc->get<std::string>()});
  }
  return out;
}

}  // namespace detail

/// Checks a checkpoint directory against its manifest; throws kumiki::InputError naming the first
/// problem (missing or malformed manifest, a file name outside the directory, a missing file, a size
/// or CRC-32C mismatch, an unexpected format). Returns what the manifest lists.
inline CheckpointManifest verify_checkpoint(fs::path const& dir) {
  CheckpointManifest manifest = detail::read_manifest(dir);
  std::string const where = "checkpoint '" + dir.string() + "'";
  for (auto const& [name, want] : manifest.files) {
    fs::path const p = dir / name;
    std::error_code ec;
    KUMIKI_REQUIRE(fs::is_regular_file(p, ec), where, ": file '", name, "' is missing");
    std::uintmax_t const size = fs::file_size(p, ec);
    KUMIKI_REQUIRE(!ec, where, ": cannot read the size of '", name, "': ", ec.message());
    KUMIKI_REQUIRE(size == want.bytes, where, ": file '", name, "' has ", size, " bytes, manifest says ", want.bytes);
    KUMIKI_REQUIRE(std::ifstream(p, std::ios::binary).good(), where, ": cannot read '", name, "'");
    char crc[16];
    std::snprintf(crc, sizeof crc, "%08x", crc32c_file(p));
    KUMIKI_REQUIRE(want.crc32c == crc, where, ": file '", name, "' fails its checksum (crc32c ", crc, ", manifest ",
                   detail::json_quote(want.crc32c), "); it is corrupt");
  }
  return manifest;
}

/// Builds one checkpoint. Write files with `path(name)` (each through AtomicFile or a writer that
/// uses it), then `commit()`. Destroying an uncommitted writer removes the temporary directory.
class CheckpointWriter {
 public:
  CheckpointWriter(fs::path root, std::int64_t step) : root_(std::move(root)), step_(step) {
    fs::create_directories(root_);
    temp_ = root_ / (".tmp-" + checkpoint_name(step) + "-" + std::to_string(::getpid()));
    fs::remove_all(temp_);
    fs::create_directory(temp_);
  }
  CheckpointWriter(CheckpointWriter const&) = delete;
  CheckpointWriter& operator=(CheckpointWriter const&) = delete;
  ~CheckpointWriter() {
    if (!committed_) {
      std::error_code ec;
      fs::remove_all(temp_, ec);
    }
  }

  /// Where to write the file `name` of this checkpoint.
  fs::path path(std::string const& name) const { return temp_ / name; }

  /// Checksums every file, writes the manifest, and renames the directory into place (a complete
  /// checkpoint of the same step is kept as it is). Returns the final directory.
  fs::path commit() {
    KUMIKI_CHECK(!committed_, "checkpoint ", checkpoint_name(step_), " committed twice");
    nlohmann::ordered_json files = nlohmann::ordered_json::object();
    std::vector<fs::path> entries;
    for (auto const& e : fs::directory_iterator(temp_)) entries.push_back(e.path());
    std::sort(entries.begin(), entries.end());
    for (auto const& p : entries) {
      KUMIKI_CHECK(fs::is_regular_file(p), "checkpoint holds a non-file '", p.string(), "'");
      char crc[16];
      std::snprintf(crc, sizeof crc, "%08x", crc32c_file(p));
      files[p.filename().string()] = {{"bytes", fs::file_size(p)}, {"crc32c", crc}};
    }
    nlohmann::ordered_json manifest = {
        {"format", checkpoint_format}, {"version", checkpoint_version}, {"step", step_}, {"files", files}};
    write_file_atomic(temp_ / checkpoint_manifest, manifest.dump(2) + "\n");
    fsync_directory(temp_);
    fs::path const final_dir = root_ / checkpoint_name(step_);
    if (fs::exists(final_dir)) {
      // The same step saved again (a resumed run passing an interval it had already saved). Training
      // is deterministic, so a complete copy holds the same state: keep it. An incomplete or corrupt
      // one is removed first, so no moment exists without a complete copy of an older step.
      bool valid = true;
      try {
        verify_checkpoint(final_dir);
      } catch (Error const&) {
        valid = false;
      }
      if (valid) {
        fs::remove_all(temp_);
        committed_ = true;
        return final_dir;
      }
      fs::remove_all(final_dir);
    }
    fs::rename(temp_, final_dir);
    fsync_directory(root_);
    committed_ = true;
    return final_dir;
  }

 private:
  fs::path root_;
  fs::path temp_;
  std::int64_t step_;
  bool committed_ = false;
};

/// Complete checkpoint directories under `root`, oldest first (by step).
inline std::vector<fs::path> list_checkpoints(fs::path const& root) {
  std::vector<std::pair<std::int64_t, fs::path>> found;
  if (!fs::is_directory(root)) return {};
  for (auto const& e : fs::directory_iterator(root))
    if (auto s = checkpoint_step(e.path()); s && e.is_directory()) found.emplace_back(*s, e.path());
  std::sort(found.begin(), found.end());
  std::vector<fs::path> out;
  for (auto& [s, p] : found) out.push_back(p);
  return out;
}

/// The newest checkpoint under `root` that verifies, among those at or before step `max_step`. Every
/// newer one that fails is reported in `problems` (and skipped, never loaded).
inline std::optional<fs::path> newest_valid_checkpoint(fs::path const& root, std::vector<std::string>* problems = nullptr,
                                                       std::int64_t max_step = std::numeric_limits<std::int64_t>::max()) {
  auto const all = list_checkpoints(root);
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    if (*checkpoint_step(*it) > max_step) continue;
    try {
      verify_checkpoint(*it);
      return *it;
    } catch (Error const& e) {
      if (problems) problems->push_back(e.what());
    }
  }
  return std::nullopt;
}

/// A checkpoint directory given either itself (it has a manifest), as a directory holding step_*
/// checkpoints, or as a `kumiki train` run directory (its checkpoints/): the newest valid one is taken.
inline fs::path resolve_checkpoint(fs::path const& path) {
  KUMIKI_REQUIRE(fs::exists(path), "checkpoint '", path.string(), "' does not exist");
  if (fs::exists(path / checkpoint_manifest) || checkpoint_step(path)) return path;
  // A training run directory keeps its checkpoints in checkpoints/.
  fs::path const root = fs::is_directory(path / "checkpoints") ? path / "checkpoints" : path;
  std::vector<std::string> problems;
  auto const found = newest_valid_checkpoint(root, &problems);
  if (!found) {
    std::string why;
    for (auto const& p : problems) why += "\n  " + p;
    KUMIKI_FAIL("'", path.string(), "' is neither a checkpoint nor a directory holding a valid one", why);
  }
  return *found;
}

/// Removes leftovers of interrupted writes (.tmp-*) and all but the newest `keep` checkpoints, except
/// those at the steps in `always_keep` (a run's stage ends: where the next stage, a decay branch, a
/// micro-anneal or an evaluation starts).
inline void prune_checkpoints(fs::path const& root, std::size_t keep, std::vector<std::int64_t> const& always_keep = {}) {
  if (!fs::is_directory(root)) return;
  for (auto const& e : fs::directory_iterator(root)) {
    std::string const n = e.path().filename().string();
    if (n.rfind(".tmp-", 0) == 0) fs::remove_all(e.path());
  }
  auto const all = list_checkpoints(root);
  if (keep == 0 || all.size() <= keep) return;
  for (std::size_t i = 0; i + keep < all.size(); ++i) {
    auto const step = checkpoint_step(all[i]);
    if (!step || std::find(always_keep.begin(), always_keep.end(), *step) == always_keep.end()) fs::remove_all(all[i]);
  }
}

}  // namespace train
KUMIKI_NAMESPACE_END
