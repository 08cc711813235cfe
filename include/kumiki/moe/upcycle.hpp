// kumiki/moe/upcycle.hpp: Drop-Upcycling (Nakamura et al., ICLR 2025): an MoE model's weights built
// from a dense model's, every expert a copy of the dense FFN with a random part of it re-initialized.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <string>
#include <string_view>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/philox.hpp"
#include "kumiki/models/configs.hpp"
#include "kumiki/models/hf_names.hpp"
#include "kumiki/models/transformer_config.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace moe {

/// Settings of `drop_upcycle`.
struct UpcycleOptions {
  /// r: the fraction of an expert's intermediate dimension re-initialized, in [0, 1]. 0 is plain
  /// upcycling (every expert an exact copy), 1 re-initializes every row; the paper recommends 0.5.
  double ratio = 0.5;
  /// Philox key of every random draw (index sets, re-initialized values, router).
  std::uint64_t seed = 0;
  /// true (the paper): one index set S per expert, shared by its w1, w3 and w2. false (the public
  /// Megatron scripts): w1, w3 and w2 of an expert each draw their own subset of the same size.
  bool shared_index_set = true;
  /// The router is initialized fresh, uniform in (-a, a) with a = router_std * sqrt(3) (zero mean,
  /// standard deviation router_std), as the public scripts do; 0 gives a zero router.
  double router_std = 0.02;
};

/// The mean and standard deviation of one dense matrix, computed in double over all its values
/// (unbiased n - 1 denominator, as torch.std): the distribution its re-initialized parts are drawn from.
struct MatrixStats {
  double mean = 0.0;
  double std = 0.0;
};

/// Which of an expert's matrices a random stream belongs to.
enum class ExpertMatrix : std::uint32_t { w1 = 0, w3 = 1, w2 = 2, shared = 3 };

namespace detail {

// Stream ids: a kind in the top bits, then the layer and the expert, then the matrix, so every
// (layer, expert, matrix) owns its streams and nothing depends on the order of work or the threads.
inline constexpr std::uint64_t stream_index_set = 1, stream_values = 2, stream_router = 3;

inline constexpr std::uint64_t stream_id(std::uint64_t kind, std::int64_t layer, std::int64_t expert, ExpertMatrix m) {
  return (kind << 60) | (static_cast<std::uint64_t>(layer) << 32) | (static_cast<std::uint64_t>(expert) << 4) |
         static_cast<std::uint64_t>(m);
}


inline MatrixStats matrix_stats(float const* p, std::size_t n) {
  double sum = 0.0;
  for (std::size_t i = 0; i < n; ++i) sum += p[i];
  double const mean = sum / static_cast<double>(n);
  double ss = 0.0;
  for (std::size_t i = 0; i < n; ++i) ss += (p[i] - mean) * (p[i] - mean);
  return {mean, n > 1 ? std::sqrt(ss / static_cast<double>(n - 1)) : 0.0};
}

inline float const* dense_tensor(Arena<Cpu> const& a, std::string const& name, Shape const& shape) {
  KUMIKI_REQUIRE(a.layout().contains(name), "the dense model has no tensor '", name, "'");
  ArenaEntry const& e = a.layout().entry(name);
  KUMIKI_REQUIRE(e.dtype == DType::f32 && e.shape == shape, "dense tensor '", name, "' is ", dtype_name(e.dtype), " ",
               e.shape, ", expected f32 ", shape);
  return a.get<float>(name).data();
}

inline float* moe_tensor(Arena<Cpu>& a, std::string const& name, Shape const& shape) {
  KUMIKI_REQUIRE(a.layout().contains(name), "the MoE model has no tensor '", name, "'");
  ArenaEntry const& e = a.layout().entry(name);
  KUMIKI_REQUIRE(e.dtype == DType::f32 && e.shape == shape, "MoE tensor '", name, "' is ", dtype_name(e.dtype), " ",
               e.shape, ", expected f32 ", shape);
  return a.get<float>(name).data();
}

/// The shapes the work needs, taken from a compatible pair of configurations.
struct UpcycleDims {
  std::int64_t L = 0, C = 0, F = 0, E = 0;
};

}  // namespace detail

