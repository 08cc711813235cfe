// kumiki/data/blended_dataset.hpp: blends of GPT datasets as Megatron-LM builds them from
// `--data-path` (weighted `w1 p1 w2 p2 ...`, weightless `p1 p2 ...`) and `--split`: the same requests
// per dataset, the same blend length and the same greedy blending index, sample for sample.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/fp.hpp"
#include "kumiki/data/gpt_dataset.hpp"
#include "kumiki/data/normalize.hpp"
#include "kumiki/data/split.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace data {

/// One dataset of a blend: its weight (none in the weightless form and for a lone prefix) and prefix.
struct BlendEntry {
  std::optional<double> weight;
  std::filesystem::path prefix;
};

namespace detail {

/// A --data-path word read as a number the way Python's float() does for Megatron's
/// get_blend_from_list (decimal or exponent notation, inf, nan); anything else is a prefix.
inline std::optional<double> parse_number(std::string const& s) {
  if (s.empty() || s.find_first_of("xX(") != std::string::npos) return std::nullopt;  // no C hex floats or nan(...)
  char* end = nullptr;
  double const x = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || *end != '\0') return std::nullopt;
  return x;
}

}  // namespace detail

/// Refuses a blend weight Megatron's BlendedDataset would refuse (it asserts every weight > 0).
inline void require_blend_weight(double w, std::string_view as_written, std::filesystem::path const& prefix,
                                 std::string_view what = "--data-path") {
  KUMIKI_REQUIRE(std::isfinite(w) && w > 0, what, ": weight ", as_written, " of dataset '", prefix.string(),
                 "' must be a positive number (Megatron refuses weights <= 0); leave the dataset out instead");
}

/// Parses Megatron's `--data-path` list (megatron.core.datasets.utils.get_blend_from_list):
///   `w1 p1 w2 p2 ...`  weighted blend: every even word a number;
///   `p1 p2 ...`        weightless blend (any odd length, or no even word a number): datasets are
///                      blended in proportion to their sizes;
///   `p`                one dataset, used directly.
/// Unlike Megatron, a list mixing both forms, a word that looks like a weight where a prefix belongs
/// and a weight <= 0 are refused with a message instead of being read as prefixes or asserted on.
inline std::vector<BlendEntry> parse_data_path(std::vector<std::string> const& args, std::string_view what = "--data-path") {
  KUMIKI_REQUIRE(!args.empty(), what, " names no dataset");
  std::vector<BlendEntry> out;
  bool weighted = args.size() % 2 == 0;
  if (weighted) {
    std::size_t numbers = 0;
    for (std::size_t i = 0; i < args.size(); i += 2) numbers += detail::parse_number(args[i]).has_value() ? 1 : 0;
    weighted = numbers == args.size() / 2;
    if (!weighted && numbers != 0)
      for (std::size_t i = 0; i < args.size(); i += 2)
        KUMIKI_REQUIRE(detail::parse_number(args[i]).has_value(), what, ": `", args[i], "` (word ", i + 1,
                       ") stands where a weight belongs but is not a number, while other words are weights; give "
                       "either `weight prefix` pairs or prefixes alone");
  }
  if (weighted) {
    for (std::size_t i = 0; i < args.size(); i += 2) {
      double const w = *detail::parse_number(args[i]);
      require_blend_weight(w, args[i], args[i + 1], what);
      KUMIKI_REQUIRE(!detail::parse_number(args[i + 1]).has_value(), what, ": `", args[i + 1], "` (word ", i + 2,
                     ") stands where a dataset prefix belongs but is a number");
      out.push_back(BlendEntry{w, args[i + 1]});
    }
    return out;
  }
  for (std::size_t i = 0; i < args.size(); ++i) {
    KUMIKI_REQUIRE(!detail::parse_number(args[i]).has_value(), what, ": `", args[i], "` (word ", i + 1, " of ", args.size(),
                   ") is a number but has no dataset prefix after it: a weighted blend takes `weight prefix` pairs, "
                   "a weightless one prefixes alone");
    out.push_back(BlendEntry{std::nullopt, args[i]});
  }
  return out;
}

/// Megatron's mid_level_dataset_surplus: each blended dataset is built 0.5% larger than its share.
inline constexpr double blend_surplus = 0.005;

