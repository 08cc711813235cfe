// safetensors: exact bytes of written files, round trips for every dtype, zero-copy views, alignment,
// arenas, sharded directories and their index.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io_test_util.hpp"
#include "kumiki/ops/cpu/fill.hpp"  // philox_fill_*: host fills
#include "kumiki/core/arena.hpp"
#include "kumiki/core/philox.hpp"
#include "kumiki/io/safetensors.hpp"

using namespace kumiki;
using io_test::ScratchDir;

namespace {

// Owns random bytes for one tensor of any dtype.
struct OwnedTensor {
  std::string name;
  DType dtype;
  Shape shape;
  std::vector<std::byte> bytes;
  AnyView view() const {
    return AnyView{const_cast<std::byte*>(bytes.data()), dtype, shape, DeviceKind::cpu};
  }
};

OwnedTensor random_tensor(std::string name, DType dtype, Shape shape, std::uint64_t stream) {
  OwnedTensor t{std::move(name), dtype, shape, {}};
  t.bytes.resize(static_cast<std::size_t>(shape.numel()) * dtype_size(dtype));
  PhiloxStream s{1234, stream};
  for (std::size_t i = 0; i < t.bytes.size(); ++i) t.bytes[i] = static_cast<std::byte>(s.u32(i) & 0xff);
  return t;
}

std::vector<io::NamedTensor> named(std::vector<OwnedTensor> const& ts) {
  std::vector<io::NamedTensor> out;
  for (auto const& t : ts) out.push_back({t.name, t.view()});
  return out;
}

std::vector<OwnedTensor> every_dtype() {
  std::vector<OwnedTensor> ts;
  DType const all[] = {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i8,  DType::i16,
                       DType::i32, DType::i64, DType::u8,   DType::u16, DType::u32};
  std::uint64_t stream = 0;
  for (DType d : all) {
    std::string const n(io::safetensors_dtype_name(d));
    ts.push_back(random_tensor("t." + n, d, {3, 5, 7}, stream++));  // odd sizes: 105 elements
    ts.push_back(random_tensor("s." + n, d, {}, stream++));         // scalar
  }
  ts.push_back(random_tensor("empty", DType::f32, {0, 3}, stream++));
  ts.push_back(random_tensor("rank6", DType::bf16, {1, 2, 1, 3, 1, 2}, stream++));
  return ts;
}

}  // namespace

TEST_CASE("safetensors dtype names map both ways and unknown names are rejected", "[io][safetensors]") {
  CHECK(io::safetensors_dtype_name(DType::f32) == "F32");
  CHECK(io::safetensors_dtype_name(DType::bf16) == "BF16");
  CHECK(io::safetensors_dtype_name(DType::f16) == "F16");
  CHECK(io::safetensors_dtype_name(DType::i32) == "I32");
  CHECK(io::safetensors_dtype_name(DType::i64) == "I64");
  CHECK(*io::dtype_from_safetensors("F32") == DType::f32);
  CHECK(*io::dtype_from_safetensors("BF16") == DType::bf16);
  CHECK(*io::dtype_from_safetensors("F16") == DType::f16);
  CHECK(*io::dtype_from_safetensors("I32") == DType::i32);
  CHECK(*io::dtype_from_safetensors("I64") == DType::i64);
  CHECK(*io::dtype_from_safetensors("U8") == DType::u8);
  CHECK_FALSE(io::dtype_from_safetensors("BOOL"));
  CHECK_FALSE(io::dtype_from_safetensors("F8_E4M3"));
  CHECK_FALSE(io::dtype_from_safetensors("U64"));
  CHECK_FALSE(io::dtype_from_safetensors("f32"));
}

