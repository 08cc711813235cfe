// `kumiki info`: version, build features and the compiled-in model configurations.
#include <cstdio>
#include <thread>

#include <Eigen/Core>

#include "command.hpp"
#include "kumiki/kumiki.hpp"

namespace {
kumiki_cli::Registration reg{0, [](CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Print version, build features and compiled-in model configurations");
  cmd->callback([] {
    std::printf("kumiki %s\n", kumiki::version_string);
    std::printf("compiler: %s, C++ %ld\n", __VERSION__, static_cast<long>(__cplusplus));
    std::printf("Eigen %d.%d.%d, OpenMP %d, hardware threads %u\n", EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION,
                EIGEN_MINOR_VERSION, _OPENMP, std::thread::hardware_concurrency());
    std::printf("model configurations: (none compiled in yet)\n");
  });
}};
}  // namespace
