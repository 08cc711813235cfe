// kumiki/data/preprocess.hpp: text corpora (JSON Lines, plain text, directories, gzip) -> tokenized
// Megatron indexed dataset, multithreaded with the output in input order. `.gz` needs zlib to link.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/data/indexed_dataset.hpp"
#include "kumiki/data/tokenizer.hpp"
#include "kumiki/data/utf8.hpp"

#if __has_include(<zlib.h>)
#include <zlib.h>
#define KUMIKI_HAS_ZLIB_HEADER 1
#else
#define KUMIKI_HAS_ZLIB_HEADER 0
#endif

KUMIKI_NAMESPACE_BEGIN
namespace data {

/// How a plain-text file (anything but .jsonl / .json / .ndjson, optionally .gz) becomes documents.
enum class TextMode { whole_file, paragraphs };

struct PreprocessOptions {
  std::vector<std::filesystem::path> inputs;  ///< files or directories (searched recursively)
  std::filesystem::path output_prefix;        ///< writes output_prefix.bin / .idx
  std::string json_key = "text";
  bool append_eod = false;                    ///< end every non-empty document with the tokenizer's eod
  int workers = 1;
  TextMode text_mode = TextMode::whole_file;  ///< paragraphs: one document per blank-line-separated block
  bool replace_invalid_utf8 = false;          ///< else invalid UTF-8 is an error naming file and line
  std::ostream* progress = nullptr;           ///< where the progress line goes (e.g. &std::cerr); null: quiet
  double progress_interval_s = 1.0;
  std::size_t batch_bytes = std::size_t{1} << 20;  ///< text per tokenization task
};

struct PreprocessStats {
  std::int64_t files = 0;
  std::int64_t documents = 0;
  std::int64_t tokens = 0;
  std::int64_t bytes = 0;  ///< UTF-8 text bytes of the documents
  double seconds = 0;
  IndexDType dtype = IndexDType::uint16;
  double documents_per_s() const { return seconds > 0 ? static_cast<double>(documents) / seconds : 0; }
  double mb_per_s() const { return seconds > 0 ? static_cast<double>(bytes) / 1e6 / seconds : 0; }
};

/// The input files in processing order: each input as given, directories expanded recursively with
/// their regular files sorted by path (hidden files skipped), so the output never depends on the
/// order a file system lists entries in.
inline std::vector<std::filesystem::path> list_input_files(std::vector<std::filesystem::path> const& inputs) {
  std::vector<std::filesystem::path> files;
  for (auto const& in : inputs) {
    std::error_code ec;
    if (std::filesystem::is_directory(in, ec)) {
      std::vector<std::filesystem::path> found;
      for (auto const& e : std::filesystem::recursive_directory_iterator(in)) {
        auto const name = e.path().filename().string();
        if (e.is_regular_file() && !name.empty() && name[0] != '.') found.push_back(e.path());
      }
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else {
      KUMIKI_REQUIRE(std::filesystem::is_regular_file(in, ec), "input ", in, " is neither a file nor a directory");
      files.push_back(in);
    }
  }
  return files;
}

/// JSON Lines by extension (after removing a .gz suffix): .jsonl, .json, .ndjson.
inline bool is_json_lines(std::filesystem::path const& p) {
  auto name = p.filename().string();
  if (name.size() > 3 && name.ends_with(".gz")) name.resize(name.size() - 3);
  return name.ends_with(".jsonl") || name.ends_with(".json") || name.ends_with(".ndjson");
}

namespace detail {

/// Chunks of a file, gunzipped when it ends in .gz.
class ByteSource {
 public:
  explicit ByteSource(std::filesystem::path const& path) : path_(path) {
    gz_ = path.extension() == ".gz";
    if (gz_) {
#if KUMIKI_HAS_ZLIB_HEADER
      gzf_ = gzopen(path.c_str(), "rb");
      KUMIKI_REQUIRE(gzf_ != nullptr, "cannot open ", path, ": ", std::strerror(errno));
      gzbuffer(gzf_, 1 << 18);
#else
      KUMIKI_FAIL("cannot read ", path, ": this build has no zlib");
#endif
    } else {
      fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      KUMIKI_REQUIRE(fd_ >= 0, "cannot open ", path, ": ", std::strerror(errno));
    }
  }
  ByteSource(ByteSource const&) = delete;
  ByteSource& operator=(ByteSource const&) = delete;
  ~ByteSource() {
    if (fd_ >= 0) ::close(fd_);
#if KUMIKI_HAS_ZLIB_HEADER
    if (gzf_) gzclose(gzf_);
#endif
  }

  /// Up to n bytes; 0 at the end.
  std::size_t read(char* buf, std::size_t n) {
    if (gz_) {
#if KUMIKI_HAS_ZLIB_HEADER
      int const got = gzread(gzf_, buf, static_cast<unsigned>(std::min<std::size_t>(n, 1u << 30)));
      if (got < 0) {
        int err = 0;
        char const* msg = gzerror(gzf_, &err);
        KUMIKI_FAIL("cannot decompress ", path_, ": ", msg ? msg : "zlib error");
      }
      return static_cast<std::size_t>(got);
#endif
    }
    while (true) {
      ssize_t const got = ::read(fd_, buf, n);
      if (got < 0 && errno == EINTR) continue;
      KUMIKI_REQUIRE(got >= 0, "cannot read ", path_, ": ", std::strerror(errno));
      return static_cast<std::size_t>(got);
    }
  }

 private:
  std::filesystem::path path_;
  bool gz_ = false;
  int fd_ = -1;
#if KUMIKI_HAS_ZLIB_HEADER
  gzFile gzf_ = nullptr;
#endif
};

/// Lines of a ByteSource (without the '\n'); the last line may lack one.
class LineReader {
 public:
  explicit LineReader(std::filesystem::path const& path) : src_(path) { buf_.resize(1 << 20); }

  bool next(std::string& line) {
    line.clear();
    bool got_any = false;
    while (true) {
      if (pos_ == end_) {
        if (eof_) break;
        end_ = src_.read(buf_.data(), buf_.size());
        pos_ = 0;
        if (end_ == 0) {
          eof_ = true;
          break;
        }
      }
      got_any = true;
      char const* start = buf_.data() + pos_;
      auto const* nl = static_cast<char const*>(std::memchr(start, '\n', end_ - pos_));
      if (nl) {
        line.append(start, static_cast<std::size_t>(nl - start));
        pos_ += static_cast<std::size_t>(nl - start) + 1;
        ++number_;
        return true;
      }
      line.append(start, end_ - pos_);
      pos_ = end_;
    }
    if (!got_any) return false;
    ++number_;  // a last line without '\n'
    return true;
  }
  /// 1-based number of the line last returned.
  std::uint64_t line_number() const { return number_; }

 private:
  ByteSource src_;
  std::vector<char> buf_;
  std::size_t pos_ = 0, end_ = 0;
  bool eof_ = false;
  std::uint64_t number_ = 0;
};

inline bool is_blank(std::string_view s) {
  return s.find_first_not_of(" \t\r\f\v") == std::string_view::npos;
}

}  // namespace detail

/// One document and where it came from. Between DocumentReader::next_raw and finish, `text` holds
/// the raw JSON line (json = true) or the unchecked text.
struct InputDocument {
  std::string text;
  std::size_t file = 0;       ///< index into the file list
  std::uint64_t line = 0;     ///< first line of the document (1-based)
  bool json = false;
};

/// Documents of the input files, in order: JSON Lines give one document per non-blank line
/// (the string under json_key), other files one per file or per paragraph. Reading is split in a
/// sequential part (next_raw: bytes and lines) and a thread-safe part (finish: UTF-8 checks and
/// JSON parsing), so preprocess can run the second on its workers.
class DocumentReader {
 public:
  DocumentReader(std::vector<std::filesystem::path> files, PreprocessOptions const& opt)
      : files_(std::move(files)), opt_(opt) {}

  std::vector<std::filesystem::path> const& files() const { return files_; }

  /// The next document, checked and parsed.
  bool next(InputDocument& doc) {
    if (!next_raw(doc)) return false;
    finish(doc);
    return true;
  }

  /// The next document's raw record, in input order.
  bool next_raw(InputDocument& doc) {
    doc.json = false;
    while (true) {
      if (!lines_) {
        if (next_file_ >= files_.size()) return false;
        current_ = next_file_++;
        json_ = is_json_lines(files_[current_]);
        if (!json_ && opt_.text_mode == TextMode::whole_file) {  // the whole file is one document
          doc.text.clear();
          doc.file = current_;
          doc.line = 1;
          detail::ByteSource src(files_[current_]);
          std::size_t const chunk = std::size_t{1} << 20;
          for (std::size_t n = 1; n > 0;) {
            std::size_t const at = doc.text.size();
            doc.text.resize(at + chunk);
            n = src.read(doc.text.data() + at, chunk);
            doc.text.resize(at + n);
          }
          return true;
        }
        lines_ = std::make_unique<detail::LineReader>(files_[current_]);
      }
      if (json_) {
        if (!lines_->next(doc.text)) {
          lines_.reset();
          continue;
        }
        if (detail::is_blank(doc.text)) continue;
        doc.file = current_;
        doc.line = lines_->line_number();
        doc.json = true;
        return true;
      }
      // Paragraphs: maximal runs of non-blank lines, joined with '\n'.
      doc.text.clear();
      doc.file = current_;
      bool in_par = false;
      while (lines_->next(line_)) {
        if (detail::is_blank(line_)) {
          if (in_par) break;
          continue;
        }
        if (in_par) doc.text.push_back('\n');
        else doc.line = lines_->line_number();
        doc.text += line_;
        in_par = true;
      }
      if (in_par) return true;
      lines_.reset();
    }
  }

  /// Checks the UTF-8 (or repairs it) and extracts the text of a JSON record. Thread-safe.
  void finish(InputDocument& doc) const {
    check_utf8(doc.text, doc.file, doc.line);
    if (!doc.json) return;
    auto const& file = files_[doc.file];
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(doc.text);
    } catch (nlohmann::json::exception const& e) {
      KUMIKI_FAIL(file.string(), ":", doc.line, ": invalid JSON: ", e.what());
    }
    KUMIKI_REQUIRE(j.is_object() && j.contains(opt_.json_key), file.string(), ":", doc.line, ": no key \"",
                 opt_.json_key, "\" in the JSON object");
    auto& v = j[opt_.json_key];
    KUMIKI_REQUIRE(v.is_string(), file.string(), ":", doc.line, ": \"", opt_.json_key, "\" is not a string");
    doc.text = std::move(v.get_ref<std::string&>());
    doc.json = false;
  }

 private:
  void check_utf8(std::string& text, std::size_t file, std::uint64_t first_line) const {
    std::size_t const bad = find_invalid_utf8(text);
    if (bad == std::string::npos) return;
    if (opt_.replace_invalid_utf8) {
      text = replace_invalid_utf8(text);
      return;
    }
    auto const line = first_line + static_cast<std::uint64_t>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(bad), '\n'));
    auto const line_start = bad == 0 ? std::string::npos : text.rfind('\n', bad - 1);
    auto const column = bad - (line_start == std::string::npos ? 0 : line_start + 1) + 1;
    KUMIKI_FAIL(files_[file].string(), ":", line, ": invalid UTF-8 (byte 0x", std::hex,
                static_cast<int>(static_cast<unsigned char>(text[bad])), std::dec, " at column ", column,
                "); pass --replace-invalid-utf8 to substitute U+FFFD");
  }

  std::vector<std::filesystem::path> files_;
  PreprocessOptions const& opt_;
  std::size_t next_file_ = 0, current_ = 0;
  bool json_ = false;
  std::unique_ptr<detail::LineReader> lines_;
  std::string line_;
};

