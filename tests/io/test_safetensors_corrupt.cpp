// safetensors validation: every kind of corrupt file gives its own error, and thousands of random
// mutations of valid files either parse into views inside the file or throw kumiki::Error
// (run this under the debug-asan preset to prove nothing reads out of bounds).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <memory>
#include <string>
#include <vector>

#include "io_test_util.hpp"
#include "kumiki/core/philox.hpp"
#include "kumiki/io/safetensors.hpp"

using namespace kumiki;
using io_test::make_image;
using io_test::ramp;

namespace {

// Parses `image` from an exact-size heap copy, so that any read past its end is a heap overflow
// that AddressSanitizer reports.
struct ExactCopy {
  std::unique_ptr<std::byte[]> p;
  std::size_t n;
  explicit ExactCopy(std::vector<std::byte> const& v) : p(new std::byte[v.size() ? v.size() : 1]), n(v.size()) {
    if (n) std::memcpy(p.get(), v.data(), n);
  }
  std::span<std::byte const> span() const { return {p.get(), n}; }
};

void parse(std::vector<std::byte> const& image) {
  ExactCopy const c(image);
  io::SafetensorsView const v(c.span(), "corrupt.safetensors");
  (void)v;
}

void parse_header(std::string const& header, std::size_t data_bytes) { parse(make_image(header, ramp(data_bytes))); }

std::string entry(std::string const& name, std::string const& dtype, std::string const& shape, std::string const& offsets) {
  return "\"" + name + R"(":{"dtype":")" + dtype + R"(","shape":)" + shape + R"(,"data_offsets":)" + offsets + "}";
}

}  // namespace

