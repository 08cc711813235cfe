// kumiki/ops/cuda/linear.cuh: CUDA linear layers on cuBLASLt (cublasLtMatmul, fp32 accumulation), the
// same functions as ops/cpu/linear.hpp: y (+)= x W^T, d_x (+)= d_y W, d_W += d_y^T x on row-major
// buffers with row strides, W in Hugging Face (out, in) layout.
//
// Row-major to cuBLASLt's column-major. A row-major R (rows x cols, row stride ld) is, byte for byte,
// the column-major R^T (cols x rows, leading dimension ld). So every product is computed transposed,
// on the column-major views X = x^T (in x n, ldx), Wc = W^T (in x out, in), Y = y^T (out x n, ldy),
// DY = d_y^T (out x n, ld_dy), DX = d_x^T (in x n, ld_dx), DWc = d_W^T (in x out, in):
//   forward          y = x W^T      <=>  Y   = Wc^T X     A = Wc (T), B = X  (N), m = out, n = n,   k = in
//   backward_input   d_x = d_y W    <=>  DX  = Wc DY      A = Wc (N), B = DY (N), m = in,  n = n,   k = out
//   backward_weight  d_W += d_y^T x <=>  DWc += X DY^T    A = X  (N), B = DY (T), m = in,  n = out, k = n
// (a cuBLASLt layout describes the stored matrix: rows x cols of A are k x m with transa, else m x k).
//
// Types. cuBLASLt computes with CUBLAS_COMPUTE_32F and a float scale directly for bf16 x bf16 into
// bf16 or float, and float x float into float. Those are all the model's products but the MoE
// router's backward (float d_logits against bf16 W or x): there the bf16 operand is widened to float
// in ctx scratch (exact), and a bf16 result goes through an fp32 temporary added to the destination
// and rounded once (Megatron's fp32 router computes the same way). Only that staged path uses ctx
// scratch; the direct path uses nothing but the cuBLASLt workspace.
//
// Algorithms. Matmul descriptors and layouts are made per call (host-only, microseconds) and held in
// RAII wrappers. The heuristic's choice is cached per host thread (a thread_local map keyed by handle,
// device, shape, leading dimensions, types, pointer alignments and workspace size): no lock, no race
// when two threads drive two GPUs, and one heuristic query per distinct GEMM. The cache is cleared
// when it reaches 4096 entries (MoE experts see a new row count most steps); a query is a pure
// function of its key, so clearing never changes a result.
//
// Determinism. A fixed algorithm with a fixed workspace gives bitwise identical results run to run on
// one GPU model (cuBLAS's reproducibility guarantee; cuBLASLt with a caller-owned workspace is
// exempt from the multi-stream caveat). Split-K is allowed only with CUBLASLT_REDUCTION_SCHEME_NONE or
// _COMPUTE_TYPE: partial sums in fp32 in the workspace, reduced by a separate kernel in a fixed order.
// INPLACE (partials added in the output type, serialized by counters) and OUTPUT_TYPE (partials
// rounded to bf16) are excluded by the preference mask and checked again on the returned algorithm.
// No atomic-sync epilogue is requested.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <type_traits>

#include <cublasLt.h>
#include <cuda_runtime.h>

