// Arena layout alignment, bounds and typed access.
#include <catch2/catch.hpp>

#include <cstdint>

#include "kumiki/core/arena.hpp"

using namespace kumiki;

TEST_CASE("arena slots are 64-byte aligned and do not overlap", "[core][arena]") {
  ArenaLayout layout;
  layout.add("a", DType::f32, {3});      // 12 bytes
  layout.add("b", DType::bf16, {5, 7});  // 70 bytes
  layout.add("c", DType::f64, {1});
  layout.add("empty", DType::f32, {0, 4});
  layout.add("d", DType::i32, {16});
  REQUIRE(layout.size() == 5);
  std::size_t end = 0;
  for (auto const& e : layout.entries()) {
    CHECK(e.offset % host_alignment == 0);
    CHECK(e.offset >= end);
    end = e.offset + e.bytes;
  }
  CHECK(layout.entry("b").offset == 64);
  CHECK(layout.entry("c").offset == 192);
  CHECK(layout.total_bytes() % host_alignment == 0);
  CHECK(layout.total_bytes() >= end);
  CHECK(layout.numel() == 3 + 35 + 1 + 0 + 16);

  Arena<Cpu> arena(layout);
  CHECK(reinterpret_cast<std::uintptr_t>(arena.data()) % host_alignment == 0);
  auto b = arena.get<bf16>("b");
  CHECK(b.shape() == Shape{5, 7});
  CHECK(reinterpret_cast<std::uintptr_t>(b.data()) % host_alignment == 0);
  for (auto& x : b) CHECK(x.bits == 0);  // zero-filled
  auto d = arena.get<std::int32_t>(layout.index_of("d"));
  d(15) = 7;
  CHECK(arena.get<std::int32_t>("d")(15) == 7);
}

TEST_CASE("arena rejects wrong names, types and duplicates", "[core][arena]") {
  ArenaLayout layout;
  layout.add("w", DType::f32, {2, 2});
  CHECK_THROWS_WITH(layout.add("w", DType::f32, {1}), Catch::Contains("already holds a tensor named 'w'"));
  CHECK_THROWS_WITH(layout.add("", DType::f32, {1}), Catch::Contains("needs a name"));
  Arena<Cpu> arena(layout);
  CHECK_THROWS_WITH(arena.get<float>("missing"), Catch::Contains("no tensor named 'missing'"));
  CHECK_THROWS_WITH(arena.get<double>("w"), Catch::Contains("holds f32, requested f64"));
  CHECK_THROWS_WITH(arena.view(1), Catch::Contains("out of range"));
  CHECK_THROWS(arena.view(0).as<float, Cuda>());
}

TEST_CASE("layouts compare by names, types and shapes", "[core][arena]") {
  ArenaLayout a, b;
  a.add("x", DType::f32, {4});
  b.add("x", DType::f32, {4});
  CHECK(a == b);
  b.add("y", DType::f32, {1});
  CHECK_FALSE(a == b);
}
