// kumiki/nn/generator.hpp: text generation with a key/value cache over any dense
// nn::Transformer<Cfg, Backend>: prompts of different lengths prefilled together, then one token per
// sequence per step; greedy or sampled (temperature, top-k, top-p) from Philox, so a seed reproduces
// the output exactly.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numeric>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/buffer.hpp"
#include "kumiki/core/dtype.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/philox.hpp"
#include "kumiki/nn/transformer.hpp"
#include "kumiki/nn/transformer_block.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/ops/cached_attention.hpp"
#include "kumiki/ops/embedding.hpp"
#include "kumiki/ops/linear.hpp"
#include "kumiki/ops/rmsnorm.hpp"
#include "kumiki/ops/rope.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace nn {

/// How the next token is chosen from the logits of the real vocabulary.
struct SamplingOptions {
  double temperature = 0.0;  ///< 0: greedy (the arg max, the lowest id on ties)
  std::int64_t top_k = 0;    ///< keep the k most likely tokens (0: all)
  double top_p = 1.0;        ///< then the smallest most-likely set whose probability reaches top_p
  std::uint64_t seed = 0;
};

/// The token drawn for (stream, step): logits / temperature; the top_k largest (ties: lower id first);
/// softmax over those in double; the shortest prefix (in that order) whose probability reaches top_p
/// (at least one token); then the first token whose cumulative probability exceeds u x total, u the
/// step-th uniform double of Philox stream (seed, stream). Same seed, same tokens, on any machine.
inline std::int32_t sample_token(std::span<double const> logits, SamplingOptions const& o, std::uint64_t stream,
                                 std::uint64_t step) {
  KUMIKI_CHECK(!logits.empty(), "sampling from no logits");
  if (o.temperature <= 0.0) return static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  std::vector<std::int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::size_t keep = o.top_k > 0 ? std::min<std::size_t>(static_cast<std::size_t>(o.top_k), order.size()) : order.size();
  auto const higher = [&](std::int32_t a, std::int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(keep), order.end(), higher);
  std::vector<double> p(keep);
  double const top = logits[order[0]] / o.temperature;
  double total = 0;
  for (std::size_t i = 0; i < keep; ++i) total += p[i] = std::exp(logits[order[i]] / o.temperature - top);
  if (o.top_p < 1.0) {
    double cum = 0;
    std::size_t n = 0;
    while (n < keep && cum < o.top_p * total) cum += p[n++];
    keep = std::max<std::size_t>(n, 1);
    total = std::accumulate(p.begin(), p.begin() + static_cast<std::ptrdiff_t>(keep), 0.0);
  }
  PhiloxStream const rng{o.seed, stream};
  auto const blk = rng.block(step);
  double const u = PhiloxStream::to_unit_double(blk[0], blk[1]) * total;
  double cum = 0;
  for (std::size_t i = 0; i < keep; ++i)
    if ((cum += p[i]) > u) return order[i];
  return order[keep - 1];
}

struct GenerateOptions {
  std::int64_t max_new_tokens = 64;
  SamplingOptions sampling;
  std::int32_t eos = -1;  ///< a sequence ends after generating it (-1: none)
};

/// Incremental decoding over a dense `Model` (nn::Transformer<Cfg, Backend, P>): reads its weights and
/// runs on its backend context, never changes it. The cache holds `slots` sequences of up to `max_len` tokens each: per layer K and V
/// after RoPE, (slots, max_len, kv_width) in the activation type. A call to `extend` appends tokens to
/// any slots and runs them in one pass: the GEMMs over all new rows together, RoPE and attention per
/// slot at its own position (ops::CachedAttention). Logits are returned for the last new token of each
/// slot (or after each of its last `logit_rows` tokens, for scoring a continuation), in double, for
/// the real vocabulary (or all rows of the LM head).
template <class Model>
class Generator {
 public:
  using Backend = typename Model::backend;
  using A = typename Model::act_type;
  using S = typename Model::stat_type;
  using W = typename Model::param_type;
  using Block = typename Model::Block;
  static constexpr auto Cfg = Model::config;
  static_assert(!Cfg.is_moe(), "kumiki: generation of mixture-of-experts models is not implemented yet");
  static_assert(std::is_same_v<A, S>, "kumiki: the generator needs one type for activations and statistics");
  static constexpr std::int64_t L = Cfg.num_layers, C = Cfg.hidden, F = Cfg.ffn_hidden, H = Cfg.num_heads;
  static constexpr std::int64_t G = Cfg.num_query_groups, hd = Cfg.head_dim(), KV = Cfg.kv_width(), QKV = C + 2 * KV;
  static constexpr std::int64_t V = Cfg.vocab_size, Vp = Cfg.padded_vocab();

