// Indexed dataset: round trips for every dtype, byte-exact .idx against the spec, validation errors,
// randomized corruption, atomic writes.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>

#include "kumiki/data/indexed_dataset.hpp"
#include "test_util.hpp"

namespace kd = kumiki::data;
using kumiki_test::TempDir;
using Catch::Matchers::Contains;

namespace {

// Documents with a varying number of sequences, including an empty sequence and an empty document.
struct Doc {
  std::vector<std::vector<double>> seqs;
};

std::vector<Doc> sample_docs(kd::IndexDType t) {
  // Values span the dtype's range where it has one.
  double lo = 0, hi = 250;
  switch (t) {
    case kd::IndexDType::int8: lo = -128; hi = 127; break;
    case kd::IndexDType::int16: lo = -32768; hi = 32767; break;
    case kd::IndexDType::uint16: lo = 0; hi = 65535; break;
    case kd::IndexDType::int32: lo = -2147483648.0; hi = 2147483647.0; break;
    case kd::IndexDType::int64: lo = -9.0e15; hi = 9.0e15; break;
    case kd::IndexDType::float32: case kd::IndexDType::float64: lo = -3.5; hi = 1e6; break;
    case kd::IndexDType::uint8: lo = 0; hi = 255; break;
  }
  std::mt19937_64 g(static_cast<unsigned>(t));
  std::vector<Doc> docs;
  for (int d = 0; d < 7; ++d) {
    Doc doc;
    int const nseq = d == 3 ? 0 : 1 + d % 3;
    for (int s = 0; s < nseq; ++s) {
      int const len = (d == 1 && s == 0) ? 0 : 1 + static_cast<int>(g() % 50);
      std::vector<double> v(static_cast<std::size_t>(len));
      for (int k = 0; k < len; ++k) {
        if (k == 0) v[0] = lo;
        else if (k == 1) v[1] = hi;
        else v[static_cast<std::size_t>(k)] = std::floor(lo + (hi - lo) * (static_cast<double>(g() % 1000003) / 1000003.0));
      }
      if (t == kd::IndexDType::float32 || t == kd::IndexDType::float64)
        for (auto& x : v) x += 0.25;  // exactly representable fractions
      doc.seqs.push_back(std::move(v));
    }
    docs.push_back(std::move(doc));
  }
  return docs;
}

template <class T>
void round_trip(kd::IndexDType t) {
  TempDir dir("roundtrip");
  auto const prefix = dir / "ds";
  auto const docs = sample_docs(t);
  {
    kd::IndexedDatasetWriter w(prefix, t);
    for (auto const& d : docs) {
      for (auto const& s : d.seqs) {
        std::vector<T> v(s.begin(), s.end());
        w.add_sequence(v);
      }
      w.end_document();
    }
    w.finalize();
  }
  kd::IndexedDataset ds(prefix);
  REQUIRE(ds.dtype() == t);
  REQUIRE(ds.itemsize() == sizeof(T));
  REQUIRE(ds.num_documents() == static_cast<std::int64_t>(docs.size()));
  std::int64_t seq = 0, total = 0;
  for (std::size_t d = 0; d < docs.size(); ++d) {
    auto const [a, b] = ds.document_sequences(static_cast<std::int64_t>(d));
    REQUIRE(a == seq);
    REQUIRE(b - a == static_cast<std::int64_t>(docs[d].seqs.size()));
    for (auto const& s : docs[d].seqs) {
      REQUIRE(ds.sequence_length(seq) == static_cast<std::int32_t>(s.size()));
      std::vector<T> got = ds.template sequence<T>(seq);
      std::vector<T> want(s.begin(), s.end());
      REQUIRE(got == want);
      // Partial reads with conversion to double.
      if (s.size() >= 3) {
        double mid = 0;
        ds.read(seq, 1, 1, &mid);
        REQUIRE(mid == static_cast<double>(want[1]));
      }
      total += static_cast<std::int64_t>(s.size());
      ++seq;
    }
  }
  REQUIRE(ds.num_sequences() == seq);
  REQUIRE(ds.total_tokens() == total);
  REQUIRE(std::filesystem::file_size(kd::bin_path(prefix)) == static_cast<std::uintmax_t>(total) * sizeof(T));
}

template <class T>
void put(std::vector<char>& b, T v) {
  char raw[sizeof(T)];
  std::memcpy(raw, &v, sizeof(T));  // the test machine is little-endian, as the format
  b.insert(b.end(), raw, raw + sizeof(T));
}

// A valid three-document uint16 dataset for the corruption tests; returns prefix.
std::filesystem::path make_small(TempDir const& dir) {
  auto const prefix = dir / "small";
  kumiki_test::write_dataset(prefix, {5, 3, 8, 1});
  return prefix;
}

// Offsets in the small dataset's .idx (N = 4, M = 5).
constexpr std::size_t off_len = 34, off_ptr = 34 + 4 * 4, off_doc = 34 + 12 * 4;

void set_i64(std::vector<char>& b, std::size_t at, std::int64_t v) { std::memcpy(b.data() + at, &v, 8); }
void set_u64(std::vector<char>& b, std::size_t at, std::uint64_t v) { std::memcpy(b.data() + at, &v, 8); }
void set_i32(std::vector<char>& b, std::size_t at, std::int32_t v) { std::memcpy(b.data() + at, &v, 4); }

}  // namespace

