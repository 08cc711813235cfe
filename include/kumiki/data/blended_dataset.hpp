// kumiki/data/blended_dataset.hpp: weighted blends of GPT datasets (`--data-path w1 p1 w2 p2 ...`)
// with Megatron's greedy blending index and its 0.5% per-dataset surplus.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/data/gpt_dataset.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace data {

/// One `weight prefix` pair of a blend; a lone prefix without a weight is used as is (no blending).
struct BlendEntry {
  std::optional<double> weight;
  std::filesystem::path prefix;
};

/// Parses Megatron's `--data-path` list: `w1 p1 w2 p2 ...` or a single `prefix`.
inline std::vector<BlendEntry> parse_data_path(std::vector<std::string> const& args) {
  KUMIKI_CHECK(!args.empty(), "--data-path is empty");
  if (args.size() == 1) return {BlendEntry{std::nullopt, args[0]}};
  KUMIKI_CHECK(args.size() % 2 == 0, "--data-path takes pairs `weight prefix`, got ", args.size(), " words");
  std::vector<BlendEntry> out;
  for (std::size_t i = 0; i < args.size(); i += 2) {
    char* end = nullptr;
    double const w = std::strtod(args[i].c_str(), &end);
    KUMIKI_CHECK(end != args[i].c_str() && *end == '\0', "--data-path: `", args[i], "` is not a weight (before prefix ",
                 args[i + 1], ")");
    KUMIKI_CHECK(std::isfinite(w) && w >= 0, "--data-path: weight ", args[i], " of ", args[i + 1], " must be >= 0");
    out.push_back(BlendEntry{w, args[i + 1]});
  }
  return out;
}

/// Weights divided by their sum, summed left to right as Python's sum() does.
inline std::vector<double> normalize_weights(std::vector<double> const& weights) {
  double sum = 0;
  for (double w : weights) sum += w;
  KUMIKI_CHECK(sum > 0, "blend weights sum to ", sum);
  std::vector<double> out;
  out.reserve(weights.size());
  for (double w : weights) out.push_back(w / sum);
  return out;
}

/// Samples each blended dataset is asked for: ceil(ceil(target * w) * 1.005) (Megatron's surplus).
inline std::int64_t blend_request(std::int64_t target, double normalized_weight) {
  return static_cast<std::int64_t>(std::ceil(std::ceil(static_cast<double>(target) * normalized_weight) * 1.005));
}

namespace detail {

/// x * y rounded to double, never fused with a following add (FMA contraction under -march=native
/// would otherwise change ties against the reference implementation).
inline double mul_rounded(double x, double y) {
  double p = x * y;
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  asm("" : "+x"(p));
#elif defined(__GNUC__) && defined(__aarch64__)
  asm("" : "+w"(p));
#else
  volatile double v = p;
  p = v;
#endif
  return p;
}

}  // namespace detail

/// Megatron's blending index (helpers.cpp build_blending_indices): for t = 0, 1, ...: choose
/// i = argmax_i (w_i * max(t, 1) - count_i), the first index winning ties; dataset_index[t] = i,
/// dataset_sample_index[t] = count_i, count_i += 1. `weights` must be normalized.
inline void build_blending_indices(std::vector<double> const& weights, std::int64_t size, std::int16_t* dataset_index,
                                   std::int64_t* dataset_sample_index) {
  KUMIKI_CHECK(!weights.empty() && weights.size() <= 32767, "blend of ", weights.size(), " datasets");
  std::vector<std::int64_t> count(weights.size(), 0);
  for (std::int64_t t = 0; t < size; ++t) {
    double const td = std::max(static_cast<double>(t), 1.0);
    std::size_t best = 0;
    double best_err = detail::mul_rounded(weights[0], td) - static_cast<double>(count[0]);
    for (std::size_t i = 1; i < weights.size(); ++i) {
      double const err = detail::mul_rounded(weights[i], td) - static_cast<double>(count[i]);
      if (err > best_err) {
        best_err = err;
        best = i;
      }
    }
    dataset_index[t] = static_cast<std::int16_t>(best);
    dataset_sample_index[t] = count[best];
    ++count[best];
  }
}

struct BlendedDatasetConfig {
  std::int64_t seq_len = 0;
  std::int64_t num_samples = 0;      ///< target samples of the blend
  std::uint64_t seed = 1234;
  std::filesystem::path cache_dir;  ///< GPT index cache; empty: none
};

