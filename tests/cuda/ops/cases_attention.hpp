// More Attention cases for the CUDA op harness (backend_ops.hpp's AttentionCase<false / true> are the
// base): sequence lengths off the 64-row tile (1, 17, 130), one sequence, multi-head (G = H) and
// multi-query (G = 1) attention, head_dim 8, 24 (padded into the 32 kernel), 64 and 128 with
// LLM-jp-4's heads (1.3B: 16 heads over 8 groups; 7.7B: 32 over 8), odd row strides (the scalar load
// path), the document mask with EODs at position 0, at the end, back to back and on every token, and
// both paths of the dK/dV pass (one block per group, or the group's heads split over blocks), and
// bf16 at head_dim 64 and 128 on both kernel sets (tensor cores, the default, and CUDA cores).
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "../../ops/backend_ops.hpp"

namespace kumiki_test::backend_ops {

/// One attention configuration: q | k | v rows of (heads + 2 groups) * head_dim + pad elements, o and
/// d_o rows of heads * head_dim + pad (pad > 0 makes the strides odd: no vector loads). eods are
/// flat positions b * seq + t of EOD tokens; `documents` turns the document mask on.
struct AttentionConfig {
  std::int64_t batch, seq, heads, groups, head_dim, pad;
  bool documents;
  std::vector<std::int64_t> eods;
  std::uint64_t stream;  // Philox stream of the inputs (q | k | v uses it, d_o the next one)
};

/// The first `width` elements of each of `rows` rows `ld` apart (drops the never-written padding).
inline std::vector<double> attention_unpad(std::vector<double> const& v, std::int64_t rows, std::int64_t ld,
                                           std::int64_t width) {
  std::vector<double> out;
  out.reserve(static_cast<std::size_t>(rows * width));
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < width; ++c) out.push_back(v[static_cast<std::size_t>(r * ld + c)]);
  return out;
}

/// forward + backward of one configuration; outputs named as AttentionCase's.
template <class B, class P>
Outputs run_attention(ops::Ctx<B>& ctx, AttentionConfig const& a) {
  KUMIKI_CASE_TYPES(P);
  std::int64_t const Bn = a.batch, Tn = a.seq, hd = a.head_dim, C = a.heads * hd, KV = a.groups * hd;
  std::int64_t const QKV = C + 2 * KV + a.pad, LDO = C + a.pad, N = Bn * Tn;
  ops::AttentionShape const s{Bn, Tn, a.heads, a.groups, hd, QKV, QKV, QKV, LDO};
  Dev<B, T> qkv(uniform(static_cast<std::size_t>(N * QKV), a.stream));
  Dev<B, T> d_o(uniform(static_cast<std::size_t>(N * LDO), a.stream + 1));
  Dev<B, T> o = Dev<B, T>::output(static_cast<std::size_t>(N * LDO));
  Dev<B, S> lse = Dev<B, S>::output(static_cast<std::size_t>(Bn * a.heads * Tn));
  Dev<B, T> d_qkv = Dev<B, T>::output(static_cast<std::size_t>(N * QKV));
  std::int32_t const eod = 7;
  std::vector<std::int32_t> tokens(static_cast<std::size_t>(N), 3);
  for (std::int64_t p : a.eods) tokens[static_cast<std::size_t>(p)] = eod;
  DevInt<B, std::int32_t> tok(tokens), doc_start(static_cast<std::size_t>(N));
  if (a.documents) ops::Attention<B>::document_starts(ctx, tok.data(), Bn, Tn, eod, doc_start.data());
  std::int32_t const* ds = a.documents ? doc_start.data() : nullptr;
  S const scale = from_double<S>(1.0 / std::sqrt(static_cast<double>(hd)));
  T* q = qkv.data();
  ops::Attention<B>::forward(ctx, s, q, q + C, q + C + KV, o.data(), lse.data(), ds, scale);
  T* dq = d_qkv.data();
  ops::Attention<B>::backward(ctx, s, q, q + C, q + C + KV, o.data(), d_o.data(), lse.data(), dq, dq + C, dq + C + KV,
                              ds, scale);
  synchronize(ctx);
  Outputs r{{"o", attention_unpad(o.host(), N, LDO, C)},
            {"lse", lse.host()},
            {"d_q | d_k | d_v", attention_unpad(d_qkv.host(), N, QKV, C + 2 * KV)}};
  if (a.documents) r.push_back({"doc_start", doc_start.host()});
  return r;
}

/// Sequence length 1 (a single key per query), two sequences, multi-query (G = 1), head_dim 8.
struct AttentionSeqOneCase {
  static constexpr char const* name = "Attention, T = 1, B = 2, MQA (4 heads, 1 group), head_dim 8";
  static constexpr double tol = 2e-5;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    return run_attention<B, P>(ctx, {2, 1, 4, 1, 8, 0, false, {}, 40});
  }
};

/// T = 17 (one partial tile), MHA (G = H), head_dim 24 (in the 32 kernel), odd row strides.
struct AttentionMhaOddCase {
  static constexpr char const* name = "Attention, T = 17, B = 3, MHA (3 heads = 3 groups), head_dim 24, odd strides";
  static constexpr double tol = 2e-5;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    return run_attention<B, P>(ctx, {3, 17, 3, 3, 24, 1, false, {}, 42});
  }
};

/// T = 130 (two full tiles and two rows), one sequence, MQA, head_dim 64.
struct AttentionMqa130Case {
  static constexpr char const* name = "Attention, T = 130, B = 1, MQA (4 heads, 1 group), head_dim 64";
  static constexpr double tol = 2e-5;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    return run_attention<B, P>(ctx, {1, 130, 4, 1, 64, 0, false, {}, 44});
  }
};