  Generator(Model& model, std::int64_t slots, std::int64_t max_len)
      : model_(model), slots_(slots), max_len_(max_len), len_(static_cast<std::size_t>(slots), 0), cache_(cache_layout(slots, max_len)) {
    KUMIKI_REQUIRE(slots > 0, "a generator needs at least one sequence slot");
    KUMIKI_REQUIRE(max_len > 0 && max_len <= Cfg.max_seq_len, "generation length ", max_len,
                   " must lie in [1, the model's max_seq_len ", Cfg.max_seq_len, "]");
    ops::Rope<Backend>::tables(ctx(), cache_.template get<S>("rope.cos").data(), cache_.template get<S>("rope.sin").data(),
                               max_len, hd, Cfg.rope_base);
  }

  std::int64_t slots() const { return slots_; }
  std::int64_t max_len() const { return max_len_; }
  /// Tokens in slot s's cache.
  std::int64_t length(std::int64_t s) const { return len_[static_cast<std::size_t>(s)]; }
  /// Empties slot s (its cache is overwritten by the next tokens).
  void reset(std::int64_t s) { len_[static_cast<std::size_t>(s)] = 0; }
  Arena<Backend> const& cache() const { return cache_; }

  /// One slot's new tokens.
  struct Feed {
    std::int64_t slot = 0;
    std::vector<std::int32_t> tokens;
    std::int64_t logit_rows = 1;  ///< logits after each of the last logit_rows tokens (1: the next token's)
  };

  /// Which logits extend returns: the real vocabulary's (to choose a token), or all rows of the LM
  /// head (to score text as the training loss and an exported Hugging Face model normalize it).
  enum class Vocab { real, padded };

  /// Appends each feed's tokens to its slot (distinct slots, each at least one token) and returns,
  /// per feed, the logits after each of its last logit_rows tokens, row after row (logit_rows x
  /// vocab_size, or x padded_vocab).
  std::vector<std::vector<double>> extend(std::vector<Feed> const& feeds, Vocab vocab = Vocab::real) {
    KUMIKI_REQUIRE(!feeds.empty(), "extend needs at least one slot to feed");
    std::int64_t rows = 0, out_rows = 0;
    std::vector<char> seen(static_cast<std::size_t>(slots_), 0);
    for (auto const& f : feeds) {
      KUMIKI_REQUIRE(f.slot >= 0 && f.slot < slots_, "slot ", f.slot, " outside [0, ", slots_, ")");
      KUMIKI_REQUIRE(!seen[static_cast<std::size_t>(f.slot)], "slot ", f.slot, " is fed twice in one call");
      seen[static_cast<std::size_t>(f.slot)] = 1;
      KUMIKI_REQUIRE(!f.tokens.empty(), "slot ", f.slot, " is fed no tokens");
      KUMIKI_REQUIRE(f.logit_rows >= 1 && f.logit_rows <= static_cast<std::int64_t>(f.tokens.size()), "slot ", f.slot,
                     " asks for logits after its last ", f.logit_rows, " tokens but is fed ", f.tokens.size());
      out_rows += f.logit_rows;
      KUMIKI_REQUIRE(length(f.slot) + static_cast<std::int64_t>(f.tokens.size()) <= max_len_, "slot ", f.slot,
                     " would hold ", length(f.slot) + static_cast<std::int64_t>(f.tokens.size()),
                     " tokens, more than the generator's max_len ", max_len_);
      for (auto t : f.tokens)
        KUMIKI_REQUIRE(t >= 0 && t < V, "token id ", t, " is outside the vocabulary [0, ", V, ")");
      rows += static_cast<std::int64_t>(f.tokens.size());
    }
    ensure_scratch(rows, out_rows);
    std::vector<std::int32_t> ids;
    for (auto const& f : feeds) ids.insert(ids.end(), f.tokens.begin(), f.tokens.end());
    Copy<Backend, Cpu>::bytes(scratch_.template get<std::int32_t>("tokens").data(), ids.data(), ids.size() * sizeof(std::int32_t));
    run(feeds, rows);
    for (auto const& f : feeds) len_[static_cast<std::size_t>(f.slot)] += static_cast<std::int64_t>(f.tokens.size());
    std::vector<A> host(static_cast<std::size_t>(out_rows * Vp));
    Copy<Cpu, Backend>::bytes(host.data(), scratch_.template get<A>("logits").data(), host.size() * sizeof(A));
    std::vector<std::vector<double>> out(feeds.size());
    std::int64_t const width = vocab == Vocab::real ? V : Vp;
    std::int64_t row = 0;
    for (std::size_t i = 0; i < feeds.size(); ++i) {
      out[i].reserve(static_cast<std::size_t>(feeds[i].logit_rows * width));
      for (std::int64_t r = 0; r < feeds[i].logit_rows; ++r, ++row)
        out[i].insert(out[i].end(), host.begin() + row * Vp, host.begin() + row * Vp + width);
    }
    return out;
  }

