// `kumiki lr` over kumiki's own configurations: the command is kumiki/cli/lr.hpp,
// compiled here, one translation unit per command so that the commands build in parallel.
#include "kumiki/cli/lr.hpp"
#include "kumiki/models/configs.hpp"

template void kumiki::cli::add_lr<kumiki::models::BuiltinConfigs>(CLI::App&);
