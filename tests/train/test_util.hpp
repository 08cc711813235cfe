// Shared helpers of the train tests.
#pragma once

#include <filesystem>

namespace kumiki_test {

/// An empty directory under the system temp dir (removed and recreated).
inline std::filesystem::path fresh_dir(char const* name) {
  std::filesystem::path const d = std::filesystem::temp_directory_path() / name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

}  // namespace kumiki_test
