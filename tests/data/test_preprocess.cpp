// Tokenizers and preprocessing: UTF-8 rules, the byte tokenizer, a SentencePiece model trained here
// with spm_train, and `preprocess` of an English + Japanese corpus decoded back to the original text.
#include <catch2/catch.hpp>

#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "kumiki/data/preprocess.hpp"
#include "kumiki/data/sentencepiece.hpp"
#include "test_util.hpp"

namespace kd = kumiki::data;
namespace fs = std::filesystem;
using kumiki_test::TempDir;
using Catch::Matchers::Contains;

namespace {

fs::path const corpus = fs::path(KUMIKI_TEST_DATA_DIR) / "corpus";

std::string slurp(fs::path const& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> split_paragraphs(std::string const& text) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at < text.size()) {
    std::size_t end = text.find("\n\n", at);
    if (end == std::string::npos) end = text.size();
    std::string p = text.substr(at, end - at);
    while (!p.empty() && p.back() == '\n') p.pop_back();
    if (!p.empty()) out.push_back(p);
    at = end + 2;
  }
  return out;
}

// The documents the corpus holds, in the order preprocess must emit them (paths sorted), built
// without the code under test: JSON lines via nlohmann, text files read whole or split here.
std::vector<std::string> expected_documents(bool paragraphs) {
  std::vector<std::string> docs;
  for (auto const* name : {"en.jsonl", "ja.jsonl"}) {
    std::ifstream in(corpus / name);
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) docs.push_back(nlohmann::json::parse(line)["text"].get<std::string>());
  }
  for (auto const* name : {"text/kawa_ja.txt", "text/nested/notes_mixed.txt", "text/river_en.txt"}) {
    std::string const t = slurp(corpus / name);
    if (paragraphs) {
      for (auto& p : split_paragraphs(t)) docs.push_back(p);
    } else {
      docs.push_back(t);
    }
  }
  return docs;
}

kd::PreprocessOptions options(std::vector<fs::path> inputs, fs::path out, int workers = 1) {
  kd::PreprocessOptions o;
  o.inputs = std::move(inputs);
  o.output_prefix = std::move(out);
  o.append_eod = true;
  o.workers = workers;
  o.batch_bytes = 200;  // many small batches, so workers interleave
  return o;
}

// Decodes every document of a dataset, checking and removing the trailing eod.
std::vector<std::string> decode_all(kd::Tokenizer const& tok, fs::path const& prefix) {
  kd::IndexedDataset ds(prefix);
  std::vector<std::string> out;
  for (std::int64_t d = 0; d < ds.num_documents(); ++d) {
    auto ids = ds.document(d);
    if (!ids.empty()) {
      REQUIRE(ids.back() == tok.eod_id());
      ids.pop_back();
      for (auto id : ids) REQUIRE(id != tok.eod_id());
    }
    out.push_back(tok.decode(ids));
  }
  return out;
}