TEST_CASE("safetensors writer produces the exact bytes of the format", "[io][safetensors]") {
  ScratchDir dir("exact");
  float const a[2] = {1.0f, -2.0f};
  std::int64_t const b[1] = {0x0102030405060708};
  std::uint16_t const c[3] = {0x3f80, 0x4000, 0xc040};  // bf16 1, 2, -3
  std::vector<io::NamedTensor> ts = {
      {"c", AnyView{const_cast<std::uint16_t*>(c), DType::bf16, {3}, DeviceKind::cpu}},
      {"a", AnyView{const_cast<float*>(a), DType::f32, {2, 1}, DeviceKind::cpu}},
      {"b", AnyView{const_cast<std::int64_t*>(b), DType::i64, {1}, DeviceKind::cpu}},
  };
  io::write_safetensors(dir / "x.safetensors", ts, {{"format", "pt"}});

  // Expected, built by hand: metadata first, then element size descending (b: 8, a: 4, c: 2).
  std::string header =
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
      R"("a":{"dtype":"F32","shape":[2,1],"data_offsets":[8,16]},"c":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]}})";
  while (header.size() % 8 != 0) header += ' ';
  std::vector<std::byte> data(22);
  std::memcpy(data.data(), b, 8);
  std::memcpy(data.data() + 8, a, 8);
  std::memcpy(data.data() + 16, c, 6);
  std::vector<std::byte> const expected = io_test::make_image(header, data);
  std::vector<std::byte> const got = io_test::read_bytes(dir / "x.safetensors");
  REQUIRE(got.size() == expected.size());
  CHECK(std::memcmp(got.data(), expected.data(), got.size()) == 0);
  CHECK((8 + header.size()) % 8 == 0);
}

TEST_CASE("safetensors round trip is bitwise for every dtype, with metadata and zero-copy views",
          "[io][safetensors]") {
  ScratchDir dir("roundtrip");
  auto const ts = every_dtype();
  io::Metadata const meta = {{"format", "pt"}, {"kumiki.step", "123"}, {"unicode", "\xe6\x9c\xa8"}};
  auto const path = dir / "all.safetensors";
  std::uint64_t const written = io::write_safetensors(path, named(ts), meta);
  CHECK(written == std::filesystem::file_size(path));

  io::SafetensorsFile const f(path);
  CHECK(f.metadata() == meta);
  REQUIRE(f.size() == ts.size());
  std::uint64_t expected_offset = 0;
  for (auto const& e : f.entries()) {  // file order: offsets tile the data section
    CHECK(e.begin == expected_offset);
    expected_offset = e.end;
  }
  CHECK(f.data_start() + expected_offset == std::filesystem::file_size(path));
  for (auto const& t : ts) {
    INFO(t.name);
    REQUIRE(f.contains(t.name));
    io::SafetensorsEntry const& e = f.entry(t.name);
    CHECK(e.dtype == t.dtype);
    CHECK(e.shape == t.shape);
    AnyView const v = f.view(t.name);
    CHECK(v.dtype == t.dtype);
    CHECK(v.shape == t.shape);
    REQUIRE(v.bytes() == t.bytes.size());
    if (!t.bytes.empty()) CHECK(std::memcmp(v.data, t.bytes.data(), t.bytes.size()) == 0);
    CHECK(f.aligned(t.name));  // kumiki's own files keep every tensor aligned
    // Zero copy: the view points into the mapping.
    auto const span = f.bytes(t.name);
    CHECK(static_cast<std::byte const*>(v.data) == span.data());
  }
  auto const x = f.get<float>("t.F32");
  CHECK(x.shape() == Shape{3, 5, 7});
  float first;
  std::memcpy(&first, ts[0].bytes.data(), 4);
  CHECK(std::memcmp(&x(0, 0, 0), &first, 4) == 0);
  CHECK_THROWS_WITH(f.get<std::int32_t>("t.F32"), Catch::Contains("is F32, requested I32"));
  CHECK_THROWS_WITH(f.entry("nope"), Catch::Contains("no tensor named 'nope'") && Catch::Contains("all.safetensors"));

  // The file is independent of the order tensors were given in.
  auto rev = named(ts);
  std::reverse(rev.begin(), rev.end());
  io::write_safetensors(dir / "rev.safetensors", rev, meta);
  CHECK(io_test::read_bytes(dir / "rev.safetensors") == io_test::read_bytes(path));
}

