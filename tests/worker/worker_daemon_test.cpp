// The worker daemon (worker/daemon/worker_daemon.h) against a hand-written WorkerService: a real gRPC
// server on 127.0.0.1:0 inside the test that records every call and hands out tiny image-folder
// classification jobs (PNG files written by the test, so no installed data is needed). The daemon runs in
// process (WorkerDaemon::Run on a thread, RequestDrain) and, for SIGTERM and flags, as dwarp-worker.
#include "worker/daemon/worker_daemon.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <future>
#include <limits>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/job_spec.h"
#include "common/rpc/job_result_message.h"
#include "dwarp/v1/dwarp.grpc.pb.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

namespace dwarp::worker {
namespace {

namespace pb = dwarp::v1;
using std::chrono::milliseconds;
using std::chrono::seconds;

// ---------------------------------------------------------------------------------------------------
// Tiny jobs: three classes of 16x16 PNGs that differ in colour; an MLP learns them in a few epochs.

std::string ColourFolder() {
  static const std::string root = [] {
    const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "dwarp_worker_daemon_colours";
    std::filesystem::remove_all(dir);
    const char* names[] = {"blue", "green", "red"};
    for (int c = 0; c < 3; ++c) {
      std::filesystem::create_directories(dir / names[c]);
      for (int i = 0; i < 8; ++i) {
        unsigned char pixels[16 * 16 * 3];
        for (int p = 0; p < 16 * 16; ++p) {
          for (int ch = 0; ch < 3; ++ch) {
            const int base = (ch == 2 - c) ? 200 : 40;
            pixels[p * 3 + ch] = static_cast<unsigned char>(base + (p * 7 + i * 13 + ch) % 31);
          }
        }
        const std::string file = (dir / names[c] / ("img" + std::to_string(i) + ".png")).string();
        EXPECT_NE(stbi_write_png(file.c_str(), 16, 16, 3, pixels, 16 * 3), 0) << file;
      }
    }
    return dir.string();
  }();
  return root;
}

// A job spec as the coordinator would lease it (ToJson of a validated spec).
std::string JobJson(int64_t max_epochs, const std::string& layer = "fc2") {
  const std::string yaml = "model: {arch: mlp, hidden: [8], layer: " + layer +
                           ", layer_groups: [], input_channels: 3, input_size: 16}\n"
                           "data: {kind: image_folder, root: " + ColourFolder() + "}\n"
                           "d: 20\nobjective: classification\n"
                           "train: {lr: 5.0e-2, batch_size: 4, max_epochs: " + std::to_string(max_epochs) +
                           ", patience: 0, seed: 0, threads: 1}\n";
  auto spec = ParseJobSpec(yaml, SpecFormat::kYaml);
  EXPECT_TRUE(spec.ok()) << spec.status().ToString();
  return ToJson(*spec).dump();
}

// ---------------------------------------------------------------------------------------------------
// The fake coordinator: hands out queued jobs, cancels leases on request, records everything.

struct MetricRecord {
  std::string worker_id, lease_id;
  pb::MetricPoint point;
};

class FakeCoordinator final : public pb::WorkerService::Service {
 public:
  // Queues a job; returns the lease id it will go out with.
  std::string AddJob(const std::string& spec_json) {
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t id = ++next_job_;
    pb::Lease lease;
    lease.set_lease_id("lease-" + std::to_string(id));
    lease.set_job_id(id);
    lease.set_sweep_id("sweep-1");
    lease.set_attempt(1);
    lease.mutable_key()->set_model("mlp");
    lease.mutable_key()->set_layer("fc2");
    lease.mutable_key()->set_dataset("colours");
    lease.mutable_key()->set_d("20");
    lease.set_spec_json(spec_json);
    lease.set_ttl_ms(10000);
    queue_.push_back(lease);
    cv_.notify_all();
    return lease.lease_id();
  }

  // The next heartbeat that carries `lease_id` answers cancel = true (or valid = false).
  void CancelLease(const std::string& lease_id, bool invalidate = false) {
    std::lock_guard<std::mutex> lock(mu_);
    (invalidate ? invalid_ : cancelled_).insert(lease_id);
  }

  // Waits until `done()` (called under the lock) holds; false after `timeout`.
  template <typename Predicate>
  bool WaitFor(Predicate done, milliseconds timeout = milliseconds(30000)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return done(); });
  }

  // The next Register calls answer these codes, in order, before one succeeds.
  void FailRegisters(std::vector<grpc::StatusCode> codes) {
    std::lock_guard<std::mutex> lock(mu_);
    register_failures_.assign(codes.begin(), codes.end());
  }

  grpc::Status Register(grpc::ServerContext*, const pb::RegisterRequest* request,
                        pb::RegisterResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++register_calls;
    if (!register_failures_.empty()) {
      const grpc::StatusCode code = register_failures_.front();
      register_failures_.pop_front();
      cv_.notify_all();
      return grpc::Status(code, "cannot store the worker: database or disk is full");
    }
    registers.push_back(*request);
    response->set_worker_id("worker-1");
    response->set_lease_ttl_ms(10000);
    response->set_heartbeat_interval_ms(50);
    cv_.notify_all();
    return grpc::Status::OK;
  }