/// Samples blended dataset i is built for (Megatron's _get_size_per_split_per_dataset with the
/// surplus): ceil(ceil(target * w) * (1 + 0.005)), w normalized once.
inline std::int64_t blend_request(std::int64_t target, double normalized_weight) {
  return static_cast<std::int64_t>(
      std::ceil(std::ceil(static_cast<double>(target) * normalized_weight) * (1.0 + blend_surplus)));
}

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
    double best_err = rounded(weights[0] * td) - static_cast<double>(count[0]);
    for (std::size_t i = 1; i < weights.size(); ++i) {
      double const err = rounded(weights[i] * td) - static_cast<double>(count[i]);
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

/// Sequences [begin, end) of `part` of dataset `ds` under `split` (split_range), refused when the part
/// is empty or too short for one sample of 2 tokens: Megatron would build no dataset or an unusable one.
inline std::pair<std::int64_t, std::int64_t> require_part(IndexedDataset const& ds, std::array<double, 3> const& shares,
                                                          std::string_view split, SplitPart part) {
  std::int64_t const n = ds.num_sequences();
  auto const r = split_range(shares, part, n);
  KUMIKI_REQUIRE(r.has_value() && r->second > r->first, "dataset '", ds.prefix().string(), "' (", n, " sequences): split \"",
                 split, "\" leaves its ", split_part_name(part), " part no sequences; give that part a larger share or use more data");
  std::int64_t tokens = 0;
  for (std::int64_t s = r->first; s < r->second; ++s) tokens += ds.sequence_length(s);
  KUMIKI_REQUIRE(tokens > 1, "dataset '", ds.prefix().string(), "': the ", split_part_name(part), " part of split \"", split,
                 "\" (sequences [", r->first, ", ", r->second, ")) holds ", tokens, " token(s); a sample needs at least 2");
  return *r;
}

struct BlendedDatasetConfig {
  std::int64_t seq_len = 0;
  std::int64_t num_samples = 0;      ///< target samples of the blend (Megatron's train_samples for train)
  std::uint64_t seed = 1234;
  std::filesystem::path cache_dir;  ///< GPT index cache; empty: none
  std::string split = megatron_default_split;  ///< Megatron's --split; "100,0,0" reads whole datasets
  SplitPart part = SplitPart::train;           ///< the part of every dataset this blend draws from
};

/// How a blend was given (see parse_data_path).
enum class BlendKind : std::uint8_t { single, weighted, weightless };

/// A blend of GPT datasets as Megatron's BlendedMegatronDatasetBuilder makes one for one part of the
/// split: sample i is sample dataset_sample_index[i] of dataset dataset_index[i]. Every dataset is
/// restricted to its sequences of that part (split_range), then
///   weighted:   w = normalize(weights); dataset i is built for blend_request(N, w_i) samples; the
///               blend holds sum_i ceil(N * w_i) samples (>= N) and its index uses normalize(w) (Megatron
///               normalizes twice: the builder, then BlendedDataset; the last-bit difference decides ties);
///   weightless: every dataset is built for one epoch of its part (L_i samples); the blend holds
///               min(N, sum L_i) samples, its index uses normalize(L);
///   single:     the dataset itself, built for N samples (no blending index in Megatron; here the identity).
/// Datasets named twice are opened once.
class BlendedDataset {
 public:
  BlendedDataset(std::vector<BlendEntry> const& entries, BlendedDatasetConfig config) : cfg_(std::move(config)) {
    KUMIKI_CHECK(!entries.empty(), "a blend needs at least one dataset");
    KUMIKI_CHECK(cfg_.num_samples > 0, "a blend needs a positive number of samples, got ", cfg_.num_samples);
    KUMIKI_REQUIRE(entries.size() < 32767, "a blend of ", entries.size(), " datasets: Megatron takes fewer than 32767");
    std::size_t weighted = 0;
    for (auto const& e : entries) weighted += e.weight.has_value() ? 1 : 0;
    KUMIKI_REQUIRE(weighted == 0 || weighted == entries.size(),
                   "a blend gives weights to some datasets but not to others; weight all of them or none");
    kind_ = weighted > 0 ? BlendKind::weighted : entries.size() == 1 ? BlendKind::single : BlendKind::weightless;
    std::vector<double> raw;
    for (auto const& e : entries)
      if (e.weight) {
        require_blend_weight(*e.weight, kumiki::detail::concat(*e.weight), e.prefix, "blend");
        raw.push_back(*e.weight);
      }
    auto const shares = parse_split(cfg_.split);

    // The part of every dataset: Megatron builds no dataset for an empty part, so one is refused here.
    std::vector<std::pair<std::filesystem::path, std::shared_ptr<IndexedDataset const>>> opened;
    std::vector<std::shared_ptr<IndexedDataset const>> files;
    std::vector<std::pair<std::int64_t, std::int64_t>> ranges;
    for (auto const& e : entries) {
      std::shared_ptr<IndexedDataset const> ds;
      for (auto const& [p, o] : opened)
        if (p == e.prefix) ds = o;
      if (!ds) {
        ds = std::make_shared<IndexedDataset const>(e.prefix);
        opened.emplace_back(e.prefix, ds);
      }
      ranges.push_back(require_part(*ds, shares, cfg_.split, cfg_.part));
      files.push_back(std::move(ds));
    }
    auto const gpt = [&](std::size_t d, std::int64_t samples) {
      GptDatasetConfig gc;
      gc.seq_len = cfg_.seq_len;
      gc.num_samples = samples;
      gc.seed = cfg_.seed;
      gc.split_begin = ranges[d].first;
      gc.split_end = ranges[d].second;
      gc.cache_dir = cfg_.cache_dir;
      return std::make_unique<GptDataset>(files[d], gc);
    };

    switch (kind_) {
      case BlendKind::single:
        weights_ = {1.0};
        requested_ = {cfg_.num_samples};
        size_ = cfg_.num_samples;
        break;
      case BlendKind::weighted: {
        std::vector<double> const once = normalize_weights(raw);
        size_ = 0;
        for (double w : once) {
          requested_.push_back(blend_request(cfg_.num_samples, w));
          size_ += static_cast<std::int64_t>(std::ceil(static_cast<double>(cfg_.num_samples) * w));
        }
        weights_ = normalize_weights(once);
        break;
      }
      case BlendKind::weightless: {
        std::vector<double> lengths;
        std::int64_t total = 0;
        for (std::size_t d = 0; d < entries.size(); ++d) {
          datasets_.push_back(gpt(d, 0));  // one epoch of the part (Megatron's num_samples None)
          std::int64_t const len = datasets_.back()->size();
          KUMIKI_REQUIRE(len > 0, "dataset '", entries[d].prefix.string(), "': one epoch of its ", split_part_name(cfg_.part),
                         " part holds no sample of ", cfg_.seq_len + 1,
                         " tokens, so a weightless blend (in proportion to size) gives it weight 0; leave it out");
          requested_.push_back(len);
          lengths.push_back(static_cast<double>(len));
          total += len;
        }
        weights_ = normalize_weights(lengths);
        size_ = std::min(cfg_.num_samples, total);
        break;
      }
    }
    if (datasets_.empty())
      for (std::size_t d = 0; d < entries.size(); ++d) datasets_.push_back(gpt(d, requested_[d]));

    dataset_index_.resize(static_cast<std::size_t>(size_));
    dataset_sample_index_.resize(static_cast<std::size_t>(size_));
    if (kind_ == BlendKind::single) {
      for (std::int64_t t = 0; t < size_; ++t) dataset_sample_index_[static_cast<std::size_t>(t)] = t;
    } else {
      build_blending_indices(weights_, size_, dataset_index_.data(), dataset_sample_index_.data());
    }
    // Every sample the index names exists: the GPT indices hold whole epochs of at least the request.
    auto const used = consumed_per_dataset(size_);
    for (std::size_t d = 0; d < datasets_.size(); ++d)
      KUMIKI_CHECK(used[d] <= datasets_[d]->size(), "dataset ", entries[d].prefix, ": the blend takes ", used[d],
                   " samples of the ", datasets_[d]->size(), " its index holds");
  }

  /// Samples in the blend: the target for single and weighted blends plus, for weighted ones, the
  /// rounding up of every share (sum_i ceil(N * w_i), as Megatron); at most the target when weightless.
  std::int64_t size() const { return size_; }
  /// The number of samples asked for (BlendedDatasetConfig::num_samples).
  std::int64_t target() const { return cfg_.num_samples; }
  std::int64_t seq_len() const { return cfg_.seq_len; }
  BlendKind kind() const { return kind_; }
  BlendedDatasetConfig const& config() const { return cfg_; }
  std::size_t num_datasets() const { return datasets_.size(); }
  GptDataset const& dataset(std::size_t d) const { return *datasets_.at(d); }
  /// The weights the blending index uses (normalized twice when weighted, dataset sizes normalized when weightless).
  std::vector<double> const& weights() const { return weights_; }
  /// Samples each dataset was built for (target * weight plus the 0.5% surplus; one epoch when weightless).
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
  BlendKind kind_ = BlendKind::single;
  std::int64_t size_ = 0;
  std::vector<double> weights_;
  std::vector<std::int64_t> requested_;
  std::vector<std::int16_t> dataset_index_;
  std::vector<std::int64_t> dataset_sample_index_;
  std::vector<std::unique_ptr<GptDataset>> datasets_;
};

}  // namespace data
KUMIKI_NAMESPACE_END