  /// Generates a continuation of each prompt: prompts are prefilled together, then every unfinished
  /// sequence gets one token per step, drawn by sample_token with stream = the prompt's index and
  /// step = the token's index in its continuation. A sequence ends after `eos`, after max_new_tokens,
  /// when its cache is full, or when `on_token(prompt index, token)` returns false (stop strings,
  /// streaming). More prompts than slots run in groups of `slots`.
  std::vector<std::vector<std::int32_t>> generate(std::vector<std::vector<std::int32_t>> const& prompts, GenerateOptions const& o,
                                                  std::function<bool(std::size_t, std::int32_t)> const& on_token = {}) {
    std::vector<std::vector<std::int32_t>> out(prompts.size());
    for (std::size_t first = 0; first < prompts.size(); first += static_cast<std::size_t>(slots_)) {
      std::size_t const n = std::min(prompts.size() - first, static_cast<std::size_t>(slots_));
      std::vector<Feed> feeds;
      for (std::size_t i = 0; i < n; ++i) {
        KUMIKI_REQUIRE(!prompts[first + i].empty(), "prompt ", first + i, " is empty (give at least one token, e.g. BOS)");
        reset(static_cast<std::int64_t>(i));
        feeds.push_back({static_cast<std::int64_t>(i), prompts[first + i]});
      }
      auto logits = extend(feeds);
      for (std::int64_t step = 0; step < o.max_new_tokens && !feeds.empty(); ++step) {
        std::vector<Feed> next;
        for (std::size_t j = 0; j < feeds.size(); ++j) {
          std::size_t const p = first + static_cast<std::size_t>(feeds[j].slot);
          std::int32_t const t = sample_token(logits[j], o.sampling, p, static_cast<std::uint64_t>(step));
          out[p].push_back(t);
          bool const go_on = (!on_token || on_token(p, t)) && t != o.eos && step + 1 < o.max_new_tokens &&
                             length(feeds[j].slot) < max_len_;
          if (go_on) next.push_back({feeds[j].slot, {t}});
        }
        feeds = std::move(next);
        if (!feeds.empty()) logits = extend(feeds);
      }
    }
    return out;
  }

 private:
  ops::Ctx<Backend>& ctx() { return model_.context(); }

  static ArenaLayout cache_layout(std::int64_t slots, std::int64_t max_len) {
    ArenaLayout l;
    for (std::int64_t i = 0; i < L; ++i) {
      l.add("k." + std::to_string(i), dtype_v<A>, Shape{slots, max_len, KV});
      l.add("v." + std::to_string(i), dtype_v<A>, Shape{slots, max_len, KV});
    }
    l.add("rope.cos", dtype_v<S>, Shape{max_len, hd / 2});
    l.add("rope.sin", dtype_v<S>, Shape{max_len, hd / 2});
    return l;
  }

  /// Scratch for `rows` new tokens and `k` rows of logits, re-planned only when a call needs more.
  void ensure_scratch(std::int64_t rows, std::int64_t k) {
    if (rows <= rows_ && k <= logit_rows_) return;
    rows_ = std::max(rows, rows_), logit_rows_ = std::max(k, logit_rows_);
    DType const a = dtype_v<A>;
    std::int64_t const R = rows_, K = logit_rows_;
    ArenaLayout l;
    l.add("tokens", DType::i32, Shape{R});
    for (char const* n : {"x", "y", "ln", "att", "tmp", "x_mid"}) l.add(n, a, Shape{R, C});
    l.add("rstd", dtype_v<S>, Shape{R});
    l.add("qkv", a, Shape{R, QKV});
    l.add("gu", a, Shape{R, 2 * F});
    l.add("h", a, Shape{R, F});
    l.add("last", a, Shape{K, C});
    l.add("last_ln", a, Shape{K, C});
    l.add("last_rstd", dtype_v<S>, Shape{K});
    l.add("logits", a, Shape{K, Vp});
    scratch_ = Arena<Backend>(std::move(l));
  }

  template <class U>
  U* at(std::string_view name) { return scratch_.template get<U>(name).data(); }

