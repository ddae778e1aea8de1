#include "clients/sweep/tensorboard_command.h"

#include <iostream>
#include <memory>

#include "clients/sweep/tfevents.h"

namespace dwarp::clients {

CommandResult RunTensorBoard(SweepClient& client, const std::string& sweep_id, const std::string& logdir,
                             std::ostream& out) {
  Status logdir_ok = CheckLogdir(logdir);
  if (!logdir_ok.ok()) return {logdir_ok, true};
  auto response = FetchResults(client, sweep_id, /*include_metrics=*/true);
  if (!response.ok()) return {response.status(), false};
  StatusOr<int> files = WriteSweepEvents(*response, logdir);
  if (!files.ok()) return {files.status(), true};
  out << *files << " event file" << (*files == 1 ? "" : "s") << " written under " << logdir
      << "; view them with: tensorboard --logdir " << logdir << "\n";
  return {};
}

void AddTensorBoardCommand(CLI::App& app) {
  auto flags = std::make_shared<ConnectionFlags>();
  auto sweep = std::make_shared<std::string>();
  auto logdir = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("tensorboard", "Every job's training curve as TensorBoard event files");
  cmd->add_option("sweep", *sweep, kSweepArgumentHelp)->required();
  cmd->add_option("--logdir", *logdir, "Folder to write the event files under (one folder per job)")->required();
  AddConnectionFlags(cmd, *flags);
  cmd->callback([flags, sweep, logdir]() {
    // The folder is checked before connecting, so a file in the way fails without a coordinator.
    Status logdir_ok = CheckLogdir(*logdir);
    if (!logdir_ok.ok()) FinishCommand({logdir_ok, true});
    auto client = ConnectSweepClient(*flags);
    if (!client.ok()) FinishCommand({client.status(), true});
    FinishCommand(RunTensorBoard(*client, *sweep, *logdir, std::cout));
  });
}

}  // namespace dwarp::clients
