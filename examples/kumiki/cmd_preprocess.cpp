// `kumiki preprocess` over kumiki's own configurations: the command is kumiki/cli/preprocess.hpp,
// compiled here, one translation unit per command so that the commands build in parallel.
#include "kumiki/cli/preprocess.hpp"
#include "kumiki/models/configs.hpp"

template void kumiki::cli::add_preprocess<kumiki::models::BuiltinConfigs>(CLI::App&);
