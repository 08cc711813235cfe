// kumiki/data/tokenizer.hpp: the tokenizer interface of the data pipeline and the byte-level
// tokenizer (token = byte value, then end-of-document 256 and beginning-of-sequence 257).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace data {

/// Text <-> token ids. encode and decode must be safe to call from several threads at once.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  /// Token ids of a UTF-8 text (no special tokens added).
  virtual std::vector<std::int32_t> encode(std::string_view text) const = 0;
  /// Text of token ids; special tokens (end-of-document, beginning-of-sequence) decode to nothing.
  virtual std::string decode(std::span<std::int32_t const> ids) const = 0;
  virtual std::int64_t vocab_size() const = 0;
  /// End-of-document id appended by `--append-eod` (Megatron's `eod`).
  virtual std::int32_t eod_id() const = 0;
  virtual std::int32_t bos_id() const = 0;
  virtual std::string name() const = 0;

  std::string decode(std::vector<std::int32_t> const& ids) const { return decode(std::span<std::int32_t const>(ids)); }
};

/// Needs no model file: token id = byte value 0..255; 256 ends a document, 257 begins a sequence.
class ByteTokenizer final : public Tokenizer {
 public:
  static constexpr std::int32_t eod = 256;
  static constexpr std::int32_t bos = 257;
  static constexpr std::int64_t vocab = 258;

  std::vector<std::int32_t> encode(std::string_view text) const override {
    std::vector<std::int32_t> ids(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
    return ids;
  }
  std::string decode(std::span<std::int32_t const> ids) const override {
    std::string s;
    s.reserve(ids.size());
    for (std::int32_t id : ids) {
      KUMIKI_CHECK(id >= 0 && id < vocab, "byte tokenizer: id ", id, " outside [0, ", vocab, ")");
      if (id < 256) s.push_back(static_cast<char>(static_cast<unsigned char>(id)));
    }
    return s;
  }
  using Tokenizer::decode;
  std::int64_t vocab_size() const override { return vocab; }
  std::int32_t eod_id() const override { return eod; }
  std::int32_t bos_id() const override { return bos; }
  std::string name() const override { return "bytes"; }
};

}  // namespace data
KUMIKI_NAMESPACE_END
