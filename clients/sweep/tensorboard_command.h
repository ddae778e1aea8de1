// `dwarp tensorboard SWEEP --logdir DIR`: every job's training curve as TensorBoard event files
// (clients/sweep/tfevents.h), from the coordinator's SweepService.Results with include_metrics = true, one folder
// per job under DIR; then prints how to view them. Takes the connection options of the other sweep
// commands (clients/sweep/sweep_commands.h) and exits with their codes: 2 when DIR is a file or cannot be
// written, 1/3/4 for the coordinator's answers.
//
// Thread-safety: RunTensorBoard may share a SweepClient with other calls (its stub is thread-safe).
#pragma once

#include <CLI/CLI.hpp>

#include <ostream>
#include <string>

#include "clients/sweep/sweep_commands.h"

namespace dwarp::clients {

// Fetches the sweep's jobs and curves and writes them with WriteSweepEvents; `out` then gets
// "N event files written under DIR; view them with: tensorboard --logdir DIR". A bad or unwritable logdir
// is local input (exit 2); the coordinator's refusals are not. Nothing is written when the call fails.
CommandResult RunTensorBoard(SweepClient& client, const std::string& sweep_id, const std::string& logdir,
                             std::ostream& out);

// Registers `dwarp tensorboard` on the app. A failing command prints "error: ..." to stderr and throws
// CLI::RuntimeError with its exit code, as AddSweepCommands' commands do.
void AddTensorBoardCommand(CLI::App& app);

}  // namespace dwarp::clients