/// The number of re-initialized rows per matrix: round(r * F), halves away from zero.
inline std::int64_t reinit_count(double ratio, std::int64_t ffn) {
  KUMIKI_REQUIRE(std::isfinite(ratio) && ratio >= 0.0 && ratio <= 1.0, "Drop-Upcycling ratio ", ratio,
               " is outside [0, 1] (0: plain upcycling, 1: re-initialize every row)");
  return std::llround(ratio * static_cast<double>(ffn));
}

/// The re-initialized subset of {0, ..., ffn - 1} (`count` indices, in draw order) for matrix `m` of
/// expert `expert` in layer `layer` (`ExpertMatrix::shared` for the set shared by all three): a
/// partial Fisher-Yates shuffle whose j-th swap picks position j + (x_j mod (ffn - j)), x_j a 64-bit
/// Philox word (modulo bias below ffn / 2^64).
inline std::vector<std::int64_t> reinit_index_set(std::uint64_t seed, std::int64_t layer, std::int64_t expert,
                                                  ExpertMatrix m, std::int64_t ffn, std::int64_t count) {
  KUMIKI_CHECK(count >= 0 && count <= ffn, "cannot draw ", count, " of ", ffn, " indices");
  PhiloxStream const s{seed, detail::stream_id(detail::stream_index_set, layer, expert, m)};
  std::vector<std::int64_t> perm(static_cast<std::size_t>(ffn));
  std::iota(perm.begin(), perm.end(), std::int64_t{0});
  for (std::int64_t j = 0; j < count; ++j) {
    std::uint64_t const x = (static_cast<std::uint64_t>(s.u32(2 * static_cast<std::uint64_t>(j))) << 32) |
                            s.u32(2 * static_cast<std::uint64_t>(j) + 1);
    std::int64_t const t = j + static_cast<std::int64_t>(x % static_cast<std::uint64_t>(ffn - j));
    std::swap(perm[static_cast<std::size_t>(j)], perm[static_cast<std::size_t>(t)]);
  }
  perm.resize(static_cast<std::size_t>(count));
  return perm;
}

/// The fields in which a dense and an MoE configuration disagree for upcycling, one readable line
/// each ("hidden: dense 256, MoE 128"); empty when `moe` can be upcycled from `dense`. Compared: the
/// vocabulary (real and padded), hidden, layers, heads, query groups, RoPE base, RMSNorm epsilon,
/// untied embeddings; the dense one must have no experts, the MoE one must have experts, and one
/// expert's width must equal the dense FFN width. Sequence length and training settings may differ.
inline std::vector<std::string> upcycle_mismatches(models::TransformerConfig const& dense,
                                                   models::TransformerConfig const& moe) {
  std::vector<std::string> d;
  auto const cmp = [&](char const* field, auto a, auto b) {
    if (a != b) d.push_back(std::string(field) + ": dense " + std::to_string(a) + ", MoE " + std::to_string(b));
  };
  if (dense.is_moe()) d.push_back("num_experts: the dense model has " + std::to_string(dense.num_experts) + " experts (must be 0)");
  if (!moe.is_moe()) d.push_back("num_experts: the MoE model has none (must be at least 1)");
  cmp("vocab_size", dense.vocab_size, moe.vocab_size);
  cmp("padded vocab (make_vocab_divisible_by)", dense.padded_vocab(), moe.padded_vocab());
  cmp("hidden", dense.hidden, moe.hidden);
  cmp("num_layers", dense.num_layers, moe.num_layers);
  cmp("num_heads", dense.num_heads, moe.num_heads);
  cmp("num_query_groups", dense.num_query_groups, moe.num_query_groups);
  cmp("rope_base", dense.rope_base, moe.rope_base);
  cmp("rms_eps", dense.rms_eps, moe.rms_eps);
  cmp("untie_embeddings", int(dense.untie_embeddings), int(moe.untie_embeddings));
  if (moe.expert_ffn() != dense.ffn_hidden)
    d.push_back("expert width: MoE expert_ffn() " + std::to_string(moe.expert_ffn()) + " (moe_ffn_hidden " +
                std::to_string(moe.moe_ffn_hidden) + ", ffn_hidden " + std::to_string(moe.ffn_hidden) +
                ") differs from the dense ffn_hidden " + std::to_string(dense.ffn_hidden));
  return d;
}