#include "kumiki/config.hpp"
#include "kumiki/core/bf16.hpp"
#include "kumiki/core/cuda/check.cuh"
#include "kumiki/core/device.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/precision.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/ops/cuda/context.cuh"
#include "kumiki/ops/linear.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {
namespace cublaslt {

/// Element types the CUDA GEMMs take.
template <class T>
inline constexpr bool gemm_type_v = std::is_same_v<T, float> || std::is_same_v<T, bf16>;

template <class T>
constexpr cudaDataType_t data_type() {
  static_assert(gemm_type_v<T>, "kumiki: the CUDA GEMMs take float or kumiki::bf16 elements");
  return std::is_same_v<T, float> ? CUDA_R_32F : CUDA_R_16BF;
}

/// Whether cuBLASLt multiplies A (TA) by B (TB) into C = D (TD) in one call with CUBLAS_COMPUTE_32F and
/// a float scale: bf16 x bf16 into bf16 or float, float x float into float.
template <class TA, class TB, class TD>
inline constexpr bool direct_v =
    gemm_type_v<TA> && gemm_type_v<TD> && std::is_same_v<TA, TB> && (std::is_same_v<TA, bf16> || std::is_same_v<TD, float>);

/// Split-K reduction schemes allowed: none, or fp32 partials reduced by a separate pass.
inline constexpr std::uint32_t allowed_reductions = CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;

/// Heuristic results cached per host thread before the cache is cleared.
inline constexpr std::size_t max_cached_algos = 4096;

// ---- RAII handles: destroyed on every path, exceptions included --------------------------------

class MatmulDesc {
 public:
  MatmulDesc(bool trans_a, bool trans_b) {
    KUMIKI_CUBLAS_CHECK(cublasLtMatmulDescCreate(&h_, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    std::int32_t const ta = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, tb = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    KUMIKI_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(h_, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    KUMIKI_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(h_, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
  }
  MatmulDesc(MatmulDesc const&) = delete;
  MatmulDesc& operator=(MatmulDesc const&) = delete;
  ~MatmulDesc() {
    if (h_ != nullptr) (void)cublasLtMatmulDescDestroy(h_);
  }
  operator cublasLtMatmulDesc_t() const { return h_; }  // NOLINT: a handle wrapper

 private:
  cublasLtMatmulDesc_t h_ = nullptr;
};

/// A column-major layout of `rows` x `cols` elements, leading dimension `ld` in elements.
class Layout {
 public:
  Layout(cudaDataType_t type, std::int64_t rows, std::int64_t cols, std::int64_t ld) {
    KUMIKI_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&h_, type, static_cast<std::uint64_t>(rows),
                                                   static_cast<std::uint64_t>(cols), ld));
  }
  Layout(Layout const&) = delete;
  Layout& operator=(Layout const&) = delete;
  ~Layout() {
    if (h_ != nullptr) (void)cublasLtMatrixLayoutDestroy(h_);
  }
  operator cublasLtMatrixLayout_t() const { return h_; }  // NOLINT: a handle wrapper

 private:
  cublasLtMatrixLayout_t h_ = nullptr;
};

class Preference {
 public:
  Preference() { KUMIKI_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&h_)); }
  Preference(Preference const&) = delete;
  Preference& operator=(Preference const&) = delete;
  ~Preference() {
    if (h_ != nullptr) (void)cublasLtMatmulPreferenceDestroy(h_);
  }
  template <class V>
  void set(cublasLtMatmulPreferenceAttributes_t attr, V value) {
    KUMIKI_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(h_, attr, &value, sizeof value));
  }
  operator cublasLtMatmulPreference_t() const { return h_; }  // NOLINT: a handle wrapper

 private:
  cublasLtMatmulPreference_t h_ = nullptr;
};

/// The largest power of two (at most 256) dividing the address: what the heuristic may assume.
inline std::uint32_t alignment_bytes(void const* p) {
  auto const addr = reinterpret_cast<std::uintptr_t>(p);
  std::uintptr_t const low = addr & (~addr + 1);  // lowest set bit
  return (low == 0 || low > 256) ? 256u : static_cast<std::uint32_t>(low);
}

/// One column-major GEMM D (m x n, ldd) = op(A) op(B) + beta D, as cuBLASLt sees it.
struct Problem {
  bool trans_a = false, trans_b = false;
  std::int64_t m = 0, n = 0, k = 0, lda = 0, ldb = 0, ldd = 0;
  cudaDataType_t type_a = CUDA_R_32F, type_b = CUDA_R_32F, type_d = CUDA_R_32F;
  void const* a = nullptr;
  void const* b = nullptr;
  void* d = nullptr;
};

