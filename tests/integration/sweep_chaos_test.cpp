// Chaos: a small sweep served by real dwarp-coordinator and dwarp-worker processes on loopback while the
// worker, the coordinator or both are killed with SIGKILL at random moments (seeded) and restarted, the
// coordinator on the same port and database. At the end every job has SUCCEEDED with exactly one result
// row, the database passes PRAGMA integrity_check, and d_warp is served.
//
// ctest runs 3 rounds (a few seconds each). For longer by-hand runs: DWARP_CHAOS_ROUNDS (rounds) and
// DWARP_CHAOS_SEED (the seed; printed on every run so that a failure can be replayed), or
// tests/integration/chaos.sh, which runs many rounds over several seeds.
// Skipped (not failed) when Debian's dataset-fashion-mnist is not installed.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "common/child_process.h"
#include "common/rpc/connection.h"
#include "dwarp/v1/dwarp.grpc.pb.h"
#include "tests/integration/integration_helpers.h"

namespace {

namespace fs = std::filesystem;
namespace v1 = dwarp::v1;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const char* kImages = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

int EnvInt(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::atoi(value) : fallback;
}

// The coordinator restarts on a port that was free at the start, so the worker finds it again.
using dwarp::integration::FreePort;

class SweepChaosTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kImages)) GTEST_SKIP() << kImages << " not installed";
    dir_ = fs::temp_directory_path() / ("dwarp-chaos-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    port_ = FreePort();
    connection_.address = "127.0.0.1:" + std::to_string(port_);
    auto channel = dwarp::rpc::MakeChannel(connection_);
    ASSERT_TRUE(channel.ok());
    sweeps_ = v1::SweepService::NewStub(*channel);
  }
  void TearDown() override {
    Kill(worker_);
    Kill(coordinator_);
    if (!HasFailure()) fs::remove_all(dir_);
  }

  static void Kill(dwarp::ChildProcess& child) {
    if (!child.running()) return;
    child.Signal(SIGKILL);
    child.Wait();
  }

  void StartCoordinator() {
    const fs::path log = dir_ / ("coordinator-" + std::to_string(++coordinator_starts_) + ".log");
    auto child = dwarp::ChildProcess::Start({DWARP_COORDINATOR_BIN, "--db", (dir_ / "dwarp.db").string(), "--listen",
                                             connection_.address, "--lease-ttl", "1.5", "--heartbeat-interval", "0.3"},
                                            log.string());
    ASSERT_TRUE(child.ok()) << child.status();
    coordinator_ = std::move(*child);
  }

  void StartWorker() {
    const fs::path log = dir_ / ("worker-" + std::to_string(++worker_starts_) + ".log");
    auto child = dwarp::ChildProcess::Start({DWARP_WORKER_BIN, "--coordinator", connection_.address, "--devices",
                                             "cpu", "--threads", "1", "--name", "chaos", "--drain-timeout", "2",
                                             // One folder for every worker start: a result a killed worker
                                             // held is delivered by the next.
                                             "--state-dir", (dir_ / "worker-state").string()},
                                            log.string());
    ASSERT_TRUE(child.ok()) << child.status();
    worker_ = std::move(*child);
  }

  // Calls `call` until it succeeds (the coordinator may be starting) or `timeout` passes.
  template <typename Call>
  bool Retry(Call call, std::chrono::seconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      grpc::ClientContext context;
      dwarp::rpc::PrepareContext(context, connection_, 5s);
      if (call(context).ok()) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  std::string Query(const std::string& sql) { return dwarp::integration::QueryDatabase((dir_ / "dwarp.db").string(), sql); }

  std::string Logs() {
    std::string text;
    for (const auto& entry : fs::directory_iterator(dir_)) {
      if (entry.path().extension() != ".log") continue;
      std::ifstream in(entry.path());
      std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (content.size() > 6000) content = "...\n" + content.substr(content.size() - 6000);
      text += "==== " + entry.path().filename().string() + "\n" + content;
    }
    return text;
  }

  fs::path dir_;
  int port_ = 0;
  int coordinator_starts_ = 0, worker_starts_ = 0;
  dwarp::ChildProcess coordinator_, worker_;
  dwarp::rpc::ConnectionOptions connection_;
  std::unique_ptr<v1::SweepService::Stub> sweeps_;
};