/// Compile-time counterpart of `upcycle_mismatches`, one readable static_assert per field:
/// `static_assert(moe::check_upcycle_pair<models::demo, models::demo_moe>())`.
template <auto Dense, auto Moe>
  requires models::TransformerConfigLike<decltype(Dense)> && models::TransformerConfigLike<decltype(Moe)>
consteval bool check_upcycle_pair() {
  static_assert(Dense.num_experts == 0, "kumiki upcycle: the dense configuration has experts (num_experts must be 0)");
  static_assert(Moe.num_experts > 0, "kumiki upcycle: the MoE configuration has no experts (num_experts must be > 0)");
  static_assert(Dense.vocab_size == Moe.vocab_size && Dense.padded_vocab() == Moe.padded_vocab(),
                "kumiki upcycle: dense and MoE configurations differ in vocab_size (or its padding)");
  static_assert(Dense.hidden == Moe.hidden, "kumiki upcycle: dense and MoE configurations differ in hidden");
  static_assert(Dense.num_layers == Moe.num_layers, "kumiki upcycle: dense and MoE configurations differ in num_layers");
  static_assert(Dense.num_heads == Moe.num_heads, "kumiki upcycle: dense and MoE configurations differ in num_heads");
  static_assert(Dense.num_query_groups == Moe.num_query_groups,
                "kumiki upcycle: dense and MoE configurations differ in num_query_groups");
  static_assert(Dense.rope_base == Moe.rope_base, "kumiki upcycle: dense and MoE configurations differ in rope_base");
  static_assert(Dense.rms_eps == Moe.rms_eps, "kumiki upcycle: dense and MoE configurations differ in rms_eps");
  static_assert(Dense.untie_embeddings == Moe.untie_embeddings,
                "kumiki upcycle: dense and MoE configurations differ in untie_embeddings");
  static_assert(Moe.expert_ffn() == Dense.ffn_hidden,
                "kumiki upcycle: the MoE expert width (expert_ffn()) must equal the dense ffn_hidden");
  return true;
}