/// The algorithm for `p`: the heuristic's best whose split-K reduction is deterministic in fp32 and
/// whose workspace fits ctx.workspace, cached per (handle, device, shape, types, alignments).
inline cublasLtMatmulAlgo_t choose_algo(Ctx<Cuda>& ctx, Problem const& p, cublasLtMatmulDesc_t op, Layout const& la,
                                        Layout const& lb, Layout const& ld) {
  int device = 0;
  KUMIKI_CUDA_CHECK(cudaGetDevice(&device));
  std::uint32_t const align_a = alignment_bytes(p.a), align_b = alignment_bytes(p.b), align_d = alignment_bytes(p.d);
  std::uint64_t const workspace = ctx.workspace.size();
  using Key = std::array<std::int64_t, 17>;
  Key const key{static_cast<std::int64_t>(reinterpret_cast<std::intptr_t>(ctx.lt)),
                device,
                p.trans_a,
                p.trans_b,
                p.m,
                p.n,
                p.k,
                p.lda,
                p.ldb,
                p.ldd,
                static_cast<std::int64_t>(p.type_a),
                static_cast<std::int64_t>(p.type_b),
                static_cast<std::int64_t>(p.type_d),
                align_a,
                align_b,
                align_d,
                static_cast<std::int64_t>(workspace)};
  thread_local std::map<Key, cublasLtMatmulAlgo_t> cache;
  if (auto const it = cache.find(key); it != cache.end()) return it->second;

  Preference pref;
  pref.set(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, workspace);
  pref.set(CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, allowed_reductions);
  pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align_a);
  pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align_b);
  pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_d);  // C is D
  pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_d);
  constexpr int requested = 8;
  std::array<cublasLtMatmulHeuristicResult_t, requested> results{};
  int returned = 0;
  cublasStatus_t const status =
      cublasLtMatmulAlgoGetHeuristic(ctx.lt, op, la, lb, ld, ld, pref, requested, results.data(), &returned);
  for (int i = 0; status == CUBLAS_STATUS_SUCCESS && i < returned; ++i) {
    cublasLtMatmulHeuristicResult_t const& r = results[static_cast<std::size_t>(i)];
    if (r.state != CUBLAS_STATUS_SUCCESS || r.workspaceSize > workspace) continue;
    std::uint32_t scheme = 0;
    std::size_t written = 0;
    KUMIKI_CUBLAS_CHECK(
        cublasLtMatmulAlgoConfigGetAttribute(&r.algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &scheme, sizeof scheme, &written));
    if ((scheme & ~allowed_reductions) != 0) continue;
    if (cache.size() >= max_cached_algos) cache.clear();
    cache.emplace(key, r.algo);
    return r.algo;
  }
  ::kumiki::detail::fail("cuBLASLt has no deterministic fp32-accumulating algorithm for this GEMM", __FILE__, __LINE__,
                         "m ", p.m, " n ", p.n, " k ", p.k, " trans ", p.trans_a, p.trans_b, " ld ", p.lda, '/', p.ldb,
                         '/', p.ldd, " types ", static_cast<int>(p.type_a), '/', static_cast<int>(p.type_b), '/',
                         static_cast<int>(p.type_d), " alignments ", align_a, '/', align_b, '/', align_d,
                         " (heuristic status ", cublasGetStatusName(status), ", ", returned, " candidates)");
}

// ---- small element-wise kernels of the staged path --------------------------------------------

inline KUMIKI_DEVICE float load_float(float v) { return v; }
inline KUMIKI_DEVICE float load_float(bf16 v) { return v.to_float(); }
template <class T>
KUMIKI_DEVICE T store_as(float v) {
  if constexpr (std::is_same_v<T, bf16>)
    return bf16(v);
  else
    return v;
}

constexpr int elementwise_threads = 256;
constexpr std::int64_t elementwise_max_blocks = 4096;

inline unsigned elementwise_blocks(std::int64_t total) {
  std::int64_t const b = (total + elementwise_threads - 1) / elementwise_threads;
  return static_cast<unsigned>(b < elementwise_max_blocks ? b : elementwise_max_blocks);
}

/// dst (outer lines of `inner` floats, dense) = src (outer lines of `inner` elements, line stride
/// ld_src), widened exactly. Grid-stride over the elements, one thread per element: no reduction.
template <class TS>
__global__ void __launch_bounds__(elementwise_threads)
    widen_kernel(TS const* __restrict__ src, std::int64_t ld_src, float* __restrict__ dst, std::int64_t inner, std::int64_t outer) {
  std::int64_t const total = inner * outer;
  for (std::int64_t idx = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    std::int64_t const o = idx / inner, e = idx - o * inner;
    dst[idx] = load_float(src[o * ld_src + e]);
  }
}

/// dst (outer lines of `inner`, line stride ld_dst) = round(src + (accumulate ? dst : 0)), src dense
/// fp32 (nullptr: zeros). One thread per element, one rounding: no reduction, deterministic.
template <class TD>
__global__ void __launch_bounds__(elementwise_threads)
    store_kernel(float const* __restrict__ src, TD* __restrict__ dst, std::int64_t ld_dst, std::int64_t inner,
                 std::int64_t outer, bool accumulate) {
  std::int64_t const total = inner * outer;
  for (std::int64_t idx = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    std::int64_t const o = idx / inner, e = idx - o * inner;
    TD* p = dst + o * ld_dst + e;
    float v = src != nullptr ? src[idx] : 0.0f;
    if (accumulate) v += load_float(*p);
    *p = store_as<TD>(v);
  }
}

template <class TS>
void widen(Ctx<Cuda>& ctx, TS const* src, std::int64_t ld_src, float* dst, std::int64_t inner, std::int64_t outer) {
  if (inner <= 0 || outer <= 0) return;
  widen_kernel<TS><<<elementwise_blocks(inner * outer), elementwise_threads, 0, ctx.stream>>>(src, ld_src, dst, inner, outer);
  KUMIKI_CUDA_CHECK(cudaGetLastError());
}

