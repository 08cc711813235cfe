// kumiki: the command-line program (train, eval, lr, preprocess, data, export-hf, ...) over kumiki's own
// configurations. Every command is a template over a configuration list (kumiki/cli/app.hpp), compiled
// for models::BuiltinConfigs in its own cmd_<name>.cpp; a program of one's own does the same for its list.
#include "kumiki/cli/app.hpp"
#include "kumiki/models/configs.hpp"

int main(int argc, char** argv) { return kumiki::cli::main<kumiki::models::BuiltinConfigs>(argc, argv); }