  grpc::Status Acquire(grpc::ServerContext* context, const pb::AcquireRequest* request,
                       pb::AcquireResponse* response) override {
    std::unique_lock<std::mutex> lock(mu_);
    acquires.push_back(*request);
    const auto until = std::chrono::steady_clock::now() + milliseconds(std::min<int64_t>(request->wait_ms(), 2000));
    while (queue_.empty() && !context->IsCancelled() && std::chrono::steady_clock::now() < until) {
      cv_.wait_for(lock, milliseconds(10));
    }
    if (context->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "client cancelled");
    if (!queue_.empty()) {
      *response->mutable_lease() = queue_.front();
      queue_.pop_front();
      leased.push_back(response->lease().lease_id());
      cv_.notify_all();
    }
    return grpc::Status::OK;
  }

  // The next heartbeat answers unknown_worker (as after a coordinator lost its worker table).
  void ForgetWorker() {
    std::lock_guard<std::mutex> lock(mu_);
    forget_worker_ = true;
  }

  // Every later heartbeat is answered only after `delay` (a slow coordinator), so that one is in flight
  // most of the time; heartbeats_in_flight counts those received and not yet answered.
  void DelayHeartbeats(milliseconds delay) {
    std::lock_guard<std::mutex> lock(mu_);
    heartbeat_delay_ = delay;
  }

  grpc::Status Heartbeat(grpc::ServerContext*, const pb::HeartbeatRequest* request,
                         pb::HeartbeatResponse* response) override {
    milliseconds delay{0};
    {
      std::lock_guard<std::mutex> lock(mu_);
      heartbeats.push_back(*request);
      delay = heartbeat_delay_;
      ++heartbeats_in_flight;
      cv_.notify_all();
    }
    std::this_thread::sleep_for(delay);
    std::lock_guard<std::mutex> lock(mu_);
    --heartbeats_in_flight;
    if (forget_worker_) {
      forget_worker_ = false;
      response->set_unknown_worker(true);
      cv_.notify_all();
      return grpc::Status::OK;
    }
    for (const std::string& id : request->lease_ids()) {
      pb::LeaseStatus* status = response->add_leases();
      status->set_lease_id(id);
      status->set_valid(invalid_.count(id) == 0);
      status->set_cancel(cancelled_.count(id) > 0);
    }
    cv_.notify_all();
    return grpc::Status::OK;
  }

  grpc::Status StreamMetrics(grpc::ServerContext*, grpc::ServerReader<pb::MetricBatch>* reader,
                             pb::StreamMetricsResponse* response) override {
    pb::MetricBatch batch;
    while (reader->Read(&batch)) {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& point : batch.points()) metrics.push_back({batch.worker_id(), batch.lease_id(), point});
      response->set_accepted(response->accepted() + batch.points_size());
      cv_.notify_all();
    }
    return grpc::Status::OK;
  }

  grpc::Status Complete(grpc::ServerContext*, const pb::CompleteRequest* request,
                        pb::CompleteResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    completes.push_back(*request);
    response->set_recorded(true);
    cv_.notify_all();
    return grpc::Status::OK;
  }

  grpc::Status Fail(grpc::ServerContext*, const pb::FailRequest* request, pb::FailResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    fails.push_back(*request);
    response->set_requeued(request->retryable());
    cv_.notify_all();
    return grpc::Status::OK;
  }

  // Read under Lock() (or after the daemon has stopped).
  std::unique_lock<std::mutex> Lock() { return std::unique_lock<std::mutex>(mu_); }
  std::vector<pb::RegisterRequest> registers;  // the ones answered OK
  int register_calls = 0;
  std::vector<pb::AcquireRequest> acquires;
  std::vector<pb::HeartbeatRequest> heartbeats;  // in the order received
  int heartbeats_in_flight = 0;
  std::vector<MetricRecord> metrics;
  std::vector<pb::CompleteRequest> completes;
  std::vector<pb::FailRequest> fails;
  std::vector<std::string> leased;

  // Points streamed for one lease, in order.
  std::vector<pb::MetricPoint> PointsOf(const std::string& lease_id) const {
    std::vector<pb::MetricPoint> out;
    for (const auto& m : metrics) {
      if (m.lease_id == lease_id) out.push_back(m.point);
    }
    return out;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<pb::Lease> queue_;
  std::deque<grpc::StatusCode> register_failures_;
  std::set<std::string> cancelled_, invalid_;
  bool forget_worker_ = false;
  milliseconds heartbeat_delay_{0};
  int64_t next_job_ = 0;
};

class WorkerDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer("127.0.0.1:0"); }

  void StartServer(const std::string& address) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&coordinator_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr) << address;
    ASSERT_GT(port_, 0) << address;
  }

  void TearDown() override {
    if (daemon_ != nullptr) {
      daemon_->RequestDrain();
      daemon_->RequestDrain();
      if (run_.valid()) run_.wait_for(seconds(30));
    }
    server_->Shutdown(std::chrono::system_clock::now() + seconds(2));
  }

  std::string Address() const { return "127.0.0.1:" + std::to_string(port_); }

  // The coordinator goes away at once: calls in flight fail and its port closes. StartServer on the
  // address it had brings it back, with all it held.
  void StopServer() {
    server_->Shutdown(std::chrono::system_clock::now());
    server_->Wait();
  }

  struct Outage {
    std::string lease;
    std::chrono::steady_clock::time_point back;  // when the coordinator was started again
  };

  // A 40-epoch job that ends while the coordinator is away: the daemon starts and takes it, and once its
  // first point has arrived the coordinator is stopped for 2 s, then started again on its port.
  Outage RunAJobThroughAnOutage() {
    const std::string address = Address();
    StartDaemon();
    Outage outage;
    outage.lease = coordinator_.AddJob(JobJson(/*max_epochs=*/40));
    EXPECT_TRUE(coordinator_.WaitFor([&] { return !coordinator_.PointsOf(outage.lease).empty(); }));
    StopServer();
    std::this_thread::sleep_for(seconds(2));
    outage.back = std::chrono::steady_clock::now();
    StartServer(address);
    return outage;
  }

  void StartDaemon(milliseconds drain_timeout = milliseconds(10000)) {
    WorkerDaemonOptions options;
    options.connection.address = Address();
    options.name = "test-worker";
    options.drain_timeout = drain_timeout;
    options.acquire_wait = milliseconds(300);
    options.initial_backoff = milliseconds(20);
    options.max_backoff = milliseconds(200);
    options.handle_signals = false;
    options.data_roots = data_roots_;
    daemon_ = std::make_unique<WorkerDaemon>(options);
    run_ = std::async(std::launch::async, [this] { return daemon_->Run(); });
  }

  // Drains the daemon and returns Run()'s status (Internal if it did not return in time).
  Status DrainAndWait(seconds timeout = seconds(30)) {
    daemon_->RequestDrain();
    if (run_.wait_for(timeout) != std::future_status::ready) return InternalError("Run() did not return");
    return run_.get();
  }

  FakeCoordinator coordinator_;
  std::vector<std::string> data_roots_;  // WorkerDaemonOptions::data_roots of the next StartDaemon
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<WorkerDaemon> daemon_;
  std::future<Status> run_;
};

