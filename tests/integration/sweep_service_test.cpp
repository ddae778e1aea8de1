// The sweep service end to end, as real processes on loopback: dwarp-coordinator (SQLite file) and
// dwarp-worker daemons training real (tiny) jobs on Fashion-MNIST images, driven over gRPC like the CLI.
//   - a sweep completes with two workers; results and d_warp over RPC match a recomputation here, and every
//     result carries (and the database stores) the synthetic brain's noise ceiling
//   - a worker killed with SIGKILL mid-job: its lease expires, another worker finishes, exactly one result
//   - the coordinator killed with SIGKILL mid-sweep and restarted on the same database: the sweep
//     completes, nothing lost or duplicated, PRAGMA integrity_check is ok, and its noise-ceiling threshold
//     is judged from the ceilings the results carried (stored, reloaded)
//   - the coordinator down (shorter than the lease TTL) while a job finishes: the worker keeps the result and
//     delivers it after the restart; exactly one result, no re-run, even with max_attempts: 1
//   - the coordinator killed mid-job and restarted: the worker reopens its metric stream and the stored
//     curve has every epoch once, those trained during the outage included
//   - a stale lease is refused, a call without the token is refused, cancel stops a running job
//   - malformed sweeps, unknown models, d < 0: a clear error and nothing written
// Ports are chosen by the OS. Skipped (not failed) when Debian's dataset-fashion-mnist is not installed.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "common/child_process.h"
#include "common/rpc/connection.h"
#include "dwarp/v1/dwarp.grpc.pb.h"
#include "tests/integration/integration_helpers.h"
#include "tests/support/test_dir.h"