namespace detail {

/// The work, for arenas whose names and shapes were checked against `dims`.
inline void drop_upcycle_impl(UpcycleDims const dims, Arena<Cpu> const& dense, Arena<Cpu>& moe,
                              UpcycleOptions const& opt) {
  auto const [L, C, F, E] = dims;
  std::int64_t const k = reinit_count(opt.ratio, F);
  KUMIKI_REQUIRE(std::isfinite(opt.router_std) && opt.router_std >= 0.0, "router std ", opt.router_std,
               " must be a non-negative number");
  // Every dense tensor has a place: the 3 FFN matrices of each layer feed the experts, the rest is copied.
  std::size_t const moe_ffn_tensors = static_cast<std::size_t>(L * (1 + 3 * E));
  KUMIKI_CHECK(moe.layout().size() >= moe_ffn_tensors &&
                   dense.layout().size() == moe.layout().size() - moe_ffn_tensors + static_cast<std::size_t>(3 * L),
               "the dense model has ", dense.layout().size(), " tensors and the MoE model ", moe.layout().size(),
               "; upcycling expects the MoE model to replace each layer's 3 FFN matrices by a router and ", E,
               " experts of 3");

  // Non-FFN tensors: bit-for-bit copies under the same names.
  for (ArenaEntry const& e : moe.layout().entries()) {
    if (e.name.find(".block_sparse_moe.") != std::string::npos) continue;
    float const* src = dense_tensor(dense, e.name, e.shape);
    std::memcpy(moe.get<float>(e.name).data(), src, e.numel() * sizeof(float));
  }

  // The dense FFN of every layer and its statistics (gate, up, down).
  struct DenseFfn {
    float const* m[3];  // gate [F, C], up [F, C], down [C, F]
    MatrixStats stats[3];
  };
  std::vector<DenseFfn> ffn(static_cast<std::size_t>(L));
  for (std::int64_t l = 0; l < L; ++l) {
    std::string const p = models::hf::mlp_prefix(l);
    ffn[static_cast<std::size_t>(l)].m[0] = dense_tensor(dense, p + "gate_proj.weight", Shape{F, C});
    ffn[static_cast<std::size_t>(l)].m[1] = dense_tensor(dense, p + "up_proj.weight", Shape{F, C});
    ffn[static_cast<std::size_t>(l)].m[2] = dense_tensor(dense, p + "down_proj.weight", Shape{C, F});
  }
#pragma omp parallel for schedule(static)
  for (std::int64_t j = 0; j < 3 * L; ++j)
    ffn[static_cast<std::size_t>(j / 3)].stats[j % 3] =
        matrix_stats(ffn[static_cast<std::size_t>(j / 3)].m[j % 3], static_cast<std::size_t>(F * C));

  // Destinations, resolved (and checked) before the parallel loop.
  std::vector<float*> dst(static_cast<std::size_t>(L * E * 3));
  std::vector<float*> router(static_cast<std::size_t>(L));
  for (std::int64_t l = 0; l < L; ++l) {
    router[static_cast<std::size_t>(l)] = moe_tensor(moe, models::hf::router_name(l), Shape{E, C});
    for (std::int64_t e = 0; e < E; ++e) {
      std::string const x = models::hf::expert_prefix(l, e);
      float** d = &dst[static_cast<std::size_t>((l * E + e) * 3)];
      d[0] = moe_tensor(moe, x + "w1.weight", Shape{F, C});
      d[1] = moe_tensor(moe, x + "w3.weight", Shape{F, C});
      d[2] = moe_tensor(moe, x + "w2.weight", Shape{C, F});
    }
  }

  // Experts: copy the dense FFN, then redraw the chosen rows of w1 / w3 and columns of w2. A redrawn
  // element (r, c) of matrix m takes sample r * cols + c of its own stream, so every value depends
  // on (seed, layer, expert, matrix, position) only.
  ExpertMatrix const mats[3] = {ExpertMatrix::w1, ExpertMatrix::w3, ExpertMatrix::w2};
#pragma omp parallel for schedule(static)
  for (std::int64_t le = 0; le < L * E; ++le) {
    std::int64_t const l = le / E, e = le % E;
    DenseFfn const& src = ffn[static_cast<std::size_t>(l)];
    std::vector<std::int64_t> shared;
    if (opt.shared_index_set) shared = reinit_index_set(opt.seed, l, e, ExpertMatrix::shared, F, k);
    for (int m = 0; m < 3; ++m) {
      float* out = dst[static_cast<std::size_t>(le * 3 + m)];
      std::memcpy(out, src.m[m], static_cast<std::size_t>(F * C) * sizeof(float));
      std::vector<std::int64_t> const set =
          opt.shared_index_set ? shared : reinit_index_set(opt.seed, l, e, mats[m], F, k);
      PhiloxStream const s{opt.seed, stream_id(stream_values, l, e, mats[m])};
      double const mean = src.stats[m].mean, sd = src.stats[m].std;
      for (std::int64_t i : set) {
        if (m < 2) {  // row i of a [F, C] matrix
          for (std::int64_t c = 0; c < C; ++c)
            out[i * C + c] = static_cast<float>(mean + sd * s.normal(static_cast<std::uint64_t>(i * C + c)));
        } else {  // column i of the [C, F] down projection
          for (std::int64_t c = 0; c < C; ++c)
            out[c * F + i] = static_cast<float>(mean + sd * s.normal(static_cast<std::uint64_t>(c * F + i)));
        }
      }
    }
  }

  // Routers: fresh, zero-mean uniform with standard deviation router_std.
  double const a = opt.router_std * std::sqrt(3.0);
  for (std::int64_t l = 0; l < L; ++l) {
    PhiloxStream const s{opt.seed, stream_id(stream_router, l, 0, ExpertMatrix::w1)};
    float* r = router[static_cast<std::size_t>(l)];
    for (std::int64_t i = 0; i < E * C; ++i)
      r[i] = static_cast<float>(a * (2.0 * static_cast<double>(s.uniform(static_cast<std::uint64_t>(i))) - 1.0));
  }
}

}  // namespace detail

