// `kumiki info` over kumiki's own configurations: the command is kumiki/cli/info.hpp,
// compiled here, one translation unit per command so that the commands build in parallel.
#include "kumiki/cli/info.hpp"
#include "kumiki/models/configs.hpp"

template void kumiki::cli::add_info<kumiki::models::BuiltinConfigs>(CLI::App&);