TEST_CASE("safetensors writes and reads a whole arena by layout names", "[io][safetensors]") {
  ScratchDir dir("arena");
  ArenaLayout layout;
  layout.add("model.embed_tokens.weight", DType::f32, {16, 8});
  layout.add("model.norm.weight", DType::f32, {8});
  layout.add("step", DType::i64, {});
  layout.add("half", DType::bf16, {5});
  Arena<Cpu> arena(layout);
  philox_fill_normal(arena.get<float>(0).data(), 128, {7, 0}, 0.0f, 0.02f);
  philox_fill_normal(arena.get<float>(1).data(), 8, {7, 1}, 1.0f, 0.1f);
  *arena.get<std::int64_t>("step").data() = 987654321012345;
  for (int i = 0; i < 5; ++i) arena.get<bf16>("half").data()[i] = bf16(0.5f * static_cast<float>(i));
  io::write_safetensors(dir / "a.safetensors", arena, {{"what", "params"}});

  io::SafetensorsFile const f(dir / "a.safetensors");
  REQUIRE(f.size() == 4);
  Arena<Cpu> back(layout);
  for (auto const& e : layout.entries()) {
    INFO(e.name);
    CHECK(f.entry(e.name).dtype == e.dtype);
    CHECK(f.entry(e.name).shape == e.shape);
    f.copy_to(e.name, back.view(e.name));
    CHECK(std::memcmp(back.view(e.name).data, arena.view(e.name).data, e.bytes) == 0);
  }
  CHECK(f.get<std::int64_t>("step").data()[0] == 987654321012345);
  CHECK_THROWS_WITH(f.copy_to("model.norm.weight", back.view("half")), Catch::Contains("has shape [8], destination has [5]"));
}

TEST_CASE("safetensors reads unaligned tensors by copy and refuses unaligned typed views", "[io][safetensors]") {
  // Hand-built like another writer might: a 3-byte U8 tensor first puts the F32 tensor at an odd offset.
  std::string const header =
      R"({"u":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},"f":{"dtype":"F32","shape":[2],"data_offsets":[3,11]},)"
      R"("h":{"dtype":"BF16","shape":[2],"data_offsets":[11,15]}})";
  std::vector<std::byte> data(15);
  data[0] = std::byte{1}, data[1] = std::byte{2}, data[2] = std::byte{3};
  float const fv[2] = {3.5f, -0.25f};
  std::memcpy(data.data() + 3, fv, 8);
  std::uint16_t const hv[2] = {bf16(1.5f).bits, bf16(-7.0f).bits};
  std::memcpy(data.data() + 11, hv, 4);
  // Place the image at an 8-aligned address (as a mapping is), so the data offsets decide alignment.
  std::vector<std::byte> const image = io_test::make_image(header, data);
  std::vector<std::uint64_t> storage((image.size() + 7) / 8);
  std::memcpy(storage.data(), image.data(), image.size());
  io::SafetensorsView const v(std::span<std::byte const>(reinterpret_cast<std::byte const*>(storage.data()), image.size()),
                              "handmade");
  bool const f_aligned = (8 + header.size() + 3) % 4 == 0;
  CHECK(v.aligned("f") == f_aligned);
  if (!f_aligned) CHECK_THROWS_WITH(v.get<float>("f"), Catch::Contains("not 4-byte aligned"));
  float out[2];
  v.copy_to("f", AnyView{out, DType::f32, {2}, DeviceKind::cpu});
  CHECK(out[0] == 3.5f);
  CHECK(out[1] == -0.25f);
  // bf16 file tensor into f32 memory: converted exactly.
  v.copy_to("h", AnyView{out, DType::f32, {2}, DeviceKind::cpu});
  CHECK(out[0] == 1.5f);
  CHECK(out[1] == -7.0f);
  CHECK(v.get<std::uint8_t>("u").data()[2] == 3);
}

