// `kumiki micro-anneal` over kumiki's own configurations: the command is kumiki/cli/micro_anneal.hpp,
// compiled here, one translation unit per command so that the commands build in parallel.
#include "kumiki/cli/micro_anneal.hpp"
#include "kumiki/models/configs.hpp"

template void kumiki::cli::add_micro_anneal<kumiki::models::BuiltinConfigs>(CLI::App&);
