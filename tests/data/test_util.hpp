// Helpers shared by the data tests: scratch directories and small dataset builders.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "kumiki/data/indexed_dataset.hpp"

namespace kumiki_test {

/// A fresh directory under the system temp dir, removed with everything in it on destruction.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(std::string const& tag) {
    static std::atomic<int> counter{0};
    path = std::filesystem::temp_directory_path() /
           ("kumiki-data-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::filesystem::path operator/(std::string const& name) const { return path / name; }
};

inline std::vector<char> read_bytes(std::filesystem::path const& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_bytes(std::filesystem::path const& p, std::vector<char> const& b) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(b.data(), static_cast<std::streamsize>(b.size()));
}

/// Writes a dataset of `lengths.size()` one-sequence documents whose tokens encode their position:
/// token k of document d is (d * 1000 + k) % vocab. Returns the documents.
inline std::vector<std::vector<std::int32_t>> write_dataset(std::filesystem::path const& prefix,
                                                            std::vector<int> const& lengths, int vocab = 60000) {
  kumiki::data::IndexedDatasetWriter w(prefix, kumiki::data::IndexDType::uint16);
  std::vector<std::vector<std::int32_t>> docs;
  for (std::size_t d = 0; d < lengths.size(); ++d) {
    std::vector<std::int32_t> t(static_cast<std::size_t>(lengths[d]));
    for (int k = 0; k < lengths[d]; ++k) t[static_cast<std::size_t>(k)] = static_cast<std::int32_t>((d * 1000 + k) % vocab);
    w.add_document(t);
    docs.push_back(std::move(t));
  }
  w.finalize();
  return docs;
}

/// Random document lengths in [lo, hi].
inline std::vector<int> random_lengths(std::size_t n, int lo, int hi, std::uint64_t seed) {
  std::mt19937_64 g(seed);
  std::vector<int> v(n);
  for (auto& x : v) x = lo + static_cast<int>(g() % static_cast<std::uint64_t>(hi - lo + 1));
  return v;
}

}  // namespace kumiki_test
