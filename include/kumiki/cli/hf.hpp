// kumiki/cli/hf.hpp: `kumiki export-hf` / `kumiki import-hf`: move models between kumiki checkpoints and
// Hugging Face Llama (dense) or Mixtral (MoE) directories (config.json + safetensors; see kumiki/io/hf.hpp,
// docs/hf.md).
#pragma once

#include <cstdio>
#include <filesystem>
#include <string>

#include <CLI/CLI.hpp>

#include "kumiki/cli/app.hpp"
#include "kumiki/cpu.hpp"
#include "kumiki/io/hf.hpp"
#include "kumiki/train/hf_interop.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace cli {
namespace detail::cmd_hf {

struct ExportArgs {
  std::string checkpoint, out, dtype = "bf16", tokenizer;
  std::int64_t bos = -1, eos = -1;
  std::uint64_t max_shard_bytes = 5'000'000'000;
};

}  // namespace detail::cmd_hf

template <class Configs>
void add_hf(CLI::App& app) {
  using namespace detail::cmd_hf;
  auto a = std::make_shared<ExportArgs>();
  auto* ex = app.add_subcommand("export-hf", "Write a checkpoint's model as a Hugging Face Llama (dense) or Mixtral (MoE) directory");
  ex->add_option("--checkpoint", a->checkpoint, "checkpoint directory (or a run directory: its newest valid checkpoint)")
      ->required();
  ex->add_option("--out", a->out, "output directory (must not exist or be empty)")->required();
  ex->add_option("--dtype", a->dtype, "weight dtype: bf16 (round to nearest even) or f32")
      ->check(CLI::IsMember({"bf16", "f32"}));
  ex->add_option("--tokenizer", a->tokenizer, "tokenizer model to copy beside the weights")->check(CLI::ExistingFile);
  ex->add_option("--max-shard-bytes", a->max_shard_bytes, "shard the weights above this many bytes per file")
      ->check(CLI::PositiveNumber);
  ex->add_option("--bos-token-id", a->bos, "BOS id for config.json (default: 257 for the byte vocabulary, else 1)");
  ex->add_option("--eos-token-id", a->eos, "EOS id for config.json (default: 256 for the byte vocabulary, else 2)");
  ex->callback([a] {
    kumiki::io::HfExportOptions opt;
    opt.dtype = a->dtype == "f32" ? kumiki::DType::f32 : kumiki::DType::bf16;
    if (a->bos >= 0) opt.bos_token_id = a->bos;
    if (a->eos >= 0) opt.eos_token_id = a->eos;
    opt.tokenizer = a->tokenizer;
    opt.max_shard_bytes = a->max_shard_bytes;
    auto const files = kumiki::train::export_hf<Configs>(a->checkpoint, a->out, opt);
    std::printf("exported %s to %s (%s):\n", a->checkpoint.c_str(), a->out.c_str(), a->dtype.c_str());
    for (auto const& f : files)
      std::printf("  %-40s %12llu bytes\n", f.filename().string().c_str(),
                  static_cast<unsigned long long>(std::filesystem::file_size(f)));
  });

  auto in = std::make_shared<std::pair<std::string, std::string>>();
  auto* im = app.add_subcommand("import-hf", "Read a Hugging Face Llama or Mixtral directory into a kumiki checkpoint (step 0)");
  im->add_option("--model", in->first, "Hugging Face model directory (config.json + safetensors)")->required();
  im->add_option("--out", in->second,
                 "checkpoint root: the checkpoint is written as OUT/step_000000000. To continue training, import into "
                 "RUN/checkpoints and run `kumiki train --recipe R --out RUN --allow-recipe-change`")
      ->required();
  im->callback([in] {
    auto const dir = kumiki::train::import_hf<Configs>(in->first, in->second);
    std::printf("imported %s as %s (model '%s'); optimizer moments are zero, step 0\n"
                "to train from it: place it under RUN/checkpoints/ and run "
                "`kumiki train --recipe R.toml --out RUN --allow-recipe-change`\n",
                in->first.c_str(), dir.string().c_str(), kumiki::train::checkpoint_model_name(dir).c_str());
  });
}

}  // namespace cli
KUMIKI_NAMESPACE_END
