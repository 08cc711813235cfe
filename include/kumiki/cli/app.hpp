// kumiki/cli/app.hpp: the kumiki command-line program as a library. Every command is a function
// template over a configuration list (models::ConfigList): `add_train<Configs>(app)` adds `train` to a
// CLI11 app and accepts recipes and checkpoints of exactly those configurations. `cli::main<Configs>`
// is the whole program; kumiki's own `main` is `cli::main<models::BuiltinConfigs>`, and a program of
// one's own runs every command over its own configurations (docs/api.md, "A command line of your own"):
//
//   #include <kumiki/cli/all.hpp>
//   constexpr kumiki::models::TransformerConfig my_model{.name = "my_model", ...};
//   using MyConfigs = kumiki::models::ConfigList<my_model>;   // or BuiltinConfigs::with<my_model>
//   int main(int argc, char** argv) { return kumiki::cli::main<MyConfigs>(argc, argv, {"mytrainer"}); }
//
// This header only declares the commands; each is defined in kumiki/cli/<command>.hpp, and
// kumiki/cli/all.hpp includes them all. A program may also compile the commands in translation units
// of their own (`template void kumiki::cli::add_train<MyConfigs>(CLI::App&);` after including
// kumiki/cli/train.hpp), as kumiki's own does, so that they build in parallel.
#pragma once

#include <cstdio>
#include <exception>
#include <string>

#include <CLI/CLI.hpp>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace cli {

/// What the program says of itself in --help and --version.
struct ProgramInfo {
  std::string name = "kumiki";
  std::string description = "kumiki: LLaMA-style pretraining the LLM-jp way (header-only C++20)";
};

// The commands, in the order of the help listing. Each adds one subcommand (hf: export-hf and
// import-hf) with its options and its callback.
template <class Configs> void add_info(CLI::App& app);          // kumiki/cli/info.hpp
template <class Configs> void add_train(CLI::App& app);         // kumiki/cli/train.hpp
template <class Configs> void add_eval(CLI::App& app);          // kumiki/cli/eval.hpp
template <class Configs> void add_micro_anneal(CLI::App& app);  // kumiki/cli/micro_anneal.hpp
template <class Configs> void add_preprocess(CLI::App& app);    // kumiki/cli/preprocess.hpp
template <class Configs> void add_data(CLI::App& app);          // kumiki/cli/data.hpp
template <class Configs> void add_lr(CLI::App& app);            // kumiki/cli/lr.hpp
template <class Configs> void add_generate(CLI::App& app);      // kumiki/cli/generate.hpp
template <class Configs> void add_eval_tasks(CLI::App& app);    // kumiki/cli/generate.hpp
template <class Configs> void add_soup(CLI::App& app);          // kumiki/cli/soup.hpp
template <class Configs> void add_hf(CLI::App& app);            // kumiki/cli/hf.hpp
template <class Configs> void add_plot(CLI::App& app);          // kumiki/cli/plot.hpp
template <class Configs> void add_dump(CLI::App& app);          // kumiki/cli/dump.hpp
template <class Configs> void add_spikes(CLI::App& app);        // kumiki/cli/spikes.hpp
template <class Configs> void add_upcycle(CLI::App& app);       // kumiki/cli/upcycle.hpp

/// Adds every kumiki command over the configurations of `Configs` to `app` (beside a program's own).
template <class Configs>
void add_commands(CLI::App& app) {
  add_info<Configs>(app);
  add_train<Configs>(app);
  add_eval<Configs>(app);
  add_micro_anneal<Configs>(app);
  add_preprocess<Configs>(app);
  add_data<Configs>(app);
  add_lr<Configs>(app);
  add_generate<Configs>(app);
  add_eval_tasks<Configs>(app);
  add_soup<Configs>(app);
  add_hf<Configs>(app);
  add_plot<Configs>(app);
  add_dump<Configs>(app);
  add_spikes<Configs>(app);
  add_upcycle<Configs>(app);
}

/// Parses the command line and runs the command, turning errors into messages and exit codes: bad
/// input (kumiki::InputError, in the user's terms) exits 1, an internal error 2; --verbose adds where in
/// kumiki an input error was raised. A command that ends otherwise exits itself (train: 3 when stopped
/// by non-finite losses or spikes).
inline int run(CLI::App& app, int argc, char** argv) {
  bool verbose = false;
  app.add_flag("--verbose", verbose, "on errors, also print where in kumiki's source the error was raised");
  // `prog train ... --verbose` works as well as `prog --verbose train ...`: a subcommand hands the
  // options it does not know to the program.
  app.fallthrough();
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) sub->fallthrough();
  app.require_subcommand(1);
  std::string const name = app.get_name();
  try {
    app.parse(argc, argv);
  } catch (CLI::ParseError const& e) {
    return app.exit(e);
  } catch (kumiki::InputError const& e) {
    std::fprintf(stderr, "%s: error: %s\n", name.c_str(), e.what());
    if (verbose && !e.where().empty()) std::fprintf(stderr, "%s: (raised at %s)\n", name.c_str(), e.where().c_str());
    return 1;
  } catch (kumiki::Error const& e) {
    std::fprintf(stderr, "%s: internal error (please report it): %s\n", name.c_str(), e.what());
    return 2;
  } catch (std::exception const& e) {
    std::fprintf(stderr, "%s: error: %s\n", name.c_str(), e.what());
    return 1;
  }
  return 0;
}

/// The whole kumiki program over the configurations of `Configs`.
template <class Configs>
int main(int argc, char** argv, ProgramInfo const& info = {}) {
  CLI::App app{info.description, info.name};
  std::string const version = std::string("kumiki ") + kumiki::version_string;
  app.set_version_flag("--version", info.name == "kumiki" ? version : info.name + " (" + version + ")");
  add_commands<Configs>(app);
  return run(app, argc, argv);
}

}  // namespace cli
KUMIKI_NAMESPACE_END