TEST_CASE("sharded safetensors: naming, index and round trip", "[io][safetensors][sharded]") {
  ScratchDir dir("sharded");
  std::vector<OwnedTensor> ts;
  for (int l = 0; l < 5; ++l) {
    std::string const p = "model.layers." + std::to_string(l) + ".";
    ts.push_back(random_tensor(p + "mlp.up_proj.weight", DType::bf16, {32, 16}, 10 + l));   // 1024 B
    ts.push_back(random_tensor(p + "input_layernorm.weight", DType::f32, {16}, 20 + l));    // 64 B
  }
  ts.push_back(random_tensor("lm_head.weight", DType::f32, {64, 16}, 30));                  // 4096 B > limit
  ts.push_back(random_tensor("model.norm.weight", DType::f32, {16}, 31));
  auto const nt = named(ts);
  io::ShardOptions opt;
  opt.max_shard_bytes = 2200;
  auto const files = io::write_safetensors_sharded(dir.path(), nt, {{"format", "pt"}}, opt);

  // Greedy in the given order: [l0, l1] = 2176, [l2, l3] = 2176, [l4] = 1088, [lm_head] = 4096, [norm].
  std::vector<std::string> const names = {"model-00001-of-00005.safetensors", "model-00002-of-00005.safetensors",
                                          "model-00003-of-00005.safetensors", "model-00004-of-00005.safetensors",
                                          "model-00005-of-00005.safetensors", "model.safetensors.index.json"};
  REQUIRE(files.size() == names.size());
  for (std::size_t i = 0; i < names.size(); ++i) CHECK(files[i].filename().string() == names[i]);
  CHECK_FALSE(std::filesystem::exists(dir / "model.safetensors"));

  auto const idx = nlohmann::json::parse(std::ifstream(dir / "model.safetensors.index.json"));
  std::uint64_t total = 0;
  for (auto const& t : ts) total += t.bytes.size();
  CHECK(idx["metadata"]["total_size"].get<std::uint64_t>() == total);
  CHECK(idx["weight_map"].size() == ts.size());
  CHECK(idx["weight_map"]["model.layers.1.mlp.up_proj.weight"] == "model-00001-of-00005.safetensors");
  CHECK(idx["weight_map"]["model.layers.2.input_layernorm.weight"] == "model-00002-of-00005.safetensors");
  CHECK(idx["weight_map"]["lm_head.weight"] == "model-00004-of-00005.safetensors");
  CHECK(idx["weight_map"]["model.norm.weight"] == "model-00005-of-00005.safetensors");

  io::SafetensorsModel const m(dir.path());
  CHECK(m.files().size() == 5);
  CHECK(m.size() == ts.size());
  CHECK(m.total_bytes() == total);
  CHECK(m.metadata().at("format") == "pt");
  for (auto const& t : ts) {
    INFO(t.name);
    AnyView const v = m.view(t.name);
    CHECK(v.dtype == t.dtype);
    CHECK(v.shape == t.shape);
    REQUIRE(v.bytes() == t.bytes.size());
    CHECK(std::memcmp(v.data, t.bytes.data(), t.bytes.size()) == 0);
  }
  CHECK(m.file_of("lm_head.weight").path().filename() == "model-00004-of-00005.safetensors");

  // Rewriting the same directory as a single file removes the stale index, so readers see the new file.
  opt.max_shard_bytes = 1u << 20;
  auto const one = io::write_safetensors_sharded(dir.path(), nt, {}, opt);
  REQUIRE(one.size() == 1);
  CHECK(one[0].filename() == "model.safetensors");
  CHECK_FALSE(std::filesystem::exists(dir / "model.safetensors.index.json"));
  io::SafetensorsModel const single(dir.path());
  CHECK(single.files().size() == 1);
  CHECK(single.size() == ts.size());
  // With both present the single file wins, as in transformers.
  write_file_atomic(dir / "model.safetensors.index.json", std::string_view("not even JSON"));
  CHECK(io::SafetensorsModel(dir.path()).size() == ts.size());
  // A file path works too.
  CHECK(io::SafetensorsModel(dir / "model.safetensors").size() == ts.size());
}

