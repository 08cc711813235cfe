// `kumiki train` over kumiki's own configurations: the command is kumiki/cli/train.hpp,
// compiled here, one translation unit per command so that the commands build in parallel.
#include "kumiki/cli/train.hpp"
#include "kumiki/models/configs.hpp"

template void kumiki::cli::add_train<kumiki::models::BuiltinConfigs>(CLI::App&);
