// kumiki/optim/detail/adamw_kernel.hpp: the host AdamW element update (AVX-512, AVX2 or scalar), fp32 with optional bf16 output.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#include "kumiki/config.hpp"
#include "kumiki/core/bf16.hpp"

// No fused multiply-adds: every product and sum above is rounded on its own, as torch computes it and
// as the CUDA AdamW (optim/cuda/adamw.cuh, __fmul_rn / __fadd_rn) does, so CPU and GPU updates agree
// bit for bit whatever -march allows. GCC otherwise contracts the intrinsics' mul + add into FMA.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif

KUMIKI_NAMESPACE_BEGIN
namespace optim::detail {
inline namespace KUMIKI_CPU_ISA {  // the SIMD path below depends on the instruction set

/// Per-tensor scalars of one AdamW step (computed in double, rounded to fp32 once).
struct AdamWScalars {
  float beta1, beta2, one_minus_beta1, one_minus_beta2, bc2_sqrt, eps, decay, neg_step_size;
};

// The update, in torch.optim.AdamW's operation order:
//   m = m b1 + (1 - b1) g;  v = v b2 + ((1 - b2) g) g;  denom = sqrt(v) / sqrt(bc2) + eps
//   p = p (1 - lr wd) + (-lr / bc1 * m) / denom
// Explicit SIMD because a std::sqrt loop does not vectorize under the default -fmath-errno, and
// Eigen's fast-math sqrt is not exactly rounded. Every element goes through the same vector code
// (the tail through a padded local block), so results do not depend on how the arena is split
// between threads.

#if defined(__AVX512F__)
inline constexpr std::size_t adamw_lanes = 16;

KUMIKI_FORCEINLINE void adamw_block(float* p, float const* g, float* m, float* v, bf16* out, AdamWScalars const& s) {
  // The zero-masking forms (all lanes on) sidestep GCC 12's -Wmaybe-uninitialized on the plain ones.
  __mmask16 const all = 0xffff;
  __m512 const gv = _mm512_loadu_ps(g);
  __m512 const mv = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(m), _mm512_set1_ps(s.beta1)),
                                  _mm512_mul_ps(_mm512_set1_ps(s.one_minus_beta1), gv));
  __m512 const vv = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(v), _mm512_set1_ps(s.beta2)),
                                  _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(s.one_minus_beta2), gv), gv));
  __m512 const denom = _mm512_add_ps(_mm512_div_ps(_mm512_maskz_sqrt_ps(all, vv), _mm512_set1_ps(s.bc2_sqrt)), _mm512_set1_ps(s.eps));
  __m512 const pv = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(p), _mm512_set1_ps(s.decay)),
                                  _mm512_div_ps(_mm512_mul_ps(_mm512_set1_ps(s.neg_step_size), mv), denom));
  _mm512_storeu_ps(m, mv);
  _mm512_storeu_ps(v, vv);
  _mm512_storeu_ps(p, pv);
  if (out != nullptr) {  // round to nearest even, NaN -> 0x7fff (as kumiki::bf16)
    __m512i const u = _mm512_castps_si512(pv);
    __m512i const lsb = _mm512_and_si512(_mm512_maskz_srli_epi32(all, u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_maskz_srli_epi32(all, _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    __mmask16 const nan = _mm512_cmp_ps_mask(pv, pv, _CMP_UNORD_Q);
    r = _mm512_mask_mov_epi32(r, nan, _mm512_set1_epi32(0x7fff));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm512_maskz_cvtepi32_epi16(all, r));
  }
}
#elif defined(__AVX2__)
inline constexpr std::size_t adamw_lanes = 8;

KUMIKI_FORCEINLINE void adamw_block(float* p, float const* g, float* m, float* v, bf16* out, AdamWScalars const& s) {
  __m256 const gv = _mm256_loadu_ps(g);
  __m256 const mv = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(m), _mm256_set1_ps(s.beta1)),
                                  _mm256_mul_ps(_mm256_set1_ps(s.one_minus_beta1), gv));
  __m256 const vv = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v), _mm256_set1_ps(s.beta2)),
                                  _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(s.one_minus_beta2), gv), gv));
  __m256 const denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vv), _mm256_set1_ps(s.bc2_sqrt)), _mm256_set1_ps(s.eps));
  __m256 const pv = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(p), _mm256_set1_ps(s.decay)),
                                  _mm256_div_ps(_mm256_mul_ps(_mm256_set1_ps(s.neg_step_size), mv), denom));
  _mm256_storeu_ps(m, mv);
  _mm256_storeu_ps(v, vv);
  _mm256_storeu_ps(p, pv);
  if (out != nullptr) {
    alignas(32) float tmp[8];
    _mm256_store_ps(tmp, pv);
    for (int k = 0; k < 8; ++k) out[k] = bf16(tmp[k]);
  }
}
#else
inline constexpr std::size_t adamw_lanes = 1;

KUMIKI_FORCEINLINE void adamw_block(float* p, float const* g, float* m, float* v, bf16* out, AdamWScalars const& s) {
  float const gk = *g;
  float const mk = *m * s.beta1 + s.one_minus_beta1 * gk;
  float const vk = *v * s.beta2 + (s.one_minus_beta2 * gk) * gk;
  float const denom = std::sqrt(vk) / s.bc2_sqrt + s.eps;
  float const pk = *p * s.decay + (s.neg_step_size * mk) / denom;
  *m = mk;
  *v = vk;
  *p = pk;
  if (out != nullptr) *out = bf16(pk);
}
#endif

/// Updates elements [0, n) of one tensor; `out` (may be null) receives the bf16 rounding of p.
inline void adamw_update(float* p, float const* g, float* m, float* v, bf16* out, std::size_t n, AdamWScalars const& s) {
  constexpr std::size_t L = adamw_lanes;
  std::size_t k = 0;
  for (; k + L <= n; k += L) adamw_block(p + k, g + k, m + k, v + k, out ? out + k : nullptr, s);
  if (k < n) {  // tail: same vector code on a zero-padded copy
    float bp[L] = {}, bg[L] = {}, bm[L] = {}, bv[L] = {};
    bf16 bo[L] = {};
    std::size_t const r = n - k;
    std::memcpy(bp, p + k, r * sizeof(float));
    std::memcpy(bg, g + k, r * sizeof(float));
    std::memcpy(bm, m + k, r * sizeof(float));
    std::memcpy(bv, v + k, r * sizeof(float));
    adamw_block(bp, bg, bm, bv, out ? bo : nullptr, s);
    std::memcpy(p + k, bp, r * sizeof(float));
    std::memcpy(m + k, bm, r * sizeof(float));
    std::memcpy(v + k, bv, r * sizeof(float));
    if (out) std::memcpy(static_cast<void*>(out + k), bo, r * sizeof(bf16));
  }
}

}  // namespace KUMIKI_CPU_ISA
}  // namespace optim::detail
KUMIKI_NAMESPACE_END

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif
