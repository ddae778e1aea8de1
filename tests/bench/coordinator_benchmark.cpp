// Coordinator load benchmark (not a test): a real dwarp-coordinator process on loopback and N simulated
// workers (threads with their own gRPC channels, no training) that
//   phase 1  lease jobs as fast as they can: Acquire (long-poll) + Complete, until a sweep of J jobs is done
//   phase 2  stream metric points: each worker holds one lease and streams batches over StreamMetrics
// Reported: leases per second, metric points per second ingested (and checked stored in the database),
// the coordinator process's CPU time per lease (from /proc), for the SQLite store (WAL) and the in-memory
// store side by side in one run, and the SQLite/memory ratios. Targets (issue 4, 2-core machine): >= 500
// leases/s and >= 20,000 metric points/s with SQLite.
//
//   build/tests/bench/coordinator_benchmark [--workers 50] [--jobs 5000] [--metric-seconds 5] [--points-per-batch 100]
// (--points-per-batch 1 is a worker streaming each epoch's point as it comes.)
#include <grpcpp/grpcpp.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/child_process.h"
#include "common/rpc/connection.h"
#include "dwarp/v1/dwarp.grpc.pb.h"

namespace {

namespace fs = std::filesystem;
namespace v1 = dwarp::v1;
using Clock = std::chrono::steady_clock;

struct Options {
  int workers = 50;
  int jobs = 5000;
  double metric_seconds = 5.0;
  int points_per_batch = 100;
};

double CpuSecondsOf(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // Fields after the command name (which may hold spaces) start after the last ')'.
  std::istringstream rest(text.substr(text.rfind(')') + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int index = 3; rest >> field; ++index) {
    if (index == 14) utime = std::stoull(field);
    if (index == 15) {
      stime = std::stoull(field);
      break;
    }
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

class Coordinator {
 public:
  Coordinator(const fs::path& dir, const std::string& db) {
    const fs::path port_file = dir / "port";
    fs::remove(port_file);
    auto child = dwarp::ChildProcess::Start({DWARP_COORDINATOR_BIN, "--db", db, "--listen", "127.0.0.1:0",
                                             "--port-file", port_file.string(), "--log-level", "warn",
                                             "--lease-ttl", "60", "--heartbeat-interval", "10"},
                                            (dir / "coordinator.log").string());
    if (!child.ok()) {
      std::fprintf(stderr, "%s\n", child.status().ToString().c_str());
      std::exit(1);
    }
    process_ = std::move(*child);
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    while (!fs::exists(port_file) && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    int port = 0;
    std::ifstream(port_file) >> port;
    if (port == 0) {
      std::fprintf(stderr, "the coordinator did not start (see %s)\n", process_.log_path().c_str());
      std::exit(1);
    }
    address_ = "127.0.0.1:" + std::to_string(port);
  }
  ~Coordinator() {
    process_.Signal(SIGTERM);
    process_.Wait();
  }
  const std::string& address() const { return address_; }
  double cpu_seconds() const { return CpuSecondsOf(process_.pid()); }

 private:
  dwarp::ChildProcess process_;
  std::string address_;
};

// A sweep of exactly `jobs` jobs: models x dims x seeds (the data path is never opened: nothing trains).
std::string SweepText(const std::string& name, int jobs) {
  int models = 1, dims = jobs, seeds = 1;
  for (int m : {10, 5, 4, 2, 1})
    if (jobs % m == 0) {
      models = m;
      break;
    }
  dims = jobs / models;
  for (int s : {10, 5, 4, 2, 1})
    if (dims % s == 0 && dims / s >= 1) {
      seeds = s;
      dims /= s;
      break;
    }
  std::string text = "name: " + name + "\nmodels:\n";
  for (int m = 0; m < models; ++m) text += "  - {name: m" + std::to_string(m) + ", arch: mlp, hidden: [8]}\n";
  text += "datasets:\n  - {name: syn, kind: synthetic, images: /nonexistent/images-idx3-ubyte}\ndims: [";
  for (int d = 0; d < dims; ++d) text += (d ? ", " : "") + std::to_string(d + 1);
  text += "]\nseeds: " + std::to_string(seeds) + "\nthreshold: {kind: absolute, value: 0.5}\n";
  return text;
}

std::shared_ptr<grpc::Channel> NewChannel(const std::string& address, int index) {
  grpc::ChannelArguments arguments;
  arguments.SetInt("dwarp.simulated_worker", index);  // a distinct argument: a connection of its own
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), arguments);
}

void SubmitOrDie(const std::string& address, const std::string& text) {
  auto stub = v1::SweepService::NewStub(NewChannel(address, -1));
  v1::SubmitRequest request;
  request.set_sweep_text(text);
  request.set_format("yaml");
  v1::SubmitResponse response;
  grpc::ClientContext context;
  grpc::Status status = stub->Submit(&context, request, &response);
  if (!status.ok()) {
    std::fprintf(stderr, "submit failed: %s\n", status.error_message().c_str());
    std::exit(1);
  }
}

// A registered simulated worker: its id and the credential every later call for it carries.
struct SimWorker {
  std::string id;
  std::string credential;
  void Sign(grpc::ClientContext& context) const { context.AddMetadata("dwarp-worker-credential", credential); }
};

SimWorker RegisterOrDie(v1::WorkerService::Stub& stub, int index) {
  v1::RegisterRequest request;
  request.set_name("sim-" + std::to_string(index));
  request.set_host("localhost");
  request.add_devices("cpu");
  v1::RegisterResponse response;
  grpc::ClientContext context;
  if (!stub.Register(&context, request, &response).ok()) std::exit(1);
  return {response.worker_id(), response.worker_credential()};
}

struct PhaseResult {
  double seconds = 0;
  double coordinator_cpu = 0;
  long long count = 0;  // leases or points
  long long stored = -1;
};

PhaseResult LeasePhase(const std::string& address, const Options& options) {
  SubmitOrDie(address, SweepText("leases", options.jobs));
  std::atomic<long long> leased{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  std::vector<std::unique_ptr<v1::WorkerService::Stub>> stubs;
  std::vector<SimWorker> ids;
  for (int i = 0; i < options.workers; ++i) {
    stubs.push_back(v1::WorkerService::NewStub(NewChannel(address, i)));
    ids.push_back(RegisterOrDie(*stubs.back(), i));
  }
  const auto start = Clock::now();
  for (int i = 0; i < options.workers; ++i) {
    threads.emplace_back([&, i] {
      while (!done) {
        v1::AcquireRequest acquire;
        acquire.set_worker_id(ids[i].id);
        acquire.set_device("cpu");
        acquire.set_wait_ms(200);
        v1::AcquireResponse lease;
        grpc::ClientContext context;
        ids[i].Sign(context);
        if (!stubs[i]->Acquire(&context, acquire, &lease).ok() || !lease.has_lease()) {
          if (leased.load() >= options.jobs) done = true;
          continue;
        }
        v1::CompleteRequest complete;
        complete.set_worker_id(ids[i].id);
        complete.set_lease_id(lease.lease().lease_id());
        complete.mutable_result()->set_metric("r2");
        complete.mutable_result()->set_test_score(0.001 * static_cast<double>(lease.lease().job_id() % 1000));
        v1::CompleteResponse completed;
        grpc::ClientContext complete_context;
        ids[i].Sign(complete_context);
        if (stubs[i]->Complete(&complete_context, complete, &completed).ok()) {
          if (++leased >= options.jobs) done = true;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  PhaseResult result;
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.count = leased.load();
  return result;
}

PhaseResult MetricPhase(const std::string& address, const Options& options) {
  SubmitOrDie(address, SweepText("metrics", options.workers));
  std::atomic<long long> accepted{0};
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  const auto stop = start + std::chrono::duration<double>(options.metric_seconds);
  for (int i = 0; i < options.workers; ++i) {
    threads.emplace_back([&, i] {
      auto stub = v1::WorkerService::NewStub(NewChannel(address, 1000 + i));
      const SimWorker worker = RegisterOrDie(*stub, 1000 + i);
      v1::AcquireRequest acquire;
      acquire.set_worker_id(worker.id);
      acquire.set_wait_ms(5000);
      v1::AcquireResponse lease;
      grpc::ClientContext context;
      worker.Sign(context);
      if (!stub->Acquire(&context, acquire, &lease).ok() || !lease.has_lease()) return;
      v1::StreamMetricsResponse response;
      grpc::ClientContext stream_context;
      worker.Sign(stream_context);
      auto writer = stub->StreamMetrics(&stream_context, &response);
      int64_t epoch = 0;
      while (Clock::now() < stop) {
        v1::MetricBatch batch;
        batch.set_worker_id(worker.id);
        batch.set_lease_id(lease.lease().lease_id());
        for (int p = 0; p < options.points_per_batch; ++p) {
          v1::MetricPoint* point = batch.add_points();
          point->set_epoch(++epoch);
          point->set_train_loss(1.0 / static_cast<double>(epoch));
          point->set_val_score(0.5);
          point->set_time_unix_ms(epoch);
        }
        if (!writer->Write(batch)) break;
      }
      writer->WritesDone();
      if (writer->Finish().ok()) accepted += response.accepted();
    });
  }
  for (std::thread& thread : threads) thread.join();
  PhaseResult result;
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.count = accepted.load();
  return result;
}

long long CountStoredMetrics(const fs::path& db) {
  sqlite3* handle = nullptr;
  long long count = -1;
  if (sqlite3_open_v2(db.c_str(), &handle, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v2(handle, "SELECT COUNT(*) FROM metrics", -1, &statement, nullptr) == SQLITE_OK &&
        sqlite3_step(statement) == SQLITE_ROW)
      count = sqlite3_column_int64(statement, 0);
    sqlite3_finalize(statement);
  }
  sqlite3_close(handle);
  return count;
}

struct StoreRun {
  PhaseResult leases, metrics;
};

StoreRun Run(const fs::path& dir, bool sqlite, const Options& options) {
  const fs::path db = dir / (sqlite ? "bench.db" : "memory");
  fs::remove(db);
  fs::remove(dir / "bench.db-wal");
  fs::remove(dir / "bench.db-shm");
  StoreRun run;
  {
    Coordinator coordinator(dir, sqlite ? db.string() : ":memory:");
    double cpu = coordinator.cpu_seconds();
    run.leases = LeasePhase(coordinator.address(), options);
    run.leases.coordinator_cpu = coordinator.cpu_seconds() - cpu;
    cpu = coordinator.cpu_seconds();
    run.metrics = MetricPhase(coordinator.address(), options);
    run.metrics.coordinator_cpu = coordinator.cpu_seconds() - cpu;
  }  // SIGTERM: the coordinator flushes buffered points before it exits
  if (sqlite) run.metrics.stored = CountStoredMetrics(db);
  return run;
}

constexpr char kUsage[] =
    "usage: coordinator_benchmark [--workers N] [--jobs N] [--metric-seconds S] [--points-per-batch N]\n"
    "  runs a real dwarp-coordinator under load from N simulated workers (see the top of "
    "tests/bench/coordinator_benchmark.cpp)\n";

// The value of a numeric flag, whole: "12x" or "" is refused rather than read as 12 or 0.
bool ParseNumber(const char* text, double* value) {
  char* end = nullptr;
  errno = 0;
  *value = std::strtod(text, &end);
  return end != text && *end == '\0' && errno == 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  // Every argument is read: a flag without its value, a stray word or --help never starts a run.
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    double value = 0;
    if (i + 1 >= argc || !ParseNumber(argv[i + 1], &value)) {
      std::fprintf(stderr, "%s needs a number after it\n%s", flag.c_str(), kUsage);
      return 2;
    }
    ++i;
    if (flag == "--workers") options.workers = static_cast<int>(value);
    else if (flag == "--jobs") options.jobs = static_cast<int>(value);
    else if (flag == "--metric-seconds") options.metric_seconds = value;
    else if (flag == "--points-per-batch") options.points_per_batch = static_cast<int>(value);
    else {
      std::fprintf(stderr, "unknown flag %s\n%s", flag.c_str(), kUsage);
      return 2;
    }
  }
  if (options.workers < 1 || options.jobs < 1 || options.metric_seconds <= 0 || options.points_per_batch < 1) {
    std::fprintf(stderr, "--workers, --jobs and --points-per-batch must be >= 1 and --metric-seconds > 0\n");
    return 2;
  }
  const fs::path dir = fs::temp_directory_path() / ("dwarp-coordinator-bench-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::printf("coordinator benchmark: %d simulated workers, %d jobs, %.1f s of metric streaming in batches of %d "
              "points, %u cores\n",
              options.workers, options.jobs, options.metric_seconds, options.points_per_batch,
              std::thread::hardware_concurrency());
  const StoreRun sqlite = Run(dir, true, options);
  const StoreRun memory = Run(dir, false, options);
  auto report = [&](const char* name, const StoreRun& run) {
    const double leases_per_s = run.leases.count / run.leases.seconds;
    const double points_per_s = run.metrics.count / run.metrics.seconds;
    std::printf("%-8s leases: %lld in %.2f s = %.0f leases/s, coordinator CPU %.3f ms/lease\n", name,
                run.leases.count, run.leases.seconds, leases_per_s, 1000.0 * run.leases.coordinator_cpu / run.leases.count);
    std::printf("%-8s metric points: %lld in %.2f s = %.0f points/s, coordinator CPU %.2f us/point", name,
                run.metrics.count, run.metrics.seconds, points_per_s,
                1e6 * run.metrics.coordinator_cpu / std::max<long long>(1, run.metrics.count));
    if (run.metrics.stored >= 0) std::printf(", %lld stored in SQLite", run.metrics.stored);
    std::printf("\n");
  };
  report("sqlite", sqlite);
  report("memory", memory);
  const double sqlite_leases = sqlite.leases.count / sqlite.leases.seconds;
  const double sqlite_points = sqlite.metrics.count / sqlite.metrics.seconds;
  std::printf("ratios (same run): sqlite/memory leases %.2f, points %.2f; sqlite vs targets: leases %.1fx of 500/s, "
              "points %.1fx of 20000/s\n",
              sqlite_leases / (memory.leases.count / memory.leases.seconds),
              sqlite_points / (memory.metrics.count / memory.metrics.seconds), sqlite_leases / 500.0,
              sqlite_points / 20000.0);
  const bool stored_all = sqlite.metrics.stored == sqlite.metrics.count;
  if (!stored_all)
    std::printf("WARNING: %lld points accepted but %lld stored\n", sqlite.metrics.count, sqlite.metrics.stored);
  fs::remove_all(dir);
  return stored_all ? 0 : 1;
}
