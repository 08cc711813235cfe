// kumiki/cli/info.hpp: `kumiki info`: version, build features and the model configurations of the program's
// list.
#pragma once

#include <cstdio>
#include <string>
#include <thread>

#include "kumiki/ops/cpu/detail/eigen.hpp"

#include <CLI/CLI.hpp>

#include "kumiki/cli/app.hpp"
#include "kumiki/kumiki.hpp"
#include "kumiki/models/configs.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace cli {
template <class Configs>
void add_info(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Print version, build features and the model configurations this program accepts");
  cmd->callback([] {
    std::printf("kumiki %s\n", kumiki::version_string);
    std::printf("compiler: %s, C++ %ld\n", __VERSION__, static_cast<long>(__cplusplus));
    std::printf("Eigen %d.%d.%d, OpenMP %d, hardware threads %u\n", EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION,
                EIGEN_MINOR_VERSION, _OPENMP, std::thread::hardware_concurrency());
    std::printf("model configurations (FLOPs: Megatron model FLOPs per token, fwd+bwd, at max seq;\n"
                "bytes: fp32 params / fp32 grads / AdamW moments; experts: top-k / experts, ffn per expert):\n");
    std::printf("  %-14s %6s %6s %6s %3s %5s %3s %7s %7s %6s %14s %14s %11s %9s %9s %9s\n", "name", "vocab", "padded",
                "hidden", "L", "heads", "kv", "ffn", "experts", "seq", "params", "active", "GFLOP/tok", "params", "grads",
                "optim");
    for (auto name : Configs::names()) {
      Configs::dispatch(name, [&](auto tag) {
        constexpr auto c = decltype(tag)::config;
        auto human = [](std::int64_t b) {
          double v = static_cast<double>(b);
          char const* unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
          int u = 0;
          while (v >= 1024.0 && u < 4) v /= 1024.0, ++u;
          char out[32];
          std::snprintf(out, sizeof out, "%.1f %s", v, unit[u]);
          return std::string(out);
        };
        std::string const experts =
            c.is_moe() ? std::to_string(c.moe_top_k) + "/" + std::to_string(c.num_experts) : std::string("-");
        std::printf("  %-14.*s %6lld %6lld %6lld %3lld %5lld %3lld %7lld %7s %6lld %14lld %14lld %11.4g %10s %10s %10s\n",
                    static_cast<int>(name.size()), name.data(), static_cast<long long>(c.vocab_size),
                    static_cast<long long>(c.padded_vocab()), static_cast<long long>(c.hidden),
                    static_cast<long long>(c.num_layers), static_cast<long long>(c.num_heads),
                    static_cast<long long>(c.num_query_groups), static_cast<long long>(c.expert_ffn()),
                    experts.c_str(), static_cast<long long>(c.max_seq_len), static_cast<long long>(c.num_params()),
                    static_cast<long long>(c.active_params()),
                    c.flops_per_token() * 1e-9, human(c.param_bytes()).c_str(),
                    human(c.grad_bytes()).c_str(), human(c.optimizer_bytes()).c_str());
      });
    }
  });
}
}  // namespace cli
KUMIKI_NAMESPACE_END
