// `kumiki data` over kumiki's own configurations: the command is kumiki/cli/data.hpp,
// compiled here, one translation unit per command so that the commands build in parallel.
#include "kumiki/cli/data.hpp"
#include "kumiki/models/configs.hpp"

template void kumiki::cli::add_data<kumiki::models::BuiltinConfigs>(CLI::App&);
