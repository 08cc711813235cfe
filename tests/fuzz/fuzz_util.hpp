// Shared by the fuzz targets: a scratch directory per process and the one rule every target enforces.
//
// The rule: parsing hostile input may fail only with kumiki::InputError (a message for the user).
// Any other exception (a plain kumiki::Error is an internal invariant, nlohmann or std::filesystem
// errors, std::invalid_argument...) escapes LLVMFuzzerTestOneInput and aborts: a finding, like a
// crash, a leak or undefined behaviour caught by the sanitizers.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>

#include "kumiki/core/error.hpp"

namespace kumiki_fuzz {

namespace fs = std::filesystem;

/// A directory private to this process (fuzzers may run as parallel jobs), on tmpfs when there is one:
/// the file-based targets write their input on every execution. Removed at exit.
inline fs::path const& scratch_dir() {
  static fs::path const dir = [] {
    std::error_code ec;
    fs::path const base = fs::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK) == 0
                              ? fs::path("/dev/shm")
                              : fs::temp_directory_path();
    fs::path d = base / ("kumiki-fuzz-" + std::to_string(::getpid()));
    fs::remove_all(d, ec);
    fs::create_directories(d);
    return d;
  }();
  // Registered after `dir` is constructed, so it runs before `dir` is destroyed.
  static bool const cleanup_registered = std::atexit([] {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }) == 0;
  (void)cleanup_registered;
  return dir;
}

/// Writes `bytes` to `path` (plain, not atomic: nothing reads it concurrently).
inline void write_file(fs::path const& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) std::abort();  // the scratch directory is broken: nothing to learn from this input
}

inline std::string_view as_text(std::uint8_t const* data, std::size_t size) {
  return {reinterpret_cast<char const*>(data), size};
}

/// Runs `parse`, accepting kumiki::InputError (the input was refused with a message) and letting
/// anything else escape. Returns whether the input was accepted.
template <class F>
bool accepts(F&& parse) {
  try {
    parse();
    return true;
  } catch (kumiki::InputError const& e) {
    // Every refusal says something: an empty message would leave the user with nothing to fix.
    if (std::string_view(e.what()).empty()) std::abort();
    return false;
  }
}

/// A sink the optimizer cannot drop: makes the target read the bytes it is handed.
inline volatile std::uint8_t consume_sink = 0;
inline void consume(void const* p, std::size_t n) {
  auto const* b = static_cast<std::uint8_t const*>(p);
  std::uint8_t x = 0;
  for (std::size_t i = 0; i < n; ++i) x = static_cast<std::uint8_t>(x ^ b[i]);
  consume_sink = x;
}

}  // namespace kumiki_fuzz
