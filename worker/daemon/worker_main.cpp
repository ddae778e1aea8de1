// dwarp-worker: runs dwarp jobs leased from a coordinator until SIGTERM/SIGINT drains it
// (worker/daemon/worker_daemon.h). Exit codes: 0 after a drain, 1 when the daemon fails (e.g. the
// coordinator refuses to register it), 2 for bad flags.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "common/command_line.h"
#include "common/rpc/connection.h"
#include "worker/daemon/data_roots.h"
#include "worker/daemon/held_results.h"
#include "worker/daemon/worker_daemon.h"
#include "worker/engine/device.h"
#include "worker/engine/threading.h"

namespace {

int BadFlag(const std::string& message) {
  std::cerr << "dwarp-worker: " << message << "\n";
  return 2;
}

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dwarp-worker: runs dwarp jobs leased from a coordinator; SIGTERM drains it"};
  std::string coordinator = EnvOr("DWARP_COORDINATOR", dwarp::rpc::kDefaultCoordinatorAddress);
  std::string token_file, tls_ca, tls_cert, tls_key, name;
  std::string devices = "cpu";
  std::string log_level = "info";
  int slots_per_device = 1;
  int threads = 0;
  double drain_timeout_s = 60.0;
  long long acquire_wait_ms = 10000;
  app.add_option("--coordinator", coordinator, "coordinator host:port (env DWARP_COORDINATOR)")->capture_default_str();
  app.add_option("--token-file", token_file, "file holding the token (else env DWARP_TOKEN / DWARP_TOKEN_FILE)");
  app.add_option("--tls-ca", tls_ca, "PEM CA of the coordinator's certificate (enables TLS)");
  app.add_option("--tls-cert", tls_cert, "PEM client certificate (mTLS)");
  app.add_option("--tls-key", tls_key, "PEM key of the client certificate");
  app.add_option("--devices", devices, "comma-separated devices: cpu, or cuda:0,cuda:1")->capture_default_str();
  app.add_option("--slots-per-device", slots_per_device, "jobs run at once on each device")->capture_default_str();
  app.add_option("--threads", threads, "compute threads per job (0: cores / slots)")->capture_default_str();
  app.add_option("--name", name, "name the coordinator lists this worker by (default hostname:pid)");
  app.add_option("--drain-timeout", drain_timeout_s, "seconds running jobs may take to finish after SIGTERM")
      ->capture_default_str();
  app.add_option("--acquire-wait", acquire_wait_ms, "long-poll limit of each Acquire, ms")->capture_default_str();
  std::vector<std::string> data_roots;
  app.add_option("--data-root", data_roots,
                 "directory jobs may read (repeatable); a job naming a path outside every one fails (default: any)");
  std::string state_dir = dwarp::worker::DefaultStateDir();
  app.add_option("--state-dir", state_dir,
                 "folder (created 0700) where finished results wait until the coordinator has them, and are delivered "
                 "from at the next start if this worker dies first; '' keeps them in memory only (default: "
                 "$STATE_DIRECTORY, else $XDG_STATE_HOME/dwarp/worker, else ~/.local/state/dwarp/worker)")
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical or off")->capture_default_str();
  if (auto exit = dwarp::ParseDaemonFlags(app, argc, argv, BadFlag)) return *exit;

  const std::string levels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  if (std::find(std::begin(levels), std::end(levels), log_level) == std::end(levels)) {
    return BadFlag("--log-level = '" + log_level + "'; expected trace, debug, info, warn, error, critical or off");
  }
  spdlog::set_level(spdlog::level::from_str(log_level));

  dwarp::worker::WorkerDaemonOptions options;
  auto device_list = dwarp::worker::ParseDeviceList(devices);
  if (!device_list.ok()) return BadFlag("--devices: " + device_list.status().message());
  options.devices = *device_list;
  // A slot on a device this process cannot use would fail every job it takes; refuse it up front.
  for (const std::string& device : options.devices) {
    auto usable = dwarp::engine::ResolveDevice(device, "--devices");
    if (!usable.ok()) return BadFlag(usable.status().message());
  }
  if (slots_per_device < 1) {
    return BadFlag("--slots-per-device = " + std::to_string(slots_per_device) + "; expected an integer >= 1");
  }
  options.slots_per_device = slots_per_device;
  if (threads < 0) return BadFlag("--threads = " + std::to_string(threads) + "; expected >= 0 (0: cores / slots)");
  if (!std::isfinite(drain_timeout_s) || drain_timeout_s < 0) {
    return BadFlag("--drain-timeout = " + std::to_string(drain_timeout_s) + "; expected seconds >= 0");
  }
  options.drain_timeout = std::chrono::milliseconds(static_cast<int64_t>(std::llround(drain_timeout_s * 1000.0)));
  if (acquire_wait_ms < 1) return BadFlag("--acquire-wait = " + std::to_string(acquire_wait_ms) + "; expected ms >= 1");
  options.acquire_wait = std::chrono::milliseconds(acquire_wait_ms);
  if (coordinator.empty() || coordinator.find(':') == std::string::npos) {
    return BadFlag("--coordinator = '" + coordinator + "'; expected host:port");
  }
  options.connection.address = coordinator;
  if (!tls_cert.empty() != !tls_key.empty()) {
    return BadFlag("--tls-cert and --tls-key go together; got only " + std::string(tls_cert.empty() ? "--tls-key" : "--tls-cert"));
  }
  if (!tls_cert.empty() && tls_ca.empty()) return BadFlag("--tls-cert needs --tls-ca (a client certificate needs TLS)");
  options.connection.tls_ca = tls_ca;
  options.connection.tls_cert = tls_cert;
  options.connection.tls_key = tls_key;
  if (dwarp::Status token = dwarp::rpc::ResolveToken(options.connection, token_file); !token.ok()) {
    return BadFlag("--token-file: " + token.message());
  }
  options.name = name;
  if (auto roots = dwarp::worker::CanonicalDataRoots(data_roots); !roots.ok()) return BadFlag(roots.status().message());
  options.data_roots = data_roots;
  if (!state_dir.empty()) {
    if (auto held = dwarp::worker::HeldResults::Open(state_dir); !held.ok())
      return BadFlag("--state-dir: " + held.status().message());
  }
  options.state_dir = state_dir;

  const int slots = static_cast<int>(options.devices.size()) * slots_per_device;
  if (threads == 0) threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / slots);
  // Process-wide (threading.h): every slot's job shares these settings.
  dwarp::engine::SetComputeThreads(threads);

  dwarp::worker::WorkerDaemon daemon(std::move(options));
  const dwarp::Status status = daemon.Run();
  if (!status.ok()) {
    spdlog::error("dwarp-worker: {}", status.ToString());
    return 1;
  }
  return 0;
}