/// Tokenizes every document of the inputs into `opt.output_prefix` (.bin/.idx, uint16 when the
/// vocabulary is below 65500, else int32). Documents are read in order, tokenized in batches by
/// `workers` threads and written in input order, so the output is the same for any worker count.
/// Megatron's conventions: one sequence per document, eod appended to non-empty documents only,
/// an empty document recorded with no sequence.
inline PreprocessStats preprocess(Tokenizer const& tok, PreprocessOptions const& opt) {
  KUMIKI_REQUIRE(!opt.output_prefix.empty(), "preprocess needs an output prefix");
  KUMIKI_REQUIRE(opt.workers >= 1, "workers must be >= 1, got ", opt.workers);
  auto const start = std::chrono::steady_clock::now();
  PreprocessStats st;
  auto const files = list_input_files(opt.inputs);
  KUMIKI_REQUIRE(!files.empty(), "no input files");
  st.files = static_cast<std::int64_t>(files.size());
  st.dtype = token_dtype_for_vocab(tok.vocab_size());
  if (!opt.output_prefix.parent_path().empty()) std::filesystem::create_directories(opt.output_prefix.parent_path());
  IndexedDatasetWriter writer(opt.output_prefix, st.dtype);
  DocumentReader reader(files, opt);
  std::int32_t const eod = opt.append_eod ? tok.eod_id() : -1;

  struct Batch {
    std::vector<InputDocument> docs;
    std::vector<std::vector<std::int32_t>> ids;
  };
  // A round is workers x 4 batches. Rounds rotate through three slots: while the workers tokenize
  // round i, this thread writes round i - 1 and reads round i + 1.
  struct Round {
    std::vector<Batch> batches;
    std::size_t used = 0;
    std::vector<std::exception_ptr> failures;  // per batch: the first error in input order wins
  };
  std::size_t const per_round = static_cast<std::size_t>(opt.workers) * 4;
  Round slots[3];
  for (auto& r : slots) r.batches.resize(per_round);
  auto last_print = start;
  auto print = [&](bool final) {
    if (!opt.progress) return;
    auto const now = std::chrono::steady_clock::now();
    double const s = std::chrono::duration<double>(now - start).count();
    char line[256];
    std::snprintf(line, sizeof(line), "\r[preprocess] %lld docs (%.0f docs/s), %.1f MB (%.2f MB/s), %lld tokens%s",
                  static_cast<long long>(st.documents), s > 0 ? static_cast<double>(st.documents) / s : 0.0,
                  static_cast<double>(st.bytes) / 1e6, s > 0 ? static_cast<double>(st.bytes) / 1e6 / s : 0.0,
                  static_cast<long long>(st.tokens), final ? "\n" : "");
    *opt.progress << line << std::flush;
    last_print = now;
  };

  bool more = true;
  auto read_round = [&](Round& r) {
    r.used = 0;
    InputDocument doc;
    for (; r.used < per_round && more; ++r.used) {
      Batch& b = r.batches[r.used];
      b.docs.clear();
      std::size_t bytes = 0;
      while (bytes < opt.batch_bytes && b.docs.size() < 4096) {
        if (!reader.next_raw(doc)) {
          more = false;
          break;
        }
        bytes += doc.text.size();
        b.docs.push_back(std::move(doc));
        doc = InputDocument{};
      }
      if (b.docs.empty()) break;
    }
  };
  auto write_round = [&](Round& r) {
    for (std::size_t k = 0; k < r.used; ++k) {
      Batch& b = r.batches[k];
      for (std::size_t i = 0; i < b.docs.size(); ++i) {
        if (!b.ids[i].empty()) writer.add_sequence(b.ids[i]);
        writer.end_document();
        st.documents += 1;
        st.tokens += static_cast<std::int64_t>(b.ids[i].size());
        st.bytes += static_cast<std::int64_t>(b.docs[i].text.size());
      }
    }
    r.used = 0;
  };

  read_round(slots[0]);
  for (std::size_t i = 0; slots[i % 3].used > 0; ++i) {
    Round& cur = slots[i % 3];
    Round& prev = slots[(i + 2) % 3];
    Round& next_round = slots[(i + 1) % 3];
    cur.failures.assign(cur.used, nullptr);
    std::atomic<std::size_t> next{0};
    auto work = [&cur, &next, &reader, &tok, eod] {
      for (std::size_t k; (k = next.fetch_add(1)) < cur.used;) {
        try {
          Batch& b = cur.batches[k];
          b.ids.resize(b.docs.size());
          for (std::size_t d = 0; d < b.docs.size(); ++d) {
            reader.finish(b.docs[d]);
            b.ids[d] = tok.encode(b.docs[d].text);
            if (eod >= 0 && !b.ids[d].empty()) b.ids[d].push_back(eod);
          }
        } catch (...) {
          cur.failures[k] = std::current_exception();
        }
      }
    };
    std::vector<std::thread> pool;
    for (int w = 0; w < std::min<int>(opt.workers, static_cast<int>(cur.used)); ++w) pool.emplace_back(work);
    std::exception_ptr write_failure, read_failure;
    try {
      write_round(prev);
    } catch (...) {
      write_failure = std::current_exception();
    }
    if (!write_failure) {
      try {
        read_round(next_round);
      } catch (...) {
        read_failure = std::current_exception();
      }
    }
    for (auto& t : pool) t.join();
    // Report the failure that comes first in the input: round i - 1, then i, then i + 1.
    if (write_failure) std::rethrow_exception(write_failure);
    for (auto const& f : cur.failures)
      if (f) std::rethrow_exception(f);
    if (read_failure) std::rethrow_exception(read_failure);
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - last_print).count() >= opt.progress_interval_s)
      print(false);
    if (next_round.used == 0) write_round(cur);
  }
  writer.finalize();
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  print(true);
  return st;
}

}  // namespace data
KUMIKI_NAMESPACE_END
