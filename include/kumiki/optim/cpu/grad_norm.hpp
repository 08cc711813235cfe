// kumiki/optim/cpu/grad_norm.hpp: the host gradient norm and scaling (OpenMP over fixed blocks).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/core/dtype.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/optim/clip.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace optim {

template <>
struct GradNorm<Cpu> {
  /// Sum of squares in double. The range is cut, tensor by tensor, into blocks of 2^14 elements from
  /// the start of each tensor's part; the blocks' partial sums (OpenMP over blocks, SIMD within) are
  /// added in block order, so the result does not depend on the thread count.
  static double sum_squares(ops::Ctx<Cpu>& /*ctx*/, Arena<Cpu> const& grads, FlatRange range) {
    constexpr std::int64_t block = 1 << 14;
    struct Block {
      float const* data;
      std::int64_t n;
    };
    std::vector<Block> blocks;
    for_each_in_range(grads.layout(), range, [&](std::size_t i, std::size_t lo, std::size_t hi) {
      ArenaEntry const& e = grads.layout()[i];
      KUMIKI_CHECK(e.dtype == DType::f32, "gradient norm expects fp32 gradients; '", e.name, "' is ", dtype_name(e.dtype));
      float const* g = reinterpret_cast<float const*>(grads.data() + e.offset) + lo;
      std::int64_t const n = static_cast<std::int64_t>(hi - lo);
      for (std::int64_t b = 0; b < n; b += block) blocks.push_back({g + b, std::min(block, n - b)});
    });
    std::vector<double> partial(blocks.size());
    std::int64_t const nb = static_cast<std::int64_t>(blocks.size());
#pragma omp parallel for schedule(static)
    for (std::int64_t b = 0; b < nb; ++b) {
      float const* g = blocks[static_cast<std::size_t>(b)].data;
      std::int64_t const n = blocks[static_cast<std::size_t>(b)].n;
      double s = 0.0;
#pragma omp simd reduction(+ : s)
      for (std::int64_t k = 0; k < n; ++k) s += static_cast<double>(g[k]) * static_cast<double>(g[k]);
      partial[static_cast<std::size_t>(b)] = s;
    }
    double sum = 0.0;
    for (double s : partial) sum += s;
    return sum;
  }

  static void scale(ops::Ctx<Cpu>& /*ctx*/, Arena<Cpu>& grads, FlatRange range, float coeff) {
    for_each_in_range(grads.layout(), range, [&](std::size_t i, std::size_t lo, std::size_t hi) {
      ArenaEntry const& e = grads.layout()[i];
      KUMIKI_CHECK(e.dtype == DType::f32, "scale_grads expects fp32 gradients; '", e.name, "' is ", dtype_name(e.dtype));
      float* g = reinterpret_cast<float*>(grads.data() + e.offset) + lo;
      std::int64_t const n = static_cast<std::int64_t>(hi - lo);
#pragma omp parallel for schedule(static)
      for (std::int64_t k = 0; k < n; ++k) g[k] *= coeff;
    });
  }
};

static_assert(GradNormOp<GradNorm<Cpu>, Cpu>);

}  // namespace optim
KUMIKI_NAMESPACE_END
