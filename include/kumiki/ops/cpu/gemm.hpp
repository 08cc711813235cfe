// kumiki/ops/cpu/gemm.hpp: row-major GEMM on Eigen, split into a fixed grid of tiles that OpenMP
// threads share, so every result is bitwise the same for any thread count.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kumiki/ops/cpu/detail/eigen.hpp"

#include "kumiki/config.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops::cpu {
inline namespace KUMIKI_CPU_ISA {  // Eigen's packet code differs per instruction set (config.hpp)

namespace detail {

template <class T>
using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using ConstMap = Eigen::Map<RowMajor<T> const, 0, Eigen::OuterStride<>>;
template <class T>
using MutMap = Eigen::Map<RowMajor<T>, 0, Eigen::OuterStride<>>;

template <class T>
ConstMap<T> cmap(T const* p, std::int64_t rows, std::int64_t cols, std::int64_t ld) {
  return ConstMap<T>(p, rows, cols, Eigen::OuterStride<>(ld));
}
template <class T>
MutMap<T> mmap(T* p, std::int64_t rows, std::int64_t cols, std::int64_t ld) {
  return MutMap<T>(p, rows, cols, Eigen::OuterStride<>(ld));
}

/// One tile, computed by Eigen's serial GEMM (Eigen never threads inside an active parallel region).
template <class T, class A, class B>
void gemm_tile(A const& a, B const& b, T alpha, T beta, MutMap<T> c) {
  if (beta == T(0)) {
    c.noalias() = alpha * (a * b);
  } else {
    if (beta != T(1)) c *= beta;
    c.noalias() += alpha * (a * b);
  }
}

/// Tile length along the split dimension: a function of the problem shape only (never of the thread
/// count). At least 128 rows/columns, so that repacking the other operand per tile stays cheap, and
/// at most 64 tiles, enough to feed many cores on large problems.
inline std::int64_t gemm_tile_len(std::int64_t dim) {
  std::int64_t const t = (dim + 63) / 64;
  return std::max<std::int64_t>(128, (t + 31) / 32 * 32);
}

}  // namespace detail

/// C (m x n) = alpha * op(A) op(B) + beta * C on row-major storage with leading dimensions.
/// op(A) is A (m x k, lda) or, with trans_a, the transpose of a stored (k x m, lda) matrix; likewise B.
/// beta == 0 overwrites C without reading it. The larger of m, n is cut into fixed tiles, each one a
/// serial Eigen product with the full k reduction, so the summation order never depends on threads.
template <class T>
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, T const* a,
          std::int64_t lda, T const* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  using detail::cmap;
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
    return;
  }
  bool const split_m = m >= n;
  std::int64_t const len = detail::gemm_tile_len(split_m ? m : n);
  std::int64_t const tiles = ((split_m ? m : n) + len - 1) / len;
#pragma omp parallel for schedule(dynamic, 1)
  for (std::int64_t t = 0; t < tiles; ++t) {
    std::int64_t const r0 = split_m ? t * len : 0, r1 = split_m ? std::min(m, r0 + len) : m;
    std::int64_t const c0 = split_m ? 0 : t * len, c1 = split_m ? n : std::min(n, c0 + len);
    std::int64_t const mr = r1 - r0, nc = c1 - c0;
    auto cm = detail::mmap(c + r0 * ldc + c0, mr, nc, ldc);
    // op(A) rows [r0, r1), op(B) columns [c0, c1).
    if (!trans_a && !trans_b)
      detail::gemm_tile(cmap(a + r0 * lda, mr, k, lda), cmap(b + c0, k, nc, ldb), alpha, beta, cm);
    else if (!trans_a && trans_b)
      detail::gemm_tile(cmap(a + r0 * lda, mr, k, lda), cmap(b + c0 * ldb, nc, k, ldb).transpose(), alpha, beta, cm);
    else if (trans_a && !trans_b)
      detail::gemm_tile(cmap(a + r0, k, mr, lda).transpose(), cmap(b + c0, k, nc, ldb), alpha, beta, cm);
    else
      detail::gemm_tile(cmap(a + r0, k, mr, lda).transpose(), cmap(b + c0 * ldb, nc, k, ldb).transpose(), alpha,
                        beta, cm);
  }
}

}  // namespace KUMIKI_CPU_ISA
}  // namespace ops::cpu
KUMIKI_NAMESPACE_END
