// Emulator replacement for kumiki/ops/cuda/mma.cuh (cuda_emu.hpp): same namespaces and signatures.
// Layouts (from the real header; lane l = 4 g + c, two bf16 per 32-bit register, lower index in the low half):
//   A: a[0] = A(g, 2c..2c+1)   a[1] = A(g+8, 2c..2c+1)   a[2] = A(g, 2c+8..2c+9)   a[3] = A(g+8, 2c+8..2c+9)
//   B: b[0] = B(2c..2c+1, g)   b[1] = B(2c+8..2c+9, g)
//   D: d[0], d[1] = D(g, 2c), D(g, 2c+1)   d[2], d[3] = D(g+8, 2c), D(g+8, 2c+1)
// bf16_16816 is a warp collective: the last lane to arrive assembles A (16x16), B (16x8), C (16x8), computes
// D = C + A B with every product exact, the 16 products of a dot product summed in double, then C added in
// double and the result rounded once to float (a close model: the hardware's internal order is unknown).
// ldmatrix_x4<Trans>: warp collectives reading the 16-byte rows that lanes 8 i + j point at.
#pragma once

#include <cstdint>
#include <cstring>

#include "kumiki/config.hpp"
#include "kumiki/core/bf16.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {
namespace mma {

namespace emu_detail {

inline double bf16_lo(std::uint32_t r) { return static_cast<double>(bf16::from_bits(static_cast<std::uint16_t>(r & 0xffffu)).to_float()); }
inline double bf16_hi(std::uint32_t r) { return static_cast<double>(bf16::from_bits(static_cast<std::uint16_t>(r >> 16)).to_float()); }

struct MmaLane {
  float* d;
  std::uint32_t const* a;
  std::uint32_t const* b;
};

inline void op_mma(void** data, int lanes) {
  if (lanes != 32) ::emu::detail::die("mma.sync (bf16_16816) in a partial warp");
  double A[16][16], B[16][8], C[16][8];
  for (int l = 0; l < 32; ++l) {
    auto const* m = static_cast<MmaLane const*>(data[l]);
    int const g = l / 4, c = l % 4;
    A[g][2 * c] = bf16_lo(m->a[0]), A[g][2 * c + 1] = bf16_hi(m->a[0]);
    A[g + 8][2 * c] = bf16_lo(m->a[1]), A[g + 8][2 * c + 1] = bf16_hi(m->a[1]);
    A[g][2 * c + 8] = bf16_lo(m->a[2]), A[g][2 * c + 9] = bf16_hi(m->a[2]);
    A[g + 8][2 * c + 8] = bf16_lo(m->a[3]), A[g + 8][2 * c + 9] = bf16_hi(m->a[3]);
    B[2 * c][g] = bf16_lo(m->b[0]), B[2 * c + 1][g] = bf16_hi(m->b[0]);
    B[2 * c + 8][g] = bf16_lo(m->b[1]), B[2 * c + 9][g] = bf16_hi(m->b[1]);
    C[g][2 * c] = m->d[0], C[g][2 * c + 1] = m->d[1];
    C[g + 8][2 * c] = m->d[2], C[g + 8][2 * c + 1] = m->d[3];
  }
  float D[16][8];
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 8; ++j) {
      double s = 0.0;
      for (int k = 0; k < 16; ++k) s += A[i][k] * B[k][j];  // bf16 x bf16 products are exact in double
      D[i][j] = static_cast<float>(C[i][j] + s);
    }
  for (int l = 0; l < 32; ++l) {
    auto const* m = static_cast<MmaLane const*>(data[l]);
    int const g = l / 4, c = l % 4;
    m->d[0] = D[g][2 * c], m->d[1] = D[g][2 * c + 1];
    m->d[2] = D[g + 8][2 * c], m->d[3] = D[g + 8][2 * c + 1];
  }
}

struct LdmLane {
  void const* row;
  std::uint32_t* r;
};

inline void check_row(void const* row, int lane) {
  if (reinterpret_cast<std::uintptr_t>(row) % 16 != 0)
    ::emu::detail::die("ldmatrix: lane " + std::to_string(lane) + " passes a row address that is not 16-byte aligned");
}

inline std::uint16_t elem(void const* row, int col) {
  std::uint16_t v;
  std::memcpy(&v, static_cast<unsigned char const*>(row) + 2 * col, 2);
  return v;
}

template <bool Trans>
inline void op_ldmatrix(void** data, int lanes) {
  if (lanes != 32) ::emu::detail::die("ldmatrix in a partial warp");
  void const* rows[32];
  for (int l = 0; l < 32; ++l) {
    rows[l] = static_cast<LdmLane const*>(data[l])->row;
    check_row(rows[l], l);
  }
  std::uint32_t out[32][4];
  for (int l = 0; l < 32; ++l) {
    int const g = l / 4, c = l % 4;
    for (int i = 0; i < 4; ++i) {
      std::uint16_t lo, hi;
      if (!Trans) {
        lo = elem(rows[8 * i + g], 2 * c), hi = elem(rows[8 * i + g], 2 * c + 1);  // M_i(g, 2c), M_i(g, 2c+1)
      } else {
        lo = elem(rows[8 * i + 2 * c], g), hi = elem(rows[8 * i + 2 * c + 1], g);  // M_i(2c, g), M_i(2c+1, g)
      }
      out[l][i] = static_cast<std::uint32_t>(lo) | (static_cast<std::uint32_t>(hi) << 16);
    }
  }
  for (int l = 0; l < 32; ++l) {
    std::uint32_t* const r = static_cast<LdmLane const*>(data[l])->r;
    for (int i = 0; i < 4; ++i) r[i] = out[l][i];
  }
}

}  // namespace emu_detail

/// d += a b for one m16n8k16 tile (layouts above). All 32 lanes of the warp call it together.
inline void bf16_16816(float (&d)[4], std::uint32_t const (&a)[4], std::uint32_t const (&b)[2]) {
  emu_detail::MmaLane me{d, a, b};
  ::emu::detail::warp_collective("mma.sync.m16n8k16 (bf16_16816)", &emu_detail::op_mma, 0xffffffffu, &me);
}

/// Four 8 x 8 matrices of 16-bit elements (ldmatrix .x4): lane 8 i + j passes the address of row j of
/// matrix i; r[i] receives matrix i's (l / 4, 2 (l % 4) .. +1) pair, or with Trans (.trans) its
/// (2 (l % 4), l / 4) and (2 (l % 4) + 1, l / 4) elements.
template <bool Trans>
inline void ldmatrix_x4(std::uint32_t (&r)[4], void const* row) {
  emu_detail::LdmLane me{row, r};
  ::emu::detail::warp_collective(Trans ? "ldmatrix.x4.trans" : "ldmatrix.x4", &emu_detail::op_ldmatrix<Trans>,
                                 0xffffffffu, &me);
}

/// Two floats rounded to bf16 (nearest even) in one register: lo in the low half, hi in the high.
inline std::uint32_t pack_bf16(float lo, float hi) {
  return static_cast<std::uint32_t>(bf16(lo).bits) | (static_cast<std::uint32_t>(bf16(hi).bits) << 16);
}

}  // namespace mma
}  // namespace ops
KUMIKI_NAMESPACE_END
