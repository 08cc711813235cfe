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
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "kumiki/config.hpp"
#include "kumiki/core/crc32c.hpp"
#include "kumiki/core/error.hpp"
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

/// Checks a checkpoint directory against its manifest; throws kumiki::Error naming the first problem
/// (missing manifest, missing file, size or CRC-32C mismatch, unexpected format).
inline void verify_checkpoint(fs::path const& dir) {
  fs::path const mpath = dir / checkpoint_manifest;
  KUMIKI_CHECK(fs::is_regular_file(mpath), "checkpoint '", dir.string(), "' has no ", checkpoint_manifest,
               " (incomplete write)");
  std::ifstream in(mpath);
  auto const m = nlohmann::json::parse(in, nullptr, false);
  KUMIKI_CHECK(!m.is_discarded() && m.is_object(), "checkpoint '", dir.string(), "': manifest is not valid JSON");
  KUMIKI_CHECK(m.value("format", "") == checkpoint_format, "checkpoint '", dir.string(), "': not a kumiki checkpoint");
  KUMIKI_CHECK(m.value("version", 0) == checkpoint_version, "checkpoint '", dir.string(), "': unsupported version ",
               m.value("version", 0));
  KUMIKI_CHECK(m.contains("files") && m["files"].is_object(), "checkpoint '", dir.string(), "': manifest lists no files");
  for (auto const& [name, info] : m["files"].items()) {
    fs::path const p = dir / name;
    KUMIKI_CHECK(fs::is_regular_file(p), "checkpoint '", dir.string(), "': file '", name, "' is missing");
    auto const bytes = info.value("bytes", std::uint64_t{0});
    KUMIKI_CHECK(fs::file_size(p) == bytes, "checkpoint '", dir.string(), "': file '", name, "' has ", fs::file_size(p),
                 " bytes, manifest says ", bytes);
    char crc[16];
    std::snprintf(crc, sizeof crc, "%08x", crc32c_file(p));
    KUMIKI_CHECK(info.value("crc32c", "") == crc, "checkpoint '", dir.string(), "': file '", name,
                 "' fails its checksum (crc32c ", crc, ", manifest ", info.value("crc32c", ""), "); it is corrupt");
  }
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

/// The newest checkpoint under `root` that verifies. Every newer one that fails is reported in
/// `problems` (and skipped, never loaded).
inline std::optional<fs::path> newest_valid_checkpoint(fs::path const& root, std::vector<std::string>* problems = nullptr) {
  auto const all = list_checkpoints(root);
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
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
  KUMIKI_CHECK(fs::exists(path), "checkpoint '", path.string(), "' does not exist");
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

/// Removes leftovers of interrupted writes (.tmp-*) and all but the newest `keep` checkpoints.
inline void prune_checkpoints(fs::path const& root, std::size_t keep) {
  if (!fs::is_directory(root)) return;
  for (auto const& e : fs::directory_iterator(root)) {
    std::string const n = e.path().filename().string();
    if (n.rfind(".tmp-", 0) == 0) fs::remove_all(e.path());
  }
  auto const all = list_checkpoints(root);
  if (keep == 0 || all.size() <= keep) return;
  for (std::size_t i = 0; i + keep < all.size(); ++i) fs::remove_all(all[i]);
}

}  // namespace train
KUMIKI_NAMESPACE_END
