// Data pipeline benchmarks: preprocess throughput (MB/s of text; byte tokenizer and a SentencePiece
// model trained here with spm_train) and the time to assemble one 512 x 4096 global batch from a
// blend of three datasets on one core (target < 50 ms).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kumiki/data/blended_dataset.hpp"
#include "kumiki/data/preprocess.hpp"
#include "kumiki/data/sentencepiece.hpp"

namespace fs = std::filesystem;
namespace kd = kumiki::data;

namespace {

fs::path scratch() {
  static fs::path const dir = [] {
    auto d = fs::temp_directory_path() / ("kumiki-bench-data-" + std::to_string(::getpid()));
    fs::create_directories(d);
    std::atexit([] { std::error_code ec; fs::remove_all(fs::temp_directory_path() / ("kumiki-bench-data-" + std::to_string(::getpid())), ec); });
    return d;
  }();
  return dir;
}

// A ~16 MB JSON Lines corpus of English and Japanese "sentences" recombined from the test corpus's
// words and characters (the test corpus is written for kumiki; see tests/data/corpus).
fs::path synthetic_corpus() {
  static fs::path const path = [] {
    fs::path const corpus = fs::path(__FILE__).parent_path().parent_path() / "tests" / "data" / "corpus";
    std::vector<std::string> en_words, ja_chunks;
    for (auto const* name : {"text/river_en.txt", "text/kawa_ja.txt", "text/nested/notes_mixed.txt"}) {
      std::ifstream in(corpus / name);
      std::stringstream s;
      s << in.rdbuf();
      std::string const t = s.str();
      std::istringstream words(t);
      for (std::string w; words >> w;) {
        if (static_cast<unsigned char>(w[0]) < 0x80) {
          en_words.push_back(w);
        } else {  // Japanese: chunks of 2-4 characters (3 bytes each)
          for (std::size_t at = 0; at + 3 <= w.size(); at += 6) ja_chunks.push_back(w.substr(at, std::min<std::size_t>(9, w.size() - at)));
        }
      }
    }
    std::mt19937_64 g(7);
    fs::path const p = scratch() / "corpus.jsonl";
    std::ofstream out(p);
    std::size_t bytes = 0;
    while (bytes < (std::size_t{16} << 20)) {
      std::string doc;
      bool const ja = g() % 2 == 0;
      std::size_t const len = 200 + g() % 3000;
      while (doc.size() < len) {
        if (ja) {
          doc += ja_chunks[g() % ja_chunks.size()];
          if (g() % 12 == 0) doc += "。";
        } else {
          doc += en_words[g() % en_words.size()];
          doc += g() % 15 == 0 ? ".\n" : " ";
        }
      }
      std::string const line = nlohmann::json{{"text", doc}}.dump();
      out << line << '\n';
      bytes += doc.size();
    }
    return p;
  }();
  return path;
}

std::string const& spm_model() {
  static std::string const model = []() -> std::string {
    // Train on a 2 MB slice of the corpus, as text, one document per line.
    fs::path const txt = scratch() / "spm_train.txt";
    {
      std::ifstream in(synthetic_corpus());
      std::ofstream out(txt);
      std::size_t bytes = 0;
      for (std::string line; bytes < (2u << 20) && std::getline(in, line);) {
        std::string t = nlohmann::json::parse(line)["text"].get<std::string>();
        for (auto& c : t)
          if (c == '\n') c = ' ';
        out << t << '\n';
        bytes += t.size();
      }
    }
    std::string const prefix = (scratch() / "spm").string();
    std::string const cmd = "spm_train --input=" + txt.string() + " --model_prefix=" + prefix +
                            " --vocab_size=4000 --model_type=unigram --character_coverage=0.9995 --byte_fallback=true"
                            " --normalization_rule_name=identity --hard_vocab_limit=false --minloglevel=2 > /dev/null 2>&1";
    return std::system(cmd.c_str()) == 0 ? prefix + ".model" : std::string();
  }();
  return model;
}

void run_preprocess(benchmark::State& state, kd::Tokenizer const& tok) {
  kd::PreprocessOptions opt;
  opt.inputs = {synthetic_corpus()};
  opt.output_prefix = scratch() / "out";
  opt.append_eod = true;
  opt.workers = static_cast<int>(state.range(0));
  kd::PreprocessStats st;
  for (auto _ : state) st = kd::preprocess(tok, opt);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * st.bytes);
  state.counters["MB/s"] = benchmark::Counter(static_cast<double>(st.bytes) / 1e6, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["docs/s"] = benchmark::Counter(static_cast<double>(st.documents), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["tokens/byte"] = static_cast<double>(st.tokens) / static_cast<double>(st.bytes);
}

}  // namespace

static void BM_PreprocessBytes(benchmark::State& state) {
  kd::ByteTokenizer tok;
  run_preprocess(state, tok);
}
BENCHMARK(BM_PreprocessBytes)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

static void BM_PreprocessSentencePiece(benchmark::State& state) {
  if (spm_model().empty()) {
    state.SkipWithError("spm_train failed or is not installed");
    return;
  }
  kd::SentencePieceTokenizer tok(spm_model());
  run_preprocess(state, tok);
  state.counters["vocab"] = static_cast<double>(tok.vocab_size());
}
BENCHMARK(BM_PreprocessSentencePiece)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// One global batch of 512 samples x (4096 + 1) tokens from a 0.5 / 0.3 / 0.2 blend of three
// uint16 datasets (~24 M tokens in all); each iteration assembles the next batch, single thread.
static void BM_GlobalBatchBlend3(benchmark::State& state) {
  std::int64_t const batch = 512, seq = 4096;
  static std::unique_ptr<kd::BlendedDataset> blend = [&] {
    std::mt19937_64 g(11);
    std::vector<kd::BlendEntry> entries;
    double const weights[3] = {0.5, 0.3, 0.2};
    int const mean_len[3] = {600, 3000, 12000};  // web pages, articles, long documents
    for (int d = 0; d < 3; ++d) {
      auto const prefix = scratch() / ("blend" + std::to_string(d));
      kd::IndexedDatasetWriter w(prefix, kd::IndexDType::uint16);
      std::vector<std::uint16_t> doc;
      for (std::int64_t tokens = 0; tokens < 8'000'000;) {
        doc.resize(1 + g() % static_cast<std::uint64_t>(2 * mean_len[d]));
        for (auto& t : doc) t = static_cast<std::uint16_t>(g() % 50000);
        w.add_document(doc);
        tokens += static_cast<std::int64_t>(doc.size());
      }
      w.finalize();
      entries.push_back({weights[d], prefix});
    }
    kd::BlendedDatasetConfig cfg;
    cfg.seq_len = seq;
    cfg.num_samples = batch * 64;
    cfg.cache_dir = scratch() / "cache";
    return std::make_unique<kd::BlendedDataset>(entries, cfg);
  }();
  std::vector<std::int32_t> out(static_cast<std::size_t>(batch * (seq + 1)));  // (B, T + 1)
  std::int64_t step = 0;
  for (auto _ : state) {
    std::int64_t const first = (step++ % 64) * batch;
    for (std::int64_t b = 0; b < batch; ++b) blend->get(first + b, out.data() + b * (seq + 1));
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(batch * (seq + 1)), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_GlobalBatchBlend3)->Unit(benchmark::kMillisecond)->UseRealTime();

// Building the blend's indices from scratch (GPT index + greedy blending) for 512 x 4096 x 1000 steps' worth.
static void BM_BlendingIndex(benchmark::State& state) {
  std::int64_t const n = state.range(0);
  std::vector<double> const w = kd::normalize_weights({0.5, 0.3, 0.2});
  std::vector<std::int16_t> di(static_cast<std::size_t>(n));
  std::vector<std::int64_t> dsi(static_cast<std::size_t>(n));
  for (auto _ : state) {
    kd::build_blending_indices(w, n, di.data(), dsi.data());
    benchmark::DoNotOptimize(di.data());
  }
  state.counters["samples/s"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_BlendingIndex)->Arg(512 * 1000)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
