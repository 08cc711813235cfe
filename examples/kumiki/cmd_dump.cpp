// `kumiki dump` over kumiki's own configurations: the command is kumiki/cli/dump.hpp,
// compiled here, one translation unit per command so that the commands build in parallel.
#include "kumiki/cli/dump.hpp"
#include "kumiki/models/configs.hpp"

template void kumiki::cli::add_dump<kumiki::models::BuiltinConfigs>(CLI::App&);
