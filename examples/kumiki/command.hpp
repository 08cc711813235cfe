// The kumiki CLI's subcommand registry: each cmd_<name>.cpp defines one static Registration.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace kumiki_cli {

/// Adds a subcommand to the app: creates it with app.add_subcommand(...), declares its options,
/// and sets its callback. Runs before parsing.
using Registrar = std::function<void(CLI::App& app)>;

inline std::vector<std::pair<int, Registrar>>& registry() {
  static std::vector<std::pair<int, Registrar>> r;
  return r;
}

/// `static kumiki_cli::Registration reg{order, [](CLI::App& app) { ... }};` in a cmd_*.cpp file.
/// `order` sorts the help listing.
struct Registration {
  Registration(int order, Registrar f) { registry().emplace_back(order, std::move(f)); }
};

}  // namespace kumiki_cli
