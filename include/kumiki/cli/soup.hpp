// kumiki/cli/soup.hpp: `kumiki soup CKPT1 CKPT2 ... [--weights w1 w2 ...] [--dtype f32|bf16] --out DIR`: the
// weighted average of several checkpoints of one model (train/soup.hpp), written as a checkpoint under DIR.
#pragma once

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "kumiki/cli/app.hpp"
#include "kumiki/train/soup.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace cli {
namespace detail::cmd_soup {

struct SoupArgs {
  std::vector<std::string> checkpoints;
  std::vector<double> weights;
  std::string dtype = "f32", out;
};

template <class Configs>
void run(SoupArgs const& a) {
  namespace kt = kumiki::train;
  std::vector<std::filesystem::path> in(a.checkpoints.begin(), a.checkpoints.end());
  kt::SoupPrecision const p = a.dtype == "bf16" ? kt::SoupPrecision::bf16 : kt::SoupPrecision::f32;
  kt::Soup const s = kt::soup_checkpoints<Configs>(in, a.weights, p, [](std::size_t done, std::size_t total) {
    if (done == total || done % 16 == 0) std::fprintf(stderr, "\r[soup] %zu/%zu tensors", done, total);
    if (done == total) std::fprintf(stderr, "\n");
  });
  std::filesystem::path const dir = kt::save_soup(a.out, s, p);
  std::printf("souped %zu checkpoints of '%s' (%s):\n", s.inputs.size(), s.config_name.c_str(), a.dtype.c_str());
  for (std::size_t k = 0; k < s.inputs.size(); ++k)
    std::printf("  %.6f  %s\n", s.weights[k], s.inputs[k].string().c_str());
  std::printf("wrote %s\n", dir.string().c_str());
}

}  // namespace detail::cmd_soup

template <class Configs>
void add_soup(CLI::App& app) {
  using namespace detail::cmd_soup;
  static SoupArgs a;
  auto* cmd = app.add_subcommand("soup", "Average the weights of checkpoints of one model (a model soup)");
  cmd->add_option("checkpoints", a.checkpoints, "Checkpoints, directories of checkpoints or run directories")
      ->required()
      ->expected(2, -1);
  cmd->add_option("--weights", a.weights, "One weight per checkpoint, normalized to sum 1 (default: uniform)");
  cmd->add_option("--dtype", a.dtype, "f32: average in double, round once; bf16: inputs and result rounded to bf16")
      ->check(CLI::IsMember({"f32", "bf16"}))
      ->capture_default_str();
  cmd->add_option("--out", a.out, "Directory for the souped checkpoint (step_000000000 inside)")->required();
  cmd->callback([] { run<Configs>(a); });
}

}  // namespace cli
KUMIKI_NAMESPACE_END
