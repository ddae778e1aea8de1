// LocalCluster: the coordinator and the worker that `dwarp run` (clients/sweep/run_command.h) starts on this
// machine as child processes, each leading its own process group (a Ctrl-C at the terminal reaches only
// dwarp, which stops them in order) and logging into the run folder:
//
//   RUN/dwarp.db, RUN/coordinator.port, RUN/coordinator.log    the coordinator
//   RUN/worker.log, RUN/worker-state/                          the worker
//
// It starts the coordinator on a free loopback port and waits for the port it bound, starts one worker
// against it, watches both while the caller follows the sweep, and stops them in order: the worker first (its
// running jobs go back to the queue), then the coordinator (its database keeps the sweep for a later run).
// A child that fails is reported with the end of its log. Processes and files only: no gRPC, no LibTorch.
//
// The destructor kills children still running (ChildProcess's rule), the worker before the coordinator.
// Thread-safety: one owner thread; FollowWhileRunning's helper thread touches the children only while the
// owner is inside `follow`.
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <string>

#include "common/child_process.h"
#include "common/status.h"

namespace dwarp::clients {

// How the local worker runs: its program, its --devices (cpu, or cuda:0,cuda:1,...), job slots per device
// and compute threads per job.
struct LocalWorkerSettings {
  std::string program;
  std::string devices;
  int slots_per_device = 1;
  int threads = 1;
};

class LocalCluster {
 public:
  explicit LocalCluster(std::filesystem::path run_dir);

  // Starts `program` (a dwarp-coordinator) with its database RUN/dwarp.db, listening on 127.0.0.1 at a port
  // the OS chooses, and waits up to 30 s for the port it writes to RUN/coordinator.port. NotFound when it
  // cannot be started; Unavailable (with the end of its log) when it exits before serving or is too slow.
  Status StartCoordinator(const std::string& program);
  // Where the coordinator serves, "127.0.0.1:PORT", and its port; set by StartCoordinator.
  const std::string& coordinator_address() const { return coordinator_address_; }
  int coordinator_port() const { return coordinator_port_; }
  std::string database_path() const { return (run_dir_ / "dwarp.db").string(); }

  // Starts one worker against the coordinator, named dwarp-run-local, its held results in RUN/worker-state.
  // NotFound when it cannot be started.
  Status StartWorker(const LocalWorkerSettings& settings);
  const std::string& worker_log_path() const { return worker_.log_path(); }

  // Calls `follow` (which watches the sweep until it ends) while a helper thread watches the children:
  // - `interrupted` set (Ctrl-C): the worker is told twice to stop (the second signal stops its jobs at once
  //   and fails them back as retryable), then the coordinator stops, which ends the watch inside `follow`;
  // - the worker exits on its own (a device it cannot use, a crash): nobody is left to run the jobs, so the
  //   coordinator is stopped too, which ends the watch, and FailedPrecondition names the worker program,
  //   its exit code and the end of its log.
  // OK otherwise (the children are then left running for the caller to stop).
  Status FollowWhileRunning(const std::function<void()>& follow, const std::atomic<bool>& interrupted);

  // SIGTERM, then up to 60 s for the child to exit (killed after that); nothing when it is not running.
  void StopWorker();
  void StopCoordinator();
  // The worker, then the coordinator.
  void Stop();

 private:
  std::filesystem::path run_dir_;
  std::string worker_program_;
  std::string coordinator_address_;
  int coordinator_port_ = 0;
  // Declared in start order, so the destructor ends the worker before the coordinator.
  ChildProcess coordinator_;
  ChildProcess worker_;
};

// The end of a child's log for an error message: its last 2,000 characters or so, from a line start,
// without trailing newlines (the log is read once).
std::string LogTail(const ChildProcess& child);

}  // namespace dwarp::clients
