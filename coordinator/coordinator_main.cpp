// dwarp-coordinator: serves SweepService and WorkerService over gRPC, keeping everything in one SQLite file.
//
//   dwarp-coordinator --db runs/dwarp.db                        # loopback, port 50051, no token
//   dwarp-coordinator --listen 0.0.0.0:50051 --token-file /etc/dwarp/token --tls-cert c.pem --tls-key k.pem
//
// SIGTERM / SIGINT: health turns NOT_SERVING, long-polls end, buffered metric points are written, the server
// stops. Restarting on the same --db resumes every sweep; leases that have not expired stay valid.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "common/command_line.h"
#include "common/rpc/connection.h"
#include "coordinator/grpc_server.h"
#include "coordinator/memory_store.h"
#include "coordinator/scheduler.h"
#include "coordinator/sqlite_store.h"

namespace {

int Fail(const std::string& message, int code = 1) {
  std::fprintf(stderr, "dwarp-coordinator: %s\n", message.c_str());
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dwarp-coordinator: schedules dwarp sweeps to worker daemons and computes d_warp"};
  std::string db = "dwarp.db";
  dwarp::coordinator::ServerOptions server_options;
  std::string token_file;
  std::string port_file;
  std::string log_level = "info";
  double lease_ttl_s = 30.0;
  double heartbeat_s = 5.0;
  int breaker_failures = 5;
  app.add_option("--db", db, "SQLite database file (created if missing); ':memory:' keeps nothing")
      ->capture_default_str();
  app.add_option("--listen", server_options.listen, "host:port to serve on (port 0: any free port)")
      ->capture_default_str();
  app.add_option("--token-file", token_file, "file holding the token every call must carry (else DWARP_TOKEN)");
  app.add_flag("--insecure", server_options.insecure, "allow a non-loopback --listen without a token");
  app.add_option("--tls-cert", server_options.tls_cert, "server certificate (PEM)");
  app.add_option("--tls-key", server_options.tls_key, "server private key (PEM)");
  app.add_option("--tls-client-ca", server_options.tls_client_ca, "require client certificates signed by this CA (mTLS)");
  app.add_option("--lease-ttl", lease_ttl_s, "seconds a lease lives without a heartbeat")
      ->check(CLI::Range(0.05, 86400.0))->capture_default_str();
  app.add_option("--heartbeat-interval", heartbeat_s, "seconds between worker heartbeats (at most half the TTL)")
      ->check(CLI::Range(0.01, 43200.0))->capture_default_str();
  app.add_option("--breaker-failures", breaker_failures, "retryable failures in a row that block a worker")
      ->check(CLI::Range(1, 1000000))->capture_default_str();
  app.add_option("--port-file", port_file, "write the port actually bound to this file (for --listen ...:0)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))->capture_default_str();
  // Exit 2 for bad flags, as dwarp-worker.
  auto bad_flag = [](const std::string& message) { return Fail(message, 2); };
  if (auto exit = dwarp::ParseDaemonFlags(app, argc, argv, bad_flag)) return *exit;
  spdlog::set_level(spdlog::level::from_str(log_level));

  dwarp::rpc::ConnectionOptions token_holder;
  if (dwarp::Status token = dwarp::rpc::ResolveToken(token_holder, token_file); !token.ok())
    return Fail(token.ToString(), 2);
  server_options.token = token_holder.token;

  dwarp::coordinator::SchedulerOptions scheduler_options;
  scheduler_options.lease_ttl_ms = static_cast<int64_t>(lease_ttl_s * 1000);
  scheduler_options.heartbeat_interval_ms = static_cast<int64_t>(heartbeat_s * 1000);
  scheduler_options.circuit_breaker_failures = breaker_failures;
  scheduler_options.reap_interval_ms = std::max<int64_t>(10, std::min<int64_t>(500, scheduler_options.lease_ttl_ms / 10));
  // Everything that can refuse the configuration is checked before the store is opened: a refused start
  // must neither create nor migrate the database file.
  if (dwarp::Status checked = dwarp::coordinator::CheckSchedulerOptions(scheduler_options); !checked.ok())
    return Fail(checked.ToString(), 2);
  if (dwarp::Status checked = dwarp::coordinator::CheckServerOptions(server_options); !checked.ok())
    return Fail(checked.ToString(), 2);

  // Signals are taken by sigwait below: block them before any thread starts so no other thread gets them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // A database this start creates is removed again when the start fails after it (the address is taken):
  // an operator who retries elsewhere should not find an empty database beside the one they meant.
  std::error_code exists_error;
  const bool db_is_new = db != ":memory:" && !std::filesystem::exists(db, exists_error) && !exists_error;
  std::unique_ptr<dwarp::coordinator::SweepStore> store;
  if (db == ":memory:") {
    store = std::make_unique<dwarp::coordinator::MemorySweepStore>();
  } else {
    auto sqlite = dwarp::coordinator::SqliteSweepStore::Open(db);
    if (!sqlite.ok()) return Fail(sqlite.status().ToString());
    store = std::move(*sqlite);
  }

  auto scheduler = dwarp::coordinator::Scheduler::Create(store.get(), scheduler_options);
  if (!scheduler.ok()) return Fail(scheduler.status().ToString());

  auto server = dwarp::coordinator::CoordinatorServer::Start(scheduler->get(), server_options, store.get());
  if (!server.ok()) {
    (*scheduler)->Shutdown();
    if (db_is_new) {
      // Removed while this process still holds the server lock, so no other coordinator has opened them.
      for (const char* suffix : {"", "-wal", "-shm", "-journal", ".lock"}) {
        std::error_code ignored;
        std::filesystem::remove(db + suffix, ignored);
      }
    }
    return Fail(server.status().ToString(), 2);
  }
  const int port = (*server)->port();
  if (!port_file.empty()) {
    const std::string temporary = port_file + ".tmp";
    std::ofstream(temporary) << port << "\n";
    if (std::rename(temporary.c_str(), port_file.c_str()) != 0) return Fail("cannot write --port-file " + port_file);
  }
  spdlog::info("dwarp-coordinator serving on port {} (db {}, token {}, TLS {})", port, db,
               server_options.token.empty() ? "off" : "on", server_options.tls_cert.empty() ? "off" : "on");

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  spdlog::info("signal {}: draining", signal_number);
  (*server)->Drain();
  (*scheduler)->Shutdown();
  (*server)->Shutdown(2000);
  spdlog::info("dwarp-coordinator stopped");
  return 0;
}
