// `kumiki soup` over kumiki's own configurations: the command is kumiki/cli/soup.hpp,
// compiled here, one translation unit per command so that the commands build in parallel.
#include "kumiki/cli/soup.hpp"
#include "kumiki/models/configs.hpp"

template void kumiki::cli::add_soup<kumiki::models::BuiltinConfigs>(CLI::App&);
