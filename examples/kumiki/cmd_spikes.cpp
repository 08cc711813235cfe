// `kumiki spikes` over kumiki's own configurations: the command is kumiki/cli/spikes.hpp,
// compiled here, one translation unit per command so that the commands build in parallel.
#include "kumiki/cli/spikes.hpp"
#include "kumiki/models/configs.hpp"

template void kumiki::cli::add_spikes<kumiki::models::BuiltinConfigs>(CLI::App&);