/// Document mask over tile boundaries: sequence 0 has EODs at 0, 1 (a one-token document), 40, 63,
/// 64 (tile edges) and 129 (the last token); sequence 1 at 5, 70 and 128. head_dim 16, odd strides.
struct AttentionDocumentsCase {
  static constexpr char const* name = "Attention, document mask: EOD at 0, back to back, on tile edges, at the end";
  static constexpr double tol = 2e-5;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    return run_attention<B, P>(ctx, {2, 130, 4, 2, 16, 3, true, {0, 1, 40, 63, 64, 129, 130 + 5, 130 + 70, 130 + 128}, 46});
  }
};

/// Every token an EOD: each query sees only itself (o = v, lse = scale q . k); T = 67, head_dim 32.
struct AttentionAllEodCase {
  static constexpr char const* name = "Attention, document mask: every token an EOD (T = 67)";
  static constexpr double tol = 2e-5;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    std::vector<std::int64_t> eods(67);
    for (std::int64_t t = 0; t < 67; ++t) eods[static_cast<std::size_t>(t)] = t;
    return run_attention<B, P>(ctx, {1, 67, 2, 1, 32, 0, true, eods, 48});
  }
};

/// Document mask with T = 1 and the only token an EOD.
struct AttentionSeqOneEodCase {
  static constexpr char const* name = "Attention, document mask: T = 1, the token an EOD";
  static constexpr double tol = 2e-5;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    return run_attention<B, P>(ctx, {1, 1, 2, 2, 8, 0, true, {0}, 50});
  }
};

/// LLM-jp-4 1.3B's attention (hidden 2048: 16 heads of 128 over 8 groups), T = 70, one sequence.
struct AttentionLlmJp4SmallCase {
  static constexpr char const* name = "Attention, LLM-jp-4 1.3B heads (16 x 128, 8 groups), T = 70";
  static constexpr double tol = 2e-5;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    return run_attention<B, P>(ctx, {1, 70, 16, 8, 128, 0, false, {}, 52});
  }
};

/// LLM-jp-4 7.7B's attention (hidden 4096: 32 heads of 128 over 8 groups), T = 33, documents
/// ending at 0, 15 and 32 (the last token).
struct AttentionLlmJp4LargeCase {
  static constexpr char const* name = "Attention, LLM-jp-4 7.7B heads (32 x 128, 8 groups), T = 33, document mask";
  static constexpr double tol = 2e-5;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    return run_attention<B, P>(ctx, {1, 33, 32, 8, 128, 0, true, {0, 15, 32}, 54});
  }
};

/// The dK/dV pass's two paths (ops/cuda/attention.cuh: Attention<Cuda>::backward): B = 1, T = 300
/// (four full tiles and 44 rows), 8 heads over 2 groups, head_dim D; Documents: EODs at 0, on the
/// tile edge 63 / 64, back to back at 150 / 151, and at 230. Slices 0: the automatic choice (this
/// grid of 5 x 2 blocks is small on any GPU: the heads are split, a block per head, partials summed
/// by dkdv_reduce_kernel); 1: forced unsplit (a block loops over its group's 4 heads, the large-grid
/// path); 2: forced two slices of 2 heads. Without CUDA (the CPU) Slices changes nothing.
template <int D, bool Documents, int Slices>
struct AttentionGqa300Case {
  static constexpr char const* name =
      Slices == 0   ? "Attention, T = 300, B = 1, 8 heads over 2 groups, dK/dV automatic (a block per head)"
      : Slices == 1 ? "Attention, T = 300, B = 1, 8 heads over 2 groups, dK/dV unsplit (a block per group)"
                    : "Attention, T = 300, B = 1, 8 heads over 2 groups, dK/dV in 2 slices of 2 heads";
  static constexpr double tol = 2e-5;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    AttentionConfig const a{1, 300, 8, 2, D, 0, Documents, {0, 63, 64, 150, 151, 230}, 56};
    if constexpr (std::is_same_v<B, Cuda>) {
      struct Reset {
        ~Reset() { ops::Attention<B>::dkdv_slices_for_tests = 0; }
      } reset;
      ops::Attention<B>::dkdv_slices_for_tests = Slices;
      return run_attention<B, P>(ctx, a);
    } else {
      return run_attention<B, P>(ctx, a);
    }
  }
};

/// Inner's configuration with Attention<Cuda>::tensor_cores off: bf16 at head_dim 64 and 128 then
/// runs on the CUDA-core kernels, which the plain cases leave to the tensor-core ones (fp32 and the
/// other head sizes take the CUDA-core kernels either way). On the CPU the same as Inner.
template <class Inner>
struct AttentionCudaCoresCase {
  static constexpr char suffix[] = " [CUDA-core kernels]";
  static constexpr std::size_t inner_length = std::char_traits<char>::length(Inner::name);
  static constexpr auto text = [] {
    std::array<char, inner_length + sizeof suffix> t{};
    for (std::size_t i = 0; i < inner_length; ++i) t[i] = Inner::name[i];
    for (std::size_t i = 0; i < sizeof suffix; ++i) t[inner_length + i] = suffix[i];
    return t;
  }();
  static constexpr char const* name = text.data();
  static constexpr double tol = Inner::tol;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    if constexpr (std::is_same_v<B, Cuda>) {
      struct Reset {
        ~Reset() { ops::Attention<B>::tensor_cores = true; }
      } reset;
      ops::Attention<B>::tensor_cores = false;
      return Inner::template run<B, P>(ctx);
    } else {
      return Inner::template run<B, P>(ctx);
    }
  }
};

}  // namespace kumiki_test::backend_ops