template <class TD>
void store(Ctx<Cuda>& ctx, float const* src, TD* dst, std::int64_t ld_dst, std::int64_t inner, std::int64_t outer,
           bool accumulate) {
  if (inner <= 0 || outer <= 0) return;
  store_kernel<TD><<<elementwise_blocks(inner * outer), elementwise_threads, 0, ctx.stream>>>(src, dst, ld_dst, inner, outer,
                                                                                             accumulate);
  KUMIKI_CUDA_CHECK(cudaGetLastError());
}

// ---- the GEMMs -------------------------------------------------------------------------------

/// Column-major D (m x n, ldd) = op(A) op(B) + (accumulate ? D : 0) in one cublasLtMatmul, for the
/// type triples cuBLASLt takes directly (direct_v). A is stored k x m (trans_a) or m x k, B n x k
/// (trans_b) or k x n. Uses no ctx scratch. k == 0 gives D = 0 (or D unchanged when accumulating).
template <class TA, class TB, class TD>
void matmul(Ctx<Cuda>& ctx, bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, TA const* a,
            std::int64_t lda, TB const* b, std::int64_t ldb, bool accumulate, TD* d, std::int64_t ldd) {
  static_assert(direct_v<TA, TB, TD>, "kumiki: cuBLASLt takes bf16 x bf16 -> bf16/float or float x float -> float");
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (!accumulate) store<TD>(ctx, nullptr, d, ldd, m, n, false);
    return;
  }
  Problem const p{trans_a, trans_b, m, n, k, lda, ldb, ldd, data_type<TA>(), data_type<TB>(), data_type<TD>(), a, b, d};
  MatmulDesc const op(trans_a, trans_b);
  Layout const la(p.type_a, trans_a ? k : m, trans_a ? m : k, lda);
  Layout const lb(p.type_b, trans_b ? n : k, trans_b ? k : n, ldb);
  Layout const ld(p.type_d, m, n, ldd);
  cublasLtMatmulAlgo_t const algo = choose_algo(ctx, p, op, la, lb, ld);
  float const alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  KUMIKI_CUBLAS_CHECK(cublasLtMatmul(ctx.lt, op, &alpha, a, la, b, lb, &beta, d, ld, d, ld, &algo, ctx.workspace.data(),
                                     ctx.workspace.size(), ctx.stream));
}

inline std::size_t round_up_256(std::size_t bytes) { return (bytes + 255) / 256 * 256; }

/// As matmul, for any float / bf16 triple. Triples cuBLASLt does not take (float against bf16, or
/// float x float into bf16) widen their bf16 operands to fp32 in ctx scratch (exact) and, for a bf16
/// D, multiply into an fp32 temporary that a second kernel adds to D and rounds once.
template <class TA, class TB, class TD>
void gemm(Ctx<Cuda>& ctx, bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, TA const* a,
          std::int64_t lda, TB const* b, std::int64_t ldb, bool accumulate, TD* d, std::int64_t ldd) {
  static_assert(gemm_type_v<TA> && gemm_type_v<TB> && gemm_type_v<TD>,
                "kumiki: the CUDA GEMMs take float or kumiki::bf16 elements");
  if constexpr (direct_v<TA, TB, TD>) {
    matmul(ctx, trans_a, trans_b, m, n, k, a, lda, b, ldb, accumulate, d, ldd);
  } else {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
      if (!accumulate) store<TD>(ctx, nullptr, d, ldd, m, n, false);
      return;
    }
    // Stored shapes (column-major rows x cols) of A and B.
    std::int64_t const a_rows = trans_a ? k : m, a_cols = trans_a ? m : k;
    std::int64_t const b_rows = trans_b ? n : k, b_cols = trans_b ? k : n;
    constexpr bool widen_a = !std::is_same_v<TA, float>, widen_b = !std::is_same_v<TB, float>;
    constexpr bool temp_d = !std::is_same_v<TD, float>;
    std::size_t const bytes_a = widen_a ? round_up_256(sizeof(float) * static_cast<std::size_t>(a_rows * a_cols)) : 0;
    std::size_t const bytes_b = widen_b ? round_up_256(sizeof(float) * static_cast<std::size_t>(b_rows * b_cols)) : 0;
    std::size_t const bytes_d = temp_d ? round_up_256(sizeof(float) * static_cast<std::size_t>(m * n)) : 0;
    std::byte* const s = ctx.scratch_at_least(bytes_a + bytes_b + bytes_d);
    float const* a32 = nullptr;
    float const* b32 = nullptr;
    std::int64_t lda32 = lda, ldb32 = ldb;
    if constexpr (widen_a) {
      auto* buf = reinterpret_cast<float*>(s);
      widen<TA>(ctx, a, lda, buf, a_rows, a_cols);
      a32 = buf, lda32 = a_rows;
    } else {
      a32 = a;
    }
    if constexpr (widen_b) {
      auto* buf = reinterpret_cast<float*>(s + bytes_a);
      widen<TB>(ctx, b, ldb, buf, b_rows, b_cols);
      b32 = buf, ldb32 = b_rows;
    } else {
      b32 = b;
    }
    if constexpr (temp_d) {
      auto* tmp = reinterpret_cast<float*>(s + bytes_a + bytes_b);
      matmul<float, float, float>(ctx, trans_a, trans_b, m, n, k, a32, lda32, b32, ldb32, false, tmp, m);
      store<TD>(ctx, tmp, d, ldd, m, n, accumulate);
    } else {
      matmul<float, float, float>(ctx, trans_a, trans_b, m, n, k, a32, lda32, b32, ldb32, accumulate, d, ldd);
    }
  }
}

