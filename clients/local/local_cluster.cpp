#include "clients/local/local_cluster.h"

#include <csignal>
#include <fstream>
#include <thread>
#include <utility>

namespace dwarp::clients {

namespace fs = std::filesystem;

std::string LogTail(const ChildProcess& child) {
  std::string log = child.Log();
  while (!log.empty() && log.back() == '\n') log.pop_back();
  const size_t tail = log.size() > 2000 ? log.find('\n', log.size() - 2000) : std::string::npos;
  return tail == std::string::npos ? log : log.substr(tail + 1);
}

namespace {

void StopChild(ChildProcess& child) {
  if (!child.running()) return;
  child.Signal(SIGTERM);
  child.Wait(std::chrono::seconds(60));
}

}  // namespace

LocalCluster::LocalCluster(fs::path run_dir) : run_dir_(std::move(run_dir)) {}

Status LocalCluster::StartCoordinator(const std::string& program) {
  const fs::path port_file = run_dir_ / "coordinator.port";
  std::error_code error;
  fs::remove(port_file, error);  // a port from an earlier run must not be taken for this one's
  auto started = ChildProcess::Start({program, "--db", database_path(), "--listen", "127.0.0.1:0", "--port-file",
                                      port_file.string(),
                                      // one local worker heartbeating often: a lease orphaned by a crash
                                      // frees its job within seconds, not the default 30 s
                                      "--lease-ttl", "6", "--heartbeat-interval", "1"},
                                     (run_dir_ / "coordinator.log").string(), /*own_process_group=*/true);
  if (!started.ok()) return started.status();
  coordinator_ = std::move(*started);

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    int port = 0;
    std::ifstream(port_file) >> port;
    if (port > 0) {
      coordinator_port_ = port;
      coordinator_address_ = "127.0.0.1:" + std::to_string(port);
      return OkStatus();
    }
    if (coordinator_.Poll())
      return UnavailableError("dwarp-coordinator exited with code " + std::to_string(coordinator_.exit_code()) +
                              " before serving; its log (" + coordinator_.log_path() + ") ends:\n" +
                              LogTail(coordinator_));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return UnavailableError("dwarp-coordinator did not start serving within 30 s; see " + coordinator_.log_path());
}

Status LocalCluster::StartWorker(const LocalWorkerSettings& settings) {
  auto started = ChildProcess::Start({settings.program, "--coordinator", coordinator_address_, "--devices",
                                      settings.devices, "--slots-per-device", std::to_string(settings.slots_per_device),
                                      "--threads", std::to_string(settings.threads), "--name", "dwarp-run-local",
                                      // Results held through an outage stay with the run, not under $HOME.
                                      "--state-dir", (run_dir_ / "worker-state").string()},
                                     (run_dir_ / "worker.log").string(), /*own_process_group=*/true);
  if (!started.ok()) return started.status();
  worker_ = std::move(*started);
  worker_program_ = settings.program;
  return OkStatus();
}

Status LocalCluster::FollowWhileRunning(const std::function<void()>& follow, const std::atomic<bool>& interrupted) {
  std::atomic<bool> following{true};
  std::atomic<bool> worker_exited{false};
  std::thread watcher([&] {
    while (following && !interrupted) {
      if (worker_.Poll()) {
        worker_exited = true;
        coordinator_.Signal(SIGTERM);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!interrupted) return;
    worker_.Signal(SIGTERM);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    worker_.Signal(SIGTERM);
    worker_.Wait(std::chrono::seconds(30));
    coordinator_.Signal(SIGTERM);
  });
  follow();
  following = false;
  watcher.join();
  if (!worker_exited) return OkStatus();
  StopCoordinator();
  return FailedPreconditionError("the local worker (" + worker_program_ + ") exited with code " +
                                 std::to_string(worker_.exit_code()) + " before the sweep finished; the end of " +
                                 worker_.log_path() + ":\n" + LogTail(worker_));
}

void LocalCluster::StopWorker() { StopChild(worker_); }

void LocalCluster::StopCoordinator() { StopChild(coordinator_); }

void LocalCluster::Stop() {
  StopWorker();
  StopCoordinator();
}

}  // namespace dwarp::clients