void gzip_file(fs::path const& from, fs::path const& to) {
  std::string const data = slurp(from);
  gzFile f = gzopen(to.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, data.data(), static_cast<unsigned>(data.size())) == static_cast<int>(data.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

int run(std::string const& cmd) {
  int const rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

}  // namespace

TEST_CASE("UTF-8: validation and U+FFFD per maximal subpart", "[data][utf8]") {
  REQUIRE(kd::find_invalid_utf8("plain ascii text, long enough for the 8-byte path") == std::string::npos);
  REQUIRE(kd::find_invalid_utf8("日本語とEnglish 🚀 \xF4\x8F\xBF\xBF") == std::string::npos);
  REQUIRE(kd::find_invalid_utf8("abc\x80") == 3);              // lone continuation byte
  REQUIRE(kd::find_invalid_utf8("\xC0\xAF") == 0);             // overlong '/'
  REQUIRE(kd::find_invalid_utf8("ok\xE0\x80\xAF") == 2);       // overlong 3-byte
  REQUIRE(kd::find_invalid_utf8("x\xED\xA0\x80") == 1);        // surrogate U+D800
  REQUIRE(kd::find_invalid_utf8("\xF4\x90\x80\x80") == 0);     // above U+10FFFF
  REQUIRE(kd::find_invalid_utf8("12345678\xE3\x81") == 8);     // truncated at the end
  // The Unicode Standard's example (ch. 3, "U+FFFD Substitution of Maximal Subparts").
  REQUIRE(kd::replace_invalid_utf8("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64") ==
          "a\uFFFD\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFDd");
  REQUIRE(kd::replace_invalid_utf8("猫\xE3\x81") == "猫\uFFFD");
}

TEST_CASE("byte tokenizer: bytes, end-of-document 256, beginning-of-sequence 257", "[data][tokenizer]") {
  kd::ByteTokenizer t;
  REQUIRE(t.vocab_size() == 258);
  REQUIRE(t.eod_id() == 256);
  REQUIRE(t.bos_id() == 257);
  REQUIRE(t.encode("aé\n") == std::vector<std::int32_t>{97, 0xC3, 0xA9, 10});
  REQUIRE(t.decode(std::vector<std::int32_t>{257, 0xE7, 0x8C, 0xAB, 256}) == "猫");
  REQUIRE_THROWS_AS(t.decode(std::vector<std::int32_t>{258}), kumiki::Error);
  REQUIRE(kd::token_dtype_for_vocab(t.vocab_size()) == kd::IndexDType::uint16);
  REQUIRE(kd::token_dtype_for_vocab(65499) == kd::IndexDType::uint16);
  REQUIRE(kd::token_dtype_for_vocab(65500) == kd::IndexDType::int32);
  REQUIRE(kd::token_dtype_for_vocab(99487) == kd::IndexDType::int32);
}

TEST_CASE("preprocess (bytes): English + Japanese corpus decodes back to the original text", "[data][preprocess]") {
  TempDir dir("pre-bytes");
  kd::ByteTokenizer tok;
  auto const want = expected_documents(false);
  REQUIRE(want.size() == 8 + 5 + 3);

  auto st = kd::preprocess(tok, options({corpus}, dir / "one", 1));
  REQUIRE(st.files == 5);
  REQUIRE(st.documents == static_cast<std::int64_t>(want.size()));
  REQUIRE(st.dtype == kd::IndexDType::uint16);
  REQUIRE(decode_all(tok, dir / "one") == want);
  kd::IndexedDataset ds(dir / "one");
  REQUIRE(ds.dtype() == kd::IndexDType::uint16);
  auto const empty = ds.document_sequences(4);  // {"id": 5, "text": ""}: a document with no sequence
  REQUIRE(empty.first == empty.second);

  // Any worker count writes the same bytes.
  kd::preprocess(tok, options({corpus}, dir / "three", 3));
  REQUIRE(kumiki_test::read_bytes(dir / "one.bin") == kumiki_test::read_bytes(dir / "three.bin"));
  REQUIRE(kumiki_test::read_bytes(dir / "one.idx") == kumiki_test::read_bytes(dir / "three.idx"));

  // Paragraph mode for plain text; JSON Lines are unaffected.
  auto o = options({corpus}, dir / "par", 2);
  o.text_mode = kd::TextMode::paragraphs;
  kd::preprocess(tok, o);
  REQUIRE(decode_all(tok, dir / "par") == expected_documents(true));

  // gzip input gives the same dataset as the plain files.
  fs::create_directories(dir / "gz");
  gzip_file(corpus / "ja.jsonl", dir / "gz" / "a.jsonl.gz");
  gzip_file(corpus / "text" / "river_en.txt", dir / "gz" / "b.txt.gz");
  kd::preprocess(tok, options({dir / "gz"}, dir / "fromgz"));
  kd::preprocess(tok, options({corpus / "ja.jsonl", corpus / "text" / "river_en.txt"}, dir / "plain"));
  REQUIRE(kumiki_test::read_bytes(dir / "fromgz.bin") == kumiki_test::read_bytes(dir / "plain.bin"));
  REQUIRE(kumiki_test::read_bytes(dir / "fromgz.idx") == kumiki_test::read_bytes(dir / "plain.idx"));

  // Without --append-eod no eod appears.
  auto no_eod = options({corpus / "en.jsonl"}, dir / "noeod");
  no_eod.append_eod = false;
  kd::preprocess(tok, no_eod);
  kd::IndexedDataset ne(dir / "noeod");
  REQUIRE(tok.decode(ne.document(0)) == want[0]);
  REQUIRE(ne.document(0).size() == want[0].size());
}

TEST_CASE("preprocess: invalid input is an error naming file and line", "[data][preprocess]") {
  TempDir dir("pre-bad");
  kd::ByteTokenizer tok;
  {
    std::ofstream f(dir / "bad.jsonl", std::ios::binary);
    f << "{\"text\": \"fine\"}\n\n{\"text\": \"broken \xE3\x81 here\"}\n";
  }
  REQUIRE_THROWS_WITH(kd::preprocess(tok, options({dir / "bad.jsonl"}, dir / "o")),
                      Contains("bad.jsonl:3") && Contains("invalid UTF-8"));
  REQUIRE_FALSE(fs::exists(dir / "o.idx"));
  REQUIRE_FALSE(fs::exists(dir / "o.bin"));
  auto rep = options({dir / "bad.jsonl"}, dir / "o");
  rep.replace_invalid_utf8 = true;
  kd::preprocess(tok, rep);
  REQUIRE(decode_all(tok, dir / "o") == std::vector<std::string>{"fine", "broken \uFFFD here"});

  {
    std::ofstream f(dir / "bad.txt", std::ios::binary);
    f << "line one\nline two\nthird \xFF line\n";
  }
  REQUIRE_THROWS_WITH(kd::preprocess(tok, options({dir / "bad.txt"}, dir / "t")),
                      Contains("bad.txt:3") && Contains("column 7"));
  {
    std::ofstream f(dir / "syntax.jsonl");
    f << "{\"text\": \"a\"}\n{\"text\": oops}\n";
  }
  REQUIRE_THROWS_WITH(kd::preprocess(tok, options({dir / "syntax.jsonl"}, dir / "s")),
                      Contains("syntax.jsonl:2") && Contains("invalid JSON"));
  {
    std::ofstream f(dir / "key.jsonl");
    f << "{\"body\": \"a\"}\n";
  }
  REQUIRE_THROWS_WITH(kd::preprocess(tok, options({dir / "key.jsonl"}, dir / "k")),
                      Contains("key.jsonl:1") && Contains("no key \"text\""));
  REQUIRE_THROWS_AS(kd::preprocess(tok, options({dir / "missing"}, dir / "m")), kumiki::Error);

  // With several workers the error reported is still the first one in input order.
  fs::create_directories(dir / "two");
  {
    std::ofstream a(dir / "two" / "a.jsonl", std::ios::binary), b(dir / "two" / "b.jsonl", std::ios::binary);
    for (int i = 1; i < 50; ++i) a << "{\"text\": \"document number " << i << " is fine\"}\n";
    a << "{\"text\": \"bad \xC3\x28\"}\n";
    b << "{\"text\": \"bad \xFF\"}\n";
  }
  for (int workers : {1, 3})
    REQUIRE_THROWS_WITH(kd::preprocess(tok, options({dir / "two"}, dir / "w", workers)), Contains("a.jsonl:50"));
}

TEST_CASE("preprocess (SentencePiece trained by spm_train): decodes back, ids equal spm_encode's", "[data][preprocess][sentencepiece]") {
  TempDir dir("pre-spm");
  auto const docs = expected_documents(false);
  {
    std::ofstream f(dir / "train.txt", std::ios::binary);
    for (auto const& d : expected_documents(true)) f << d << "\n";
  }
  std::string const train = "spm_train --input=" + (dir / "train.txt").string() + " --model_prefix=" +
                            (dir / "m").string() +
                            " --vocab_size=500 --model_type=unigram --character_coverage=0.98 --byte_fallback=true"
                            " --normalization_rule_name=identity --remove_extra_whitespaces=false"
                            " --add_dummy_prefix=false --hard_vocab_limit=false --unk_id=0 --bos_id=1 --eos_id=2"
                            " --minloglevel=2 > " + (dir / "spm.log").string() + " 2>&1";
  INFO(train);
  REQUIRE(run(train) == 0);
  kd::SentencePieceTokenizer tok(dir / "m.model");
  REQUIRE(tok.eod_id() == 2);
  REQUIRE(tok.bos_id() == 1);
  REQUIRE(tok.vocab_size() > 256);
  REQUIRE(tok.vocab_size() <= 500);

  auto const st = kd::preprocess(tok, options({corpus}, dir / "sp", 2));
  REQUIRE(st.dtype == kd::IndexDType::uint16);
  REQUIRE(decode_all(tok, dir / "sp") == docs);
  REQUIRE(st.tokens < st.bytes);  // the model actually merges characters

  // The ids of single-line documents equal those of the reference spm_encode binary.
  {
    std::ofstream f(dir / "lines.txt", std::ios::binary);
    for (auto const& d : docs)
      if (!d.empty() && d.find('\n') == std::string::npos) f << d << "\n";
  }
  REQUIRE(run("spm_encode --model=" + (dir / "m.model").string() + " --output_format=id < " +
              (dir / "lines.txt").string() + " > " + (dir / "ids.txt").string()) == 0);
  kd::IndexedDataset ds(dir / "sp");
  std::ifstream ids(dir / "ids.txt");
  std::size_t compared = 0;
  for (std::int64_t d = 0; d < ds.num_documents(); ++d) {
    auto const& text = docs[static_cast<std::size_t>(d)];
    if (text.empty() || text.find('\n') != std::string::npos) continue;
    std::string line;
    REQUIRE(std::getline(ids, line));
    std::vector<std::int32_t> ref;
    std::istringstream ls(line);
    for (std::int32_t v; ls >> v;) ref.push_back(v);
    ref.push_back(tok.eod_id());
    REQUIRE(ds.document(d) == ref);
    ++compared;
  }
  REQUIRE(compared >= 10);

  // The CLI's tokenizer factory.
  REQUIRE(kd::make_tokenizer("bytes")->vocab_size() == 258);
  REQUIRE(kd::make_tokenizer((dir / "m.model").string())->vocab_size() == tok.vocab_size());
  REQUIRE_THROWS_WITH(kd::make_tokenizer((dir / "nope.model").string()), Contains("not found"));
}
