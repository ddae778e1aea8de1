#include "clients/sweep/run_command.h"

#include <CLI/CLI.hpp>
#include <grpcpp/client_context.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <thread>

#include "clients/local/local_cluster.h"
#include "clients/sweep/plot_command.h"
#include "clients/sweep/tensorboard_command.h"
#include "common/child_process.h"  // ExecutableFolder
#include "common/file_io.h"
#include "common/sweep_spec.h"

namespace dwarp::clients {

namespace fs = std::filesystem;

namespace {

std::atomic<bool> g_interrupted{false};

extern "C" void OnInterrupt(int) { g_interrupted = true; }

// The first of `candidates` that exists and is executable; NotFound listing them all otherwise.
StatusOr<std::string> FindProgram(const std::string& given, const std::string& flag,
                                  const std::vector<fs::path>& candidates) {
  if (!given.empty()) {
    if (::access(given.c_str(), X_OK) != 0) return NotFoundError(flag + " = '" + given + "': not an executable file");
    return given;
  }
  std::string tried;
  for (const fs::path& candidate : candidates) {
    if (::access(candidate.c_str(), X_OK) == 0) return fs::weakly_canonical(candidate).string();
    tried += (tried.empty() ? "" : ", ") + candidate.string();
  }
  return NotFoundError("cannot find " + candidates.front().filename().string() + " (looked for " + tried +
                       "); build it or pass " + flag);
}

CommandResult Local(Status status) { return {std::move(status), true}; }
CommandResult Remote(Status status) { return {std::move(status), false}; }

// The sweep a run follows: one already in the run folder's database, finished or not, or a new one.
struct SweepToFollow {
  std::string sweep_id;  // empty: none of the same spec in the database
  bool finished = false;
};

// The sweep of the same resolved spec already in the coordinator's database: a finished one (unless
// `fresh`) is reported again, a running one (interrupted by Ctrl-C or a crash) resumed. The request's
// sweep_text is CanonicalSweepJson of the sweep composed here, which is what the coordinator stores as a
// sweep's spec_json (common/sweep_spec.h), so the comparison needs no round trip but the listing.
StatusOr<SweepToFollow> FindSameSweep(SweepClient& client, const v1::SubmitRequest& request, bool fresh) {
  StatusOr<v1::ListSweepsResponse> listed = FetchSweepList(client);  // every page
  if (!listed.ok()) return listed.status();
  SweepToFollow found;
  for (const v1::Sweep& sweep : listed->sweeps()) {
    if (sweep.spec_json() != request.sweep_text()) continue;
    if (sweep.state() == v1::SWEEP_DONE && !fresh) {
      found = {sweep.sweep_id(), true};
    } else if (sweep.state() == v1::SWEEP_RUNNING) {
      found = {sweep.sweep_id(), false};
    }
  }
  return found;
}

// Says which of `found` the run follows, or submits the sweep when `found` names none.
StatusOr<SweepToFollow> ResumeOrSubmit(SweepClient& client, const v1::SubmitRequest& request, SweepToFollow found,
                                       std::ostream& out) {
  if (found.finished) {
    out << "sweep " << found.sweep_id << " already finished in this run folder: reporting it (--fresh runs it again)\n";
    return found;
  }
  if (!found.sweep_id.empty()) {
    out << "resuming sweep " << found.sweep_id << " where it stopped\n";
    return found;
  }
  v1::SubmitResponse submitted;
  Status status = SubmitWithRetries(client, request, &submitted, std::cerr);
  if (!status.ok()) return status;
  out << "submitted sweep " << submitted.sweep().sweep_id() << ": " << submitted.sweep().counts().total() << " jobs\n";
  return SweepToFollow{submitted.sweep().sweep_id(), false};
}

// The report of a sweep that ended: the d_warp table to `out`; dwarp.json, dwarp.svg, results.csv and
// tensorboard/ in the run folder. One DWarp answer serves the table, dwarp.json and the plot.
CommandResult Report(SweepClient& client, const std::string& sweep_id, const fs::path& run_dir, std::ostream& out) {
  StatusOr<v1::DWarpResponse> fetched = FetchDWarp(client, sweep_id);  // every page
  CommandResult reported = Remote(fetched.status());
  if (reported.status.ok()) {
    const v1::DWarpResponse& dwarp = *fetched;
    out << FormatDWarp(dwarp, OutputFormat::kTable);
    PlotOptions plot;
    plot.title = "d_warp: " + sweep_id;
    const std::vector<std::pair<std::string, std::string>> files = {
        {"dwarp.json", FormatDWarp(dwarp, OutputFormat::kJson)}, {"dwarp.svg", RenderDWarpSvg(dwarp, plot)}};
    for (const auto& [name, text] : files) {
      Status written = WriteFileAtomically((run_dir / name).string(), text, "--run-dir");
      if (!written.ok()) {
        reported = Local(written);
        break;
      }
    }
  }
  if (reported.status.ok())
    reported = RunResults(client, sweep_id, OutputFormat::kCsv, (run_dir / "results.csv").string(), out);
  if (reported.status.ok()) out << "plot written to " << (run_dir / "dwarp.svg").string() << "\n";
  if (reported.status.ok()) reported = RunTensorBoard(client, sweep_id, (run_dir / "tensorboard").string(), out);
  return reported;
}

}  // namespace

CommandResult RunSweepLocally(const RunOptions& options, std::ostream& out, bool tty) {
  // 1. The sweep file, composed and checked here once, before anything starts.
  SweepSpec spec;
  auto request = BuildSubmitRequest({options.sweep_file, options.overrides, false, false}, &spec);
  if (!request.ok()) return Local(request.status());
  if (options.slots < 0) return Local(InvalidArgumentError("--slots = " + std::to_string(options.slots) + "; expected >= 0"));
  if (options.threads < 1) return Local(InvalidArgumentError("--threads = " + std::to_string(options.threads) + "; expected >= 1"));
  if (options.devices.empty()) return Local(InvalidArgumentError("--devices is empty; expected cpu or cuda:0,cuda:1,..."));
  const int slots = options.slots > 0              ? options.slots
                    : options.devices == "cpu" ? static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))
                                                   : 1;

  const fs::path self = ExecutableFolder();
  auto coordinator_bin = FindProgram(options.coordinator_bin, "--coordinator-bin",
                                     {self / "dwarp-coordinator", self / ".." / "coordinator" / "dwarp-coordinator"});
  if (!coordinator_bin.ok()) return Local(coordinator_bin.status());
  auto worker_bin = FindProgram(options.worker_bin, "--worker-bin",
                                {self / "dwarp-worker", self / ".." / "worker" / "daemon" / "dwarp-worker"});
  if (!worker_bin.ok()) return Local(worker_bin.status());

  const fs::path run_dir = options.run_dir.empty() ? fs::path("runs") / spec.name : fs::path(options.run_dir);
  std::error_code error;
  fs::create_directories(run_dir, error);
  if (error) return Local(UnavailableError("--run-dir: cannot create '" + run_dir.string() + "': " + error.message()));

  // Ctrl-C reaches only this process (the children lead their own process groups): the cluster then stops
  // the worker first, so its running jobs are handed back at once, then the coordinator, whose database
  // keeps the sweep for the next run to resume.
  g_interrupted = false;
  auto previous_handler = std::signal(SIGINT, OnInterrupt);
  struct RestoreHandler {
    decltype(previous_handler) handler;
    ~RestoreHandler() { std::signal(SIGINT, handler); }
  } restore{previous_handler};

  // 2. The coordinator, on a free loopback port, its database in the run folder.
  LocalCluster cluster(run_dir);
  Status status = cluster.StartCoordinator(*coordinator_bin);
  if (!status.ok()) return Remote(status);
  ConnectionFlags flags;
  flags.coordinator = cluster.coordinator_address();
  auto client = ConnectSweepClient(flags);
  if (!client.ok()) return Local(client.status());

  // 3. The same sweep already in this folder? Reuse a finished one, resume an interrupted one; else submit.
  StatusOr<SweepToFollow> sweep = FindSameSweep(*client, *request, options.fresh);
  if (!sweep.ok()) return Remote(sweep.status());
  out << "run folder " << run_dir.string() << ": coordinator on " << cluster.coordinator_address() << ", database "
      << cluster.database_path() << "\n";
  sweep = ResumeOrSubmit(*client, *request, *sweep, out);
  if (!sweep.ok()) return Remote(sweep.status());

  // 4. A local worker with one slot per core on the CPU, one per GPU (or --slots per device), then live
  // progress until the sweep ends.
  if (!sweep->finished) {
    status = cluster.StartWorker({*worker_bin, options.devices, slots, options.threads});
    if (!status.ok()) return Remote(status);
    out << "worker: " << options.devices << ", " << slots << " slot(s) per device x " << options.threads
        << " thread(s); log " << cluster.worker_log_path() << "\n";
    out.flush();
    CommandResult watched;
    status = cluster.FollowWhileRunning([&] { watched = RunWatch(*client, sweep->sweep_id, out, tty); }, g_interrupted);
    if (!status.ok()) return Remote(status);  // the worker exited on its own; the coordinator is stopped
    if (g_interrupted || !watched.status.ok()) {
      cluster.Stop();
      if (g_interrupted)
        return Remote(CancelledError("interrupted; the sweep's state is kept in " + cluster.database_path() +
                                     ": run the same command again to resume"));
      return watched;
    }
    cluster.StopWorker();
  }

  // 5. The report: the d_warp table here, the results and records in the run folder.
  out << "\n";
  CommandResult reported = Report(*client, sweep->sweep_id, run_dir, out);
  cluster.StopCoordinator();
  if (!reported.status.ok()) return reported;
  out << "d_warp records: " << (run_dir / "dwarp.json").string() << "\n";
  return {};
}

