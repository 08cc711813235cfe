// kumiki: the command-line program (train, lr, preprocess, data, export-hf, ...). Subcommands
// register themselves from their own cmd_*.cpp files.
#include <algorithm>
#include <cstdio>
#include <exception>

#include "command.hpp"
#include "kumiki/config.hpp"

int main(int argc, char** argv) {
  CLI::App app{"kumiki: LLaMA-style pretraining the LLM-jp way (header-only C++20)", "kumiki"};
  app.set_version_flag("--version", std::string("kumiki ") + kumiki::version_string);
  app.require_subcommand(1);
  auto& reg = kumiki_cli::registry();
  std::stable_sort(reg.begin(), reg.end(), [](auto const& a, auto const& b) { return a.first < b.first; });
  for (auto const& [order, add] : reg) add(app);
  try {
    app.parse(argc, argv);
  } catch (CLI::ParseError const& e) {
    return app.exit(e);
  } catch (std::exception const& e) {
    std::fprintf(stderr, "kumiki: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
