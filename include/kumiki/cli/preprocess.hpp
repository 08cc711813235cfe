// kumiki/cli/preprocess.hpp: `kumiki preprocess`: tokenize JSON Lines / plain text (directories, .gz) into a
// Megatron indexed dataset.
#pragma once

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "kumiki/cli/app.hpp"
#include "kumiki/data/preprocess.hpp"
#include "kumiki/data/sentencepiece.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace cli {
namespace detail::cmd_preprocess {

struct PreprocessArgs {
  std::vector<std::string> inputs;
  std::string json_key = "text";
  std::string tokenizer;
  std::string output_prefix;
  bool append_eod = false;
  int workers = 1;
  bool paragraphs = false;
  bool replace_invalid_utf8 = false;
  bool quiet = false;
};

}  // namespace detail::cmd_preprocess

template <class Configs>
void add_preprocess(CLI::App& app) {
  using namespace detail::cmd_preprocess;
  auto args = std::make_shared<PreprocessArgs>();
  auto* cmd = app.add_subcommand("preprocess", "Tokenize a text corpus into a Megatron indexed dataset (.bin/.idx)");
  cmd->add_option("--input", args->inputs, "Input files or directories (JSON Lines: .jsonl/.json/.ndjson; other files "
                                           "are plain text; .gz is decompressed; directories are searched recursively)")
      ->required()
      ->expected(1, -1);
  cmd->add_option("--json-key", args->json_key, "Key of the text in each JSON line")->capture_default_str();
  cmd->add_option("--tokenizer", args->tokenizer, "A SentencePiece .model, or `bytes` for the byte-level tokenizer")
      ->required();
  cmd->add_option("--output-prefix", args->output_prefix, "Writes PREFIX.bin and PREFIX.idx")->required();
  cmd->add_flag("--append-eod", args->append_eod, "End every non-empty document with the end-of-document token");
  cmd->add_option("--workers", args->workers, "Tokenizer threads (the output does not depend on it)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  cmd->add_flag("--paragraphs", args->paragraphs,
                "Plain text: one document per blank-line-separated paragraph (default: one per file)");
  cmd->add_flag("--replace-invalid-utf8", args->replace_invalid_utf8,
                "Replace invalid UTF-8 with U+FFFD instead of stopping with an error");
  cmd->add_flag("--quiet", args->quiet, "No progress line");
  cmd->callback([args] {
    namespace kd = kumiki::data;
    auto const tok = kd::make_tokenizer(args->tokenizer);
    kd::PreprocessOptions opt;
    opt.inputs.assign(args->inputs.begin(), args->inputs.end());
    opt.output_prefix = args->output_prefix;
    opt.json_key = args->json_key;
    opt.append_eod = args->append_eod;
    opt.workers = args->workers;
    opt.text_mode = args->paragraphs ? kd::TextMode::paragraphs : kd::TextMode::whole_file;
    opt.replace_invalid_utf8 = args->replace_invalid_utf8;
    opt.progress = args->quiet ? nullptr : &std::cerr;
    auto const st = kd::preprocess(*tok, opt);
    std::cout << "wrote " << args->output_prefix << ".bin/.idx: " << st.files << " files, " << st.documents
              << " documents, " << st.tokens << " tokens (" << kd::index_dtype_name(st.dtype) << ", tokenizer "
              << tok->name() << ", vocab " << tok->vocab_size() << ")\n";
  });
}

}  // namespace cli
KUMIKI_NAMESPACE_END
