#include "clients/sweep/run_command.h"

#include <CLI/CLI.hpp>
#include <grpcpp/client_context.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "clients/sweep/plot_command.h"
#include "clients/sweep/tensorboard_command.h"
#include "common/child_process.h"
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

// The end of a child's log for an error message: its last 2,000 characters or so, from a line start,
// without trailing newlines (the log is read once).
std::string LogTail(const ChildProcess& child) {
  std::string log = child.Log();
  while (!log.empty() && log.back() == '\n') log.pop_back();
  const size_t tail = log.size() > 2000 ? log.find('\n', log.size() - 2000) : std::string::npos;
  return tail == std::string::npos ? log : log.substr(tail + 1);
}

// Waits for the coordinator to write the port it bound; Unavailable (with its log's end) if it died.
StatusOr<int> WaitForPort(ChildProcess& coordinator, const fs::path& port_file) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    int port = 0;
    std::ifstream(port_file) >> port;
    if (port > 0) return port;
    if (coordinator.Poll())
      return UnavailableError("dwarp-coordinator exited with code " + std::to_string(coordinator.exit_code()) +
                              " before serving; its log (" + coordinator.log_path() + ") ends:\n" +
                              LogTail(coordinator));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return UnavailableError("dwarp-coordinator did not start serving within 30 s; see " + coordinator.log_path());
}

void StopChild(ChildProcess& child) {
  if (!child.running()) return;
  child.Signal(SIGTERM);
  child.Wait(std::chrono::seconds(60));
}

}  // namespace

