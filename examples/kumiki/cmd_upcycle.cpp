// `kumiki upcycle` over kumiki's own configurations: the command is kumiki/cli/upcycle.hpp,
// compiled here, one translation unit per command so that the commands build in parallel.
#include "kumiki/cli/upcycle.hpp"
#include "kumiki/models/configs.hpp"

template void kumiki::cli::add_upcycle<kumiki::models::BuiltinConfigs>(CLI::App&);
