// Atomic file writes and read-only memory maps.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "io_test_util.hpp"
#include "kumiki/core/atomic_file.hpp"
#include "kumiki/core/mmap.hpp"

using namespace kumiki;
using io_test::ScratchDir;

namespace {
std::string read_text(std::filesystem::path const& p) {
  auto const b = io_test::read_bytes(p);
  return std::string(reinterpret_cast<char const*>(b.data()), b.size());
}
std::size_t entries_in(std::filesystem::path const& dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] auto const& e : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}
}  // namespace

TEST_CASE("atomic file: commit publishes the bytes and leaves no temporary behind", "[io][atomic]") {
  ScratchDir dir("atomic");
  auto const target = dir / "out.bin";
  write_file_atomic(target, std::string_view("first version"));
  CHECK(read_text(target) == "first version");

  {
    AtomicFile f(target);
    CHECK(f.temp_path().parent_path() == dir.path());  // same directory: rename cannot cross file systems
    f.write(std::string_view("second "));
    f.write_zeros(3);
    // Bigger than the buffer: goes straight through, in order.
    std::vector<std::byte> big(AtomicFile::buffer_bytes + 12345);
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::byte>(i * 7);
    f.write(std::span<std::byte const>(big));
    f.write(std::string_view("end"));
    CHECK(f.bytes_written() == 7 + 3 + big.size() + 3);
    CHECK(read_text(target) == "first version");  // nothing visible before commit
    f.commit();
    CHECK_THROWS_WITH(f.write(std::string_view("x")), Catch::Contains("after commit"));
    CHECK_THROWS_WITH(f.commit(), Catch::Contains("twice"));
    auto const got = io_test::read_bytes(target);
    REQUIRE(got.size() == 7 + 3 + big.size() + 3);
    CHECK(std::memcmp(got.data(), "second \0\0\0", 10) == 0);
    CHECK(std::memcmp(got.data() + 10, big.data(), big.size()) == 0);
    CHECK(std::memcmp(got.data() + 10 + big.size(), "end", 3) == 0);
  }
  CHECK(entries_in(dir.path()) == 1);

  // Permissions follow the umask like an ordinary file (not mkstemp's 0600).
  mode_t const mask = ::umask(022);
  ::umask(mask);
  struct stat st {};
  REQUIRE(::stat(target.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == (0666 & ~mask));
}

TEST_CASE("atomic file: an abandoned write leaves the old file untouched", "[io][atomic]") {
  ScratchDir dir("abandon");
  auto const target = dir / "keep.txt";
  write_file_atomic(target, std::string_view("old"));
  try {
    AtomicFile f(target);
    f.write(std::string_view("half-written new contents"));
    throw std::runtime_error("simulated failure while writing");
  } catch (std::runtime_error const&) {
  }
  CHECK(read_text(target) == "old");
  CHECK(entries_in(dir.path()) == 1);
  CHECK_THROWS_WITH(write_file_atomic(dir / "no_such_dir" / "x", std::string_view("y")),
                    Catch::Contains("cannot create") && Catch::Contains("no_such_dir"));
}

TEST_CASE("memory map: whole file, read-only, empty files and errors", "[io][mmap]") {
  ScratchDir dir("mmap");
  write_file_atomic(dir / "a", std::string_view("hello map"));
  MappedFile m(dir / "a");
  REQUIRE(m.size() == 9);
  CHECK(std::memcmp(m.data(), "hello map", 9) == 0);
  auto const* p = m.data();
  MappedFile moved(std::move(m));
  CHECK(moved.data() == p);  // moving keeps the address
  CHECK(m.data() == nullptr);
  write_file_atomic(dir / "empty", std::string_view(""));
  MappedFile const e(dir / "empty");
  CHECK(e.empty());
  CHECK(e.bytes().empty());
  CHECK_THROWS_WITH(MappedFile(dir / "missing"), Catch::Contains("cannot open") && Catch::Contains("missing"));
  CHECK_THROWS_WITH(MappedFile(dir.path()), Catch::Contains("not a regular file"));
}

TEST_CASE("fsync_directory syncs a directory and reports a missing one", "[io][atomic]") {
  ScratchDir dir("syncdir");
  CHECK_NOTHROW(fsync_directory(dir.path()));
  CHECK_THROWS_WITH(fsync_directory(dir / "absent"), Catch::Contains("cannot open directory") && Catch::Contains("absent"));
}