TEST_F(WorkerDaemonTest, RegistersRunsAJobStreamsEveryEpochAndCompletes) {
  const std::string lease = coordinator_.AddJob(JobJson(/*max_epochs=*/3));
  StartDaemon();
  ASSERT_TRUE(coordinator_.WaitFor([&] { return !coordinator_.completes.empty(); }));
  ASSERT_TRUE(DrainAndWait().ok());

  auto lock = coordinator_.Lock();
  ASSERT_EQ(coordinator_.registers.size(), 1u);
  EXPECT_EQ(coordinator_.registers[0].name(), "test-worker");
  ASSERT_EQ(coordinator_.registers[0].devices_size(), 1);
  EXPECT_EQ(coordinator_.registers[0].devices(0), "cpu");
  ASSERT_FALSE(coordinator_.acquires.empty());
  EXPECT_EQ(coordinator_.acquires[0].worker_id(), "worker-1");
  EXPECT_EQ(coordinator_.acquires[0].device(), "cpu");
  EXPECT_EQ(coordinator_.acquires[0].wait_ms(), 300);

  const auto points = coordinator_.PointsOf(lease);
  ASSERT_EQ(points.size(), 3u) << "one point per epoch";
  for (size_t i = 0; i < points.size(); ++i) {
    EXPECT_EQ(points[i].epoch(), static_cast<int64_t>(i + 1));
    EXPECT_TRUE(std::isfinite(points[i].train_loss()));
    EXPECT_GE(points[i].val_score(), 0.0);
    EXPECT_LE(points[i].val_score(), 1.0);
    EXPECT_GT(points[i].time_unix_ms(), 1600000000000);
  }
  for (const auto& m : coordinator_.metrics) EXPECT_EQ(m.worker_id, "worker-1");

  ASSERT_EQ(coordinator_.completes.size(), 1u);
  const pb::CompleteRequest& complete = coordinator_.completes[0];
  EXPECT_EQ(complete.lease_id(), lease);
  EXPECT_EQ(complete.worker_id(), "worker-1");
  const pb::JobResult& result = complete.result();
  EXPECT_EQ(result.metric(), "accuracy");
  EXPECT_GE(result.test_score(), 0.0);
  EXPECT_LE(result.test_score(), 1.0);
  EXPECT_EQ(result.epochs_run(), 3);
  EXPECT_GE(result.best_epoch(), 1);
  EXPECT_LE(result.best_epoch(), 3);
  EXPECT_EQ(result.numbers_trained(), 20);
  EXPECT_GT(result.parameters_warped(), 20);
  EXPECT_EQ(result.device(), "cpu");
  EXPECT_GT(result.seconds(), 0.0);
  EXPECT_FALSE(result.has_noise_ceiling()) << "classification data have no noise ceiling";
  const auto json = nlohmann::json::parse(result.result_json());
  EXPECT_EQ(json["d"], "20");
  EXPECT_EQ(json["history"].size(), 3u);
  EXPECT_DOUBLE_EQ(json["scores"]["test"]["accuracy"].get<double>(), result.test_score());
  EXPECT_EQ(json["trained_parameters"], 20);
  EXPECT_EQ(json["D"], result.parameters_warped());
  // The coordinator keeps the job's spec with the job: the result does not carry it again.
  EXPECT_FALSE(json.contains("spec")) << json["spec"];
  EXPECT_TRUE(coordinator_.fails.empty());

  // Heartbeats carried the running lease, and the last one said draining.
  bool lease_in_heartbeat = false;
  for (const auto& h : coordinator_.heartbeats) {
    EXPECT_EQ(h.worker_id(), "worker-1");
    for (const auto& id : h.lease_ids()) lease_in_heartbeat |= id == lease;
  }
  EXPECT_TRUE(lease_in_heartbeat);
  ASSERT_FALSE(coordinator_.heartbeats.empty());
  EXPECT_TRUE(coordinator_.heartbeats.back().draining());
}