TEST_CASE("sharded safetensors: inconsistent indexes are rejected", "[io][safetensors][sharded]") {
  ScratchDir dir("badindex");
  auto const a = random_tensor("a", DType::f32, {4}, 1);
  auto const b = random_tensor("b", DType::f32, {4}, 2);
  io::write_safetensors(dir / "s1.safetensors", named({a}));
  io::write_safetensors(dir / "s2.safetensors", named({b}));
  auto const write_index = [&](std::string const& weight_map) {
    write_file_atomic(dir / "model.safetensors.index.json",
                          R"({"metadata": {"total_size": 32}, "weight_map": )" + weight_map + "}");
  };
  write_index(R"({"a": "s1.safetensors", "b": "s2.safetensors"})");
  CHECK(io::SafetensorsModel(dir.path()).size() == 2);

  write_index(R"({"a": "s2.safetensors", "b": "s2.safetensors"})");
  CHECK_THROWS_WITH(io::SafetensorsModel(dir.path()), Catch::Contains("maps 'a' to s2.safetensors but that file has no such tensor"));
  write_index(R"({"a": "s1.safetensors", "b": "../s2.safetensors"})");
  CHECK_THROWS_WITH(io::SafetensorsModel(dir.path()), Catch::Contains("not a file in the directory"));
  write_index(R"({"a": "s1.safetensors", "b": "missing.safetensors"})");
  CHECK_THROWS_WITH(io::SafetensorsModel(dir.path()), Catch::Contains("cannot open") && Catch::Contains("missing.safetensors"));
  io::write_safetensors(dir / "s12.safetensors", named({a, b}));
  write_index(R"({"a": "s12.safetensors"})");
  CHECK_THROWS_WITH(io::SafetensorsModel(dir.path()), Catch::Contains("'b' in s12.safetensors is missing from weight_map"));
  io::write_safetensors(dir / "s3.safetensors", named({a}));
  write_index(R"({"a": "s1.safetensors", "b": "s2.safetensors", "c": "s3.safetensors"})");
  CHECK_THROWS_WITH(io::SafetensorsModel(dir.path()), Catch::Contains("tensor 'a' is in both"));
  write_index(R"([1, 2])");
  CHECK_THROWS_WITH(io::SafetensorsModel(dir.path()), Catch::Contains("has no weight_map object"));
  write_file_atomic(dir / "model.safetensors.index.json", "{\"weight_map\": ");
  CHECK_THROWS_WITH(io::SafetensorsModel(dir.path()), Catch::Contains("is not valid JSON"));
  // A tensor mapped twice is ambiguous (JSON parsers keep different copies of a repeated key).
  write_file_atomic(dir / "model.safetensors.index.json",
                    R"({"weight_map": {"a": "s1.safetensors", "a": "s2.safetensors", "b": "s2.safetensors"}})");
  CHECK_THROWS_AS(io::SafetensorsModel(dir.path()), kumiki::InputError);
  CHECK_THROWS_WITH(io::SafetensorsModel(dir.path()), Catch::Contains("repeats the key \"a\""));

  ScratchDir empty("emptymodel");
  CHECK_THROWS_WITH(io::SafetensorsModel(empty.path()), Catch::Contains("holds neither model.safetensors nor model.safetensors.index.json"));
}

TEST_CASE("safetensors writer rejects what it cannot write", "[io][safetensors]") {
  ScratchDir dir("badwrite");
  auto const a = random_tensor("a", DType::f32, {4}, 1);
  std::vector<io::NamedTensor> dup = {{"a", a.view()}, {"a", a.view()}};
  CHECK_THROWS_WITH(io::write_safetensors(dir / "x.safetensors", dup), Catch::Contains("duplicate tensor name 'a'"));
  std::vector<io::NamedTensor> meta = {{"__metadata__", a.view()}};
  CHECK_THROWS_WITH(io::write_safetensors(dir / "x.safetensors", meta), Catch::Contains("'__metadata__' cannot name a tensor"));
  AnyView gpu = a.view();
  gpu.device = DeviceKind::cuda;
  std::vector<io::NamedTensor> dev = {{"g", gpu}};
  CHECK_THROWS_WITH(io::write_safetensors(dir / "x.safetensors", dev), Catch::Contains("is on cuda"));
  std::vector<io::NamedTensor> bad_utf8 = {{"\xff\xfe", a.view()}};
  CHECK_THROWS_WITH(io::write_safetensors(dir / "x.safetensors", bad_utf8), Catch::Contains("UTF-8"));
  CHECK_FALSE(std::filesystem::exists(dir / "x.safetensors"));
  CHECK(std::filesystem::is_empty(dir.path()));  // no temporary files left behind either
}