CommandResult RunSweepLocally(const RunOptions& options, std::ostream& out, bool tty) {
  // 1. The sweep file, checked here before anything starts.
  auto request = BuildSubmitRequest({options.sweep_file, options.overrides, false, false});
  if (!request.ok()) return Local(request.status());
  auto spec = LoadSweepSpecFile(options.sweep_file, options.overrides);
  if (!spec.ok()) return Local(spec.status());
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

  const fs::path run_dir = options.run_dir.empty() ? fs::path("runs") / spec->name : fs::path(options.run_dir);
  std::error_code error;
  fs::create_directories(run_dir, error);
  if (error) return Local(UnavailableError("--run-dir: cannot create '" + run_dir.string() + "': " + error.message()));

  // Ctrl-C reaches only this process (the children lead their own process groups): it stops the worker
  // first, so its running jobs are handed back at once, then the coordinator, whose database keeps the
  // sweep for the next run to resume.
  g_interrupted = false;
  auto previous_handler = std::signal(SIGINT, OnInterrupt);
  struct RestoreHandler {
    decltype(previous_handler) handler;
    ~RestoreHandler() { std::signal(SIGINT, handler); }
  } restore{previous_handler};

  // 2. The coordinator, on a free loopback port, its database in the run folder.
  const fs::path port_file = run_dir / "coordinator.port";
  fs::remove(port_file, error);
  auto coordinator = ChildProcess::Start({*coordinator_bin, "--db", (run_dir / "dwarp.db").string(), "--listen",
                                          "127.0.0.1:0", "--port-file", port_file.string(),
                                          // one local worker heartbeating often: a lease orphaned by a crash
                                          // frees its job within seconds, not the default 30 s
                                          "--lease-ttl", "6", "--heartbeat-interval", "1"},
                                         (run_dir / "coordinator.log").string(), /*own_process_group=*/true);
  if (!coordinator.ok()) return Remote(coordinator.status());
  auto port = WaitForPort(*coordinator, port_file);
  if (!port.ok()) return Remote(port.status());
  ConnectionFlags flags;
  flags.coordinator = "127.0.0.1:" + std::to_string(*port);
  auto client = ConnectSweepClient(flags);
  if (!client.ok()) return Local(client.status());

  // 3. The same sweep already in this folder? Reuse a finished one, resume an interrupted one.
  v1::SubmitRequest dry = *request;
  dry.set_dry_run(true);
  v1::SubmitResponse planned;
  Status status = CallCoordinator(*client, [&](grpc::ClientContext* c) { return client->stub->Submit(c, dry, &planned); });
  if (!status.ok()) return Remote(status);
  StatusOr<v1::ListSweepsResponse> listed = FetchSweepList(*client);  // every page
  if (!listed.ok()) return Remote(listed.status());
  std::string sweep_id;
  bool finished = false;
  for (const v1::Sweep& sweep : listed->sweeps()) {
    if (sweep.spec_json() != planned.sweep().spec_json()) continue;
    if (sweep.state() == v1::SWEEP_DONE && !options.fresh) {
      sweep_id = sweep.sweep_id();
      finished = true;
    } else if (sweep.state() == v1::SWEEP_RUNNING) {
      sweep_id = sweep.sweep_id();
      finished = false;
    }
  }
  out << "run folder " << run_dir.string() << ": coordinator on 127.0.0.1:" << *port << ", database "
      << (run_dir / "dwarp.db").string() << "\n";
  if (finished) {
    out << "sweep " << sweep_id << " already finished in this run folder: reporting it (--fresh runs it again)\n";
  } else if (!sweep_id.empty()) {
    out << "resuming sweep " << sweep_id << " where it stopped\n";
  } else {
    v1::SubmitResponse submitted;
    status = SubmitWithRetries(*client, *request, &submitted, std::cerr);
    if (!status.ok()) return Remote(status);
    sweep_id = submitted.sweep().sweep_id();
    out << "submitted sweep " << sweep_id << ": " << submitted.sweep().counts().total() << " jobs\n";
  }

  // 4. A local worker with one slot per core on the CPU, one per GPU (or --slots per device), then live
  // progress until the sweep ends.
  ChildProcess worker;
  if (!finished) {
    auto started = ChildProcess::Start({*worker_bin, "--coordinator", flags.coordinator, "--devices", options.devices,
                                        "--slots-per-device", std::to_string(slots), "--threads",
                                        std::to_string(options.threads), "--name", "dwarp-run-local",
                                        // Results held through an outage stay with the run, not under $HOME.
                                        "--state-dir", (run_dir / "worker-state").string()},
                                       (run_dir / "worker.log").string(), /*own_process_group=*/true);
    if (!started.ok()) return Remote(started.status());
    worker = std::move(*started);
    out << "worker: " << options.devices << ", " << slots << " slot(s) per device x " << options.threads
        << " thread(s); log " << (run_dir / "worker.log").string() << "\n";
    out.flush();
    // On Ctrl-C: the worker is told twice (the second signal stops its jobs now and fails them back as
    // retryable), then the coordinator stops, which ends the watch below.
    // A worker that exits on its own (a device it cannot use, a crash) leaves nobody to run the jobs: the
    // coordinator is stopped too, which ends the watch, and the run reports the worker's log.
    std::atomic<bool> watching{true};
    std::atomic<bool> worker_exited{false};
    std::thread interrupter([&] {
      while (watching && !g_interrupted) {
        if (worker.Poll()) {
          worker_exited = true;
          coordinator->Signal(SIGTERM);
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      if (!g_interrupted) return;
      worker.Signal(SIGTERM);
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      worker.Signal(SIGTERM);
      worker.Wait(std::chrono::seconds(30));
      coordinator->Signal(SIGTERM);
    });
    CommandResult watched = RunWatch(*client, sweep_id, out, tty);
    watching = false;
    interrupter.join();
    if (worker_exited) {
      StopChild(*coordinator);
      return Remote(FailedPreconditionError("the local worker (" + *worker_bin + ") exited with code " +
                                            std::to_string(worker.exit_code()) + " before the sweep finished; the end of " +
                                            worker.log_path() + ":\n" + LogTail(worker)));
    }
    if (g_interrupted || !watched.status.ok()) {
      StopChild(worker);
      StopChild(*coordinator);
      if (g_interrupted)
        return Remote(CancelledError("interrupted; the sweep's state is kept in " + (run_dir / "dwarp.db").string() +
                                     ": run the same command again to resume"));
      return watched;
    }
    StopChild(worker);
  }

  // 5. The report: the d_warp table here, the results and records in the run folder.
  out << "\n";
  // One DWarp answer serves the table, dwarp.json and the plot.
  StatusOr<v1::DWarpResponse> fetched = FetchDWarp(*client, sweep_id);  // every page
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
    reported = RunResults(*client, sweep_id, OutputFormat::kCsv, (run_dir / "results.csv").string(), out);
  if (reported.status.ok()) out << "plot written to " << (run_dir / "dwarp.svg").string() << "\n";
  if (reported.status.ok()) reported = RunTensorBoard(*client, sweep_id, (run_dir / "tensorboard").string(), out);
  StopChild(*coordinator);
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
