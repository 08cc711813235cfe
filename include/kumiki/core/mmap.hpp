// kumiki/core/mmap.hpp: RAII read-only memory map of a whole file (POSIX mmap).
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <utility>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"

KUMIKI_NAMESPACE_BEGIN

/// A whole regular file mapped read-only (PROT_READ, MAP_PRIVATE). The descriptor is closed right
/// after mapping; the mapping lives until destruction. Move-only; moving keeps the address, so views
/// into `bytes()` stay valid when the object moves. An empty file maps to an empty span.
/// The pages are the file: if another process truncates it while mapped, touching the lost pages
/// raises SIGBUS, as with any mmap. Writers in kumiki replace files by rename (io/atomic_file.hpp),
/// which never truncates a file a reader has mapped.
class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(std::filesystem::path path) : path_(std::move(path)) {
    int const fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) KUMIKI_FAIL("cannot open '", path_.string(), "': ", std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      int const err = errno;
      ::close(fd);
      KUMIKI_FAIL("cannot stat '", path_.string(), "': ", std::strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      KUMIKI_FAIL("'", path_.string(), "' is not a regular file");
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        int const err = errno;
        ::close(fd);
        KUMIKI_FAIL("cannot map '", path_.string(), "' (", size_, " bytes): ", std::strerror(err));
      }
      data_ = static_cast<std::byte const*>(p);
    }
    ::close(fd);
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
  bool empty() const { return size_ == 0; }

  /// Hints the kernel that reads will jump around (no read-ahead); best effort.
  void advise_random() const {
    if (data_) ::madvise(const_cast<std::byte*>(data_), size_, MADV_RANDOM);
  }
  /// Hints the kernel that the whole file will be read front to back (read-ahead); best effort.
  void advise_sequential() const {
    if (data_) ::madvise(const_cast<std::byte*>(data_), size_, MADV_SEQUENTIAL);
  }

 private:
  void unmap() noexcept {
    if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
    data_ = nullptr;
    size_ = 0;
  }

  std::filesystem::path path_;
  std::byte const* data_ = nullptr;
  std::size_t size_ = 0;
};

KUMIKI_NAMESPACE_END