namespace {

namespace fs = std::filesystem;
namespace v1 = dwarp::v1;
using namespace std::chrono_literals;

const char* kImages = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

// Starts a child process whose output goes to `log` (the test fails at once if it cannot start).
dwarp::ChildProcess Spawn(const std::vector<std::string>& args, const fs::path& log) {
  auto child = dwarp::ChildProcess::Start(args, log.string());
  EXPECT_TRUE(child.ok()) << child.status();
  return child.ok() ? std::move(*child) : dwarp::ChildProcess();
}

// Kills a child with SIGKILL and reaps it.
void KillNow(dwarp::ChildProcess& child) {
  child.Signal(SIGKILL);
  child.Wait();
}

using dwarp::integration::FreePort;

// The synthetic brain's noise ceiling (noise 0.1 in Sweep's dataset): 1 / (1 + noise^2) for every neuroid.
constexpr double kNoiseCeiling = 1.0 / (1.0 + 0.1 * 0.1);

// Where a score curve (d -> score, in increasing d) first reaches `threshold`: the first grid d at or above
// it and the last d before that; -1 for either that does not exist.
struct Crossing {
  int64_t below = -1;
  int64_t at = -1;
};
Crossing FirstCrossing(const std::map<int64_t, double>& curve, double threshold) {
  Crossing crossing;
  for (const auto& [d, score] : curve) {
    if (score >= threshold) {
      crossing.at = d;
      break;
    }
    crossing.below = d;
  }
  return crossing;
}

std::string Sweep(const std::string& name, const std::string& dims, const std::string& seeds, int epochs,
                  int stimuli = 300, bool one_model = false,
                  const std::string& threshold = "{kind: fraction_of_dataset_best, value: 0.8}") {
  return "name: " + name + "\n" +
         "models:\n"
         "  - {name: small, arch: mlp, hidden: [16], layers: [fc1], layer_groups: []}\n" +
         (one_model ? "" : "  - {name: wide, arch: mlp, hidden: [48], layers: [fc1], layer_groups: []}\n") +
         "datasets:\n"
         "  - {name: syn, kind: synthetic, images: " + kImages + ", limit_stimuli: " + std::to_string(stimuli) +
         ", synthetic: {targets: 4, warp_dim: 3, noise: 0.1}}\n"
         "dims: " + dims + "\n" +
         "seeds: " + seeds + "\n" +
         "train: {lr: 1.0e-2, batch_size: 32, max_epochs: " + std::to_string(epochs) + ", patience: 0, threads: 1}\n" +
         "threshold: " + threshold + "\n";
}

class SweepServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kImages)) GTEST_SKIP() << kImages << " not installed";
    dir_ = dwarp::testing::FreshTestDir("dwarp-sweep-service");
  }
  void TearDown() override {
    workers_.clear();
    KillNow(coordinator_);
    if (!HasFailure()) fs::remove_all(dir_);
  }

  // Starts dwarp-coordinator on `port` (0: any) and connects a channel to it.
  void StartCoordinator(int port = 0, std::vector<std::string> extra = {}) {
    const fs::path port_file = dir_ / "port";
    fs::remove(port_file);
    std::vector<std::string> args = {DWARP_COORDINATOR_BIN, "--db", (dir_ / "dwarp.db").string(),
                                     "--listen", "127.0.0.1:" + std::to_string(port), "--port-file",
                                     port_file.string(), "--lease-ttl", lease_ttl_s_, "--heartbeat-interval",
                                     heartbeat_interval_s_};
    args.insert(args.end(), extra.begin(), extra.end());
    coordinator_ = Spawn(args, dir_ / ("coordinator-" + std::to_string(++coordinator_starts_) + ".log"));
    ASSERT_TRUE(coordinator_.running());
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (!fs::exists(port_file) && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(20ms);
    ASSERT_TRUE(fs::exists(port_file)) << coordinator_.Log();
    std::ifstream(port_file) >> port_;
    connection_.address = "127.0.0.1:" + std::to_string(port_);
    auto channel = dwarp::rpc::MakeChannel(connection_);
    ASSERT_TRUE(channel.ok());
    sweeps_ = v1::SweepService::NewStub(*channel);
    worker_stub_ = v1::WorkerService::NewStub(*channel);
  }

  // Each worker keeps its state in a folder of its own under the test's folder unless `extra` names one.
  void StartWorker(const std::string& name, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {DWARP_WORKER_BIN, "--coordinator", connection_.address, "--devices", "cpu",
                                     "--threads", "1", "--name", name, "--drain-timeout", "5"};
    if (std::find(extra.begin(), extra.end(), "--state-dir") == extra.end()) {
      args.push_back("--state-dir");
      args.push_back((dir_ / ("state-" + name)).string());
    }
    args.insert(args.end(), extra.begin(), extra.end());
    workers_[name] = Spawn(args, dir_ / (name + ".log"));
    ASSERT_TRUE(workers_[name].running());
  }

  grpc::Status Submit(const std::string& text, v1::SubmitResponse* response) {
    v1::SubmitRequest request;
    request.set_sweep_text(text);
    request.set_format("yaml");
    request.set_source_name("test.yaml");
    grpc::ClientContext context;
    dwarp::rpc::PrepareContext(context, connection_, 30s);
    return sweeps_->Submit(&context, request, response);
  }

  std::string SubmitOk(const std::string& text) {
    v1::SubmitResponse response;
    grpc::Status status = Submit(text, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.sweep().sweep_id();
  }

  // A SweepService call about one sweep, with the token and a 10 s deadline; a failed call fails the test.
  template <typename Request, typename Response>
  Response AskAboutSweep(grpc::Status (v1::SweepService::Stub::*method)(grpc::ClientContext*, const Request&,
                                                                          Response*),
                         const std::string& sweep) {
    Request request;
    request.set_sweep_id(sweep);
    Response response;
    grpc::ClientContext context;
    dwarp::rpc::PrepareContext(context, connection_, 10s);
    const grpc::Status status = (sweeps_.get()->*method)(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  v1::ResultsResponse Results(const std::string& sweep) {
    return AskAboutSweep(&v1::SweepService::Stub::Results, sweep);
  }

  v1::DWarpResponse DWarp(const std::string& sweep) { return AskAboutSweep(&v1::SweepService::Stub::DWarp, sweep); }

  // Polls until `done` holds for the sweep's results, or fails after `timeout`.
  template <typename Predicate>
  v1::ResultsResponse WaitFor(const std::string& sweep, Predicate done, std::chrono::seconds timeout,
                              const std::string& what) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    v1::ResultsResponse results;
    while (std::chrono::steady_clock::now() < deadline) {
      v1::ResultsRequest request;
      request.set_sweep_id(sweep);
      grpc::ClientContext context;
      dwarp::rpc::PrepareContext(context, connection_, 5s);
      if (sweeps_->Results(&context, request, &results).ok() && done(results)) return results;
      std::this_thread::sleep_for(100ms);
    }
    ADD_FAILURE() << "timed out waiting for " << what << "\ncoordinator log:\n" << coordinator_.Log();
    return results;
  }

  // Waits until `count` workers are registered: jobs of a small sweep take milliseconds, so a worker that
  // is still starting when the sweep is submitted may find nothing left to do.
  void WaitForWorkers(int count) {
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    v1::ListWorkersResponse listed;
    while (std::chrono::steady_clock::now() < deadline) {
      grpc::ClientContext context;
      dwarp::rpc::PrepareContext(context, connection_, 5s);
      if (sweeps_->ListWorkers(&context, v1::ListWorkersRequest(), &listed).ok() && listed.workers_size() >= count) return;
      std::this_thread::sleep_for(50ms);
    }
    ADD_FAILURE() << "timed out waiting for " << count << " workers to register (" << listed.workers_size() << " did)";
  }

  // One single-attempt job of `epochs` epochs (lease TTL 8 s, heartbeats every second) on a coordinator that
  // is SIGKILLed once the job has reported epoch `kill_after_epoch` and restarted on the same port after
  // `outage`; returns the job once the sweep has finished (within `finish_within` of the restart).
  v1::Job RunOneJobThroughACoordinatorRestart(const std::string& name, int epochs, int64_t kill_after_epoch,
                                              std::chrono::milliseconds outage, std::chrono::seconds finish_within) {
    lease_ttl_s_ = "8";
    heartbeat_interval_s_ = "1";
    const int port = FreePort();
    StartCoordinator(port);
    StartWorker("w1");
    const std::string sweep =
        SubmitOk(Sweep(name, "[10]", "[0]", epochs, 2000, /*one_model=*/true) + "max_attempts: 1\n");
    EXPECT_FALSE(sweep.empty());
    WaitFor(
        sweep,
        [kill_after_epoch](const v1::ResultsResponse& r) {
          return r.jobs_size() == 1 && r.jobs(0).latest_metric().epoch() >= kill_after_epoch;
        },
        60s, "the job's epoch " + std::to_string(kill_after_epoch));
    KillNow(coordinator_);
    std::this_thread::sleep_for(outage);
    StartCoordinator(port);
    v1::ResultsResponse results = WaitFor(sweep, Finished, finish_within, "the sweep to finish after the restart");
    EXPECT_EQ(results.jobs_size(), 1);
    return results.jobs_size() == 1 ? results.jobs(0) : v1::Job();
  }

  static bool Finished(const v1::ResultsResponse& results) {
    return results.sweep().state() == v1::SWEEP_DONE || results.sweep().state() == v1::SWEEP_CANCELLED;
  }

  // One value from the database file, read with sqlite3 directly (not through the coordinator).
  std::string Query(const std::string& sql) { return dwarp::integration::QueryDatabase((dir_ / "dwarp.db").string(), sql); }

  fs::path dir_;
  std::string lease_ttl_s_ = "1.5", heartbeat_interval_s_ = "0.3";  // what StartCoordinator passes
  dwarp::ChildProcess coordinator_;
  int coordinator_starts_ = 0;
  std::map<std::string, dwarp::ChildProcess> workers_;
  int port_ = 0;
  dwarp::rpc::ConnectionOptions connection_;
  std::unique_ptr<v1::SweepService::Stub> sweeps_;
  std::unique_ptr<v1::WorkerService::Stub> worker_stub_;
};

TEST_F(SweepServiceTest, SmallSweepCompletesWithTwoWorkersAndDWarpIsRight) {
  StartCoordinator();
  StartWorker("w1");
  StartWorker("w2");
  WaitForWorkers(2);
  const std::string sweep = SubmitOk(Sweep("small", "[0, 10, 100]", "[0, 1]", 4));
  v1::ResultsResponse results = WaitFor(sweep, Finished, 180s, "the sweep to finish");
  ASSERT_EQ(results.sweep().state(), v1::SWEEP_DONE);
  ASSERT_EQ(results.jobs_size(), 12);
  std::set<std::string> workers_used;
  // Mean test score per (model, d) as the coordinator must compute it.
  std::map<std::string, std::map<int64_t, std::vector<double>>> scores;
  for (const v1::Job& job : results.jobs()) {
    EXPECT_EQ(job.state(), v1::JOB_SUCCEEDED) << job.key().model() << " d=" << job.key().d() << ": " << job.error();
    EXPECT_EQ(job.attempt(), 1);
    ASSERT_TRUE(job.has_result());
    EXPECT_EQ(job.result().metric(), "r2");
    EXPECT_TRUE(std::isfinite(job.result().test_score()));
    EXPECT_EQ(job.result().epochs_run(), job.key().d() == "0" ? job.result().epochs_run() : 4);
    ASSERT_TRUE(job.result().has_noise_ceiling());
    EXPECT_NEAR(job.result().noise_ceiling(), kNoiseCeiling, 1e-6);
    workers_used.insert(job.worker_id());
    scores[job.key().model()][std::stoll(job.key().d())].push_back(job.result().test_score());
  }
  EXPECT_EQ(workers_used.size(), 2u) << "both workers should have taken jobs";
  EXPECT_EQ(Query("SELECT COUNT(*) FROM results"), "12");
  EXPECT_EQ(Query("SELECT COUNT(*) FROM results WHERE abs(noise_ceiling - 1.0 / 1.01) < 1e-6"), "12");
  // The stored result JSON is the worker's report without the spec, which the job's row keeps; its counts
  // are the result's own.
  EXPECT_EQ(Query("SELECT COUNT(*) FROM results WHERE json_type(result_json, '$.spec') IS NULL AND "
                  "json_type(result_json, '$.scores.test.r2') = 'real' AND "
                  "json_extract(result_json, '$.trained_parameters') = trained_d AND "
                  "json_extract(result_json, '$.D') = warped_params AND warped_params > 0"),
            "12");
  EXPECT_EQ(Query("SELECT COUNT(*) FROM jobs WHERE json_type(spec_json, '$.model') = 'object'"), "12");

  // d_warp: threshold = 0.8 x the best mean score on the dataset; first grid d at or above, refined in log d.
  double best = -1e9;
  std::map<std::string, std::map<int64_t, double>> means;
  for (auto& [model, by_d] : scores)
    for (auto& [d, values] : by_d) {
      double sum = 0;
      for (double v : values) sum += v;
      means[model][d] = sum / values.size();
      best = std::max(best, means[model][d]);
    }
  const double threshold = 0.8 * best;
  const v1::DWarpResponse dwarp = DWarp(sweep);
  ASSERT_EQ(dwarp.records_size(), 2);
  for (const v1::DWarpRecord& record : dwarp.records()) {
    EXPECT_NEAR(record.threshold(), threshold, 1e-9);
    ASSERT_TRUE(record.has_noise_ceiling());
    EXPECT_NEAR(record.noise_ceiling(), kNoiseCeiling, 1e-6);
    const auto& curve = means[record.model()];
    const auto [below, crossing] = FirstCrossing(curve, threshold);
    if (crossing < 0) {
      EXPECT_EQ(record.status(), v1::DWARP_NOT_REACHED) << record.model();
      continue;
    }
    // Reached, or provisional when the two seeds leave open which side of a grid point the crossing is on.
    if (record.status() == v1::DWARP_PROVISIONAL)
      EXPECT_NE(record.note().find("the seeds leave open"), std::string::npos) << record.note();
    else
      EXPECT_EQ(record.status(), v1::DWARP_REACHED) << record.model() << ": " << record.note();
    EXPECT_EQ(record.grid_d(), crossing);
    ASSERT_TRUE(record.has_d_warp_low() && record.has_d_warp_high()) << record.model();
    EXPECT_LE(record.d_warp_low(), record.d_warp() * (1 + 1e-9)) << record.model();
    EXPECT_GE(record.d_warp_high(), record.d_warp() * (1 - 1e-9)) << record.model();
    double expected = static_cast<double>(crossing);
    if (below > 0) {
      const double t = (threshold - curve.at(below)) / (curve.at(crossing) - curve.at(below));
      expected = std::pow(10.0, std::log10(below) + t * (std::log10(crossing) - std::log10(below)));
    }
    EXPECT_NEAR(record.d_warp(), expected, 1e-6 * expected) << record.model();
  }

  // Both workers are listed, and SIGTERM drains them to a clean exit.
  v1::ListWorkersResponse listed;
  grpc::ClientContext list_context;
  ASSERT_TRUE(sweeps_->ListWorkers(&list_context, v1::ListWorkersRequest(), &listed).ok());
  EXPECT_EQ(listed.workers_size(), 2);
  for (auto& [name, worker] : workers_) {
    worker.Signal(SIGTERM);
    EXPECT_EQ(worker.Wait(30s), 0) << worker.Log();
  }
}

// An adaptive sweep through real processes: the coordinator adds bisection jobs as results land, each
// inside the bracket the results so far leave, with its reason stored, until the bracket is within 25%.
// The quickstart's category brain and deep40 candidate (README), whose score rises with d through the
// threshold between d = 300 and 3000.
TEST_F(SweepServiceTest, AnAdaptiveSweepBisectsTheBracketUntilItIsNarrowAndStoresWhy) {
  StartCoordinator();
  StartWorker("w1");
  WaitForWorkers(1);
  const std::string text =
      std::string("name: adaptive\n") +
      "models: [{name: deep40, arch: mlp, hidden: [64, 40], layers: [fc2], layer_groups: []}]\n"
      "datasets:\n"
      "  - {name: brain, kind: synthetic, images: " + kImages +
      ", labels: /usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz, limit_stimuli: 2000,"
      " synthetic: {targets: 32, categories: 1.0, noise: 0.1, seed: 0,"
      " teacher: {arch: small_cnn, layer: avgpool, projection: per_tensor}}}\n"
      "dims: [0, 300, 3000]\n"
      "seeds: [0]\n"
      "readout: ridge\n"
      "train: {lr: 1.0e-3, low_dim_lr: 2.0e-2, batch_size: 32, max_epochs: 20, patience: 6, head_init: ridge}\n"
      "threshold: {kind: fraction_of_noise_ceiling, value: 0.515}\n"
      "search: {mode: adaptive, rel_width: 0.25, max_jobs: 12}\n";
  const std::string sweep = SubmitOk(text);
  v1::ResultsResponse results = WaitFor(sweep, Finished, 300s, "the adaptive sweep to finish");
  ASSERT_EQ(results.sweep().state(), v1::SWEEP_DONE);
  ASSERT_GT(results.jobs_size(), 3) << "no job was added to the coarse grid";
  ASSERT_LE(results.jobs_size(), 12);
  // In creation order: the coarse grid, then one bisection at a time, each strictly inside the bracket
  // of the results before it.
  double threshold = 0.515 * kNoiseCeiling;
  std::map<int64_t, double> scores;
  std::set<int64_t> seen;
  for (int i = 0; i < results.jobs_size(); ++i) {
    const v1::Job& job = results.jobs(i);
    ASSERT_EQ(job.state(), v1::JOB_SUCCEEDED) << job.key().d() << ": " << job.error();
    const int64_t d = std::stoll(job.key().d());
    EXPECT_TRUE(seen.insert(d).second) << "d = " << d << " created twice";
    if (i < 3) {
      EXPECT_EQ(job.reason(), "coarse grid");
    } else {
      const auto [lo, hi] = FirstCrossing(scores, threshold);
      ASSERT_GE(lo, 0) << "a bisection without a bracket";
      ASSERT_GE(hi, 0) << "a bisection without a bracket";
      EXPECT_EQ(job.reason(), "bisect log d between d = " + std::to_string(lo) + " and " + std::to_string(hi));
      EXPECT_GT(d, lo);
      EXPECT_LT(d, hi);
      EXPECT_EQ(d, std::llround(std::sqrt(static_cast<double>(std::max<int64_t>(lo, 1)) * hi)));
    }
    scores[d] = job.result().test_score();
  }
  EXPECT_EQ(Query("SELECT COUNT(*) FROM jobs WHERE reason LIKE 'bisect log d between%'"),
            std::to_string(results.jobs_size() - 3));
  const v1::DWarpResponse dwarp = DWarp(sweep);
  ASSERT_EQ(dwarp.records_size(), 1);
  const v1::DWarpRecord& record = dwarp.records(0);
  EXPECT_EQ(record.status(), v1::DWARP_REACHED) << record.note();
  // Settled: the last bracket is within 25% (or the budget of 12 jobs was spent), and d_warp lies in it;
  // one seed per d, so the interval is the bracket.
  if (results.jobs_size() < 12) EXPECT_LE(record.grid_d(), 1.25 * record.below_d());
  EXPECT_GE(record.d_warp(), record.below_d());
  EXPECT_LE(record.d_warp(), record.grid_d());
  EXPECT_FALSE(record.interval_bootstrap());
  EXPECT_DOUBLE_EQ(record.d_warp_low(), record.below_d());
  EXPECT_DOUBLE_EQ(record.d_warp_high(), record.grid_d());
}

TEST_F(SweepServiceTest, KilledWorkersJobIsFinishedByAnotherWithExactlyOneResult) {
  StartCoordinator();
  StartWorker("doomed");
  // One job long enough to kill its worker mid-way.
  const std::string sweep = SubmitOk(Sweep("kill", "[10]", "[0]", 60, 2000, /*one_model=*/true));
  ASSERT_FALSE(sweep.empty());
  v1::ResultsResponse running = WaitFor(
      sweep, [](const v1::ResultsResponse& r) { return r.jobs_size() == 1 && r.jobs(0).latest_metric().epoch() >= 2; },
      60s, "the job to report its second epoch");
  const std::string doomed_id = running.jobs(0).worker_id();
  KillNow(workers_["doomed"]);
  StartWorker("rescuer");
  v1::ResultsResponse results = WaitFor(sweep, Finished, 120s, "the rescued sweep to finish");
  ASSERT_EQ(results.jobs_size(), 1);
  const v1::Job& job = results.jobs(0);
  EXPECT_EQ(job.state(), v1::JOB_SUCCEEDED) << job.error();
  EXPECT_EQ(job.attempt(), 2);
  EXPECT_NE(job.worker_id(), doomed_id);
  EXPECT_EQ(Query("SELECT COUNT(*) FROM results WHERE job_id = " + std::to_string(job.job_id())), "1");
  EXPECT_NE(coordinator_.Log().find("expired"), std::string::npos);
}

TEST_F(SweepServiceTest, CoordinatorKilledMidSweepRestartsAndNothingIsLostOrDuplicated) {
  const int port = FreePort();
  StartCoordinator(port);
  StartWorker("w1");
  StartWorker("w2");
  // Judged against the data's noise ceiling, which must survive the restart with the results it came with.
  const std::string sweep = SubmitOk(Sweep("crash", "[0, 10, 30, 100]", "[0, 1]", 8, 600, /*one_model=*/false,
                                           "{kind: fraction_of_noise_ceiling, value: 0.8}"));
  WaitFor(sweep, [](const v1::ResultsResponse& r) { return r.sweep().counts().succeeded() >= 3; }, 120s,
          "three results before the crash");
  KillNow(coordinator_);
  std::this_thread::sleep_for(300ms);
  StartCoordinator(port);
  v1::ResultsResponse results = WaitFor(sweep, Finished, 240s, "the sweep to finish after the restart");
  ASSERT_EQ(results.sweep().state(), v1::SWEEP_DONE);
  ASSERT_EQ(results.jobs_size(), 16);
  for (const v1::Job& job : results.jobs()) EXPECT_EQ(job.state(), v1::JOB_SUCCEEDED) << job.error();
  EXPECT_EQ(Query("SELECT COUNT(*) FROM results"), "16");
  EXPECT_EQ(Query("SELECT COUNT(*) FROM (SELECT job_id FROM results GROUP BY job_id HAVING COUNT(*) > 1)"), "0");
  EXPECT_EQ(Query("SELECT COUNT(*) FROM jobs"), "16");
  EXPECT_EQ(Query("PRAGMA integrity_check"), "ok");

  const v1::DWarpResponse judged = DWarp(sweep);
  EXPECT_EQ(judged.sweep().threshold().kind(), v1::Threshold::FRACTION_OF_NOISE_CEILING);
  ASSERT_EQ(judged.records_size(), 2);
  for (const v1::DWarpRecord& record : judged.records()) {
    ASSERT_TRUE(record.has_noise_ceiling()) << record.note();
    EXPECT_NEAR(record.noise_ceiling(), kNoiseCeiling, 1e-6);
    EXPECT_NEAR(record.threshold(), 0.8 * record.noise_ceiling(), 1e-12);
    // Every job finished and the ceiling is known: the status is final.
    EXPECT_TRUE(record.status() == v1::DWARP_REACHED || record.status() == v1::DWARP_NOT_REACHED)
        << record.model() << ": " << record.note();
  }
}

TEST_F(SweepServiceTest, ResultFinishedWhileTheCoordinatorIsDownIsDeliveredAfterItsRestart) {
  // An outage far shorter than the lease TTL must cost nothing: no lost result, no re-run, no failure.
  // The job (about 2 s) finishes while the coordinator is down; the outage lasts a few seconds.
  const v1::Job job = RunOneJobThroughACoordinatorRestart("outage", 150, 1, 3000ms, 30s);
  EXPECT_EQ(job.state(), v1::JOB_SUCCEEDED) << job.error() << "\n" << workers_["w1"].Log();
  EXPECT_EQ(job.attempt(), 1) << "the job ran again";
  EXPECT_EQ(Query("SELECT COUNT(*) FROM results"), "1");
  EXPECT_EQ(Query("SELECT attempt FROM results"), "1");
}

// The held results (*.held) in a worker's state folder.
std::vector<fs::path> HeldFiles(const fs::path& state) {
  std::vector<fs::path> held;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(state, error))
    if (entry.path().extension() == ".held") held.push_back(entry.path());
  return held;
}

TEST_F(SweepServiceTest, AResultLeftInTheStateFolderByAKilledWorkerIsDeliveredByTheNextWorkerProcess) {
  // The job finishes while the coordinator is down; its worker keeps the result on disk and is SIGKILLed
  // before it could deliver it. A new worker process with the same state folder delivers it, in the name of
  // the worker the lease was granted to, once the coordinator is back: one result, attempt 1, no re-run.
  lease_ttl_s_ = "30";
  heartbeat_interval_s_ = "1";
  const int port = FreePort();
  StartCoordinator(port);
  const fs::path state = dir_ / "state";
  StartWorker("w1", {"--state-dir", state.string()});
  WaitForWorkers(1);
  const std::string sweep = SubmitOk(Sweep("held", "[10]", "[0]", 150, 2000, /*one_model=*/true) + "max_attempts: 1\n");
  ASSERT_FALSE(sweep.empty());
  const v1::ResultsResponse running = WaitFor(
      sweep, [](const v1::ResultsResponse& r) { return r.jobs_size() == 1 && r.jobs(0).latest_metric().epoch() >= 1; },
      60s, "the job's first epoch");
  const std::string first_worker = running.jobs(0).worker_id();
  KillNow(coordinator_);
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (HeldFiles(state).empty() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(20ms);
  ASSERT_EQ(HeldFiles(state).size(), 1u) << workers_["w1"].Log();
  KillNow(workers_["w1"]);
  ASSERT_EQ(HeldFiles(state).size(), 1u) << "the killed worker's result must stay on disk";

  StartCoordinator(port);
  StartWorker("w2", {"--state-dir", state.string()});
  const v1::ResultsResponse results = WaitFor(sweep, Finished, 30s, "the held result to be delivered");
  ASSERT_EQ(results.jobs_size(), 1);
  const v1::Job& job = results.jobs(0);
  EXPECT_EQ(job.state(), v1::JOB_SUCCEEDED) << job.error() << "\n" << workers_["w2"].Log();
  EXPECT_EQ(job.attempt(), 1) << "the job ran again";
  EXPECT_EQ(job.result().epochs_run(), 150);
  EXPECT_EQ(Query("SELECT COUNT(*) FROM results"), "1");
  EXPECT_EQ(Query("SELECT attempt FROM results"), "1");
  EXPECT_EQ(Query("SELECT worker_id FROM results"), first_worker);  // delivered in the lease holder's name
  EXPECT_NE(workers_["w2"].Log().find("delivering the result an earlier run left"), std::string::npos)
      << workers_["w2"].Log();
  const auto gone = std::chrono::steady_clock::now() + 10s;
  while (!HeldFiles(state).empty() && std::chrono::steady_clock::now() < gone) std::this_thread::sleep_for(20ms);
  EXPECT_TRUE(HeldFiles(state).empty()) << "a delivered result's file is deleted";
}

TEST_F(SweepServiceTest, CurvePointsOfAJobRunningThroughACoordinatorRestartAreAllStoredOnce) {
  // The coordinator dies mid-job and comes back: the worker reopens its metric stream and sends again
  // what it held, so the stored curve has every epoch, once, including those trained during the outage.
  const v1::Job job = RunOneJobThroughACoordinatorRestart("curve", 450, 20, 1500ms, 60s);
  ASSERT_EQ(job.state(), v1::JOB_SUCCEEDED) << job.error() << "\n" << workers_["w1"].Log();
  EXPECT_EQ(job.attempt(), 1) << "the job ran again";
  ASSERT_EQ(job.result().epochs_run(), 450);
  const std::string id = std::to_string(job.job_id());
  EXPECT_EQ(Query("SELECT COUNT(*) FROM metrics WHERE job_id = " + id), "450") << workers_["w1"].Log();
  EXPECT_EQ(Query("SELECT COUNT(DISTINCT epoch) FROM metrics WHERE job_id = " + id + " AND attempt = 1"), "450");
  EXPECT_EQ(Query("SELECT MIN(epoch) || '..' || MAX(epoch) FROM metrics WHERE job_id = " + id), "1..450");
  EXPECT_NE(workers_["w1"].Log().find("the metric stream is open again"), std::string::npos) << workers_["w1"].Log();
  EXPECT_EQ(Query("PRAGMA integrity_check"), "ok");
}

TEST_F(SweepServiceTest, TokenStaleLeaseAndCancel) {
  const fs::path token_file = dir_ / "token";
  std::ofstream(token_file) << "s3cret-token\n";
  fs::permissions(token_file, fs::perms::owner_read | fs::perms::owner_write);  // others may not read it
  StartCoordinator(0, {"--token-file", token_file.string()});
  // Without the token: refused.
  {
    v1::ListSweepsResponse response;
    grpc::ClientContext context;
    grpc::Status status = sweeps_->List(&context, v1::ListSweepsRequest(), &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    grpc::ClientContext wrong;
    wrong.AddMetadata("authorization", "Bearer not-it");
    EXPECT_EQ(sweeps_->List(&wrong, v1::ListSweepsRequest(), &response).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  connection_.token = "s3cret-token";
  // A completion with a lease that is not the job's current one is refused.
  {
    v1::RegisterRequest request;
    request.set_name("manual");
    request.add_devices("cpu");
    v1::RegisterResponse registered;
    grpc::ClientContext context;
    dwarp::rpc::PrepareContext(context, connection_);
    ASSERT_TRUE(worker_stub_->Register(&context, request, &registered).ok());
    v1::CompleteRequest complete;
    complete.set_worker_id(registered.worker_id());
    complete.set_lease_id("l0000000000000000000000000000dead");
    complete.mutable_result()->set_metric("r2");
    complete.mutable_result()->set_test_score(0.5);
    v1::CompleteResponse completed;
    grpc::ClientContext complete_context;
    dwarp::rpc::PrepareContext(complete_context, connection_);
    complete_context.AddMetadata("dwarp-worker-credential", registered.worker_credential());
    grpc::Status status = worker_stub_->Complete(&complete_context, complete, &completed);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_NE(status.error_message().find("stale lease"), std::string::npos) << status.error_message();
  }
  // Cancel reaches a running job: it stops streaming, records no result, and the worker keeps serving.
  {
    ::setenv("DWARP_TOKEN", "s3cret-token", 1);
    StartWorker("w1");
    ::unsetenv("DWARP_TOKEN");
    const std::string sweep = SubmitOk(Sweep("cancel", "[10]", "[0]", 400, 2000, /*one_model=*/true));
    v1::ResultsResponse running = WaitFor(
        sweep, [](const v1::ResultsResponse& r) {
          for (const v1::Job& job : r.jobs())
            if (job.state() == v1::JOB_RUNNING && job.latest_metric().epoch() >= 1) return true;
          return false;
        },
        60s, "a running job");
    v1::CancelSweepRequest request;
    request.set_sweep_id(sweep);
    v1::CancelSweepResponse cancelled;
    grpc::ClientContext context;
    dwarp::rpc::PrepareContext(context, connection_);
    ASSERT_TRUE(sweeps_->Cancel(&context, request, &cancelled).ok());
    EXPECT_EQ(cancelled.cancelling_running(), 1);
    EXPECT_EQ(cancelled.sweep().state(), v1::SWEEP_CANCELLED);
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (workers_["w1"].Log().find("cancel") == std::string::npos && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(100ms);
    EXPECT_NE(workers_["w1"].Log().find("cancel"), std::string::npos) << workers_["w1"].Log();
    v1::ResultsResponse after = Results(sweep);
    for (const v1::Job& job : after.jobs()) {
      EXPECT_EQ(job.state(), v1::JOB_CANCELLED);
      EXPECT_FALSE(job.has_result());
    }
    EXPECT_EQ(Query("SELECT COUNT(*) FROM results"), "0");
    // The worker is still alive and drains cleanly.
    workers_["w1"].Signal(SIGTERM);
    EXPECT_EQ(workers_["w1"].Wait(30s), 0) << workers_["w1"].Log();
  }
}

TEST_F(SweepServiceTest, BadSweepsFailClearlyAndWriteNothing) {
  StartCoordinator();
  struct Case {
    std::string text;
    std::string expect;  // in the message
  };
  const std::string good = Sweep("bad", "[0, 10]", "[0]", 2);
  std::vector<Case> cases = {
      {"name: bad\nmodels: [ {name: m, arch: mlp\n", "test.yaml"},
      {std::string(good).replace(good.find("arch: mlp"), 9, "arch: vgg99"), "vgg99"},
      {std::string(good).replace(good.find("kind: synthetic"), 15, "kind: fmri9"), "fmri9"},
      {std::string(good).replace(good.find("dims: [0, 10]"), 13, "dims: [0, -3]"), "-3"},
  };
  for (const Case& c : cases) {
    v1::SubmitResponse response;
    grpc::Status status = Submit(c.text, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.text;
    EXPECT_NE(status.error_message().find(c.expect), std::string::npos) << status.error_message();
  }
  EXPECT_EQ(Query("SELECT COUNT(*) FROM sweeps"), "0");
  EXPECT_EQ(Query("SELECT COUNT(*) FROM jobs"), "0");
}

TEST(CoordinatorProcessTest, RefusesANetworkAddressWithoutAToken) {
  const fs::path log = fs::temp_directory_path() / ("dwarp-coordinator-refuse-" + std::to_string(::getpid()) + ".log");
  dwarp::ChildProcess coordinator = Spawn({DWARP_COORDINATOR_BIN, "--db", ":memory:", "--listen", "0.0.0.0:0"}, log);
  EXPECT_EQ(coordinator.Wait(20s), 2);
  EXPECT_NE(coordinator.Log().find("without a token"), std::string::npos) << coordinator.Log();
  fs::remove(log);
}

}  // namespace
