// kumiki: the command-line program (train, lr, preprocess, data, export-hf, ...). Subcommands
// register themselves from their own cmd_*.cpp files.
#include <algorithm>
#include <cstdio>
#include <exception>

#include "command.hpp"
#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"

int main(int argc, char** argv) {
  CLI::App app{"kumiki: LLaMA-style pretraining the LLM-jp way (header-only C++20)", "kumiki"};
  app.set_version_flag("--version", std::string("kumiki ") + kumiki::version_string);
  bool verbose = false;
  app.add_flag("--verbose", verbose, "on errors, also print where in kumiki's source the error was raised");
  app.fallthrough();  // `kumiki train ... --verbose` works as well as `kumiki --verbose train ...`
  app.require_subcommand(1);
  auto& reg = kumiki_cli::registry();
  std::stable_sort(reg.begin(), reg.end(), [](auto const& a, auto const& b) { return a.first < b.first; });
  for (auto const& [order, add] : reg) add(app);
  try {
    app.parse(argc, argv);
  } catch (CLI::ParseError const& e) {
    return app.exit(e);
  } catch (kumiki::InputError const& e) {
    // Bad input: the message is in the user's terms; the library location only on request.
    std::fprintf(stderr, "kumiki: error: %s\n", e.what());
    if (verbose && !e.where().empty()) std::fprintf(stderr, "kumiki: (raised at %s)\n", e.where().c_str());
    return 1;
  } catch (kumiki::Error const& e) {
    std::fprintf(stderr, "kumiki: internal error (please report it): %s\n", e.what());
    return 2;
  } catch (std::exception const& e) {
    std::fprintf(stderr, "kumiki: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
