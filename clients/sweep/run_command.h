// `dwarp run SWEEP.yaml [key=value ...]`: the whole system on this machine in one command. It starts a
// dwarp-coordinator (its SQLite file in the run folder) and one dwarp-worker with several slots as child
// processes, submits the sweep through the same gRPC API as everyone else, shows live progress, then prints
// the d_warp table and writes the run's files:
//
//   RUN/dwarp.db          the coordinator's database (every job, result and metric point)
//   RUN/results.csv       one row per job (as `dwarp results --format csv`)
//   RUN/dwarp.json        the d_warp records (as `dwarp dwarp --format json`)
//   RUN/dwarp.svg         the plot (as `dwarp plot`)
//   RUN/tensorboard/      every job's training curve as TensorBoard event files (as `dwarp tensorboard`)
//   RUN/coordinator.log, RUN/worker.log
//
// RUN is --run-dir, default runs/<sweep name>. A second run of the same sweep (same resolved spec: the sweep
// composed here, as CanonicalSweepJson, equal to a stored sweep's spec_json) in the same folder reuses what
// is there: a finished sweep is reported again without training (--fresh runs it
// anew), an interrupted one (Ctrl-C, a crash) resumes where it stopped, since the coordinator restarts
// from its database.
//
// The coordinator and worker processes are a LocalCluster (clients/local/local_cluster.h). Their programs
// are looked for next to this executable and in the build tree (../coordinator/dwarp-coordinator,
// ../worker/daemon/dwarp-worker), or given with --coordinator-bin / --worker-bin. --devices is handed to the worker, which refuses a device this build or machine cannot use
// (engine/device.h); a worker that exits before the sweep ends stops the run with the end of its log.
// Exit codes as clients/sweep/sweep_commands.h; 1 also when a child process fails to start or dies.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "clients/sweep/sweep_commands.h"

namespace CLI {
class App;
}

namespace dwarp::clients {

struct RunOptions {
  std::string sweep_file;
  std::vector<std::string> overrides;
  std::string run_dir;          // empty: runs/<sweep name>
  std::string devices = "cpu";  // the local worker's --devices: cpu, or cuda:0,cuda:1,...
  int slots = 0;                // job slots per device; 0: the machine's cores on cpu, 1 per GPU
  int threads = 1;              // compute threads per job
  bool fresh = false;           // run again even if the run folder holds the same finished sweep
  std::string coordinator_bin;  // empty: found next to this executable
  std::string worker_bin;
};

// Runs the sweep as described above, writing progress and the report to `out` (progress redrawn when `tty`).
CommandResult RunSweepLocally(const RunOptions& options, std::ostream& out, bool tty);

// Registers `dwarp run` on the app.
void AddRunCommand(CLI::App& app);

}  // namespace dwarp::clients