  void run(std::vector<Feed> const& feeds, std::int64_t N) {
    auto& c = ctx();
    Arena<Backend> const& params = model_.params();
    // The block's buffers for N rows: one set for all layers (nothing is kept for a backward); the
    // residual stream alternates between x and y, since a block's output must not alias its input.
    A *ln = at<A>("ln"), *qkv = at<A>("qkv");
    S* rstd = at<S>("rstd");
    BlockActivations<A, S> a{ln, rstd, qkv, at<A>("att"), nullptr, at<A>("x_mid"), ln, rstd};
    a.gu = at<A>("gu"), a.h = at<A>("h");
    BlockScratch<A, S> scratch{};
    scratch.tmp = at<A>("tmp");
    A *x = at<A>("x"), *y = at<A>("y");
    S const* cos = cache_.template get<S>("rope.cos").data();
    S const* sin = cache_.template get<S>("rope.sin").data();
    ops::Embedding<Backend>::forward(c, at<std::int32_t>("tokens"), params.template get<W>(0).data(), x, N, C, Vp);
    S const scale = static_cast<S>(1.0 / std::sqrt(static_cast<double>(hd)));
    for (std::int64_t l = 0; l < L; ++l) {
      A* kc = cache_.template get<A>("k." + std::to_string(l)).data();
      A* vc = cache_.template get<A>("v." + std::to_string(l)).data();
      Block::forward_with(c, Model::template block_weights<W>(params, l), a, scratch, N, nullptr, nullptr, x, y, [&] {
        std::int64_t r0 = 0;
        for (auto const& f : feeds) {  // per slot: positions, cache rows and keys of its own
          std::int64_t const n = static_cast<std::int64_t>(f.tokens.size()), past = length(f.slot);
          A* rq = qkv + r0 * QKV;
          ops::Rope<Backend>::apply(c, rq, 1, n, H, hd, QKV, cos + past * (hd / 2), sin + past * (hd / 2), false);
          ops::Rope<Backend>::apply(c, rq + C, 1, n, G, hd, QKV, cos + past * (hd / 2), sin + past * (hd / 2), false);
          A* ks = kc + (f.slot * max_len_ + past) * KV;
          A* vs = vc + (f.slot * max_len_ + past) * KV;
          for (std::int64_t i = 0; i < n; ++i) {
            Copy<Backend, Backend>::bytes(ks + i * KV, rq + i * QKV + C, KV * sizeof(A));
            Copy<Backend, Backend>::bytes(vs + i * KV, rq + i * QKV + C + KV, KV * sizeof(A));
          }
          ops::CachedAttention<Backend>::forward(c, ops::CachedAttentionShape{n, past, H, G, hd, QKV, KV, C}, rq,
                                                 kc + f.slot * max_len_ * KV, vc + f.slot * max_len_ * KV,
                                                 a.att + r0 * C, scale);
          r0 += n;
        }
      });
      std::swap(x, y);
    }
    // The last logit_rows rows of each feed through the final norm and the LM head.
    A* last = at<A>("last");
    std::int64_t r = 0, k = 0;
    for (auto const& f : feeds) {
      r += static_cast<std::int64_t>(f.tokens.size());
      Copy<Backend, Backend>::bytes(last + k * C, x + (r - f.logit_rows) * C, f.logit_rows * C * sizeof(A));
      k += f.logit_rows;
    }
    std::size_t const i_norm = 1 + static_cast<std::size_t>(L) * Model::tensors_per_layer;
    ops::RmsNorm<Backend>::forward(c, last, params.template get<W>(i_norm).data(), at<A>("last_ln"), at<S>("last_rstd"), k,
                                   C, Cfg.rms_eps);
    ops::Linear<Backend>::forward(c, at<A>("last_ln"), params.template get<W>(i_norm + 1).data(), at<A>("logits"), k, C, Vp);
  }

  Model& model_;
  std::int64_t slots_, max_len_;
  std::vector<std::int64_t> len_;
  Arena<Backend> cache_;
  Arena<Backend> scratch_{ArenaLayout{}};
  std::int64_t rows_ = 0, logit_rows_ = 0;
};

/// The generator of a model whose backend this translation unit lacks (ops::backend_available): the
/// model's own static_assert is the error; this empty class takes any arguments and adds none.
template <auto Cfg, class Backend, class P>
  requires(!ops::backend_available<Backend>)
class Generator<Transformer<Cfg, Backend, P>> {
 public:
  template <class... Args>
  explicit Generator(Args&&... /*args*/) {}
};

}  // namespace nn
KUMIKI_NAMESPACE_END