TEST_CASE("indexed dataset: writer -> reader round trip for every dtype", "[data][indexed]") {
  round_trip<std::uint8_t>(kd::IndexDType::uint8);
  round_trip<std::int8_t>(kd::IndexDType::int8);
  round_trip<std::int16_t>(kd::IndexDType::int16);
  round_trip<std::int32_t>(kd::IndexDType::int32);
  round_trip<std::int64_t>(kd::IndexDType::int64);
  round_trip<double>(kd::IndexDType::float64);
  round_trip<float>(kd::IndexDType::float32);
  round_trip<std::uint16_t>(kd::IndexDType::uint16);
}

TEST_CASE("indexed dataset: writer output equals a .idx assembled from the spec", "[data][indexed]") {
  TempDir dir("spec");
  auto const prefix = dir / "spec";
  // Two documents: the first of sequences {7, 8, 9} and {10}, the second of {65535, 0}; int32 tokens.
  {
    kd::IndexedDatasetWriter w(prefix, kd::IndexDType::int32);
    w.add_sequence(std::vector<std::int32_t>{7, 8, 9});
    w.add_sequence(std::vector<std::int32_t>{10});
    w.end_document();
    w.add_document(std::vector<std::int32_t>{65535, 0});
    w.finalize();
  }
  std::vector<char> idx = {'M', 'M', 'I', 'D', 'I', 'D', 'X', '\0', '\0'};
  put<std::uint64_t>(idx, 1);        // version
  put<std::uint8_t>(idx, 4);         // int32
  put<std::uint64_t>(idx, 3);        // N sequences
  put<std::uint64_t>(idx, 3);        // M = documents + 1
  for (std::int32_t len : {3, 1, 2}) put(idx, len);
  for (std::int64_t ptr : {0, 12, 16}) put(idx, ptr);
  for (std::int64_t d : {0, 2, 3}) put(idx, d);
  REQUIRE(idx.size() == 34 + 12 * 3 + 8 * 3);
  REQUIRE(kumiki_test::read_bytes(kd::idx_path(prefix)) == idx);
  std::vector<char> bin;
  for (std::int32_t t : {7, 8, 9, 10, 65535, 0}) put(bin, t);
  REQUIRE(kumiki_test::read_bytes(kd::bin_path(prefix)) == bin);

  // The reader accepts the hand-built bytes too, including the optional sequence-mode array.
  idx.insert(idx.end(), {0, 1, 0});
  kumiki_test::write_bytes(kd::idx_path(prefix), idx);
  kd::IndexedDataset ds(prefix);
  REQUIRE(ds.has_sequence_modes());
  REQUIRE(ds.document(0) == std::vector<std::int32_t>{7, 8, 9, 10});
  REQUIRE(ds.document(1) == std::vector<std::int32_t>{65535, 0});
}