/// Drop-Upcycling of the fp32 weights `dense` (Hugging Face Llama names, configuration Dense) into
/// `moe` (Mixtral names, configuration Moe, e.g. an Arena of nn::Transformer<Moe>::param_layout()):
/// - every tensor other than the FFN (embeddings, norms, attention, final norm, LM head) is copied
///   bit for bit;
/// - every expert e of layer l starts as the dense FFN of layer l: w1 <- gate_proj, w3 <- up_proj,
///   w2 <- down_proj;
/// - per expert, round(r * F) indices S of the intermediate dimension are re-initialized: rows S of
///   w1 and w3 ([F, C]) and columns S of w2 ([C, F]), from Normal(mean, std) of the whole dense
///   matrix being replaced (gate for w1, up for w3, down for w2); S shared by the three matrices or
///   drawn per matrix (`UpcycleOptions::shared_index_set`);
/// - routers are drawn fresh from U(-a, a), a = router_std * sqrt(3).
/// All randomness is Philox keyed by opt.seed with one stream per (layer, expert, matrix), so the
/// result is the same for any number of threads.
template <auto Dense, auto Moe>
  requires models::TransformerConfigLike<decltype(Dense)> && models::TransformerConfigLike<decltype(Moe)>
void drop_upcycle(Arena<Cpu> const& dense, Arena<Cpu>& moe, UpcycleOptions const& opt = {}) {
  static_assert(check_upcycle_pair<Dense, Moe>());
  // A named object, not a braced argument: nvcc's front end misparses `f({Cfg.member, ...})` with
  // template-parameter objects (the umbrella header reaches .cu files).
  detail::UpcycleDims const dims{Dense.num_layers, Dense.hidden, Dense.ffn_hidden, Moe.num_experts};
  detail::drop_upcycle_impl(dims, dense, moe, opt);
}

/// The same for configurations of `Configs` (the program's list) named at run time. Throws a
/// kumiki::Error listing every mismatching field when `moe_name` cannot be upcycled from `dense_name`.
template <class Configs = models::BuiltinConfigs>
void drop_upcycle(std::string_view dense_name, Arena<Cpu> const& dense, std::string_view moe_name, Arena<Cpu>& moe,
                  UpcycleOptions const& opt = {}) {
  models::TransformerConfig const d = Configs::find(dense_name), m = Configs::find(moe_name);
  std::vector<std::string> const diff = upcycle_mismatches(d, m);
  if (!diff.empty()) {
    std::string msg = "cannot upcycle '" + std::string(dense_name) + "' into '" + std::string(moe_name) + "':";
    for (auto const& f : diff) msg += "\n  " + f;
    KUMIKI_FAIL(msg);
  }
  detail::drop_upcycle_impl({d.num_layers, d.hidden, d.ffn_hidden, m.num_experts}, dense, moe, opt);
}

}  // namespace moe
KUMIKI_NAMESPACE_END
