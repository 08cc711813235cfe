// `kumiki generate` / `kumiki eval-tasks` over kumiki's own configurations: the command is kumiki/cli/generate.hpp,
// compiled here, one translation unit per command so that the commands build in parallel.
#include "kumiki/cli/generate.hpp"
#include "kumiki/models/configs.hpp"

template void kumiki::cli::add_generate<kumiki::models::BuiltinConfigs>(CLI::App&);
template void kumiki::cli::add_eval_tasks<kumiki::models::BuiltinConfigs>(CLI::App&);
