// Shapes and tensor views.
#include <catch2/catch.hpp>

#include <vector>

#include "kumiki/core/tensor.hpp"

using namespace kumiki;

TEST_CASE("shape extents, strides and rank limits", "[core][tensor]") {
  Shape s{2, 3, 4};
  CHECK(s.rank() == 3);
  CHECK(s.numel() == 24);
  CHECK(s.stride(0) == 12);
  CHECK(s.stride(2) == 1);
  CHECK(s.dim(-1) == 4);
  CHECK(s.str() == "[2, 3, 4]");
  CHECK_THROWS(s.dim(3));
  CHECK_THROWS((Shape{1, 2, 3, 4, 5, 6, 7}));
  CHECK_THROWS((Shape{2, -1}));
  CHECK(Shape{}.numel() == 1);
}

TEST_CASE("tensor views index, slice and reshape without copying", "[core][tensor]") {
  std::vector<float> buf(24);
  for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<float>(i);
  TensorView<float> t(buf.data(), {2, 3, 4});
  CHECK(t(1, 2, 3) == 23.0f);
  CHECK(t[1](0, 1) == 13.0f);
  auto s = t.slice(1, 2);
  CHECK(s.shape() == Shape{1, 3, 4});
  CHECK(s.data() == buf.data() + 12);
  auto r = t.reshape({6, 4});
  CHECK(r(5, 3) == 23.0f);
  CHECK_THROWS_WITH(t.reshape({5, 5}), Catch::Contains("changes the element count"));
  CHECK_THROWS_WITH(t.slice(1, 3), Catch::Contains("out of range"));
  CHECK_THROWS(t[2]);
  TensorView<float const> ro = t;
  CHECK(ro(0, 0, 1) == 1.0f);
  CHECK(TensorView<float>::dtype == DType::f32);
  CHECK(t.bytes() == 96);
}