// The drain's heartbeat waits for one already in flight; it must still be sent when every slot has left
// by the time that one is answered, so that the coordinator hears the worker takes no more jobs.
TEST_F(WorkerDaemonTest, TheDrainIsAnnouncedEvenWhenTheSlotsLeaveDuringAHeartbeatInFlight) {
  const std::string lease = coordinator_.AddJob(JobJson(/*max_epochs=*/2));
  StartDaemon();
  ASSERT_TRUE(coordinator_.WaitFor([&] { return !coordinator_.completes.empty(); }));
  coordinator_.DelayHeartbeats(milliseconds(400));
  // A heartbeat sent before the drain is in flight (answered 400 ms later); the idle slot leaves at once.
  ASSERT_TRUE(coordinator_.WaitFor([&] {
    return coordinator_.heartbeats_in_flight > 0 && !coordinator_.heartbeats.back().draining();
  }));
  ASSERT_TRUE(DrainAndWait().ok());
  auto lock = coordinator_.Lock();
  ASSERT_FALSE(coordinator_.heartbeats.empty());
  EXPECT_TRUE(coordinator_.heartbeats.back().draining());
  EXPECT_EQ(coordinator_.completes.size(), 1u);
  EXPECT_EQ(coordinator_.completes[0].lease_id(), lease);
}

TEST_F(WorkerDaemonTest, CancelInAHeartbeatReplyStopsALongJobWithoutAnOutcome) {
  const std::string lease = coordinator_.AddJob(JobJson(/*max_epochs=*/1000000));
  StartDaemon();
  ASSERT_TRUE(coordinator_.WaitFor([&] { return coordinator_.PointsOf(lease).size() >= 2; }));
  const size_t heartbeats_before = [&] { auto lock = coordinator_.Lock(); return coordinator_.heartbeats.size(); }();
  coordinator_.CancelLease(lease);
  // The job has stopped once a heartbeat after the cancelling one no longer lists its lease.
  ASSERT_TRUE(coordinator_.WaitFor([&] {
    bool cancelled = false;
    for (size_t i = heartbeats_before; i < coordinator_.heartbeats.size(); ++i) {
      const auto& ids = coordinator_.heartbeats[i].lease_ids();
      const bool listed = std::find(ids.begin(), ids.end(), lease) != ids.end();
      if (listed) cancelled = true;
      if (cancelled && !listed) return true;
    }
    return false;
  }, milliseconds(20000)));
  // And the slot is free again: it goes back to Acquire.
  const size_t acquires_after_stop = [&] { auto lock = coordinator_.Lock(); return coordinator_.acquires.size(); }();
  ASSERT_TRUE(coordinator_.WaitFor([&] { return coordinator_.acquires.size() > acquires_after_stop; }));
  ASSERT_TRUE(DrainAndWait().ok());
  auto lock = coordinator_.Lock();
  EXPECT_TRUE(coordinator_.completes.empty()) << "a cancelled job must not complete";
  EXPECT_TRUE(coordinator_.fails.empty()) << "the coordinator already knows about the cancellation";
  EXPECT_LT(coordinator_.PointsOf(lease).size(), 1000000u);
}

TEST_F(WorkerDaemonTest, AnInvalidLeaseStopsTheJobAndDropsItsResult) {
  const std::string lease = coordinator_.AddJob(JobJson(/*max_epochs=*/1000000));
  StartDaemon();
  ASSERT_TRUE(coordinator_.WaitFor([&] { return !coordinator_.PointsOf(lease).empty(); }));
  coordinator_.CancelLease(lease, /*invalidate=*/true);
  const std::string next = coordinator_.AddJob(JobJson(/*max_epochs=*/1));
  ASSERT_TRUE(coordinator_.WaitFor([&] { return !coordinator_.completes.empty(); }));
  ASSERT_TRUE(DrainAndWait().ok());
  auto lock = coordinator_.Lock();
  ASSERT_EQ(coordinator_.completes.size(), 1u);
  EXPECT_EQ(coordinator_.completes[0].lease_id(), next);
  EXPECT_TRUE(coordinator_.fails.empty());
}

TEST_F(WorkerDaemonTest, BadSpecsFailNotRetryableAndTheWorkerTakesTheNextJob) {
  const std::string malformed = coordinator_.AddJob("{this is not json");
  const std::string bad_layer = coordinator_.AddJob(JobJson(/*max_epochs=*/2, /*layer=*/"fc9"));
  nlohmann::json newer_spec = nlohmann::json::parse(JobJson(/*max_epochs=*/2));
  newer_spec["spec_version"] = kJobSpecVersion + 1;
  const std::string newer = coordinator_.AddJob(newer_spec.dump());
  const std::string good = coordinator_.AddJob(JobJson(/*max_epochs=*/2));
  // As a coordinator from before spec versions stored it: validated in full by the worker, and run.
  nlohmann::json unversioned_spec = nlohmann::json::parse(JobJson(/*max_epochs=*/2));
  unversioned_spec.erase("spec_version");
  const std::string unversioned = coordinator_.AddJob(unversioned_spec.dump());
  StartDaemon();
  ASSERT_TRUE(coordinator_.WaitFor([&] { return coordinator_.completes.size() == 2; }));
  ASSERT_TRUE(DrainAndWait().ok());
  auto lock = coordinator_.Lock();
  ASSERT_EQ(coordinator_.fails.size(), 3u);
  EXPECT_EQ(coordinator_.fails[2].lease_id(), newer);
  EXPECT_FALSE(coordinator_.fails[2].retryable());
  EXPECT_NE(coordinator_.fails[2].reason().find("spec_version = " + std::to_string(kJobSpecVersion + 1)),
            std::string::npos) << coordinator_.fails[2].reason();
  EXPECT_NE(coordinator_.fails[2].reason().find("it reads spec_version " + std::to_string(kJobSpecVersion)),
            std::string::npos) << coordinator_.fails[2].reason();
  ASSERT_EQ(coordinator_.completes.size(), 2u);
  EXPECT_EQ(coordinator_.completes[1].lease_id(), unversioned);
  EXPECT_EQ(coordinator_.completes[1].result().epochs_run(), 2);
  EXPECT_EQ(coordinator_.fails[0].lease_id(), malformed);
  EXPECT_FALSE(coordinator_.fails[0].retryable());
  EXPECT_NE(coordinator_.fails[0].reason().find("not a JSON object"), std::string::npos)
      << coordinator_.fails[0].reason();
  EXPECT_EQ(coordinator_.fails[1].lease_id(), bad_layer);
  EXPECT_FALSE(coordinator_.fails[1].retryable());
  EXPECT_NE(coordinator_.fails[1].reason().find("fc9"), std::string::npos) << coordinator_.fails[1].reason();
  EXPECT_EQ(coordinator_.completes[0].lease_id(), good);
  EXPECT_EQ(coordinator_.completes[0].result().epochs_run(), 2);
}

