// kumiki/cli/eval.hpp: `kumiki eval --checkpoint C --data-path P1 [P2 ...]`: loss and perplexity of a
// checkpoint per dataset, over one full pass of each dataset by default.
#pragma once

#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include <CLI/CLI.hpp>

#include "kumiki/cli/app.hpp"
#include "kumiki/cpu.hpp"
#include "kumiki/data/blended_dataset.hpp"
#include "kumiki/data/gpt_dataset.hpp"
#include "kumiki/data/split.hpp"
#include "kumiki/io/safetensors.hpp"
#include "kumiki/models/configs.hpp"
#include "kumiki/nn/transformer.hpp"
#include "kumiki/train/checkpoint.hpp"
#include "kumiki/train/recipe.hpp"
#include "kumiki/train/trainer.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace cli {
namespace detail::cmd_eval {

namespace fs = std::filesystem;

struct EvalArgs {
  std::string checkpoint;
  std::vector<std::string> data_path;
  std::int64_t seq_len = 0, samples = 0, micro_batch = 4;
  std::uint64_t seed = 1234;
  std::string split;  ///< empty: whole datasets
};

/// One dataset to evaluate, opened and sized before any output.
struct EvalSet {
  std::string prefix;
  std::int64_t samples = 0;  // evaluated samples (L + 1 tokens each, consecutive ones overlap by one)
  std::unique_ptr<kumiki::data::GptDataset> ds;
};

/// Samples of one pass over sequences [begin, end) of a dataset: Megatron's GPT sample count for one
/// epoch, (tokens - 1) / L.
inline std::int64_t samples_per_pass(kumiki::data::IndexedDataset const& d, std::int64_t begin, std::int64_t end,
                              std::int64_t seq_len) {
  std::int64_t tokens = 0;
  for (std::int64_t s = begin; s < end; ++s) tokens += d.sequence_length(s);
  return (tokens - 1) / seq_len;
}

template <class Configs>
void eval(EvalArgs const& a) {
  using namespace kumiki;
  // Every input is checked before the first line of output.
  KUMIKI_REQUIRE(a.micro_batch > 0, "--micro-batch must be positive, got ", a.micro_batch);
  KUMIKI_REQUIRE(a.samples >= 0, "--samples must be positive (or omitted for a full pass), got ", a.samples);
  fs::path const dir = train::resolve_checkpoint(a.checkpoint);  // a checkpoint or a run directory
  train::verify_checkpoint(dir);
  std::int64_t const max_seq = train::checkpoint_configuration<Configs>(dir).max_seq_len;
  train::Recipe const recipe = train::parse_recipe<Configs>(train::detail::read_text(dir / train::ckpt_recipe_file),
                                                            (dir / train::ckpt_recipe_file).string(), dir, false);
  std::int64_t const seq = a.seq_len > 0 ? a.seq_len : recipe.seq_len;
  KUMIKI_REQUIRE(a.seq_len >= 0, "--seq-len must be positive, got ", a.seq_len);
  KUMIKI_REQUIRE(seq <= max_seq, "--seq-len ", seq, " exceeds the longest sequence model '", recipe.model, "' supports (",
                 max_seq, " tokens): give --seq-len ", max_seq, " or less");
  // --data-path as Megatron reads it (weights, when given, are checked and otherwise ignored: every
  // dataset is evaluated on its own). Held-out files are read whole; with --split, the valid part of
  // each dataset (what a training run with the same split never sees).
  auto const entries = data::parse_data_path(a.data_path);
  // A flag and a plain array, not std::optional<std::array>: GCC 12 at -O3 without -march=native warns
  // (-Wmaybe-uninitialized) that the optional's elements may be read uninitialized where it is inlined.
  bool const split = !a.split.empty();
  std::array<double, 3> const shares = split ? data::parse_split(a.split) : std::array<double, 3>{};
  std::vector<EvalSet> sets;
  for (auto const& entry : entries) {
    std::string const s = entry.prefix.string();
    EvalSet e;
    e.prefix = s;
    auto const indexed = std::make_shared<data::IndexedDataset const>(entry.prefix);
    data::GptDatasetConfig gc;
    gc.seq_len = seq;
    gc.seed = a.seed;
    if (split) std::tie(gc.split_begin, gc.split_end) = data::require_part(*indexed, shares, a.split, data::SplitPart::valid);
    std::int64_t const end = gc.split_end < 0 ? indexed->num_sequences() : gc.split_end;
    std::int64_t const pass = samples_per_pass(*indexed, gc.split_begin, end, seq);
    std::string const what = split ? "the valid part of dataset '" + s + "'" : "dataset '" + s + "'";
    KUMIKI_REQUIRE(pass > 0, what, " holds too few tokens for one sample of --seq-len ", seq, " (", seq + 1, " tokens)");
    KUMIKI_REQUIRE(a.samples <= pass, "--samples ", a.samples, " exceeds one pass over ", what, " (", pass,
                   " samples of ", seq, " tokens): omit --samples to evaluate the whole dataset once");
    e.samples = a.samples > 0 ? a.samples : pass;
    gc.num_samples = e.samples;
    e.ds = std::make_unique<data::GptDataset>(indexed, gc);
    sets.push_back(std::move(e));
  }
  KUMIKI_REQUIRE(!sets.empty(), "--data-path names no dataset prefix");

  Configs::dispatch(recipe.model, [&](auto tag) {
    nn::Transformer<decltype(tag)::config, Cpu, float> model;
    io::SafetensorsFile const weights(dir / train::ckpt_model_file);
    train::detail::load_arena(weights, model.params());
    std::printf("checkpoint %s (%s, step from %s), --seq-len %lld\n", dir.string().c_str(), recipe.model.c_str(),
                dir.filename().string().c_str(), static_cast<long long>(seq));
    std::printf("%-40s %10s %12s %12s %9s\n", "dataset", "loss", "perplexity", "tokens", "samples");
    std::fflush(stdout);
    for (auto const& e : sets) {
      auto last = std::chrono::steady_clock::now();
      double const loss = train::mean_loss_over(model, *e.ds, seq, a.micro_batch, e.samples, [&](std::int64_t done) {
        auto const now = std::chrono::steady_clock::now();
        if (now - last < std::chrono::seconds(2) && done < e.samples) return;
        last = now;
        std::fprintf(stderr, "[eval] %s: %lld / %lld samples (%.0f%%)\n", e.prefix.c_str(), static_cast<long long>(done),
                     static_cast<long long>(e.samples), 100.0 * static_cast<double>(done) / static_cast<double>(e.samples));
      });
      std::printf("%-40s %10.4f %12.3f %12lld %9lld\n", e.prefix.c_str(), loss, std::exp(loss),
                  static_cast<long long>(e.samples * seq), static_cast<long long>(e.samples));
      std::fflush(stdout);
    }
  });
}

}  // namespace detail::cmd_eval

template <class Configs>
void add_eval(CLI::App& app) {
  using namespace detail::cmd_eval;
  static EvalArgs a;
  auto* cmd = app.add_subcommand("eval", "Loss and perplexity of a checkpoint on datasets (one full pass each by default)");
  cmd->add_option("--checkpoint", a.checkpoint, "Checkpoint (RUN/checkpoints/step_*), or a run directory: its newest valid checkpoint")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--data-path", a.data_path, "Dataset prefixes (optionally Megatron 'w prefix' pairs), each evaluated on its own")->required();
  cmd->add_option("--split", a.split, "Megatron train,valid,test shares: evaluate the valid part of each dataset (default: whole files)");
  cmd->add_option("--seq-len", a.seq_len, "Sequence length (default: the recipe's)");
  cmd->add_option("--samples", a.samples, "Samples per dataset (default: one full pass, (tokens - 1) / seq-len)");
  cmd->add_option("--micro-batch", a.micro_batch, "Sequences per forward");
  cmd->add_option("--seed", a.seed, "Sample-order seed (only matters with --samples below a full pass)");
  cmd->callback([] { eval<Configs>(a); });
}

}  // namespace cli
KUMIKI_NAMESPACE_END
