// `kumiki plot` over kumiki's own configurations: the command is kumiki/cli/plot.hpp,
// compiled here, one translation unit per command so that the commands build in parallel.
#include "kumiki/cli/plot.hpp"
#include "kumiki/models/configs.hpp"

template void kumiki::cli::add_plot<kumiki::models::BuiltinConfigs>(CLI::App&);
