// kumiki/ops/cuda/mma.cuh: the warp-level tensor-core product the attention kernels use (PTX
// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32, sm_80 and later) and its register layouts.
//
// One call by all 32 lanes of a warp computes D (16 x 8, fp32) += A (16 x 16, bf16) B (16 x 8, bf16).
// Lane l = 4 g + c (g = l / 4, its group; c = l % 4) holds (PTX ISA, "Matrix Fragments for
// mma.m16n8k16 with floating point type"; two bf16 a 32-bit register, the lower index in the low half):
//   A: a[0] = A(g, 2c..2c+1)   a[1] = A(g+8, 2c..2c+1)   a[2] = A(g, 2c+8..2c+9)   a[3] = A(g+8, 2c+8..2c+9)
//   B: b[0] = B(2c..2c+1, g)   b[1] = B(2c+8..2c+9, g)
//   D: d[0], d[1] = D(g, 2c), D(g, 2c+1)   d[2], d[3] = D(g+8, 2c), D(g+8, 2c+1)
// So a row-major matrix M with rows along n serves as B = M^T with one 32-bit load per register
// (b[0] = M[n0 + g][k0 + 2c .. +1]), and two D tiles side by side (columns 0-7, 8-15) are, rounded
// to bf16, the A operand of a following product over those 16 columns (pack_bf16 of d[0..1] and
// d[2..3] of each): the softmax probabilities never leave the registers.
//
// The products are exact and accumulated in fp32 by the hardware; the order of the additions inside
// one instruction is fixed, so results are bitwise reproducible run to run on one GPU model.
#pragma once

#include <cstdint>

#include "kumiki/config.hpp"
#include "kumiki/core/bf16.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {
namespace mma {

/// d += a b for one m16n8k16 tile (layouts above). All 32 lanes of the warp call it together.
__device__ __forceinline__ void bf16_16816(float (&d)[4], std::uint32_t const (&a)[4], std::uint32_t const (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#elif defined(__CUDA_ARCH__)
  __trap();  // the tensor-core kernels are only launched on sm_80 and later (checked on the host)
#else
  (void)d, (void)a, (void)b;
#endif
}

/// Four 8 x 8 matrices of 16-bit elements from shared memory (ldmatrix .x4): lane 8 i + j passes the
/// address of row j of matrix i (16 bytes, 16-byte aligned). Trans false: r[i] receives matrix i's
/// (l / 4, 2 (l % 4) .. +1) pair, i.e. the A / B register layout of one 8 x 8 piece (above). Trans true
/// (.trans): each matrix transposed, r[i] receives (2 (l % 4), l / 4) and (2 (l % 4) + 1, l / 4); a
/// row-major M with rows along k so gives the B registers of M's columns.
template <bool Trans>
__device__ __forceinline__ void ldmatrix_x4(std::uint32_t (&r)[4], void const* row) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  auto const addr = static_cast<unsigned>(__cvta_generic_to_shared(row));
  if constexpr (Trans)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
#else
  (void)row;
  r[0] = r[1] = r[2] = r[3] = 0;
#endif
}

/// Two floats rounded to bf16 (nearest even) in one register: lo in the low half, hi in the high.
__device__ __forceinline__ std::uint32_t pack_bf16(float lo, float hi) {
  return static_cast<std::uint32_t>(bf16(lo).bits) | (static_cast<std::uint32_t>(bf16(hi).bits) << 16);
}

}  // namespace mma
}  // namespace ops
KUMIKI_NAMESPACE_END
