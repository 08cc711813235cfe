// `kumiki eval` over kumiki's own configurations: the command is kumiki/cli/eval.hpp,
// compiled here, one translation unit per command so that the commands build in parallel.
#include "kumiki/cli/eval.hpp"
#include "kumiki/models/configs.hpp"

template void kumiki::cli::add_eval<kumiki::models::BuiltinConfigs>(CLI::App&);