TEST_F(WorkerDaemonTest, AJobNamingAPathOutsideTheDataRootsFailsNotRetryableWithoutItsContents) {
  // A folder outside the data root holding a "class" whose one "image" is a secret text file.
  const std::filesystem::path secret = std::filesystem::path(::testing::TempDir()) / "dwarp_worker_daemon_secret";
  std::filesystem::create_directories(secret / "passwords");
  std::ofstream(secret / "passwords" / "shadow.png") << "root:SECRET-CONTENT:0:0\n";
  auto with_root = [](const std::string& root) {
    nlohmann::json spec = nlohmann::json::parse(JobJson(/*max_epochs=*/2));
    spec["data"]["root"] = root;
    return spec.dump();
  };
  const std::string outside = coordinator_.AddJob(with_root(secret.string()));
  const std::string escaping = coordinator_.AddJob(with_root(ColourFolder() + "/../" + secret.filename().string()));
  const std::string inside = coordinator_.AddJob(JobJson(/*max_epochs=*/2));
  data_roots_ = {ColourFolder()};
  StartDaemon();
  ASSERT_TRUE(coordinator_.WaitFor([&] { return !coordinator_.completes.empty(); }));
  ASSERT_TRUE(DrainAndWait().ok());
  auto lock = coordinator_.Lock();
  ASSERT_EQ(coordinator_.fails.size(), 2u);
  for (const auto& [fail, lease] : {std::pair(coordinator_.fails[0], outside), {coordinator_.fails[1], escaping}}) {
    EXPECT_EQ(fail.lease_id(), lease);
    EXPECT_FALSE(fail.retryable());
    EXPECT_NE(fail.reason().find("outside this worker's data roots"), std::string::npos) << fail.reason();
    EXPECT_NE(fail.reason().find("data.root"), std::string::npos) << fail.reason();
    EXPECT_EQ(fail.reason().find("SECRET-CONTENT"), std::string::npos) << fail.reason();
  }
  ASSERT_EQ(coordinator_.completes.size(), 1u);
  EXPECT_EQ(coordinator_.completes[0].lease_id(), inside);
  std::filesystem::remove_all(secret);
}

TEST_F(WorkerDaemonTest, DrainLetsARunningJobFinish) {
  const std::string lease = coordinator_.AddJob(JobJson(/*max_epochs=*/300));
  StartDaemon(/*drain_timeout=*/milliseconds(60000));
  ASSERT_TRUE(coordinator_.WaitFor([&] { return !coordinator_.PointsOf(lease).empty(); }));
  ASSERT_TRUE(DrainAndWait().ok());
  auto lock = coordinator_.Lock();
  ASSERT_EQ(coordinator_.completes.size(), 1u);
  EXPECT_EQ(coordinator_.completes[0].result().epochs_run(), 300);
  EXPECT_TRUE(coordinator_.fails.empty());
  bool draining_heartbeat = false;
  for (const auto& h : coordinator_.heartbeats) draining_heartbeat |= h.draining() && h.lease_ids_size() == 1;
  EXPECT_TRUE(draining_heartbeat) << "the coordinator hears about the drain while the job still runs";
}

TEST_F(WorkerDaemonTest, DrainTimeoutFailsTheRunningJobBackRetryable) {
  const std::string lease = coordinator_.AddJob(JobJson(/*max_epochs=*/1000000));
  StartDaemon(/*drain_timeout=*/milliseconds(200));
  ASSERT_TRUE(coordinator_.WaitFor([&] { return !coordinator_.PointsOf(lease).empty(); }));
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(DrainAndWait().ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(15));
  auto lock = coordinator_.Lock();
  EXPECT_TRUE(coordinator_.completes.empty());
  ASSERT_EQ(coordinator_.fails.size(), 1u);
  EXPECT_EQ(coordinator_.fails[0].lease_id(), lease);
  EXPECT_TRUE(coordinator_.fails[0].retryable());
  EXPECT_NE(coordinator_.fails[0].reason().find("worker draining"), std::string::npos) << coordinator_.fails[0].reason();
}