TEST_CASE("indexed dataset: each corruption class has its own error", "[data][indexed]") {
  TempDir dir("corrupt");
  auto const prefix = make_small(dir);
  auto const idx_file = kd::idx_path(prefix), bin_file = kd::bin_path(prefix);
  auto const good_idx = kumiki_test::read_bytes(idx_file), good_bin = kumiki_test::read_bytes(bin_file);
  REQUIRE_NOTHROW(kd::IndexedDataset(prefix));

  auto expect = [&](std::vector<char> idx, std::vector<char> bin, std::string const& what) {
    kumiki_test::write_bytes(idx_file, idx);
    kumiki_test::write_bytes(bin_file, bin);
    REQUIRE_THROWS_AS(kd::IndexedDataset(prefix), kumiki::Error);
    REQUIRE_THROWS_WITH(kd::IndexedDataset(prefix), Contains(what) && Contains("small."));
  };
  auto idx = good_idx;
  SECTION("wrong magic") { idx[2] = 'X'; expect(idx, good_bin, "wrong magic"); }
  SECTION("unknown version") { set_u64(idx, 9, 2); expect(idx, good_bin, "unknown version 2"); }
  SECTION("unknown dtype code") {
    idx[17] = 9; expect(idx, good_bin, "unknown dtype code 9");
    idx[17] = 0; expect(idx, good_bin, "unknown dtype code 0");
  }
  SECTION("truncated .idx header") { idx.resize(20); expect(idx, good_bin, "truncated .idx"); }
  SECTION("truncated .idx arrays") { idx.resize(idx.size() - 3); expect(idx, good_bin, "truncated .idx"); }
  SECTION("huge sequence count") { set_u64(idx, 18, ~std::uint64_t{0}); expect(idx, good_bin, "truncated .idx"); }
  SECTION("huge document count") { set_u64(idx, 26, std::uint64_t{1} << 61); expect(idx, good_bin, "truncated .idx"); }
  SECTION("trailing garbage") { idx.push_back(0); expect(idx, good_bin, "trailing bytes"); }
  SECTION("truncated .bin") {
    auto bin = good_bin;
    bin.resize(bin.size() - 2);
    expect(idx, bin, "truncated .bin");
  }
  SECTION(".bin of odd size") {
    auto bin = good_bin;
    bin.pop_back();
    expect(idx, bin, "truncated .bin");
  }
  SECTION("pointer outside .bin") { set_i64(idx, off_ptr + 8 * 1, 1 << 20); expect(idx, good_bin, "runs outside .bin"); }
  SECTION("negative pointer") { set_i64(idx, off_ptr + 8 * 2, -2); expect(idx, good_bin, "negative pointer"); }
  SECTION("length outside .bin") { set_i32(idx, off_len + 4 * 1, 1000); expect(idx, good_bin, "runs outside .bin"); }
  SECTION("negative length") { set_i32(idx, off_len, -1); expect(idx, good_bin, "negative length"); }
  SECTION("document indices not starting at 0") { set_i64(idx, off_doc, 1); expect(idx, good_bin, "must start at 0"); }
  SECTION("document indices not monotonic") { set_i64(idx, off_doc + 8 * 2, 0); expect(idx, good_bin, "not monotonic"); }
  SECTION("document indices not ending at the sequence count") {
    set_i64(idx, off_doc + 8 * 4, 3);
    expect(idx, good_bin, "must end at the sequence count");
  }
  SECTION("missing .bin") {
    std::filesystem::remove(bin_file);
    REQUIRE_THROWS_WITH(kd::IndexedDataset(prefix), Contains("cannot open") && Contains("small.bin"));
  }
}

TEST_CASE("indexed dataset: randomized corruption never reads out of bounds", "[data][indexed][fuzz]") {
  TempDir dir("fuzz");
  auto const prefix = dir / "f";
  kumiki_test::write_dataset(prefix, {5, 0, 12, 3, 7, 1, 9});
  auto const idx_file = kd::idx_path(prefix), bin_file = kd::bin_path(prefix);
  auto const good_idx = kumiki_test::read_bytes(idx_file), good_bin = kumiki_test::read_bytes(bin_file);
  std::mt19937_64 g(42);
  int valid = 0, errors = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    auto idx = good_idx;
    auto bin = good_bin;
    int const kind = static_cast<int>(g() % 6);
    int const edits = 1 + static_cast<int>(g() % 4);
    for (int e = 0; e < edits; ++e) {
      switch (kind) {
        case 0: idx[g() % idx.size()] = static_cast<char>(g()); break;                     // any byte
        case 1: idx[34 + g() % (idx.size() - 34)] ^= static_cast<char>(1u << (g() % 8)); break;  // one bit of the arrays
        case 2: idx.resize(g() % (idx.size() + 1)); if (idx.empty()) idx.push_back('M'); break;
        case 3: bin.resize(g() % (bin.size() + 1)); break;
        case 4: set_u64(idx, 18 + 8 * (g() % 2), g() % 16); break;                       // small N or M
        case 5: {  // a plausible-looking value in a random int64 slot
          std::size_t const at = 34 + g() % (idx.size() - 34 - 7);
          set_i64(idx, at, static_cast<std::int64_t>(g() % 64) - 8);
          break;
        }
      }
    }
    kumiki_test::write_bytes(idx_file, idx);
    kumiki_test::write_bytes(bin_file, bin);
    try {
      kd::IndexedDataset ds(prefix);
      // Every accessor over the whole dataset must stay inside the .bin it validated.
      std::uintmax_t const bin_size = bin.size();
      std::int64_t sum = 0;
      for (std::int64_t s = 0; s < ds.num_sequences(); ++s) {
        auto const b = ds.sequence_bytes(s);
        REQUIRE(static_cast<std::uintmax_t>(ds.sequence_pointer(s)) + b.size() <= bin_size);
        for (auto v : ds.sequence<std::int64_t>(s)) sum += v;
      }
      for (std::int64_t d = 0; d < ds.num_documents(); ++d) sum += static_cast<std::int64_t>(ds.document(d).size());
      REQUIRE(sum >= 0);
      ++valid;
    } catch (kumiki::Error const&) {
      ++errors;
    }
  }
  INFO("valid " << valid << ", rejected " << errors);
  REQUIRE(errors > 1000);
  REQUIRE(valid > 10);
}

