// Parsing a daemon's command line with CLI11 the same way in dwarp-coordinator and dwarp-worker: --help
// prints the usage and exits 0; a flag CLI11 refuses is reported by the daemon's own `bad_flag`, which
// returns the exit status (2), with a pointer to --help. Header-only; only the daemons' mains include it.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <string>

namespace dwarp {

// std::nullopt when the daemon goes on; otherwise the status its main returns.
template <typename BadFlag>
std::optional<int> ParseDaemonFlags(CLI::App& app, int argc, char** argv, BadFlag bad_flag) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return bad_flag(std::string(e.what()) + " (see --help)");
  }
  return std::nullopt;
}

}  // namespace dwarp