inline void check_linear(std::int64_t n, std::int64_t in, std::int64_t out, std::int64_t ld_in, std::int64_t ld_out) {
  KUMIKI_CHECK(n >= 0 && in >= 0 && out >= 0, "Linear: negative size n ", n, " in ", in, " out ", out);
  KUMIKI_CHECK(ld_in >= in && ld_out >= out, "Linear: row stride ", ld_in, " / ", ld_out, " below the row width ", in,
               " / ", out);
}

}  // namespace cublaslt

template <>
struct Linear<Cuda> {
  /// y (n, out) = x (n, in) W^T (+ y when accumulate); W is (out, in). ldx / ldy are row strides in
  /// elements (0: dense). One cublasLtMatmul: Y (out x n) = Wc^T X (see the file comment).
  /// Deterministic: a fixed cuBLASLt algorithm, fp32 accumulation, no atomic split-K.
  template <class TX, class TW, class TY>
  static void forward(Ctx<Cuda>& ctx, TX const* x, TW const* w, TY* y, std::int64_t n, std::int64_t in, std::int64_t out,
                      bool accumulate = false, std::int64_t ldx = 0, std::int64_t ldy = 0) {
    ldx = ldx ? ldx : in, ldy = ldy ? ldy : out;
    cublaslt::check_linear(n, in, out, ldx, ldy);
    cublaslt::gemm(ctx, true, false, out, n, in, w, in, x, ldx, accumulate, y, ldy);
  }
  /// d_x (n, in) = d_y (n, out) W (+ d_x when accumulate). DX (in x n) = Wc DY.
  template <class TDY, class TW, class TDX>
  static void backward_input(Ctx<Cuda>& ctx, TDY const* d_y, TW const* w, TDX* d_x, std::int64_t n, std::int64_t in,
                             std::int64_t out, bool accumulate = false, std::int64_t ld_dy = 0, std::int64_t ld_dx = 0) {
    ld_dy = ld_dy ? ld_dy : out, ld_dx = ld_dx ? ld_dx : in;
    cublaslt::check_linear(n, in, out, ld_dx, ld_dy);
    cublaslt::gemm(ctx, false, false, in, n, out, w, in, d_y, ld_dy, accumulate, d_x, ld_dx);
  }
  /// d_W (out, in) += d_y^T (out, n) x (n, in): gradients accumulate across micro-batches (beta = 1,
  /// into an fp32 gradient in the mixed policy). DWc (in x out) += X DY^T.
  template <class TDY, class TX, class TG>
  static void backward_weight(Ctx<Cuda>& ctx, TDY const* d_y, TX const* x, TG* d_w, std::int64_t n, std::int64_t in,
                              std::int64_t out, std::int64_t ld_dy = 0, std::int64_t ldx = 0) {
    ld_dy = ld_dy ? ld_dy : out, ldx = ldx ? ldx : in;
    cublaslt::check_linear(n, in, out, ldx, ld_dy);
    cublaslt::gemm(ctx, false, true, in, out, n, x, ldx, d_y, ld_dy, true, d_w, in);
  }
};

static_assert(LinearOp<Linear<Cuda>, Cuda, float> &&
              LinearOp<Linear<Cuda>, Cuda, Precision<bf16, bf16, float, float, float>>);

}  // namespace ops
KUMIKI_NAMESPACE_END
