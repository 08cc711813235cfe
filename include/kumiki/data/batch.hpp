// kumiki/data/batch.hpp: making a language-model batch: token ids checked against the model's
// vocabulary once, here, and split into inputs and next-token targets. The model's ops trust the
// ids they get (the CPU embedding keeps only a bounds invariant against its table).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace data {

/// Throws kumiki::InputError unless every id lies in [0, vocab). `origin` names where the ids came
/// from in the user's terms ("sample 12 of dataset 'data/en_text_document'", "tokens.json row 3").
inline void check_token_ids(std::span<std::int32_t const> ids, std::int64_t vocab, std::string const& origin) {
  for (std::size_t i = 0; i < ids.size(); ++i)
    KUMIKI_REQUIRE(ids[i] >= 0 && ids[i] < vocab, "token id ", ids[i], " at position ", i, " of ", origin,
                   " is outside the vocabulary of the model (", vocab, " tokens, ids 0..", vocab - 1,
                   "): the data was made with another tokenizer (tokenize it with the model's)");
}

/// Splits `rows` samples of L + 1 tokens (fetched by `get(row, dst)`) into inputs and next-token
/// targets (rows, L), checking every id against the model's vocabulary; `describe(row)` names the
/// sample's origin (dataset prefix, sample number) in that error. `sample` is the caller's reusable
/// staging buffer.
template <class Get, class Describe>
void fill_batch(Get&& get, Describe&& describe, std::int64_t rows, std::int64_t seq_len, std::int64_t vocab,
                std::vector<std::int32_t>& sample, std::vector<std::int32_t>& tokens, std::vector<std::int32_t>& targets) {
  sample.resize(static_cast<std::size_t>(seq_len + 1));
  tokens.resize(static_cast<std::size_t>(rows * seq_len));
  targets.resize(static_cast<std::size_t>(rows * seq_len));
  for (std::int64_t r = 0; r < rows; ++r) {
    get(r, sample.data());
    check_token_ids(sample, vocab, describe(r));
    for (std::int64_t t = 0; t < seq_len; ++t) {
      tokens[static_cast<std::size_t>(r * seq_len + t)] = sample[static_cast<std::size_t>(t)];
      targets[static_cast<std::size_t>(r * seq_len + t)] = sample[static_cast<std::size_t>(t + 1)];
    }
  }
}

}  // namespace data
KUMIKI_NAMESPACE_END