TEST_F(WorkerDaemonTest, UnknownWorkerInAHeartbeatReplyRegistersAgainWithTheOldId) {
  StartDaemon();
  ASSERT_TRUE(coordinator_.WaitFor([&] { return !coordinator_.heartbeats.empty(); }));
  coordinator_.ForgetWorker();
  ASSERT_TRUE(coordinator_.WaitFor([&] { return coordinator_.registers.size() >= 2; }));
  const std::string lease = coordinator_.AddJob(JobJson(/*max_epochs=*/1));
  ASSERT_TRUE(coordinator_.WaitFor([&] { return !coordinator_.completes.empty(); }));
  ASSERT_TRUE(DrainAndWait().ok());
  auto lock = coordinator_.Lock();
  EXPECT_EQ(coordinator_.registers[0].worker_id(), "");
  EXPECT_EQ(coordinator_.registers[1].worker_id(), "worker-1");
  EXPECT_EQ(coordinator_.completes[0].lease_id(), lease);
}

TEST_F(WorkerDaemonTest, RegistersOnceTheCoordinatorComesUp) {
  // The coordinator is down when the worker starts (its port closed), and comes up on the same port later.
  const std::string address = Address();
  StopServer();
  StartDaemon();
  // Not synchronisation: lets several Register attempts fail (and the backoff grow) before the server is back.
  std::this_thread::sleep_for(milliseconds(300));
  StartServer(address);
  ASSERT_TRUE(coordinator_.WaitFor([&] { return !coordinator_.registers.empty(); }));
  const std::string lease = coordinator_.AddJob(JobJson(/*max_epochs=*/1));
  ASSERT_TRUE(coordinator_.WaitFor([&] { return !coordinator_.completes.empty(); }));
  ASSERT_TRUE(DrainAndWait().ok());
  auto lock = coordinator_.Lock();
  EXPECT_EQ(coordinator_.registers.size(), 1u);
  EXPECT_EQ(coordinator_.completes[0].lease_id(), lease);
}

TEST_F(WorkerDaemonTest, AResultFinishedWhileTheCoordinatorIsDownIsDeliveredWhenItIsBack) {
  // The outage (2 s) outlasts many send attempts at this backoff (20 ms doubling to 200 ms) but not the
  // lease TTL (10 s): the result must wait for the coordinator, not for a count of tries.
  const Outage outage = RunAJobThroughAnOutage();
  ASSERT_TRUE(coordinator_.WaitFor([&] { return !coordinator_.completes.empty(); }, milliseconds(8000)));
  // Found at once, not after gRPC's default reconnect backoff (several seconds after such an outage).
  EXPECT_LT(std::chrono::steady_clock::now() - outage.back, milliseconds(2500));
  ASSERT_TRUE(DrainAndWait().ok());
  auto lock = coordinator_.Lock();
  ASSERT_EQ(coordinator_.completes.size(), 1u);
  EXPECT_EQ(coordinator_.completes[0].lease_id(), outage.lease);
  EXPECT_TRUE(coordinator_.fails.empty());
}

TEST_F(WorkerDaemonTest, RegisterIsRetriedWhileTheCoordinatorHasTroubleThatPasses) {
  // A coordinator whose disk is full (INTERNAL), or that is overloaded, while the worker starts: the worker
  // waits it out instead of exiting for good.
  coordinator_.FailRegisters({grpc::StatusCode::INTERNAL, grpc::StatusCode::INTERNAL,
                              grpc::StatusCode::RESOURCE_EXHAUSTED, grpc::StatusCode::UNKNOWN});
  StartDaemon();
  const std::string lease = coordinator_.AddJob(JobJson(/*max_epochs=*/1));
  ASSERT_TRUE(coordinator_.WaitFor([&] { return !coordinator_.completes.empty(); }));
  ASSERT_TRUE(DrainAndWait().ok());
  auto lock = coordinator_.Lock();
  EXPECT_EQ(coordinator_.register_calls, 5);
  ASSERT_EQ(coordinator_.registers.size(), 1u);
  EXPECT_EQ(coordinator_.completes[0].lease_id(), lease);
}

// The epochs streamed for `lease`, each once, in order (the worker may send some again after a reconnect).
std::vector<int64_t> DistinctEpochs(const FakeCoordinator& coordinator, const std::string& lease) {
  std::set<int64_t> epochs;
  for (const auto& point : coordinator.PointsOf(lease)) epochs.insert(point.epoch());
  return std::vector<int64_t>(epochs.begin(), epochs.end());
}

// 1, 2, ..., n.
std::vector<int64_t> OneTo(int64_t n) {
  std::vector<int64_t> out;
  for (int64_t e = 1; e <= n; ++e) out.push_back(e);
  return out;
}

TEST_F(WorkerDaemonTest, AMetricStreamBrokenByACoordinatorRestartIsReopenedAndNoEpochIsMissing) {
  const std::string address = Address();
  const std::string lease = coordinator_.AddJob(JobJson(/*max_epochs=*/1000000));
  StartDaemon();
  ASSERT_TRUE(coordinator_.WaitFor([&] { return coordinator_.PointsOf(lease).size() >= 3; }));
  StopServer();
  const int64_t before = [&] { auto lock = coordinator_.Lock(); return DistinctEpochs(coordinator_, lease).back(); }();
  std::this_thread::sleep_for(milliseconds(1500));  // the job trains on, its points are held
  StartServer(address);
  // Points of epochs trained after the restart arrive on a new stream...
  ASSERT_TRUE(coordinator_.WaitFor([&] {
    const auto epochs = DistinctEpochs(coordinator_, lease);
    return !epochs.empty() && epochs.back() > before + 20;
  }, milliseconds(15000)));
  coordinator_.CancelLease(lease);
  ASSERT_TRUE(DrainAndWait().ok());
  auto lock = coordinator_.Lock();
  // ...and so do those trained while the coordinator was down: no epoch is missing.
  const auto epochs = DistinctEpochs(coordinator_, lease);
  EXPECT_EQ(epochs, OneTo(epochs.back())) << epochs.size() << " distinct epochs up to " << epochs.back();
}

