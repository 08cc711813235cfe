// `kumiki export-hf` / `kumiki import-hf` over kumiki's own configurations: the command is kumiki/cli/hf.hpp,
// compiled here, one translation unit per command so that the commands build in parallel.
#include "kumiki/cli/hf.hpp"
#include "kumiki/models/configs.hpp"

template void kumiki::cli::add_hf<kumiki::models::BuiltinConfigs>(CLI::App&);
