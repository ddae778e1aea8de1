// The `dwarp` command line. Until the sweep service exists it offers the engine's one complete job:
// `dwarp intrinsic-dim` (clients/intrinsic_dim_command.h), and `dwarp train JOB.yaml` runs one job
// (clients/train_command.h).
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "clients/intrinsic_dim_command.h"
#include "clients/train_command.h"

int main(int argc, char** argv) {
  CLI::App app{"dwarp: how far must a network be warped before it predicts the brain (DESIGN.md)"};
  app.require_subcommand(1);
  dwarp::clients::AddIntrinsicDimCommand(app);
  dwarp::clients::AddTrainCommand(app);
  spdlog::set_pattern("[%H:%M:%S.%e] %^%l%$ %v");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return 0;
}
