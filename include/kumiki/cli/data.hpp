// kumiki/cli/data.hpp: `kumiki data inspect`: datasets of a blend, the part of each the split gives it,
// requested and realized samples, the blending weights to the last bit, the blending index.
#pragma once

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "kumiki/cli/app.hpp"
#include "kumiki/data/blended_dataset.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace cli {
namespace detail::cmd_data {

struct InspectArgs {
  std::vector<std::string> data_path;
  std::int64_t seq_len = 0;
  std::int64_t samples = 0;
  std::uint64_t seed = 1234;
  std::string dump_index;
  std::string cache_dir;
  std::string split = kumiki::data::megatron_default_split;
};

inline void inspect(InspectArgs const& a) {
  namespace kd = kumiki::data;
  kd::BlendedDatasetConfig cfg;
  cfg.seq_len = a.seq_len;
  cfg.num_samples = a.samples;
  cfg.seed = a.seed;
  cfg.cache_dir = a.cache_dir;
  cfg.split = a.split;
  auto const entries = kd::parse_data_path(a.data_path);
  kd::BlendedDataset blend(entries, cfg);
  auto const realized = blend.consumed_per_dataset(blend.size());
  char const* kind = blend.kind() == kd::BlendKind::single ? "single" : blend.kind() == kd::BlendKind::weighted ? "weighted" : "weightless";
  std::printf("blend of %zu dataset(s), %s: seq_len %lld, target %lld samples, blend %lld samples, seed %llu, split \"%s\" (train part)\n",
              blend.num_datasets(), kind, static_cast<long long>(a.seq_len), static_cast<long long>(a.samples),
              static_cast<long long>(blend.size()), static_cast<unsigned long long>(a.seed), a.split.c_str());
  std::printf("%-3s %10s %10s %12s %14s %10s %10s %12s %10s %9s %9s %10s %7s  %s\n", "#", "weight", "documents", "sequences",
              "tokens", "seq_begin", "seq_end", "part_tokens", "requested", "epochs", "samples", "real_share", "max_dsi", "prefix");
  std::vector<std::int64_t> max_dsi(blend.num_datasets(), -1);
  for (std::int64_t t = 0; t < blend.size(); ++t) {
    auto const [d, s] = blend.source(t);
    max_dsi[static_cast<std::size_t>(d)] = s;
  }
  for (std::size_t d = 0; d < blend.num_datasets(); ++d) {
    auto const& g = blend.dataset(d);
    auto const& ds = g.indexed_dataset();
    auto const& gc = g.config();
    std::printf("%-3zu %10.6f %10lld %12lld %14lld %10lld %10lld %12lld %10lld %9lld %9lld %10.6f %7lld  %s\n", d,
                blend.weights()[d], static_cast<long long>(ds.num_documents()), static_cast<long long>(ds.num_sequences()),
                static_cast<long long>(ds.total_tokens()), static_cast<long long>(gc.split_begin),
                static_cast<long long>(gc.split_end), static_cast<long long>(g.index().tokens_per_epoch),
                static_cast<long long>(blend.requested()[d]), static_cast<long long>(g.index().num_epochs),
                static_cast<long long>(realized[d]),
                static_cast<double>(realized[d]) / static_cast<double>(blend.size()), static_cast<long long>(max_dsi[d]),
                entries[d].prefix.c_str());
  }
  // Full precision, so the last bit (which decides the greedy rule's ties) can be compared.
  std::printf("blending weights:");
  for (double w : blend.weights()) std::printf(" %.17g", w);
  std::printf("\n");
  if (!a.dump_index.empty()) {
    std::FILE* f = std::fopen(a.dump_index.c_str(), "w");
    KUMIKI_REQUIRE(f != nullptr, "--dump-index: cannot write ", a.dump_index);
    std::fputs("sample,dataset,dataset_sample\n", f);
    for (std::int64_t t = 0; t < blend.size(); ++t) {
      auto const [d, s] = blend.source(t);
      std::fprintf(f, "%lld,%lld,%lld\n", static_cast<long long>(t), static_cast<long long>(d), static_cast<long long>(s));
    }
    bool const ok = std::fclose(f) == 0;
    KUMIKI_REQUIRE(ok, "--dump-index: cannot write ", a.dump_index);
    std::printf("blending index written to %s\n", a.dump_index.c_str());
  }
}

}  // namespace detail::cmd_data

template <class Configs>
void add_data(CLI::App& app) {
  using namespace detail::cmd_data;
  auto* data = app.add_subcommand("data", "Inspect indexed datasets and blends");
  data->require_subcommand(1);
  auto args = std::make_shared<InspectArgs>();
  auto* cmd = data->add_subcommand("inspect", "Per-dataset documents, tokens and shares of a blend; dump its index");
  cmd->add_option("--data-path", args->data_path,
                  "Megatron blend: W1 PREFIX1 W2 PREFIX2 ..., or PREFIX1 PREFIX2 ... (in proportion to size), or one PREFIX")
      ->required()
      ->expected(1, -1);
  cmd->add_option("--seq-len", args->seq_len, "Sequence length L (samples hold L + 1 tokens)")->required()->check(CLI::PositiveNumber);
  cmd->add_option("--samples", args->samples, "Number of samples of the blend")->required()->check(CLI::PositiveNumber);
  cmd->add_option("--seed", args->seed, "Shuffle seed")->capture_default_str();
  cmd->add_option("--split", args->split,
                  "Megatron's train,valid,test shares of every dataset; the blend reads the train part")
      ->capture_default_str();
  cmd->add_option("--dump-index", args->dump_index, "Write the blending index as CSV: sample,dataset,dataset_sample");
  cmd->add_option("--cache-dir", args->cache_dir, "Cache the GPT sample indices here (default: build in memory)");
  cmd->callback([args] { inspect(*args); });
}

}  // namespace cli
KUMIKI_NAMESPACE_END