TEST_F(WorkerDaemonTest, PointsOfAJobThatEndsWhileTheCoordinatorIsDownArriveBeforeItsResult) {
  const Outage outage = RunAJobThroughAnOutage();
  ASSERT_TRUE(coordinator_.WaitFor([&] { return !coordinator_.completes.empty(); }, milliseconds(10000)));
  ASSERT_TRUE(DrainAndWait().ok());
  auto lock = coordinator_.Lock();
  ASSERT_EQ(coordinator_.completes.size(), 1u);
  EXPECT_EQ(coordinator_.completes[0].result().epochs_run(), 40);
  EXPECT_EQ(DistinctEpochs(coordinator_, outage.lease), OneTo(40));
}

TEST(WorkerDaemonRegister, RefusedRegistrationEndsRunWithTheCoordinatorsError) {
  // A coordinator that refuses everyone for a reason that answers the same on every try: Run() returns its
  // error instead of retrying forever.
  struct Case {
    grpc::StatusCode code;
    StatusCode expected;
  } cases[] = {{grpc::StatusCode::UNAUTHENTICATED, StatusCode::kUnauthenticated},
               {grpc::StatusCode::INVALID_ARGUMENT, StatusCode::kInvalidArgument},
               {grpc::StatusCode::PERMISSION_DENIED, StatusCode::kUnauthenticated},
               {grpc::StatusCode::FAILED_PRECONDITION, StatusCode::kFailedPrecondition}};
  for (const Case& c : cases) {
    class Refusing final : public pb::WorkerService::Service {
     public:
      explicit Refusing(grpc::StatusCode code) : code_(code) {}
      grpc::Status Register(grpc::ServerContext*, const pb::RegisterRequest*, pb::RegisterResponse*) override {
        ++calls;
        return grpc::Status(code_, "bad token");
      }
      std::atomic<int> calls{0};

     private:
      grpc::StatusCode code_;
    } refusing(c.code);
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&refusing);
    auto server = builder.BuildAndStart();
    ASSERT_NE(server, nullptr);
    WorkerDaemonOptions options;
    options.connection.address = "127.0.0.1:" + std::to_string(port);
    options.handle_signals = false;
    WorkerDaemon daemon(options);
    auto run = std::async(std::launch::async, [&] { return daemon.Run(); });
    ASSERT_EQ(run.wait_for(seconds(20)), std::future_status::ready);
    const Status status = run.get();
    EXPECT_EQ(status.code(), c.expected) << status.ToString();
    EXPECT_NE(status.message().find("bad token"), std::string::npos) << status.ToString();
    EXPECT_NE(status.message().find("not retried"), std::string::npos) << status.ToString();
    EXPECT_EQ(refusing.calls.load(), 1);
    server->Shutdown();
  }
}

// ---------------------------------------------------------------------------------------------------
// Cooperative cancellation in RunJob itself, and the pure helpers.

TEST(RunJobCancellation, ShouldStopEndsTheJobWithCancelled) {
  auto spec = JobSpecFromJson(nlohmann::json::parse(JobJson(/*max_epochs=*/1000000)));
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  std::atomic<int> epochs{0};
  JobRunOptions options;
  options.on_epoch = [&](const engine::EpochRecord&, int64_t) { ++epochs; };
  options.should_stop = [&] { return epochs.load() >= 2; };
  auto result = RunJob(*spec, options);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kCancelled);
  EXPECT_EQ(result.status().message().rfind("cancelled: ", 0), 0u) << result.status().message();
  EXPECT_EQ(epochs.load(), 2);
  EXPECT_TRUE(IsRetryableJobFailure(result.status()));
}

TEST(RunJobCancellation, StopBeforeStartingNeverTrains) {
  auto spec = JobSpecFromJson(nlohmann::json::parse(JobJson(/*max_epochs=*/5)));
  ASSERT_TRUE(spec.ok());
  int epochs = 0;
  JobRunOptions options;
  options.on_epoch = [&](const engine::EpochRecord&, int64_t) { ++epochs; };
  options.should_stop = [] { return true; };
  auto result = RunJob(*spec, options);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kCancelled);
  EXPECT_EQ(epochs, 0);
}

TEST(WorkerDaemonHelpers, DeviceLists) {
  auto ok = ParseDeviceList("cuda:0, cuda:1");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(*ok, (std::vector<std::string>{"cuda:0", "cuda:1"}));
  auto cpu = ParseDeviceList("cpu");
  ASSERT_TRUE(cpu.ok());
  EXPECT_EQ(*cpu, std::vector<std::string>{"cpu"});
  for (const char* bad : {"gpu0", "", "cuda:", "cuda:x", "cuda:12345", "cpu,,cuda"}) {
    auto parsed = ParseDeviceList(bad);
    EXPECT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
  }
  auto twice = ParseDeviceList("cuda:0,cuda:0");
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.status().message().find("twice"), std::string::npos) << twice.status().message();
  auto bad = ParseDeviceList("cpu,tpu");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'tpu'"), std::string::npos) << bad.status().message();
}

TEST(WorkerDaemonHelpers, NoiseCeilingIsSentOnlyWhenTheDataHasOne) {
  JobReport result;
  result.metric = "r2";
  result.noise_ceiling = 0.75;
  const pb::JobResult with = rpc::JobResultToProto(JobResultOf(result));
  ASSERT_TRUE(with.has_noise_ceiling());
  EXPECT_EQ(with.noise_ceiling(), 0.75);
  EXPECT_EQ(nlohmann::json::parse(with.result_json())["noise_ceiling"], 0.75);

  result.noise_ceiling = std::numeric_limits<double>::quiet_NaN();
  const pb::JobResult without = rpc::JobResultToProto(JobResultOf(result));
  EXPECT_FALSE(without.has_noise_ceiling());
  EXPECT_TRUE(nlohmann::json::parse(without.result_json())["noise_ceiling"].is_null());
}