void AddRunCommand(CLI::App& app) {
  auto options = std::make_shared<RunOptions>();
  CLI::App* command = app.add_subcommand(
      "run", "run a sweep on this machine: a local coordinator and worker, live progress, the d_warp table");
  command->add_option("sweep", options->sweep_file, "sweep file (.yaml, .yml or .json)")->required();
  command->add_option("overrides", options->overrides, "Hydra-style overrides: key=value, ~key, +key=value");
  command->add_option("--run-dir", options->run_dir, "folder for the database, results and logs (default runs/<sweep name>)");
  command->add_option("--devices", options->devices, "the local worker's devices: cpu, or cuda:0,cuda:1,...")
      ->capture_default_str();
  command->add_option("--slots", options->slots,
                      "jobs run at once per device (default: the machine's cores on cpu, 1 per GPU)");
  command->add_option("--threads", options->threads, "compute threads per job")->capture_default_str();
  command->add_flag("--fresh", options->fresh, "run again even if the run folder holds the same finished sweep");
  command->add_option("--coordinator-bin", options->coordinator_bin, "the dwarp-coordinator program to start");
  command->add_option("--worker-bin", options->worker_bin, "the dwarp-worker program to start");
  command->callback([options] {
    CommandResult result = RunSweepLocally(*options, std::cout, ::isatty(STDOUT_FILENO) != 0);
    FinishCommand(result);
  });
}

}  // namespace dwarp::clients
