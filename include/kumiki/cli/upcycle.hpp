// kumiki/cli/upcycle.hpp: `kumiki upcycle`: Drop-Upcycling of a dense checkpoint into an MoE configuration,
// written as a weights-only kumiki checkpoint (step 0, zero moments) to train from (kumiki/moe/upcycle.hpp,
// docs/moe.md).
#pragma once

#include <cstdio>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "kumiki/cli/app.hpp"
#include "kumiki/cpu.hpp"
#include "kumiki/io/hf.hpp"
#include "kumiki/train/hf_interop.hpp"
#include "kumiki/moe/upcycle.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace cli {
namespace detail::cmd_upcycle {

struct UpcycleArgs {
  std::string checkpoint, model, out;
  double ratio = 0.5;
  std::uint64_t seed = 0;
  bool separate = false;
  double router_std = 0.02;
};

}  // namespace detail::cmd_upcycle

template <class Configs>
void add_upcycle(CLI::App& app) {
  using namespace detail::cmd_upcycle;
  auto a = std::make_shared<UpcycleArgs>();
  auto* cmd = app.add_subcommand("upcycle", "Drop-Upcycle a dense checkpoint into an MoE model (a step-0 checkpoint to train from)");
  cmd->add_option("--checkpoint", a->checkpoint, "dense checkpoint (or a run directory: its newest valid checkpoint)")
      ->required();
  cmd->add_option("--model", a->model, "MoE configuration to build (e.g. demo_moe)")->required();
  cmd->add_option("--out", a->out,
                  "checkpoint root: the checkpoint is written as OUT/step_000000000 (e.g. RUN/checkpoints, or any "
                  "directory to pass to `kumiki train --init-from`)")
      ->required();
  cmd->add_option("--ratio", a->ratio, "r: fraction of each expert's intermediate dimension re-initialized (0: plain upcycling)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", a->seed, "Philox seed of the index sets, re-initialized values and routers");
  cmd->add_flag("--separate-index-sets", a->separate,
                "draw a separate index subset for each of w1, w3, w2 (the public code) instead of one per expert (the paper)");
  cmd->add_option("--router-std", a->router_std, "standard deviation of the fresh uniform router weights")
      ->check(CLI::NonNegativeNumber);
  cmd->callback([a] {
    using namespace kumiki;
    train::CheckpointModel const dense = train::read_checkpoint_model<Configs>(a->checkpoint);
    models::TransformerConfig const moe_cfg = Configs::find(a->model);
    Arena<Cpu> moe_params(io::model_param_layout<Configs>(a->model));
    moe::UpcycleOptions opt;
    opt.ratio = a->ratio;
    opt.seed = a->seed;
    opt.shared_index_set = !a->separate;
    opt.router_std = a->router_std;
    moe::drop_upcycle<Configs>(dense.config_name, dense.params, a->model, moe_params, opt);
    std::string const how = "ratio " + io::detail::fmt_number(opt.ratio) + ", seed " + std::to_string(opt.seed) + ", " +
                            (opt.shared_index_set ? "shared" : "separate") + " index sets, router std " +
                            io::detail::fmt_number(opt.router_std);
    std::string const origin = "Drop-Upcycled by `kumiki upcycle` from the '" + dense.config_name + "' checkpoint '" +
                               a->checkpoint + "' (" + how + ").";
    auto const dir = train::write_weights_only_checkpoint<Configs>(
        a->out, a->model, moe_params, train::weights_only_recipe_text(a->model, moe_cfg, origin),
        {{"upcycled_from", a->checkpoint}, {"upcycle", "drop-upcycling: " + how}});
    std::int64_t const F = moe_cfg.expert_ffn();
    std::printf("upcycled '%s' (%s) into '%s' as %s: %lld of %lld intermediate rows re-initialized per expert (%s)\n"
                "to train from it: `kumiki train --recipe R.toml --out RUN --init-from %s`\n",
                dense.config_name.c_str(), a->checkpoint.c_str(), a->model.c_str(), dir.string().c_str(),
                static_cast<long long>(moe::reinit_count(opt.ratio, F)), static_cast<long long>(F), how.c_str(),
                dir.string().c_str());
  });
}

}  // namespace cli
KUMIKI_NAMESPACE_END