TEST_F(SweepChaosTest, KilledAtRandomMomentsEveryJobSucceedsWithExactlyOneResult) {
  const int rounds = EnvInt("DWARP_CHAOS_ROUNDS", 3);
  const unsigned seed = static_cast<unsigned>(EnvInt("DWARP_CHAOS_SEED", 20261204));
  std::printf("chaos: %d rounds, seed %u (DWARP_CHAOS_ROUNDS, DWARP_CHAOS_SEED)\n", rounds, seed);
  std::mt19937 random(seed);
  // Enough jobs and epochs that the kills land mid-sweep; enough attempts that no job runs out of them
  // however the kills fall (each worker kill costs at most the running job one attempt).
  const std::string sweep_text =
      "name: chaos\n"
      "models:\n"
      "  - {name: small, arch: mlp, hidden: [16], layers: [fc1], layer_groups: []}\n"
      "datasets:\n"
      "  - {name: syn, kind: synthetic, images: " + std::string(kImages) +
      ", limit_stimuli: 1500, synthetic: {targets: 4, warp_dim: 3, noise: 0.1}}\n"
      "dims: [0, 10, 30]\n"
      "seeds: [0, 1]\n"
      "max_attempts: " + std::to_string(rounds + 3) + "\n"
      "train: {lr: 1.0e-2, batch_size: 32, max_epochs: 40, patience: 0, threads: 1}\n"
      "threshold: {kind: fraction_of_dataset_best, value: 0.8}\n";

  StartCoordinator();
  StartWorker();
  std::string sweep_id;
  v1::SubmitRequest submit;
  submit.set_sweep_text(sweep_text);
  submit.set_format("yaml");
  submit.set_source_name("chaos.yaml");
  submit.set_request_id("chaos-submit");  // a retried Submit stores one sweep
  ASSERT_TRUE(Retry(
      [&](grpc::ClientContext& context) {
        v1::SubmitResponse response;
        grpc::Status status = sweeps_->Submit(&context, submit, &response);
        sweep_id = response.sweep().sweep_id();
        return status;
      },
      30s))
      << Logs();

  std::uniform_int_distribution<int> victim(0, 2);            // 0 worker, 1 coordinator, 2 both
  std::uniform_int_distribution<int> before_ms(200, 1500);    // running time before the kill
  std::uniform_int_distribution<int> down_ms(0, 1000);        // time down before the restart
  int kills_mid_sweep = 0;
  for (int round = 0; round < rounds; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(before_ms(random)));
    const int who = victim(random);
    const int down = down_ms(random);
    // How far the sweep is (when the coordinator answers at once), so that the run shows the kills landed
    // while jobs were still to do.
    v1::GetSweepRequest progress_request;
    progress_request.set_sweep_id(sweep_id);
    v1::Sweep progress;
    grpc::ClientContext progress_context;
    dwarp::rpc::PrepareContext(progress_context, connection_, 1s);
    const bool answered = sweeps_->Get(&progress_context, progress_request, &progress).ok();
    const int64_t succeeded = answered ? progress.counts().succeeded() : -1;
    if (answered && succeeded < 6) ++kills_mid_sweep;
    std::printf("chaos: round %d kills the %s (%lld of 6 jobs done), down %d ms\n", round + 1,
                who == 0 ? "worker" : who == 1 ? "coordinator" : "worker and the coordinator",
                static_cast<long long>(succeeded), down);
    if (who != 1) Kill(worker_);
    if (who != 0) Kill(coordinator_);
    std::this_thread::sleep_for(std::chrono::milliseconds(down));
    if (who != 0) StartCoordinator();
    if (who != 1) StartWorker();
  }

  EXPECT_GT(kills_mid_sweep, 0) << "every kill came after the sweep had finished: the test tested nothing";

  // The sweep finishes, every job once.
  v1::ResultsResponse results;
  v1::ResultsRequest request;
  request.set_sweep_id(sweep_id);
  const bool finished = Retry(
      [&](grpc::ClientContext& context) {
        grpc::Status status = sweeps_->Results(&context, request, &results);
        if (status.ok() && results.sweep().state() != v1::SWEEP_DONE)
          return grpc::Status(grpc::StatusCode::UNAVAILABLE, "not done");
        return status;
      },
      90s);
  ASSERT_TRUE(finished) << "the sweep did not finish (seed " << seed << ")\n" << Logs();
  ASSERT_EQ(results.jobs_size(), 6);
  std::set<int64_t> job_ids;
  for (const v1::Job& job : results.jobs()) {
    EXPECT_EQ(job.state(), v1::JOB_SUCCEEDED) << "job " << job.job_id() << ": " << job.error() << " (seed " << seed << ")";
    EXPECT_TRUE(job.has_result()) << job.job_id();
    job_ids.insert(job.job_id());
  }
  EXPECT_EQ(job_ids.size(), 6u);
  EXPECT_EQ(Query("SELECT COUNT(*) FROM results"), "6") << "seed " << seed;
  EXPECT_EQ(Query("SELECT COUNT(DISTINCT job_id) FROM results"), "6") << "seed " << seed;
  EXPECT_EQ(Query("SELECT COUNT(*) FROM jobs WHERE state = " + std::to_string(v1::JOB_SUCCEEDED)), "6")
      << "seed " << seed;

  // d_warp is served for the sweep's one group.
  v1::DWarpRequest dwarp_request;
  dwarp_request.set_sweep_id(sweep_id);
  v1::DWarpResponse dwarp;
  ASSERT_TRUE(Retry([&](grpc::ClientContext& context) { return sweeps_->DWarp(&context, dwarp_request, &dwarp); }, 10s));
  ASSERT_EQ(dwarp.records_size(), 1);
  EXPECT_TRUE(dwarp.records(0).status() == v1::DWARP_REACHED || dwarp.records(0).status() == v1::DWARP_NOT_REACHED)
      << dwarp.records(0).DebugString();

  Kill(worker_);
  Kill(coordinator_);
  EXPECT_EQ(Query("PRAGMA integrity_check"), "ok");
}

}  // namespace
