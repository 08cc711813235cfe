// kumiki/data/sentencepiece.hpp: SentencePiece models (e.g. LLM-jp tokenizer v3) behind kumiki's
// Tokenizer interface, and make_tokenizer("bytes" | model path). Needs libsentencepiece to link.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/data/tokenizer.hpp"

#if __has_include(<sentencepiece_processor.h>)
#include <sentencepiece_processor.h>
#define KUMIKI_HAS_SENTENCEPIECE_HEADER 1
#else
#define KUMIKI_HAS_SENTENCEPIECE_HEADER 0
#endif

KUMIKI_NAMESPACE_BEGIN
namespace data {

#if KUMIKI_HAS_SENTENCEPIECE_HEADER
/// A SentencePiece `.model`. The end-of-document id is the model's eos id (as Megatron's
/// SentencePieceTokenizer); decode drops control tokens and undoes byte fallback.
class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(std::filesystem::path const& model) : path_(model) {
    KUMIKI_REQUIRE(std::filesystem::is_regular_file(model), "SentencePiece model ", model, " not found");
    auto const status = sp_.Load(model.string());
    KUMIKI_REQUIRE(status.ok(), "cannot load SentencePiece model ", model, ": ", status.ToString());
  }

  std::vector<std::int32_t> encode(std::string_view text) const override {
    std::vector<int> ids;
    auto const status = sp_.Encode(text, &ids);
    KUMIKI_REQUIRE(status.ok(), "SentencePiece encode failed (", path_, "): ", status.ToString());
    return {ids.begin(), ids.end()};
  }
  std::string decode(std::span<std::int32_t const> ids) const override {
    std::vector<int> v(ids.begin(), ids.end());
    int const n = sp_.GetPieceSize();
    for (int id : v) KUMIKI_REQUIRE(id >= 0 && id < n, "SentencePiece: id ", id, " outside [0, ", n, ") of ", path_);
    std::string out;
    auto const status = sp_.Decode(v, &out);
    KUMIKI_REQUIRE(status.ok(), "SentencePiece decode failed (", path_, "): ", status.ToString());
    return out;
  }
  using Tokenizer::decode;
  std::int64_t vocab_size() const override { return sp_.GetPieceSize(); }
  std::int32_t eod_id() const override {
    KUMIKI_REQUIRE(sp_.eos_id() >= 0, "SentencePiece model ", path_, " has no eos piece to end documents with");
    return sp_.eos_id();
  }
  std::int32_t bos_id() const override { return sp_.bos_id(); }
  std::string name() const override { return "sentencepiece:" + path_.string(); }
  sentencepiece::SentencePieceProcessor const& processor() const { return sp_; }

 private:
  std::filesystem::path path_;
  sentencepiece::SentencePieceProcessor sp_;
};
#endif

/// `bytes` -> ByteTokenizer; anything else is a SentencePiece model path.
inline std::unique_ptr<Tokenizer> make_tokenizer(std::string const& spec) {
  if (spec == "bytes") return std::make_unique<ByteTokenizer>();
#if KUMIKI_HAS_SENTENCEPIECE_HEADER
  return std::make_unique<SentencePieceTokenizer>(spec);
#else
  KUMIKI_FAIL("tokenizer ", spec, ": this build has no SentencePiece (only `bytes` is available)");
#endif
}

}  // namespace data
KUMIKI_NAMESPACE_END
