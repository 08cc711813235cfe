// kumiki/data/split.hpp: Megatron's --split (train, valid, test shares of every dataset of a blend)
// and the sequence range each part covers, computed as megatron/core/datasets does.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/data/normalize.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace data {

/// The three parts of a split, in Megatron's order (megatron.core.datasets.utils.Split).
enum class SplitPart : std::uint8_t { train = 0, valid = 1, test = 2 };

inline constexpr char const* split_part_name(SplitPart p) {
  return p == SplitPart::train ? "train" : p == SplitPart::valid ? "valid" : "test";
}

/// Megatron's default --split (its "legacy default" when --data-path is given without one).
inline constexpr char const* megatron_default_split = "969,30,1";

/// The split "100,0,0": every part but train empty, train the whole dataset.
inline constexpr char const* whole_dataset_split = "100,0,0";

/// Megatron's parse_and_normalize_split: up to three non-negative numbers ("969,30,1", "99 1"),
/// padded with zeros to three and normalized like blend weights. Megatron picks the numbers out with
/// the pattern [.0-9]+ and ignores anything else; kumiki takes the same numbers but refuses any other
/// character, so every split it accepts means the same in both. `what` names the input in messages.
inline std::array<double, 3> parse_split(std::string_view text, std::string_view what = "--split") {
  std::vector<double> v;
  std::size_t i = 0;
  auto const sep = [](char c) { return c == ',' || c == ' ' || c == '\t'; };
  while (i < text.size()) {
    if (sep(text[i])) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < text.size() && !sep(text[j])) ++j;
    std::string const word(text.substr(i, j - i));
    bool digits_only = true;
    for (char c : word) digits_only = digits_only && ((c >= '0' && c <= '9') || c == '.');
    char* end = nullptr;
    double const x = std::strtod(word.c_str(), &end);
    KUMIKI_REQUIRE(digits_only && end == word.c_str() + word.size() && std::isfinite(x), what, " \"", text,
                   "\": `", word, "` is not a share; write up to three non-negative numbers, e.g. \"",
                   megatron_default_split, "\" (train, valid, test)");
    v.push_back(x);
    i = j;
  }
  KUMIKI_REQUIRE(!v.empty() && v.size() <= 3, what, " \"", text, "\": give one to three shares (train, valid, test), e.g. \"",
                 megatron_default_split, "\"");
  v.resize(3, 0.0);
  KUMIKI_REQUIRE(v[0] + v[1] + v[2] > 0, what, " \"", text, "\": the shares sum to 0; give the train share a positive value");
  auto const w = normalize_weights(v);
  return {w[0], w[1], w[2]};
}

/// Sequences [begin, end) of a dataset of `num_sequences` that part `part` of the split covers, or
/// nothing when Megatron builds no dataset for that part (its share is 0). Megatron's
/// convert_split_vector_to_split_matrix and _build_megatron_dataset_splits: the book-ends are the
/// running sums 0, s0, s0 + s1, s0 + s1 + s2 (added left to right); part k covers
/// [round(lo_k * n), round(hi_k * n)) with Python's round (half to even). GPT datasets split by
/// sequence, which is one per document unless the corpus was split into sentences.
inline std::optional<std::pair<std::int64_t, std::int64_t>> split_range(std::array<double, 3> const& shares,
                                                                       SplitPart part, std::int64_t num_sequences) {
  std::array<double, 4> ends{0.0, 0.0, 0.0, 0.0};
  for (std::size_t k = 0; k < 3; ++k) ends[k + 1] = ends[k] + shares[k];
  auto const k = static_cast<std::size_t>(part);
  if (ends[k + 1] <= ends[k]) return std::nullopt;
  double const n = static_cast<double>(num_sequences);
  // nearbyint rounds half to even in the default rounding mode, as Python's round does.
  return std::pair{static_cast<std::int64_t>(std::nearbyint(ends[k] * n)),
                   static_cast<std::int64_t>(std::nearbyint(ends[k + 1] * n))};
}

}  // namespace data
KUMIKI_NAMESPACE_END