/// A blend of GPT datasets: sample i is sample dataset_sample_index[i] of dataset dataset_index[i].
/// Built from `[(weight, prefix)]`; datasets named twice are opened once.
class BlendedDataset {
 public:
  BlendedDataset(std::vector<BlendEntry> const& entries, BlendedDatasetConfig config) : cfg_(std::move(config)) {
    KUMIKI_CHECK(!entries.empty(), "a blend needs at least one dataset");
    KUMIKI_CHECK(cfg_.num_samples > 0, "a blend needs a positive number of samples, got ", cfg_.num_samples);
    bool const single = entries.size() == 1 && !entries[0].weight.has_value();
    std::vector<double> raw;
    for (auto const& e : entries) {
      KUMIKI_CHECK(single || e.weight.has_value(), "blend entry ", e.prefix, " has no weight");
      raw.push_back(e.weight.value_or(1.0));
    }
    weights_ = normalize_weights(raw);
    dataset_index_.resize(static_cast<std::size_t>(cfg_.num_samples));
    dataset_sample_index_.resize(static_cast<std::size_t>(cfg_.num_samples));
    if (single) {  // Megatron uses a lone unweighted prefix directly, without the surplus
      for (std::int64_t t = 0; t < cfg_.num_samples; ++t) dataset_sample_index_[static_cast<std::size_t>(t)] = t;
      requested_.push_back(cfg_.num_samples);
    } else {
      build_blending_indices(weights_, cfg_.num_samples, dataset_index_.data(), dataset_sample_index_.data());
      for (double w : weights_) requested_.push_back(blend_request(cfg_.num_samples, w));
    }
    std::vector<std::pair<std::filesystem::path, std::shared_ptr<IndexedDataset const>>> opened;
    for (std::size_t d = 0; d < entries.size(); ++d) {
      std::shared_ptr<IndexedDataset const> ds;
      for (auto const& [p, o] : opened)
        if (p == entries[d].prefix) ds = o;
      if (!ds) {
        ds = std::make_shared<IndexedDataset const>(entries[d].prefix);
        opened.emplace_back(entries[d].prefix, ds);
      }
      GptDatasetConfig gc;
      gc.seq_len = cfg_.seq_len;
      gc.num_samples = requested_[d];
      gc.seed = cfg_.seed;
      gc.cache_dir = cfg_.cache_dir;
      datasets_.push_back(std::make_unique<GptDataset>(std::move(ds), gc));
    }
    // Every dataset_sample_index is below the dataset's request, which its GPT index covers.
    for (std::size_t d = 0; d < datasets_.size(); ++d)
      KUMIKI_CHECK(datasets_[d]->size() >= requested_[d], "dataset ", entries[d].prefix, " index too small");
  }

  std::int64_t size() const { return cfg_.num_samples; }
  std::int64_t seq_len() const { return cfg_.seq_len; }
  std::size_t num_datasets() const { return datasets_.size(); }
  GptDataset const& dataset(std::size_t d) const { return *datasets_.at(d); }
  std::vector<double> const& weights() const { return weights_; }
  /// Samples each dataset was asked for (target * weight plus the 0.5% surplus).
  std::vector<std::int64_t> const& requested() const { return requested_; }
  std::vector<std::int16_t> const& dataset_index() const { return dataset_index_; }
  std::vector<std::int64_t> const& dataset_sample_index() const { return dataset_sample_index_; }

  /// (dataset, sample within that dataset) of blended sample i.
  std::pair<std::int64_t, std::int64_t> source(std::int64_t i) const {
    KUMIKI_CHECK(i >= 0 && i < size(), "sample ", i, " outside the blend's [0, ", size(), ")");
    return {dataset_index_[static_cast<std::size_t>(i)], dataset_sample_index_[static_cast<std::size_t>(i)]};
  }

  /// Writes the L + 1 tokens of blended sample i to out.
  void get(std::int64_t i, std::int32_t* out) const {
    auto const [d, s] = source(i);
    datasets_[static_cast<std::size_t>(d)]->get(s, out);
  }
  std::vector<std::int32_t> get(std::int64_t i) const {
    std::vector<std::int32_t> v(static_cast<std::size_t>(cfg_.seq_len + 1));
    get(i, v.data());
    return v;
  }

  /// Samples taken from each dataset by the first `global_samples` samples of the blend.
  std::vector<std::int64_t> consumed_per_dataset(std::int64_t global_samples) const {
    KUMIKI_CHECK(global_samples >= 0 && global_samples <= size(), "consumed ", global_samples, " outside [0, ", size(), "]");
    std::vector<std::int64_t> c(datasets_.size(), 0);
    for (std::int64_t t = 0; t < global_samples; ++t) ++c[static_cast<std::size_t>(dataset_index_[static_cast<std::size_t>(t)])];
    return c;
  }

 private:
  BlendedDatasetConfig cfg_;
  std::vector<double> weights_;
  std::vector<std::int64_t> requested_;
  std::vector<std::int16_t> dataset_index_;
  std::vector<std::int64_t> dataset_sample_index_;
  std::vector<std::unique_ptr<GptDataset>> datasets_;
};

}  // namespace data
KUMIKI_NAMESPACE_END