TEST_CASE("safetensors corrupt files: each problem has its specific error", "[io][safetensors][corrupt]") {
  using Catch::Contains;
  std::string const good = "{" + entry("w", "F32", "[2,2]", "[0,16]") + "}";
  REQUIRE_NOTHROW(parse_header(good, 16));

  // Sizes and the header length.
  CHECK_THROWS_WITH(parse({}), Contains("file is 0 bytes, shorter than the 8-byte header length"));
  CHECK_THROWS_WITH(parse(std::vector<std::byte>(7)), Contains("file is 7 bytes"));
  auto too_long = make_image(good, ramp(16));
  too_long[0] = std::byte{0xff};  // header length 0x...ff > file
  CHECK_THROWS_WITH(parse(too_long), Contains("header length") && Contains("runs past the end of the file"));
  auto absurd = make_image(good, ramp(16));
  absurd[7] = std::byte{0x80};
  CHECK_THROWS_WITH(parse(absurd), Contains("exceeds the 100000000-byte limit"));
  auto truncated = make_image(good, ramp(16));
  truncated.resize(20);
  CHECK_THROWS_WITH(parse(truncated), Contains("runs past the end of the file (20 bytes)"));
  // The message names the file.
  CHECK_THROWS_WITH(parse({}), Contains("safetensors 'corrupt.safetensors'"));

  // JSON syntax and structure.
  CHECK_THROWS_WITH(parse_header(R"({"w": {"dtype": "F32",)", 0), Contains("malformed JSON header"));
  CHECK_THROWS_WITH(parse_header("", 0), Contains("malformed JSON header"));
  CHECK_THROWS_WITH(parse_header("{\"w\xff\": 1}", 0), Contains("malformed JSON header"));  // not UTF-8
  CHECK_THROWS_WITH(parse_header("[1, 2]", 0), Contains("header is not a JSON object"));
  CHECK_THROWS_WITH(parse_header(R"({"w": [1]})", 0), Contains("entry 'w' is not a JSON object"));
  CHECK_THROWS_WITH(parse_header(std::string(40, '[') + std::string(40, ']'), 0), Contains("nested deeper than 16 levels"));
  CHECK_THROWS_WITH(parse_header("{" + entry("w", "F32", "[2]", "[0,8]") + "," + entry("w", "F32", "[2]", "[8,16]") + "}", 16),
                    Contains("duplicate key 'w'"));
  CHECK_THROWS_WITH(parse_header(R"({"w":{"dtype":"F32","dtype":"I32","shape":[2],"data_offsets":[0,8]}})", 8),
                    Contains("duplicate key 'dtype'"));

  // __metadata__.
  CHECK_THROWS_WITH(parse_header(R"({"__metadata__": ["a"]})", 0), Contains("__metadata__ is not a JSON object"));
  CHECK_THROWS_WITH(parse_header(R"({"__metadata__": {"a": 1}})", 0), Contains("__metadata__ value of 'a' is not a string"));
  REQUIRE_NOTHROW(parse_header(R"({"__metadata__": {"a": "1"}})", 0));

  // Fields missing or of the wrong type.
  CHECK_THROWS_WITH(parse_header(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", 8), Contains("tensor 'w' has no dtype"));
  CHECK_THROWS_WITH(parse_header(R"({"w":{"dtype":7,"shape":[2],"data_offsets":[0,8]}})", 8), Contains("dtype of tensor 'w' is not a string"));
  CHECK_THROWS_WITH(parse_header(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", 8), Contains("tensor 'w' has no shape"));
  CHECK_THROWS_WITH(parse_header(R"({"w":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", 8), Contains("shape of tensor 'w' is not an array"));
  CHECK_THROWS_WITH(parse_header(R"({"w":{"dtype":"F32","shape":[2]}})", 8), Contains("tensor 'w' has no data_offsets"));
  CHECK_THROWS_WITH(parse_header(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8), Contains("data_offsets of tensor 'w' is not [begin, end]"));
  CHECK_THROWS_WITH(parse_header(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":{"a":1}}})", 8), Contains("is not [begin, end]"));
  CHECK_THROWS_WITH(parse_header(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,"8"]}})", 8), Contains("data_offsets[1] of tensor 'w' is not an integer"));

  // dtype.
  CHECK_THROWS_WITH(parse_header("{" + entry("w", "BOOL", "[2]", "[0,2]") + "}", 2), Contains("unknown or unsupported dtype 'BOOL'"));
  CHECK_THROWS_WITH(parse_header("{" + entry("w", "F8_E4M3", "[2]", "[0,2]") + "}", 2), Contains("unsupported dtype 'F8_E4M3'"));
  CHECK_THROWS_WITH(parse_header("{" + entry("w", "float32", "[2]", "[0,8]") + "}", 8), Contains("unsupported dtype 'float32'"));

  // Shapes.
  CHECK_THROWS_WITH(parse_header("{" + entry("w", "F32", "[-2]", "[0,8]") + "}", 8), Contains("shape[0] of tensor 'w' is negative (-2)"));
  CHECK_THROWS_WITH(parse_header("{" + entry("w", "F32", "[2.0]", "[0,8]") + "}", 8), Contains("shape[0] of tensor 'w' is not an integer"));
  CHECK_THROWS_WITH(parse_header("{" + entry("w", "F32", "[1,1,1,1,1,1,2]", "[0,8]") + "}", 8), Contains("has rank 7, kumiki supports at most 6"));
  CHECK_THROWS_WITH(parse_header("{" + entry("w", "F32", "[4294967296,4294967296]", "[0,8]") + "}", 8), Contains("overflows 64-bit byte counts"));
  CHECK_THROWS_WITH(parse_header("{" + entry("w", "F32", "[18446744073709551615]", "[0,8]") + "}", 8), Contains("is too large"));
  CHECK_THROWS_WITH(parse_header("{" + entry("w", "F32", "[1e3]", "[0,8]") + "}", 8), Contains("not an integer"));
  // A zero extent makes an empty tensor, but its other extents must still multiply to a count int64
  // holds: Shape::numel() multiplies them all (fuzz finding: signed overflow, undefined behaviour).
  REQUIRE_NOTHROW(parse_header("{" + entry("w", "F32", "[4294967296,0,2]", "[0,0]") + "}", 0));
  CHECK_THROWS_WITH(parse_header("{" + entry("w", "F32", "[4294967296,4294967296,0]", "[0,0]") + "}", 0),
                    Contains("shape of tensor 'w' overflows 64-bit byte counts"));
  CHECK_THROWS_WITH(parse_header("{" + entry("w", "F32", "[0,4294967296,4294967296]", "[0,0]") + "}", 0),
                    Contains("overflows"));

  // Offsets.
  CHECK_THROWS_WITH(parse_header("{" + entry("w", "F32", "[2]", "[8,0]") + "}", 8), Contains("data_offsets [8, 0] of tensor 'w' end before they begin"));
  CHECK_THROWS_WITH(parse_header("{" + entry("w", "F32", "[2]", "[0,8]") + "}", 4), Contains("run past the data section (4 bytes)"));
  CHECK_THROWS_WITH(parse_header("{" + entry("w", "F32", "[2]", "[-1,7]") + "}", 8), Contains("data_offsets[0] of tensor 'w' is negative"));
  CHECK_THROWS_WITH(parse_header("{" + entry("w", "F32", "[2]", "[0,12]") + "}", 12), Contains("tensor 'w' has 12 bytes but F32 x [2] needs 8"));
  CHECK_THROWS_WITH(parse_header("{" + entry("w", "BF16", "[3]", "[0,4]") + "}", 4), Contains("has 4 bytes but BF16 x [3] needs 6"));
  CHECK_THROWS_WITH(parse_header("{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "F32", "[2]", "[4,12]") + "}", 12),
                    Contains("tensor 'b' [4, 12) overlaps tensor 'a' which ends at 8"));
  CHECK_THROWS_WITH(parse_header("{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "F32", "[2]", "[0,8]") + "}", 8),
                    Contains("overlaps"));
  CHECK_THROWS_WITH(parse_header("{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "F32", "[2]", "[12,20]") + "}", 20),
                    Contains("data bytes [8, 12) belong to no tensor (hole before 'b')"));
  CHECK_THROWS_WITH(parse_header("{" + entry("a", "F32", "[2]", "[4,12]") + "}", 12), Contains("data bytes [0, 4) belong to no tensor"));
  CHECK_THROWS_WITH(parse_header("{" + entry("a", "F32", "[2]", "[0,8]") + "}", 9), Contains("data section has 1 trailing bytes"));
  // Empty tensors may sit at a tensor boundary, not inside a tensor.
  REQUIRE_NOTHROW(parse_header("{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("e", "F32", "[0]", "[8,8]") + "," +
                                   entry("b", "F32", "[1]", "[8,12]") + "}", 12));
  CHECK_THROWS_WITH(parse_header("{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("e", "F32", "[0]", "[4,4]") + "}", 8),
                    Contains("tensor 'e' [4, 4) overlaps tensor 'a'"));
}

TEST_CASE("safetensors corrupt file on disk: the error names the path", "[io][safetensors][corrupt]") {
  io_test::ScratchDir dir("corruptfile");
  io_test::write_bytes(dir / "bad.safetensors", make_image("{\"a\":", {}));
  CHECK_THROWS_WITH(io::SafetensorsFile(dir / "bad.safetensors"),
                    Catch::Contains((dir / "bad.safetensors").string()) && Catch::Contains("malformed JSON header"));
  io_test::write_bytes(dir / "empty.safetensors", {});
  CHECK_THROWS_WITH(io::SafetensorsFile(dir / "empty.safetensors"), Catch::Contains("file is 0 bytes"));
  CHECK_THROWS_WITH(io::SafetensorsFile(dir / "missing.safetensors"), Catch::Contains("cannot open") && Catch::Contains("missing.safetensors"));
  CHECK_THROWS_WITH(io::SafetensorsFile(dir.path()), Catch::Contains("is not a regular file"));
}

namespace {

// A random valid file written by kumiki's writer: a few tensors of random dtypes and shapes.
std::vector<std::byte> random_valid_image(PhiloxStream const& rng, std::uint64_t& k, io_test::ScratchDir const& dir) {
  DType const dtypes[] = {DType::f32, DType::bf16, DType::f16, DType::i32, DType::i64, DType::u8, DType::f64};
  int const n = 1 + static_cast<int>(rng.u32(k++) % 4);
  std::vector<std::vector<std::byte>> storage;
  std::vector<io::NamedTensor> ts;
  for (int i = 0; i < n; ++i) {
    DType const d = dtypes[rng.u32(k++) % 7];
    int const rank = static_cast<int>(rng.u32(k++) % 4);
    std::vector<std::int64_t> dims;
    for (int r = 0; r < rank; ++r) dims.push_back(static_cast<std::int64_t>(rng.u32(k++) % 5));
    Shape const s = Shape::from_range(dims.begin(), dims.end());
    storage.emplace_back(static_cast<std::size_t>(s.numel()) * dtype_size(d));
    for (auto& b : storage.back()) b = static_cast<std::byte>(rng.u32(k++));
    ts.push_back({"t" + std::to_string(i), AnyView{storage.back().data(), d, s, DeviceKind::cpu}});
  }
  io::Metadata meta;
  if (rng.u32(k++) % 2) meta["format"] = "pt";
  auto const path = dir / "base.safetensors";
  io::write_safetensors(path, ts, meta);
  return io_test::read_bytes(path);
}

// A mutation that keeps the JSON valid and the header length right, editing the tensor table itself
// (shifted or copied offsets, other dtypes and shapes, removed entries), so the layout checks behind
// the JSON parse are exercised.
template <class R>
std::vector<std::byte> mutate_table_json(nlohmann::ordered_json& h, std::vector<std::byte> const& img, std::uint64_t n, R&& r);

std::vector<std::byte> mutate_table(std::vector<std::byte> const& img, PhiloxStream const& rng, std::uint64_t& k) {
  auto r = [&](std::uint64_t m) { return m ? static_cast<std::size_t>(rng.u32(k++) % m) : std::size_t{0}; };
  std::uint64_t n = 0;
  if (img.size() < 8) return img;
  std::memcpy(&n, img.data(), 8);
  if (n > img.size() - 8) return img;
  auto const* text = reinterpret_cast<char const*>(img.data() + 8);
  nlohmann::ordered_json h = nlohmann::ordered_json::parse(text, text + n, nullptr, false);
  if (!h.is_object()) return img;  // an earlier mutation broke the JSON
  try {
    return mutate_table_json(h, img, n, r);
  } catch (nlohmann::json::exception const&) {
    return img;  // an earlier mutation changed a field's type
  }
}

template <class R>
std::vector<std::byte> mutate_table_json(nlohmann::ordered_json& h, std::vector<std::byte> const& img, std::uint64_t n, R&& r) {
  std::vector<std::string> names;
  for (auto const& [key, value] : h.items())
    if (key != "__metadata__") names.push_back(key);
  if (names.empty()) return img;
  auto& t = h[names[r(names.size())]];
  switch (r(5)) {
    case 0: {  // shift both offsets together: overlap with a neighbour, or a hole
      long const deltas[] = {-8, -4, -2, -1, 1, 2, 4, 8};
      long const d = deltas[r(8)];
      for (int i = 0; i < 2; ++i) {
        auto& o = t["data_offsets"][i];
        if (o.is_number_unsigned() && o.template get<std::uint64_t>() < (std::uint64_t{1} << 40))  // earlier edits may have made it anything
          o = std::max(0L, o.template get<long>() + d);
      }
      break;
    }
    case 1: t["data_offsets"] = h[names[r(names.size())]]["data_offsets"]; break;  // share another's bytes
    case 2: {
      char const* dtypes[] = {"F32", "BF16", "F16", "I64", "U8", "F64", "BOOL", "F8_E5M2", ""};
      t["dtype"] = dtypes[r(9)];
      break;
    }
    case 3: {
      if (t["shape"].empty()) t["shape"].push_back(r(4));
      else t["shape"][r(t["shape"].size())] = r(6);
      break;
    }
    default: h.erase(names[r(names.size())]); break;  // the data stays: a hole or trailing bytes
  }
  std::string const header = h.dump();
  std::vector<std::byte> data(img.begin() + static_cast<std::ptrdiff_t>(8 + n), img.end());
  return make_image(header, data);
}

// One random mutation: byte flips, truncation, extension, header-length edits, digit rewrites, splices.
std::vector<std::byte> mutate(std::vector<std::byte> img, PhiloxStream const& rng, std::uint64_t& k) {
  auto r = [&](std::uint64_t m) { return m ? static_cast<std::size_t>(rng.u32(k++) % m) : std::size_t{0}; };
  switch (r(10)) {
    case 8:
    case 9: img = mutate_table(img, rng, k); break;
    case 0: {  // flip random bytes anywhere
      std::size_t const flips = 1 + r(4);
      for (std::size_t i = 0; i < flips && !img.empty(); ++i) img[r(img.size())] ^= static_cast<std::byte>(1u << r(8));
      break;
    }
    case 1: img.resize(r(img.size() + 1)); break;  // truncate
    case 2: {                                      // append junk
      std::size_t const n = 1 + r(16);
      for (std::size_t i = 0; i < n; ++i) img.push_back(static_cast<std::byte>(rng.u32(k++)));
      break;
    }
    case 3: {  // rewrite the header length
      std::uint64_t v = 0;
      switch (r(4)) {
        case 0: v = r(img.size() + 16); break;
        case 1: {
          std::uint64_t const hi = rng.u32(k++);
          v = (hi << 32) | rng.u32(k++);
          break;
        }
        case 2: v = img.size() - 8 + (r(3) - 1); break;
        default: v = 0; break;
      }
      if (img.size() >= 8) std::memcpy(img.data(), &v, 8);
      break;
    }
    case 4: case 5: {  // rewrite a run of digits in the JSON with another number
      std::vector<std::size_t> digits;
      for (std::size_t i = 8; i < img.size() && i < 8 + 4096; ++i) {
        char const c = static_cast<char>(img[i]);
        if (c >= '0' && c <= '9') digits.push_back(i);
      }
      if (digits.empty()) break;
      std::size_t b = digits[r(digits.size())], e = b;
      while (e < img.size() && static_cast<char>(img[e]) >= '0' && static_cast<char>(img[e]) <= '9') ++e;
      std::string const choices[] = {"0", "1", "7", "8", "16", "-1", "99999999999999999999", "4294967296",
                                     "18446744073709551615", "1.5", "1e9", std::to_string(r(64))};
      std::string const repl = choices[r(12)];
      std::vector<std::byte> out(img.begin(), img.begin() + static_cast<std::ptrdiff_t>(b));
      for (char c : repl) out.push_back(static_cast<std::byte>(c));
      out.insert(out.end(), img.begin() + static_cast<std::ptrdiff_t>(e), img.end());
      // Keep the header length consistent so the JSON, not the length, is what is tested.
      std::uint64_t n = 0;
      std::memcpy(&n, out.data(), 8);
      n = n + repl.size() - (e - b);
      std::memcpy(out.data(), &n, 8);
      img = std::move(out);
      break;
    }
    case 6: {  // replace a JSON structural character
      char const structural[] = {'{', '}', '[', ']', ',', ':', '"', ' ', 'F', 'I'};
      std::size_t const hdr_end = img.size() < 8 + 2048 ? img.size() : 8 + 2048;
      if (hdr_end > 8) img[8 + r(hdr_end - 8)] = static_cast<std::byte>(structural[r(10)]);
      break;
    }
    default: {  // delete a random slice
      if (img.empty()) break;
      std::size_t const b = r(img.size()), len = 1 + r(8);
      img.erase(img.begin() + static_cast<std::ptrdiff_t>(b),
                img.begin() + static_cast<std::ptrdiff_t>(b + len < img.size() ? b + len : img.size()));
      break;
    }
  }
  return img;
}

}  // namespace

TEST_CASE("safetensors randomized corruption: parse inside the file or throw kumiki::Error",
          "[io][safetensors][corrupt][fuzz]") {
  io_test::ScratchDir dir("fuzz");
  char const* seed_env = std::getenv("KUMIKI_IO_FUZZ_SEED");
  PhiloxStream const rng{seed_env ? std::strtoull(seed_env, nullptr, 10) : 2024, 7};
  std::uint64_t k = 0;
  int accepted = 0, rejected = 0;
  // Rejections by check, to show the mutations reach every layer of validation.
  std::map<std::string, int> reasons = {{"shorter than the 8-byte", 0}, {"runs past the end of the file", 0},
                                        {"malformed JSON", 0},          {"duplicate key", 0},
                                        {"unsupported dtype", 0},       {"is not an integer", 0},
                                        {"is negative", 0},             {"run past the data section", 0},
                                        {"bytes but", 0},               {"overlaps", 0},
                                        {"belong to no tensor", 0},     {"trailing bytes", 0}};
  // 6000 mutated files by default; KUMIKI_IO_FUZZ_SCALE=N runs N times as many base files (soak runs).
  char const* scale_env = std::getenv("KUMIKI_IO_FUZZ_SCALE");
  int const scale = scale_env ? std::max(1, std::atoi(scale_env)) : 1;
  int const bases = 40 * scale, mutations_per_base = 150;
  for (int b = 0; b < bases; ++b) {
    std::vector<std::byte> const base = random_valid_image(rng, k, dir);
    for (int m = 0; m < mutations_per_base; ++m) {
      std::vector<std::byte> img = mutate(base, rng, k);
      if (rng.u32(k++) % 4 == 0) img = mutate(std::move(img), rng, k);  // sometimes two mutations
      ExactCopy const c(img);
      try {
        io::SafetensorsView const v(c.span(), "fuzz");
        ++accepted;
        // Accepted: every view lies inside the file and has the size its dtype and shape say; touch
        // every byte so ASan would flag any view reaching outside.
        std::byte const* lo = c.p.get();
        std::byte const* hi = lo + c.n;
        unsigned sum = 0;
        for (auto const& e : v.entries()) {
          AnyView const view = v.view(e);
          auto const* p = static_cast<std::byte const*>(view.data);
          REQUIRE(view.bytes() == static_cast<std::size_t>(e.shape.numel()) * dtype_size(e.dtype));
          REQUIRE(p >= lo);
          REQUIRE(p + view.bytes() <= hi);
          for (std::size_t i = 0; i < view.bytes(); ++i) sum += static_cast<unsigned>(p[i]);
        }
        (void)sum;
      } catch (kumiki::Error const& e) {
        ++rejected;
        std::string const what = e.what();
        for (auto& [key, count] : reasons)
          if (what.find(key) != std::string::npos) ++count;
      } catch (std::exception const& e) {
        FAIL("a corrupt file raised a non-kumiki exception: " << e.what());
      }
    }
  }
  for (auto const& [key, count] : reasons) {
    INFO("rejections by '" << key << "': " << count);
    CHECK(count > 0);
  }
  INFO("accepted " << accepted << ", rejected " << rejected);
  CHECK(accepted + rejected == bases * mutations_per_base);
  // Both outcomes occur: the mutations reach past the first checks and some keep the file valid.
  CHECK(accepted > 100);
  CHECK(rejected > 1000);
}
