// kumiki/core/atomic_file.hpp: write a file so that readers see either the old or the complete new one.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"

KUMIKI_NAMESPACE_BEGIN

namespace detail {

inline void fsync_directory(std::filesystem::path const& dir) {
  int const fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) KUMIKI_FAIL("cannot open directory '", dir.string(), "' to sync it: ", std::strerror(errno));
  int const rc = ::fsync(fd);
  int const err = errno;
  ::close(fd);
  // Some file systems (and /proc-like mounts) cannot sync directories; that is not a write failure.
  if (rc != 0 && err != EINVAL && err != EROFS)
    KUMIKI_FAIL("fsync of directory '", dir.string(), "' failed: ", std::strerror(err));
}

}  // namespace detail

/// Makes a directory's entries (files created, renamed or removed in it) durable: fsync on the
/// directory itself. File systems that cannot sync directories are not an error.
inline void fsync_directory(std::filesystem::path const& dir) { detail::fsync_directory(dir); }

/// Writes `target` atomically: the bytes go to a temporary file in the same directory
/// (`.<name>.<pid>.<n>.tmp`, created with O_EXCL and mode 0666 & ~umask), and `commit()` flushes
/// them, fsyncs the file, renames it over `target` and fsyncs the directory, so a crash at any point
/// leaves either the old file or the complete new one. Destroying an uncommitted AtomicFile (an
/// exception while writing) removes the temporary file and leaves `target` untouched.
/// Writes are buffered (1 MiB); large writes go straight to the file. Move-only.
class AtomicFile {
 public:
  static constexpr std::size_t buffer_bytes = std::size_t{1} << 20;

  explicit AtomicFile(std::filesystem::path target) : target_(std::move(target)) {
    KUMIKI_REQUIRE(!target_.filename().empty(), "atomic write target '", target_.string(), "' names no file");
    std::filesystem::path dir = target_.parent_path();
    if (dir.empty()) dir = ".";
    static std::atomic<unsigned> counter{0};
    for (int attempt = 0; attempt < 100; ++attempt) {
      std::string name = ".";  // built by appends: g++ 12 warns falsely (-Wrestrict) on chained operator+
      name += target_.filename().string();
      name += '.';
      name += std::to_string(::getpid());
      name += '.';
      name += std::to_string(counter.fetch_add(1));
      name += ".tmp";
      temp_ = dir / name;
      fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ >= 0) break;
      if (errno != EEXIST) KUMIKI_FAIL("cannot create '", temp_.string(), "': ", std::strerror(errno));
    }
    if (fd_ < 0) KUMIKI_FAIL("cannot create a temporary file beside '", target_.string(), "'");
    buffer_.reserve(buffer_bytes);
  }
  AtomicFile(AtomicFile&& o) noexcept
      : target_(std::move(o.target_)),
        temp_(std::exchange(o.temp_, {})),
        fd_(std::exchange(o.fd_, -1)),
        written_(std::exchange(o.written_, 0)),
        buffer_(std::move(o.buffer_)) {}
  AtomicFile& operator=(AtomicFile&&) = delete;
  AtomicFile(AtomicFile const&) = delete;
  AtomicFile& operator=(AtomicFile const&) = delete;
  ~AtomicFile() { abandon(); }

  /// Appends `n` bytes.
  void write(void const* data, std::size_t n) {
    KUMIKI_CHECK(fd_ >= 0, "write to '", target_.string(), "' after commit");
    auto const* p = static_cast<std::byte const*>(data);
    if (buffer_.size() + n <= buffer_bytes) {
      buffer_.insert(buffer_.end(), p, p + n);
    } else {
      flush();
      if (n < buffer_bytes)
        buffer_.insert(buffer_.end(), p, p + n);
      else
        write_all(p, n);
    }
    written_ += n;
  }
  void write(std::string_view s) { write(s.data(), s.size()); }
  /// Appends the bytes of a trivially copyable value (little-endian on the machines kumiki supports).
  template <class T>
    requires std::is_trivially_copyable_v<T>
  void write_value(T const& v) {
    write(&v, sizeof(T));
  }
  void write(std::span<std::byte const> s) { write(s.data(), s.size()); }
  /// Appends `n` zero bytes (padding).
  void write_zeros(std::size_t n) {
    static constexpr std::byte zeros[256] = {};
    while (n > 0) {
      std::size_t const k = n < sizeof(zeros) ? n : sizeof(zeros);
      write(zeros, k);
      n -= k;
    }
  }

  /// Bytes appended so far.
  std::size_t bytes_written() const { return written_; }
  std::filesystem::path const& target() const { return target_; }
  std::filesystem::path const& temp_path() const { return temp_; }

  /// Makes the file visible under its target name, durably. Nothing can be written afterwards.
  void commit() {
    KUMIKI_CHECK(fd_ >= 0, "commit of '", target_.string(), "' twice");
    flush();
    if (::fsync(fd_) != 0) fail_and_abandon("fsync of '", temp_.string(), "' failed: ", std::strerror(errno));
    int const rc = ::close(std::exchange(fd_, -1));
    if (rc != 0) fail_and_abandon("close of '", temp_.string(), "' failed: ", std::strerror(errno));
    if (::rename(temp_.c_str(), target_.c_str()) != 0)
      fail_and_abandon("rename of '", temp_.string(), "' to '", target_.string(), "' failed: ", std::strerror(errno));
    temp_.clear();
    std::filesystem::path dir = target_.parent_path();
    detail::fsync_directory(dir.empty() ? std::filesystem::path(".") : dir);
  }

 private:
  void flush() {
    if (!buffer_.empty()) write_all(buffer_.data(), buffer_.size());
    buffer_.clear();
  }
  void write_all(std::byte const* p, std::size_t n) {
    while (n > 0) {
      ssize_t const k = ::write(fd_, p, n);
      if (k < 0) {
        if (errno == EINTR) continue;
        fail_and_abandon("write to '", temp_.string(), "' failed: ", std::strerror(errno));
      }
      p += k;
      n -= static_cast<std::size_t>(k);
    }
  }
  template <class... Args>
  [[noreturn]] void fail_and_abandon(Args const&... args) {
    std::string const msg = kumiki::detail::concat(args...);
    abandon();
    KUMIKI_FAIL(msg);
  }
  void abandon() noexcept {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
    if (!temp_.empty()) ::unlink(temp_.c_str());
    temp_.clear();
  }

  std::filesystem::path target_;
  std::filesystem::path temp_;
  int fd_ = -1;
  std::size_t written_ = 0;
  std::vector<std::byte> buffer_;
};

/// Replaces `target` atomically with `bytes` (see AtomicFile).
inline void write_file_atomic(std::filesystem::path const& target, std::span<std::byte const> bytes) {
  AtomicFile f(target);
  f.write(bytes);
  f.commit();
}
inline void write_file_atomic(std::filesystem::path const& target, std::string_view text) {
  AtomicFile f(target);
  f.write(text);
  f.commit();
}

KUMIKI_NAMESPACE_END