TEST_CASE("indexed dataset: an unfinished writer leaves nothing under the final names", "[data][indexed]") {
  TempDir dir("atomic");
  auto const prefix = dir / "ds";
  SECTION("writer destroyed before finalize (exception path)") {
    {
      kd::IndexedDatasetWriter w(prefix, kd::IndexDType::uint16);
      w.add_document(std::vector<std::int32_t>{1, 2, 3});
      REQUIRE_THROWS_AS(w.add_document(std::vector<std::int32_t>{70000}), kumiki::Error);  // does not fit uint16
    }
    REQUIRE(std::filesystem::is_empty(dir.path));
  }
  SECTION("process killed while writing") {
    pid_t const pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      kd::IndexedDatasetWriter w(prefix, kd::IndexDType::uint16);
      std::vector<std::int32_t> doc(1 << 16, 7);
      for (int i = 0; i < 64; ++i) w.add_document(doc);
      ::raise(SIGKILL);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    REQUIRE(WIFSIGNALED(status));
    REQUIRE_FALSE(std::filesystem::exists(kd::idx_path(prefix)));
    REQUIRE_FALSE(std::filesystem::exists(kd::bin_path(prefix)));
    REQUIRE_FALSE(std::filesystem::is_empty(dir.path));  // only the temporary .bin is there
  }
  SECTION("finalize publishes both files and leaves no temporaries") {
    kd::IndexedDatasetWriter w(prefix, kd::IndexDType::uint16);
    w.add_document(std::vector<std::int32_t>{1, 2, 3});
    w.finalize();
    int files = 0;
    for ([[maybe_unused]] auto const& e : std::filesystem::directory_iterator(dir.path)) ++files;
    REQUIRE(files == 2);
    REQUIRE(kd::IndexedDataset(prefix).document(0) == std::vector<std::int32_t>{1, 2, 3});
  }
}

TEST_CASE("indexed dataset: float values read as integer tokens must fit the integer type", "[data][indexed]") {
  // Converting NaN, an infinity or an out-of-range float to an integer is undefined behaviour: a
  // float .bin read as token ids (what the GPT dataset does) is checked value by value instead.
  TempDir dir("floattokens");
  auto const prefix = dir.path / "f";
  {
    kd::IndexedDatasetWriter w(prefix, kd::IndexDType::float64);
    w.add_document(std::vector<double>{1.0, 2.75, -3.5});
    w.add_document(std::vector<double>{1e300});
    w.add_document(std::vector<double>{std::nan("")});
    w.add_document(std::vector<double>{2147483647.5, -2147483648.75, 2147483648.0});
    w.finalize();
  }
  kd::IndexedDataset const ds(prefix);
  CHECK(ds.sequence<std::int32_t>(0) == std::vector<std::int32_t>{1, 2, -3});  // truncated toward zero
  CHECK(ds.sequence<double>(1) == std::vector<double>{1e300});
  REQUIRE_THROWS_AS(ds.sequence<std::int32_t>(1), kumiki::InputError);
  CHECK_THROWS_WITH(ds.sequence<std::int32_t>(1), Contains("f.bin") &&
                                                      Contains("sequence 1 holds the float64 value 1e+300 at token 0") &&
                                                      Contains("not a valid 32-bit integer token id"));
  CHECK_THROWS_WITH(ds.sequence<std::int64_t>(2), Contains("value nan"));
  CHECK_THROWS_WITH(ds.document<std::uint16_t>(0), Contains("value -3 at token 2"));
  // int32's edges: 2147483647.5 and -2147483648.75 truncate into range, 2147483648 does not.
  CHECK_THROWS_WITH(ds.sequence<std::int32_t>(3), Contains("value 2.14748e+09 at token 2"));
  std::int32_t two[2];
  ds.read(3, 0, 2, two);
  CHECK(two[0] == 2147483647);
  CHECK(two[1] == -2147483647 - 1);
}