TEST(WorkerDaemonHelpers, RetryableFailures) {
  EXPECT_FALSE(IsRetryableJobFailure(InvalidArgumentError("training diverged: the loss is nan")));
  EXPECT_FALSE(IsRetryableJobFailure(NotFoundError("data.root")));
  EXPECT_TRUE(IsRetryableJobFailure(InternalError("job failed in LibTorch")));
  EXPECT_TRUE(IsRetryableJobFailure(ResourceExhaustedError("out of memory")));
}

TEST(WorkerDaemonHelpers, OptionsAreChecked) {
  WorkerDaemonOptions options;
  EXPECT_TRUE(CheckWorkerDaemonOptions(options).ok());
  options.slots_per_device = 0;
  const Status slots = CheckWorkerDaemonOptions(options);
  EXPECT_EQ(slots.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(slots.message().find("slots_per_device = 0"), std::string::npos) << slots.ToString();
  options.slots_per_device = 1;
  options.max_held_metric_points = 0;
  const Status held = CheckWorkerDaemonOptions(options);
  EXPECT_EQ(held.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(held.message().find("max_held_metric_points = 0"), std::string::npos) << held.ToString();
  options.max_held_metric_points = 1;
  options.devices = {};
  EXPECT_FALSE(CheckWorkerDaemonOptions(options).ok());
  WorkerDaemon daemon(options);
  EXPECT_EQ(daemon.Run().code(), StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------------
// The real dwarp-worker process.

struct ProcessResult {
  int exit_code = -1;
  std::string output;
};

// Runs dwarp-worker with `args` (no shell), its stdout and stderr into a file; returns its pid.
pid_t SpawnWorker(const std::vector<std::string>& args, const std::string& log_file) {
  std::vector<std::string> all = {DWARP_WORKER_BINARY};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// Waits for the process to exit; kills it and returns -1 after `timeout`.
int WaitExit(pid_t pid, seconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(milliseconds(20));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return -1;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

ProcessResult RunWorkerToExit(const std::vector<std::string>& args) {
  const std::string log = ::testing::TempDir() + "/dwarp_worker_flags.log";
  const pid_t pid = SpawnWorker(args, log);
  ProcessResult result;
  result.exit_code = WaitExit(pid, seconds(30));
  result.output = ReadFile(log);
  return result;
}

TEST(WorkerProcessFlags, BadValuesExitTwoNamingTheFlag) {
  struct Case {
    std::vector<std::string> args;
    std::string expected;
  } cases[] = {
      {{"--slots-per-device", "0"}, "--slots-per-device = 0"},
      {{"--devices", "gpu7"}, "--devices: device 'gpu7'"},
      {{"--drain-timeout", "-1"}, "--drain-timeout = -1"},
      {{"--log-level", "loud"}, "--log-level = 'loud'"},
      {{"--token-file", "/nonexistent/dwarp-token"}, "/nonexistent/dwarp-token"},
      {{"--slots-per-device", "many"}, "slots-per-device"},
      {{"--devices", "cuda:64"}, "--devices = 'cuda:64'"},
      {{"--data-root", "/nonexistent/dwarp-data"}, "--data-root '/nonexistent/dwarp-data' is not an existing directory"},
  };
  for (const Case& c : cases) {
    const ProcessResult result = RunWorkerToExit(c.args);
    EXPECT_EQ(result.exit_code, 2) << c.args[0] << "\n" << result.output;
    EXPECT_NE(result.output.find(c.expected), std::string::npos) << result.output;
  }
}

TEST_F(WorkerDaemonTest, SigtermDrainsTheProcessWhichFailsItsJobBackAndExitsZero) {
  const std::string lease = coordinator_.AddJob(JobJson(/*max_epochs=*/1000000));
  const std::string log = ::testing::TempDir() + "/dwarp_worker_sigterm.log";
  const pid_t pid = SpawnWorker({"--coordinator", Address(), "--acquire-wait", "300", "--drain-timeout", "0.2",
                                 "--threads", "1", "--name", "process-worker"},
                                log);
  ASSERT_GT(pid, 0);
  const bool running = coordinator_.WaitFor([&] { return !coordinator_.PointsOf(lease).empty(); });
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  const int exit_code = WaitExit(pid, seconds(30));
  ASSERT_TRUE(running) << ReadFile(log);
  EXPECT_EQ(exit_code, 0) << ReadFile(log);
  auto lock = coordinator_.Lock();
  ASSERT_EQ(coordinator_.registers.size(), 1u);
  EXPECT_EQ(coordinator_.registers[0].name(), "process-worker");
  EXPECT_TRUE(coordinator_.completes.empty());
  ASSERT_EQ(coordinator_.fails.size(), 1u) << ReadFile(log);
  EXPECT_TRUE(coordinator_.fails[0].retryable());
  EXPECT_NE(coordinator_.fails[0].reason().find("worker draining"), std::string::npos);
  const std::string output = ReadFile(log);
  EXPECT_NE(output.find("registered as worker worker-1"), std::string::npos) << output;
  EXPECT_NE(output.find("lease " + lease), std::string::npos) << output;
}

}  // namespace
}  // namespace dwarp::worker
