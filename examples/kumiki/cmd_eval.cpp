// `kumiki eval --checkpoint C --data-path P1 [P2 ...]`: loss and perplexity of a checkpoint per dataset.
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "command.hpp"
#include "kumiki/data/blended_dataset.hpp"
#include "kumiki/data/gpt_dataset.hpp"
#include "kumiki/data/split.hpp"
#include "kumiki/io/safetensors.hpp"
#include "kumiki/models/configs.hpp"
#include "kumiki/nn/transformer.hpp"
#include "kumiki/train/checkpoint.hpp"
#include "kumiki/train/recipe.hpp"
#include "kumiki/train/trainer.hpp"

namespace {

namespace fs = std::filesystem;

struct EvalArgs {
  std::string checkpoint;
  std::vector<std::string> data_path;
  std::int64_t seq_len = 0, samples = 64, micro_batch = 4;
  std::uint64_t seed = 1234;
  std::string split;  ///< empty: whole datasets
};

void eval(EvalArgs const& a) {
  using namespace kumiki;
  fs::path const dir = train::resolve_checkpoint(a.checkpoint);  // a checkpoint or a run directory
  train::verify_checkpoint(dir);
  train::Recipe const recipe = train::parse_recipe(train::detail::read_text(dir / train::ckpt_recipe_file),
                                                   (dir / train::ckpt_recipe_file).string(), dir, false);
  std::int64_t const seq = a.seq_len > 0 ? a.seq_len : recipe.seq_len;
  // --data-path as Megatron reads it (weights, when given, are checked and otherwise ignored: every
  // dataset is evaluated on its own).
  auto const entries = data::parse_data_path(a.data_path);
  // Held-out files are read whole; with --split, the valid part of each dataset (what a training run
  // with the same split never sees).
  std::optional<std::array<double, 3>> const shares =
      a.split.empty() ? std::nullopt : std::optional(data::parse_split(a.split));
  models::dispatch_config(recipe.model, [&](auto tag) {
    nn::Transformer<decltype(tag)::config, Cpu, float> model;
    io::SafetensorsFile const weights(dir / train::ckpt_model_file);
    train::detail::load_arena(weights, model.params());
    std::printf("checkpoint %s (%s, step from %s)\n", dir.string().c_str(), recipe.model.c_str(),
                dir.filename().string().c_str());
    std::printf("%-40s %10s %12s %10s\n", "dataset", "loss", "perplexity", "tokens");
    for (auto const& e : entries) {
      std::string const p = e.prefix.string();
      data::GptDatasetConfig gc;
      gc.seq_len = seq;
      gc.num_samples = a.samples;
      gc.seed = a.seed;
      auto file = std::make_shared<data::IndexedDataset const>(e.prefix);
      if (shares) std::tie(gc.split_begin, gc.split_end) = data::require_part(*file, *shares, a.split, data::SplitPart::valid);
      data::GptDataset const ds(std::move(file), gc);
      std::int64_t const n = a.samples / a.micro_batch;
      KUMIKI_REQUIRE(n > 0, "--samples ", a.samples, " must be at least --micro-batch ", a.micro_batch);
      double const loss = train::mean_loss(model, ds, seq, a.micro_batch, n);
      std::printf("%-40s %10.4f %12.3f %10lld\n", p.c_str(), loss, std::exp(loss), static_cast<long long>(n * a.micro_batch * seq));
    }
  });
}

kumiki_cli::Registration reg{11, [](CLI::App& app) {
  static EvalArgs a;
  auto* cmd = app.add_subcommand("eval", "Loss and perplexity of a checkpoint on datasets");
  cmd->add_option("--checkpoint", a.checkpoint, "Checkpoint (RUN/checkpoints/step_*), or a run directory: its newest valid checkpoint")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--data-path", a.data_path, "Dataset prefixes (optionally Megatron 'w prefix' pairs), each evaluated on its own")->required();
  cmd->add_option("--split", a.split, "Megatron train,valid,test shares: evaluate the valid part of each dataset (default: whole files)");
  cmd->add_option("--seq-len", a.seq_len, "Sequence length (default: the recipe's)");
  cmd->add_option("--samples", a.samples, "Samples per dataset");
  cmd->add_option("--micro-batch", a.micro_batch, "Sequences per forward");
  cmd->add_option("--seed", a.seed, "Sample-order seed");
  cmd->callback([] { eval(a); });
}};

}  // namespace
