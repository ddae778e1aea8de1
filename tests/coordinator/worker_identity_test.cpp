// Per-worker credentials over real gRPC: the coordinator's services (grpc_server.h) in process on an
// OS-chosen loopback port, with the shared token on, and two workers that both hold the token. The holder of
// one worker's credential cannot act as the other (heartbeats, draining, Acquire, metrics, Complete, Fail,
// registering again under its id); credentials survive a coordinator restart on SQLite; and a worker id
// with no credential is never taken over.
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "coordinator/grpc_server.h"
#include "coordinator/scheduler.h"
#include "coordinator/sqlite_store.h"
#include "coordinator/worker_credentials.h"
#include "dwarp/v1/dwarp.grpc.pb.h"
#include "tests/support/test_dir.h"

namespace dwarp::coordinator {
namespace {

namespace fs = std::filesystem;

constexpr char kToken[] = "shared-enrollment-token";

struct Worker {
  std::string id;
  std::string credential;
};

class WorkerIdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = dwarp::testing::FreshTestDir("dwarp_worker_identity");
    StartCoordinator();
  }

  void TearDown() override {
    StopCoordinator();
    fs::remove_all(dir_);
  }

  void StartCoordinator() {
    auto store = SqliteSweepStore::Open((dir_ / "dwarp.db").string());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    SchedulerOptions options;
    options.reap_interval_ms = 0;
    options.metric_flush_ms = 0;
    auto scheduler = Scheduler::Create(store_.get(), options);
    ASSERT_TRUE(scheduler.ok()) << scheduler.status();
    scheduler_ = std::move(*scheduler);
    ServerOptions server_options;
    server_options.listen = "127.0.0.1:0";
    server_options.token = kToken;
    auto server = CoordinatorServer::Start(scheduler_.get(), server_options, store_.get());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                       grpc::InsecureChannelCredentials());
    workers_ = v1::WorkerService::NewStub(channel);
    sweeps_ = v1::SweepService::NewStub(channel);
  }

  void StopCoordinator() {
    server_.reset();
    scheduler_.reset();
    store_.reset();
  }

  // A context with the shared token, and a worker credential when one is given.
  static void Prepare(grpc::ClientContext& context, const std::string& credential) {
    context.AddMetadata("authorization", std::string("Bearer ") + kToken);
    if (!credential.empty()) context.AddMetadata(kWorkerCredentialMetadata, credential);
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  }

  // One call of `method` on `stub`, its context prepared with `credential` (none when empty).
  template <typename Stub, typename Request, typename Response>
  static grpc::Status Call(Stub& stub, grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                           const Request& request, Response* response, const std::string& credential = "") {
    grpc::ClientContext context;
    Prepare(context, credential);
    return (stub.*method)(&context, request, response);
  }

  // A CPU worker named `name` registering, again as `worker_id` when one is given.
  static v1::RegisterRequest RegisterRequest(const std::string& name, const std::string& worker_id = "") {
    v1::RegisterRequest request;
    request.set_name(name);
    request.add_devices("cpu");
    request.set_worker_id(worker_id);
    return request;
  }

  Worker Register(const std::string& name) {
    v1::RegisterResponse response;
    const grpc::Status status = Call(*workers_, &v1::WorkerService::Stub::Register, RegisterRequest(name), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return {response.worker_id(), response.worker_credential()};
  }

  grpc::Status Heartbeat(const std::string& worker_id, const std::string& credential, bool draining,
                         v1::HeartbeatResponse* response, const std::string& lease_id = "") {
    v1::HeartbeatRequest request;
    request.set_worker_id(worker_id);
    request.set_draining(draining);
    if (!lease_id.empty()) request.add_lease_ids(lease_id);
    return Call(*workers_, &v1::WorkerService::Stub::Heartbeat, request, response, credential);
  }

  grpc::Status Acquire(const std::string& worker_id, const std::string& credential, v1::AcquireResponse* response) {
    v1::AcquireRequest request;
    request.set_worker_id(worker_id);
    request.set_device("cpu");
    request.set_wait_ms(2000);
    return Call(*workers_, &v1::WorkerService::Stub::Acquire, request, response, credential);
  }

  grpc::Status Complete(const std::string& worker_id, const std::string& credential, const std::string& lease_id,
                        double score) {
    v1::CompleteRequest request;
    request.set_worker_id(worker_id);
    request.set_lease_id(lease_id);
    request.mutable_result()->set_metric("r2");
    request.mutable_result()->set_test_score(score);
    v1::CompleteResponse response;
    return Call(*workers_, &v1::WorkerService::Stub::Complete, request, &response, credential);
  }

  grpc::Status Fail(const std::string& worker_id, const std::string& credential, const std::string& lease_id) {
    v1::FailRequest request;
    request.set_worker_id(worker_id);
    request.set_lease_id(lease_id);
    request.set_reason("sabotage");
    request.set_retryable(false);
    v1::FailResponse response;
    return Call(*workers_, &v1::WorkerService::Stub::Fail, request, &response, credential);
  }

  grpc::Status StreamOnePoint(const std::string& worker_id, const std::string& credential,
                              const std::string& lease_id) {
    v1::StreamMetricsResponse response;
    grpc::ClientContext context;
    Prepare(context, credential);
    auto writer = workers_->StreamMetrics(&context, &response);
    v1::MetricBatch batch;
    batch.set_worker_id(worker_id);
    batch.set_lease_id(lease_id);
    v1::MetricPoint* point = batch.add_points();
    point->set_epoch(1);
    point->set_val_score(0.5);
    writer->Write(batch);
    writer->WritesDone();
    return writer->Finish();
  }

  std::string SubmitOneJob() {
    v1::SubmitRequest request;
    request.set_sweep_text(
        "name: identity\n"
        "models: [{name: m, arch: mlp, hidden: [8]}]\n"
        "datasets: [{name: syn, kind: synthetic, images: /nonexistent/dwarp/images-idx3-ubyte}]\n"
        "dims: [0]\n"
        "seeds: 1\n");
    request.set_format("yaml");
    v1::SubmitResponse response;
    const grpc::Status status = Call(*sweeps_, &v1::SweepService::Stub::Submit, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.sweep().sweep_id();
  }

  v1::Job OnlyJob(const std::string& sweep_id) {
    v1::ResultsRequest request;
    request.set_sweep_id(sweep_id);
    v1::ResultsResponse response;
    const grpc::Status status = Call(*sweeps_, &v1::SweepService::Stub::Results, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.jobs_size(), 1);
    return response.jobs_size() > 0 ? response.jobs(0) : v1::Job();
  }

  v1::WorkerInfo WorkerInfoOf(const std::string& worker_id) {
    v1::ListWorkersResponse response;
    grpc::ClientContext context;
    Prepare(context, "");
    EXPECT_TRUE(sweeps_->ListWorkers(&context, v1::ListWorkersRequest(), &response).ok());
    for (const v1::WorkerInfo& info : response.workers())
      if (info.worker_id() == worker_id) return info;
    ADD_FAILURE() << "worker " << worker_id << " is not listed";
    return v1::WorkerInfo();
  }

  // A refusal names the worker and never echoes a secret.
  static void ExpectRefused(const grpc::Status& status, grpc::StatusCode code, const Worker& victim,
                            const Worker& attacker, const char* what) {
    EXPECT_EQ(status.error_code(), code) << what << ": " << status.error_message();
    EXPECT_NE(status.error_message().find(victim.id), std::string::npos) << what << ": " << status.error_message();
    EXPECT_EQ(status.error_message().find(victim.credential), std::string::npos) << what;
    EXPECT_EQ(status.error_message().find(attacker.credential), std::string::npos) << what;
  }

  fs::path dir_;
  std::unique_ptr<SqliteSweepStore> store_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<CoordinatorServer> server_;
  std::unique_ptr<v1::WorkerService::Stub> workers_;
  std::unique_ptr<v1::SweepService::Stub> sweeps_;
};

TEST_F(WorkerIdentityTest, RegisterIssuesADistinctCredentialOfAtLeast128Bits) {
  const Worker a = Register("a");
  const Worker b = Register("b");
  ASSERT_FALSE(a.id.empty());
  EXPECT_NE(a.id, b.id);
  EXPECT_GE(a.credential.size(), 32u);  // 32 hex digits = 128 bits; ours carry 256
  EXPECT_NE(a.credential, b.credential);
  // Only a hash is stored: the file does not hold the credential.
  auto stored = store_->LoadWorkerCredentials();
  ASSERT_TRUE(stored.ok()) << stored.status();
  ASSERT_EQ(stored->size(), 2u);
  for (const WorkerCredentialRow& row : *stored) {
    EXPECT_NE(row.secret_sha256, a.credential);
    EXPECT_NE(row.secret_sha256, b.credential);
    EXPECT_EQ(row.secret_sha256, Sha256Hex(row.worker_id == a.id ? a.credential : b.credential));
  }
}

TEST_F(WorkerIdentityTest, ATokenHolderWithOneWorkersCredentialCannotActAsAnother) {
  const Worker victim = Register("victim");
  const Worker attacker = Register("attacker");
  const std::string sweep_id = SubmitOneJob();
  v1::AcquireResponse leased;
  ASSERT_TRUE(Acquire(victim.id, victim.credential, &leased).ok());
  ASSERT_TRUE(leased.has_lease());
  const std::string lease_id = leased.lease().lease_id();

  v1::HeartbeatResponse heartbeat;
  // Draining heartbeats for the victim: with the attacker's credential, and with none.
  ExpectRefused(Heartbeat(victim.id, attacker.credential, /*draining=*/true, &heartbeat, lease_id),
                grpc::StatusCode::PERMISSION_DENIED, victim, attacker, "heartbeat with another's credential");
  ExpectRefused(Heartbeat(victim.id, "", /*draining=*/true, &heartbeat, lease_id), grpc::StatusCode::UNAUTHENTICATED,
                victim, attacker, "heartbeat without a credential");
  ExpectRefused(Heartbeat(victim.id, "wc1.guess", /*draining=*/true, &heartbeat), grpc::StatusCode::PERMISSION_DENIED,
                victim, attacker, "heartbeat with a guessed credential");
  EXPECT_FALSE(WorkerInfoOf(victim.id).draining());
  // Taking the victim's id over by registering again with it.
  {
    v1::RegisterResponse response;
    ExpectRefused(Call(*workers_, &v1::WorkerService::Stub::Register, RegisterRequest("impostor", victim.id), &response,
                       attacker.credential),
                  grpc::StatusCode::PERMISSION_DENIED, victim, attacker, "register again as another worker");
    EXPECT_EQ(WorkerInfoOf(victim.id).name(), "victim");
  }
  // Taking work in the victim's name; its curve, its result, its failure.
  v1::AcquireResponse stolen;
  ExpectRefused(Acquire(victim.id, attacker.credential, &stolen), grpc::StatusCode::PERMISSION_DENIED, victim,
                attacker, "acquire as another worker");
  ExpectRefused(StreamOnePoint(victim.id, attacker.credential, lease_id), grpc::StatusCode::PERMISSION_DENIED, victim,
                attacker, "metrics as another worker");
  ExpectRefused(Complete(victim.id, attacker.credential, lease_id, 1.0), grpc::StatusCode::PERMISSION_DENIED, victim,
                attacker, "complete another worker's lease");
  ExpectRefused(Fail(victim.id, attacker.credential, lease_id), grpc::StatusCode::PERMISSION_DENIED, victim, attacker,
                "fail another worker's lease");
  // In its own name the attacker's worker is fenced off the lease as before.
  EXPECT_EQ(Complete(attacker.id, attacker.credential, lease_id, 1.0).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  v1::Job job = OnlyJob(sweep_id);
  EXPECT_EQ(job.state(), v1::JOB_RUNNING);
  EXPECT_EQ(job.latest_metric().epoch(), 0);  // the attacker's point was not taken

  // The victim itself still works: heartbeat, metrics, result.
  ASSERT_TRUE(Heartbeat(victim.id, victim.credential, false, &heartbeat, lease_id).ok());
  EXPECT_FALSE(heartbeat.unknown_worker());
  ASSERT_EQ(heartbeat.leases_size(), 1);
  EXPECT_TRUE(heartbeat.leases(0).valid());
  EXPECT_TRUE(StreamOnePoint(victim.id, victim.credential, lease_id).ok());
  const grpc::Status completed = Complete(victim.id, victim.credential, lease_id, 0.25);
  ASSERT_TRUE(completed.ok()) << completed.error_message();
  job = OnlyJob(sweep_id);
  EXPECT_EQ(job.state(), v1::JOB_SUCCEEDED);
  EXPECT_EQ(job.result().test_score(), 0.25);
  EXPECT_EQ(job.worker_id(), victim.id);
}

TEST_F(WorkerIdentityTest, CredentialsSurviveACoordinatorRestart) {
  const Worker worker = Register("survivor");
  const Worker other = Register("other");
  StopCoordinator();
  StartCoordinator();
  v1::HeartbeatResponse heartbeat;
  const grpc::Status status = Heartbeat(worker.id, worker.credential, false, &heartbeat);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(heartbeat.unknown_worker());
  ExpectRefused(Heartbeat(worker.id, other.credential, false, &heartbeat), grpc::StatusCode::PERMISSION_DENIED, worker,
                other, "another's credential after a restart");
  // Registering again with its id and credential keeps both.
  v1::RegisterResponse response;
  ASSERT_TRUE(Call(*workers_, &v1::WorkerService::Stub::Register, RegisterRequest("survivor", worker.id), &response,
                   worker.credential)
                  .ok());
  EXPECT_EQ(response.worker_id(), worker.id);
  EXPECT_TRUE(response.worker_credential().empty());
  ASSERT_TRUE(Heartbeat(worker.id, worker.credential, false, &heartbeat).ok());
}

TEST_F(WorkerIdentityTest, AWorkerIdWithoutACredentialIsNeverTakenOver) {
  // A worker the store knows from before credentials existed (a migrated database): no credential.
  WorkerRow legacy;
  legacy.worker_id = "w-legacy";
  legacy.name = "legacy";
  legacy.devices = {"cpu"};
  ASSERT_TRUE(store_->UpsertWorker(legacy).ok());
  StopCoordinator();
  StartCoordinator();
  // Its heartbeats are told to register again, its Acquire to stop, and its outcomes are refused.
  v1::HeartbeatResponse heartbeat;
  ASSERT_TRUE(Heartbeat("w-legacy", "", true, &heartbeat).ok());
  EXPECT_TRUE(heartbeat.unknown_worker());
  EXPECT_FALSE(WorkerInfoOf("w-legacy").draining());
  v1::AcquireResponse acquired;
  ASSERT_TRUE(Acquire("w-legacy", "", &acquired).ok());
  EXPECT_TRUE(acquired.stop());
  EXPECT_FALSE(acquired.has_lease());
  EXPECT_EQ(Complete("w-legacy", "wc1.anything", "l-any", 0.5).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  // Registering with its id hands out a new id and credential, not the old id.
  v1::RegisterResponse response;
  ASSERT_TRUE(
      Call(*workers_, &v1::WorkerService::Stub::Register, RegisterRequest("claims-legacy", "w-legacy"), &response).ok());
  EXPECT_NE(response.worker_id(), "w-legacy");
  EXPECT_FALSE(response.worker_credential().empty());
  EXPECT_EQ(WorkerInfoOf("w-legacy").name(), "legacy");
}

TEST_F(WorkerIdentityTest, TheSharedTokenIsStillRequiredAtRegister) {
  v1::RegisterRequest request;
  request.set_name("no-token");
  request.add_devices("cpu");
  v1::RegisterResponse response;
  grpc::ClientContext context;
  EXPECT_EQ(workers_->Register(&context, request, &response).error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

}  // namespace
}  // namespace dwarp::coordinator