TEST_CASE("safetensors stores f32 tensors as bf16 on the fly, equal to converting first", "[io][safetensors][bf16]") {
  ScratchDir dir("cast");
  ArenaLayout layout;
  layout.add("w", DType::f32, {300, 257});  // > one conversion chunk (65536 elements)
  layout.add("ids", DType::i64, {3});
  layout.add("b", DType::f32, {5});
  Arena<Cpu> a(layout);
  philox_fill_normal(a.get<float>("w").data(), 300 * 257, {11, 0}, 0.0f, 1.0f);
  philox_fill_normal(a.get<float>("b").data(), 5, {11, 1}, 0.0f, 1.0f);
  for (int i = 0; i < 3; ++i) a.get<std::int64_t>("ids").data()[i] = -i;

  io::WriteOptions opt;
  opt.floating_dtype = DType::bf16;
  io::write_safetensors(dir / "streamed.safetensors", a, {{"dtype", "bf16"}}, opt);
  Arena<Cpu> const converted = io::convert_arena(a, DType::bf16);
  io::write_safetensors(dir / "converted.safetensors", converted, {{"dtype", "bf16"}});
  CHECK(io_test::read_bytes(dir / "streamed.safetensors") == io_test::read_bytes(dir / "converted.safetensors"));

  io::SafetensorsFile const f(dir / "streamed.safetensors");
  CHECK(f.entry("w").dtype == DType::bf16);
  CHECK(f.entry("ids").dtype == DType::i64);
  auto const w = f.get<bf16>("w");
  float const* src = a.get<float>("w").data();
  for (std::int64_t i = 0; i < w.numel(); i += 997) CHECK(w.data()[i].bits == bf16(src[i]).bits);

  // Sharding counts stored (bf16) bytes: 154200 + 24 + 10 bytes fit one 160000-byte shard.
  io::ShardOptions sopt;
  sopt.max_shard_bytes = 160000;
  sopt.write = opt;
  auto const files = io::write_safetensors_sharded(dir / "m", a, {}, sopt);
  CHECK(files.size() == 1);
  sopt.write = {};
  CHECK(io::write_safetensors_sharded(dir / "m32", a, {}, sopt).size() == 3);  // w (308400 B) alone, then ids + b, then the index
}

TEST_CASE("load_arena fills an f32 arena from a bf16 model and reports missing or extra tensors", "[io][safetensors]") {
  ScratchDir dir("load");
  ArenaLayout layout;
  layout.add("a", DType::f32, {6, 4});
  layout.add("b", DType::f32, {3});
  Arena<Cpu> src(layout);
  philox_fill_normal(src.get<float>("a").data(), 24, {5, 0}, 0.0f, 1.0f);
  philox_fill_normal(src.get<float>("b").data(), 3, {5, 1}, 0.0f, 1.0f);
  io::ShardOptions opt;
  opt.max_shard_bytes = 40;  // two shards
  opt.write.floating_dtype = DType::bf16;
  io::write_safetensors_sharded(dir.path(), src, {}, opt);

  Arena<Cpu> dst(layout);
  io::SafetensorsModel const m(dir.path());
  REQUIRE(m.files().size() == 2);
  io::load_arena(m, dst);
  for (int i = 0; i < 24; ++i) CHECK(dst.get<float>("a").data()[i] == round_to_bf16(src.get<float>("a").data()[i]));
  for (int i = 0; i < 3; ++i) CHECK(dst.get<float>("b").data()[i] == round_to_bf16(src.get<float>("b").data()[i]));

  ArenaLayout bigger = layout;
  bigger.add("c", DType::f32, {1});
  Arena<Cpu> big(bigger);
  CHECK_THROWS_WITH(io::load_arena(m, big), Catch::Contains("has no tensor 'c'"));
  ArenaLayout smaller;
  smaller.add("a", DType::f32, {6, 4});
  Arena<Cpu> small(smaller);
  CHECK_THROWS_WITH(io::load_arena(m, small), Catch::Contains("holds tensor 'b' which the arena has no place for"));
  io::load_arena(m, small, true);
  CHECK(small.get<float>("a").data()[5] == dst.get<float>("a").data()[5]);
  ArenaLayout wrong;
  wrong.add("a", DType::f32, {4, 6});
  wrong.add("b", DType::f32, {3});
  Arena<Cpu> w(wrong);
  CHECK_THROWS_WITH(io::load_arena(m, w), Catch::Contains("tensor 'a' is [6, 4], expected [4, 6]"));
}
