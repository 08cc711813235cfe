// kumiki/data/mmap.hpp: read-only memory-mapped files (RAII) and atomic file output (temp, fsync, rename).
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <utility>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace data {

/// A whole file mapped read-only. Empty files map to an empty span (mmap of length 0 is invalid).
/// Move-only; unmaps on destruction.
class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(std::filesystem::path const& path) : path_(path) {
    int const fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) KUMIKI_FAIL("cannot open ", path, ": ", std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      int const e = errno;
      ::close(fd);
      KUMIKI_FAIL("cannot stat ", path, ": ", std::strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      KUMIKI_FAIL(path, " is not a regular file");
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
      if (p == MAP_FAILED) {
        int const e = errno;
        ::close(fd);
        KUMIKI_FAIL("cannot mmap ", path, " (", size_, " bytes): ", std::strerror(e));
      }
      data_ = static_cast<std::byte const*>(p);
    }
    ::close(fd);  // the mapping keeps the file alive
  }
  MappedFile(MappedFile&& o) noexcept
      : path_(std::move(o.path_)), data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  MappedFile& operator=(MappedFile&& o) noexcept {
    if (this != &o) {
      unmap();
      path_ = std::move(o.path_);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  MappedFile(MappedFile const&) = delete;
  MappedFile& operator=(MappedFile const&) = delete;
  ~MappedFile() { unmap(); }

  std::byte const* data() const { return data_; }
  std::size_t size() const { return size_; }
  std::span<std::byte const> bytes() const { return {data_, size_}; }
  std::filesystem::path const& path() const { return path_; }

  /// Hint that the mapping will be read in random order (sample reads jump between documents).
  void advise_random() const {
    if (data_) ::madvise(const_cast<std::byte*>(data_), size_, MADV_RANDOM);
  }

 private:
  void unmap() {
    if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
    data_ = nullptr;
    size_ = 0;
  }

  std::filesystem::path path_;
  std::byte const* data_ = nullptr;
  std::size_t size_ = 0;
};

namespace detail {

/// A temporary name beside `final_path` unique to this process and call, so concurrent writers
/// (several ranks building the same cache) never share a temporary file.
inline std::filesystem::path temp_path_for(std::filesystem::path const& final_path) {
  static std::atomic<std::uint64_t> counter{0};
  auto const now = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  std::string name = final_path.filename().string();
  name += ".tmp.";
  name += std::to_string(::getpid());
  name += '.';
  name += std::to_string(counter.fetch_add(1) ^ (now & 0xffffff));
  return final_path.parent_path() / name;
}

}  // namespace detail

/// A file written under a temporary name and moved to its final name only by commit(): write,
/// fsync, rename, fsync the directory. Destroying an uncommitted AtomicFile removes the temporary,
/// so an interrupted writer never leaves a file under the final name.
class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path final_path)
      : final_(std::move(final_path)), temp_(detail::temp_path_for(final_)) {
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) KUMIKI_FAIL("cannot create ", temp_, ": ", std::strerror(errno));
    buf_.reserve(buffer_bytes);
  }
  AtomicFile(AtomicFile const&) = delete;
  AtomicFile& operator=(AtomicFile const&) = delete;
  ~AtomicFile() { abandon(); }

  /// Appends bytes (buffered).
  void write(void const* p, std::size_t n) {
    KUMIKI_CHECK(fd_ >= 0, "write to ", final_, " after commit or abandon");
    auto const* b = static_cast<char const*>(p);
    if (buf_.size() + n > buffer_bytes) flush();
    if (n >= buffer_bytes) {
      write_all(b, n);
    } else {
      buf_.append(b, n);
    }
    written_ += n;
  }
  template <class T>
  void write_value(T const& v) {
    write(&v, sizeof(T));
  }

  std::uint64_t bytes_written() const { return written_; }
  std::filesystem::path const& final_path() const { return final_; }
  std::filesystem::path const& temp_path() const { return temp_; }

  /// Flushes, fsyncs and renames the temporary onto the final name.
  void commit() {
    KUMIKI_CHECK(fd_ >= 0, "commit of ", final_, " twice");
    flush();
    if (::fsync(fd_) != 0) KUMIKI_FAIL("fsync of ", temp_, " failed: ", std::strerror(errno));
    if (::close(fd_) != 0) {
      fd_ = -1;
      KUMIKI_FAIL("close of ", temp_, " failed: ", std::strerror(errno));
    }
    fd_ = -1;
    std::error_code ec;
    std::filesystem::rename(temp_, final_, ec);
    if (ec) {
      std::filesystem::remove(temp_, ec);
      KUMIKI_FAIL("cannot rename ", temp_, " to ", final_, ": ", ec.message());
    }
    sync_directory(final_.parent_path());
  }

  /// Closes and removes the temporary; the final name is untouched.
  void abandon() noexcept {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
      std::error_code ec;
      std::filesystem::remove(temp_, ec);
    }
  }

 private:
  static constexpr std::size_t buffer_bytes = std::size_t{1} << 20;

  void flush() {
    if (!buf_.empty()) write_all(buf_.data(), buf_.size());
    buf_.clear();
  }
  void write_all(char const* p, std::size_t n) {
    while (n > 0) {
      ssize_t const w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        KUMIKI_FAIL("write to ", temp_, " failed: ", std::strerror(errno));
      }
      p += w;
      n -= static_cast<std::size_t>(w);
    }
  }
  static void sync_directory(std::filesystem::path const& dir) {
    int const fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
  }

  std::filesystem::path final_;
  std::filesystem::path temp_;
  int fd_ = -1;
  std::string buf_;
  std::uint64_t written_ = 0;
};

}  // namespace data
KUMIKI_NAMESPACE_END
