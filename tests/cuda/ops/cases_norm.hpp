// More op-harness cases (tests/ops/backend_ops.hpp) for RmsNorm and ResidualRmsNorm: odd widths
// (1, 7, 130, 2049: not multiples of any vector width), one row, LLM-jp-4's hidden sizes (2048 for
// 1.3B, 4096 for 7.7B) with a few rows, more rows than the CUDA backward has row groups (several rows
// per group, a short last group), a width whose column accumulators do not fit in shared memory, and
// activations one element off their allocation's alignment (the scalar load path at a vector width).
// The backward runs with accumulate off (d_x a pure output) and on (added to given values); d_w is
// added to given values either way.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../../ops/backend_ops.hpp"

namespace kumiki_test::backend_ops {

namespace norm_cases {

/// One shape of a norm case: rows, width, elements the activation pointers sit past their buffer's
/// start (1: misaligned for any vector load), and epsilon.
struct Shape {
  std::int64_t n, c, offset;
  double eps;
};

/// The host copy of a buffer used from element `offset` on.
inline std::vector<double> from(std::vector<double> v, std::int64_t offset) {
  v.erase(v.begin(), v.begin() + offset);
  return v;
}

inline std::string label(Shape const& s) {
  return " [n=" + std::to_string(s.n) + " c=" + std::to_string(s.c) + (s.offset != 0 ? " misaligned" : "") + "]";
}

}  // namespace norm_cases

/// RmsNorm forward, backward with accumulate off, then on, over widths 1 ... 12289.
/// c = 1 takes eps = 1 (with eps << x^2 the single column's d_x is a difference of two nearly equal
/// terms, ill-conditioned in any float type) and 5 rows (a single bf16 element's error is too close to
/// the bf16 tolerance for one output rounding to decide).
struct RmsNormShapesCase {
  static constexpr char const* name = "RmsNorm odd and LLM-jp-4 widths, accumulate off and on";
  static constexpr double tol = 1e-5;
  static constexpr norm_cases::Shape shapes[] = {
      {1, 7, 0, 1e-5},     {5, 1, 0, 1.0},     {3, 7, 0, 1e-5},     {1, 130, 0, 1e-6},  {5, 130, 0, 1e-5},
      {2, 2049, 0, 1e-6},  {4, 2048, 0, 1e-6}, {3, 4096, 0, 1e-6},  {3, 2048, 1, 1e-6}, {2, 130, 1, 1e-5},
      {2500, 9, 0, 1e-5},  {2, 12289, 0, 1e-6}};

  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    KUMIKI_CASE_TYPES(P);
    Outputs out;
    std::uint64_t stream = 100;
    for (norm_cases::Shape const& s : shapes) {
      std::size_t const len = static_cast<std::size_t>(s.n * s.c + s.offset), o = static_cast<std::size_t>(s.offset);
      Dev<B, T> x(uniform(len, stream + 0)), d_y(uniform(len, stream + 1)), y = Dev<B, T>::output(len);
      Dev<B, T> d_x_set = Dev<B, T>::output(len), d_x_add(uniform(len, stream + 2));
      Dev<B, W> w(uniform(static_cast<std::size_t>(s.c), stream + 3, 0.5, 1.5));
      Dev<B, G> d_w_set(uniform(static_cast<std::size_t>(s.c), stream + 4));
      Dev<B, G> d_w_add(uniform(static_cast<std::size_t>(s.c), stream + 5));
      Dev<B, S> rstd = Dev<B, S>::output(static_cast<std::size_t>(s.n));
      stream += 10;
      ops::RmsNorm<B>::forward(ctx, x.data() + o, w.data(), y.data() + o, rstd.data(), s.n, s.c, s.eps);
      ops::RmsNorm<B>::backward(ctx, d_y.data() + o, x.data() + o, w.data(), rstd.data(), d_x_set.data() + o, d_w_set.data(),
                                s.n, s.c, false);
      ops::RmsNorm<B>::backward(ctx, d_y.data() + o, x.data() + o, w.data(), rstd.data(), d_x_add.data() + o, d_w_add.data(),
                                s.n, s.c, true);
      synchronize(ctx);
      std::string const at = norm_cases::label(s);
      out.emplace_back("y" + at, norm_cases::from(y.host(), s.offset));
      out.emplace_back("rstd" + at, rstd.host());
      out.emplace_back("d_x" + at, norm_cases::from(d_x_set.host(), s.offset));
      out.emplace_back("d_x (accumulated)" + at, norm_cases::from(d_x_add.host(), s.offset));
      out.emplace_back("d_w after accumulate off" + at, d_w_set.host());
      out.emplace_back("d_w after accumulate on" + at, d_w_add.host());
    }
    return out;
  }
};

/// ResidualRmsNorm forward over the same kind of widths (sum, y, rstd). c = 1 uses 7 rows, so that no
/// single a + b close to 0 (whose bf16 sum has a large relative error) decides an output's error.
struct ResidualRmsNormShapesCase {
  static constexpr char const* name = "ResidualRmsNorm odd and LLM-jp-4 widths";
  static constexpr double tol = 1e-5;
  static constexpr norm_cases::Shape shapes[] = {
      {7, 1, 0, 1.0},     {3, 7, 0, 1e-5},    {1, 130, 0, 1e-6},  {5, 130, 0, 1e-5},  {2, 2049, 0, 1e-6},
      {4, 2048, 0, 1e-6}, {3, 4096, 0, 1e-6}, {3, 2048, 1, 1e-6}, {300, 9, 0, 1e-5},  {2, 12289, 0, 1e-6}};

  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    KUMIKI_CASE_TYPES(P);
    Outputs out;
    std::uint64_t stream = 300;
    for (norm_cases::Shape const& s : shapes) {
      std::size_t const len = static_cast<std::size_t>(s.n * s.c + s.offset), o = static_cast<std::size_t>(s.offset);
      Dev<B, T> a(uniform(len, stream + 0)), b(uniform(len, stream + 1));
      Dev<B, T> sum = Dev<B, T>::output(len), y = Dev<B, T>::output(len);
      Dev<B, W> w(uniform(static_cast<std::size_t>(s.c), stream + 2, 0.5, 1.5));
      Dev<B, S> rstd = Dev<B, S>::output(static_cast<std::size_t>(s.n));
      stream += 10;
      ops::ResidualRmsNorm<B>::forward(ctx, a.data() + o, b.data() + o, sum.data() + o, w.data(), y.data() + o, rstd.data(),
                                       s.n, s.c, s.eps);
      synchronize(ctx);
      std::string const at = norm_cases::label(s);
      out.emplace_back("sum" + at, norm_cases::from(sum.host(), s.offset));
      out.emplace_back("y" + at, norm_cases::from(y.host(), s.offset));
      out.emplace_back("rstd" + at, rstd.host());
    }
    return out;
  }
};

}  // namespace kumiki_test::backend_ops
