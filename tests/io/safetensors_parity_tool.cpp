// Parity helper for tests/parity/safetensors_check.py: writes safetensors files whose tensors are
// closed-form functions of the element index (the Python side recomputes them on its own), and checks
// files Python wrote against the same closed forms. Conversions (bf16 and f16 rounding, f16 decoding)
// are compared against the other side's libraries: torch for bf16, numpy for f16.
//   safetensors_parity_tool write FILE
//   safetensors_parity_tool write-sharded DIR MAX_SHARD_BYTES
//   safetensors_parity_tool check FILE|DIR PRODUCER
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "kumiki/core/bf16.hpp"
#include "kumiki/io/convert.hpp"
#include "kumiki/io/safetensors.hpp"

using namespace kumiki;

namespace {

struct Expected {
  std::string name;
  DType dtype;
  Shape shape;
  std::vector<std::byte> bytes;
  bool nan_equal = false;  // NaNs compare equal whatever their payload (hardware converters quiet them)
};

template <class T>
Expected make(std::string name, Shape shape, auto&& f) {
  Expected e{std::move(name), dtype_v<T>, shape, {}};
  auto const n = static_cast<std::size_t>(shape.numel());
  e.bytes.resize(n * sizeof(T));
  for (std::size_t i = 0; i < n; ++i) {
    T const v = static_cast<T>(f(static_cast<std::uint64_t>(i)));
    std::memcpy(e.bytes.data() + i * sizeof(T), &v, sizeof(T));
  }
  return e;
}

std::uint32_t f32_bits(std::uint64_t i) {
  std::uint32_t u = static_cast<std::uint32_t>(i * 2654435761u);
  u = (u & 0x807fffffu) | static_cast<std::uint32_t>((100 + i % 60) << 23);
  if (i % 5 == 0) u = (u & 0xffff0000u) | 0x8000u;  // a bf16 rounding tie
  return u;
}
float f32_value(std::uint64_t i) {
  float f;
  std::uint32_t const u = f32_bits(i);
  std::memcpy(&f, &u, 4);
  return f;
}

// The closed-form tensors both sides write and check (the spec is restated in safetensors_check.py).
std::vector<Expected> expected_tensors() {
  std::vector<Expected> t;
  t.push_back(make<float>("f32.bits", {10, 100}, [](std::uint64_t i) { return f32_value(i); }));
  t.push_back(make<std::uint16_t>("bf16.from_f32", {10, 100}, [](std::uint64_t i) { return bf16(f32_value(i)).bits; }));
  t.back().dtype = DType::bf16;
  t.push_back(make<std::uint16_t>("f16.from_f32", {10, 100}, [](std::uint64_t i) { return io::float_to_half_bits(f32_value(i)); }));
  t.back().dtype = DType::f16;
  t.push_back(make<std::uint16_t>("f16.all", {256, 256}, [](std::uint64_t i) { return i; }));
  t.back().dtype = DType::f16;
  t.push_back(make<float>("f32.from_f16", {65536}, [](std::uint64_t i) { return io::half_bits_to_float(static_cast<std::uint16_t>(i)); }));
  t.back().nan_equal = true;
  t.push_back(make<double>("f64.lin", {4, 50}, [](std::uint64_t i) { return static_cast<double>(i) * 0.25 - 100.0; }));
  t.push_back(make<std::int64_t>("i64.hash", {300}, [](std::uint64_t i) { return i * 0x9E3779B97F4A7C15ull; }));
  t.push_back(make<std::int32_t>("i32.quad", {10, 10, 3}, [](std::uint64_t i) {
    return static_cast<std::int64_t>(i * i) - 1000 * static_cast<std::int64_t>(i);
  }));
  t.push_back(make<std::int16_t>("i16.lin", {500}, [](std::uint64_t i) { return static_cast<std::int64_t>((i * 37) % 65536) - 32768; }));
  t.push_back(make<std::uint16_t>("u16.lin", {500}, [](std::uint64_t i) { return (i * 37) % 65536; }));
  t.push_back(make<std::int8_t>("i8.lin", {3, 7}, [](std::uint64_t i) { return static_cast<std::int64_t>((i * 7) % 256) - 128; }));
  t.push_back(make<std::uint8_t>("u8.lin", {301}, [](std::uint64_t i) { return (i * 3) % 256; }));
  t.push_back(make<std::uint32_t>("u32.hash", {64}, [](std::uint64_t i) { return static_cast<std::uint32_t>(i * 2654435761u); }));
  t.push_back(make<float>("scalar", {}, [](std::uint64_t) { return 42.5f; }));
  t.push_back(make<float>("empty", {0, 3}, [](std::uint64_t) { return 0.0f; }));
  t.push_back(make<std::uint16_t>("bf16.r4", {2, 3, 4, 5}, [](std::uint64_t i) { return (i * 331) % 65536; }));
  t.back().dtype = DType::bf16;
  return t;
}

std::vector<io::NamedTensor> as_named(std::vector<Expected> const& t) {
  std::vector<io::NamedTensor> out;
  for (auto const& e : t) out.push_back({e.name, AnyView{const_cast<std::byte*>(e.bytes.data()), e.dtype, e.shape, DeviceKind::cpu}});
  return out;
}

bool same_element(Expected const& e, std::byte const* got, std::size_t i) {
  std::size_t const s = dtype_size(e.dtype);
  if (std::memcmp(got + i * s, e.bytes.data() + i * s, s) == 0) return true;
  if (!e.nan_equal) return false;
  float a, b;
  std::memcpy(&a, got + i * 4, 4);
  std::memcpy(&b, e.bytes.data() + i * 4, 4);
  return std::isnan(a) && std::isnan(b);
}

int check(std::string const& path, std::string const& producer) {
  io::SafetensorsModel const m(path);
  int errors = 0;
  auto const expected = expected_tensors();
  if (m.size() != expected.size()) {
    std::cerr << "expected " << expected.size() << " tensors, file has " << m.size() << "\n";
    ++errors;
  }
  auto const meta = m.metadata();
  if (meta.size() != 2 || meta.count("format") == 0 || meta.at("format") != "pt" || meta.count("producer") == 0 ||
      meta.at("producer") != producer) {
    std::cerr << "metadata mismatch\n";
    ++errors;
  }
  std::size_t unaligned = 0;
  for (auto const& e : expected) {
    if (!m.contains(e.name)) {
      std::cerr << "missing tensor " << e.name << "\n";
      ++errors;
      continue;
    }
    auto const& entry = m.entry(e.name);
    if (entry.dtype != e.dtype || !(entry.shape == e.shape)) {
      std::cerr << e.name << ": dtype/shape " << io::safetensors_dtype_name(entry.dtype) << " " << entry.shape
                << ", expected " << io::safetensors_dtype_name(e.dtype) << " " << e.shape << "\n";
      ++errors;
      continue;
    }
    // Copy out (works whatever the alignment) and compare element by element.
    std::vector<std::uint64_t> buf((e.bytes.size() + 7) / 8 + 1);
    m.copy_to(e.name, AnyView{buf.data(), e.dtype, e.shape, DeviceKind::cpu});
    auto const* got = reinterpret_cast<std::byte const*>(buf.data());
    std::size_t bad = 0, first_bad = 0;
    for (std::size_t i = 0; i < static_cast<std::size_t>(e.shape.numel()); ++i)
      if (!same_element(e, got, i) && bad++ == 0) first_bad = i;
    if (bad) {
      std::cerr << e.name << ": " << bad << " elements differ, first at " << first_bad << "\n";
      ++errors;
    }
    // The zero-copy view shows the same bytes.
    if (!e.bytes.empty() && std::memcmp(m.view(e.name).data, got, e.bytes.size()) != 0) {
      std::cerr << e.name << ": view and copy differ\n";
      ++errors;
    }
    if (!m.file_of(e.name).aligned(e.name)) ++unaligned;
  }
  std::cout << "checked " << expected.size() << " tensors in " << m.files().size() << " file(s) from " << producer
            << ", " << unaligned << " unaligned, " << errors << " problems\n";
  return errors ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string const mode = argc > 1 ? argv[1] : "";
    io::Metadata const meta = {{"format", "pt"}, {"producer", "kumiki"}};
    if (mode == "write" && argc == 3) {
      auto const t = expected_tensors();
      io::write_safetensors(argv[2], as_named(t), meta);
      return 0;
    }
    if (mode == "write-sharded" && argc == 4) {
      auto const t = expected_tensors();
      io::ShardOptions opt;
      opt.max_shard_bytes = std::stoull(argv[3]);
      auto const named = as_named(t);
      auto const files = io::write_safetensors_sharded(argv[2], std::span<io::NamedTensor const>(named), meta, opt);
      std::cout << files.size() << " files\n";
      return 0;
    }
    if (mode == "check" && argc == 4) return check(argv[2], argv[3]);
    std::cerr << "usage: safetensors_parity_tool write FILE | write-sharded DIR MAX_BYTES | check PATH PRODUCER\n";
    return 2;
  } catch (std::exception const& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
