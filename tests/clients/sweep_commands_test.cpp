// clients/sweep/sweep_commands.h against a hand-written SweepService on loopback (an OS-chosen port): what each
// command prints, the exit code each failure maps to, and how `watch` ends. The real coordinator's
// end-to-end tests live with the coordinator; this fake only answers what the commands ask.
#include "tests/support/loopback_sweep_server.h"
#include "clients/sweep/sweep_commands.h"
#include "tests/support/test_dir.h"

#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/server_context.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

namespace dwarp::clients {
namespace {

namespace fs = std::filesystem;

constexpr char kToken[] = "s3cret-token";

// How the fake's Watch behaves.
enum class WatchScript {
  kRunToDone,      // snapshot, a job, a metric, a d_warp record, then the sweep DONE (and the stream stays open)
  kBreakMidway,    // snapshot, then the stream ends with UNAVAILABLE
  kSilent,         // sends nothing until the client cancels
};

class FakeSweepService final : public v1::SweepService::Service {
 public:
  WatchScript watch_script = WatchScript::kRunToDone;

  v1::SubmitRequest last_submit() {
    std::lock_guard<std::mutex> lock(mutex_);
    return last_submit_;
  }

  // The key of each job of the fake's sweep: mlp's fc1 on `it`, at `d`.
  static void SetKey(v1::Job* job, const std::string& d) {
    v1::JobKey* key = job->mutable_key();
    key->set_model("mlp");
    key->set_layer("fc1");
    key->set_dataset("it");
    key->set_d(d);
  }

  grpc::Status Submit(grpc::ServerContext* context, const v1::SubmitRequest* request,
                      v1::SubmitResponse* response) override {
    if (auto denied = CheckToken(*context); !denied.ok()) return denied;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      last_submit_ = *request;
    }
    if (request->sweep_text().find("refuse") != std::string::npos)
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, request->source_name() + ": refused by the fake");
    response->mutable_sweep()->set_sweep_id(request->dry_run() ? "" : "sw1");
    response->mutable_sweep()->set_name("test_sweep");
    for (int i = 0; i < 3; ++i) {
      v1::Job* job = response->add_jobs();
      job->set_job_id(request->dry_run() ? 0 : i + 1);
      SetKey(job, std::to_string(i * 10));
    }
    return grpc::Status::OK;
  }

  grpc::Status List(grpc::ServerContext* context, const v1::ListSweepsRequest*,
                    v1::ListSweepsResponse* response) override {
    if (auto denied = CheckToken(*context); !denied.ok()) return denied;
    *response->add_sweeps() = Sweep(v1::SWEEP_RUNNING);
    return grpc::Status::OK;
  }

  grpc::Status Results(grpc::ServerContext* context, const v1::ResultsRequest* request,
                       v1::ResultsResponse* response) override {
    if (auto denied = CheckToken(*context); !denied.ok()) return denied;
    // Deliberately terse: the client adds the sweep's name to NOT_FOUND when the server leaves it out.
    if (request->sweep_id() != "sw1") return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such sweep");
    *response->mutable_sweep() = Sweep(v1::SWEEP_RUNNING);
    v1::Job* job = response->add_jobs();
    job->set_job_id(1);
    job->set_sweep_id("sw1");
    SetKey(job, "300");
    job->set_state(v1::JOB_SUCCEEDED);
    job->set_attempt(1);
    job->set_reason("coarse grid");
    job->mutable_result()->set_metric("r2");
    job->mutable_result()->set_test_score(0.5);
    return grpc::Status::OK;
  }

  grpc::Status Watch(grpc::ServerContext* context, const v1::WatchRequest* request,
                     grpc::ServerWriter<v1::WatchEvent>* writer) override {
    if (auto denied = CheckToken(*context); !denied.ok()) return denied;
    if (request->sweep_id() != "sw1")
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "sweep '" + request->sweep_id() + "' not found");
    if (watch_script == WatchScript::kSilent) return WaitForCancel(*context);
    v1::WatchEvent event;
    *event.mutable_snapshot()->mutable_sweep() = Sweep(v1::SWEEP_RUNNING);
    v1::Job* job = event.mutable_snapshot()->add_jobs();
    job->set_job_id(1);
    SetKey(job, "300");
    job->set_state(v1::JOB_QUEUED);
    job->set_attempt(1);
    writer->Write(event);
    if (watch_script == WatchScript::kBreakMidway)
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "coordinator shutting down");

    const v1::Job queued = *job;  // `job` lives in `event`, which is reused below
    event.Clear();
    *event.mutable_job() = queued;
    event.mutable_job()->set_state(v1::JOB_RUNNING);
    event.mutable_job()->set_worker_id("w-1");
    writer->Write(event);
    event.Clear();
    event.mutable_metric()->set_job_id(1);
    event.mutable_metric()->set_attempt(1);
    event.mutable_metric()->mutable_point()->set_epoch(2);
    event.mutable_metric()->mutable_point()->set_val_score(0.25);
    writer->Write(event);
    event.Clear();
    event.mutable_dwarp()->set_model("mlp");
    event.mutable_dwarp()->set_layer("fc1");
    event.mutable_dwarp()->set_dataset("it");
    event.mutable_dwarp()->set_status(v1::DWARP_REACHED);
    event.mutable_dwarp()->set_d_warp(300);
    event.mutable_dwarp()->set_threshold(0.2);
    writer->Write(event);
    event.Clear();
    *event.mutable_sweep() = Sweep(v1::SWEEP_DONE);
    writer->Write(event);
    // Stays open: the client must stop on the final state by itself, not wait for the server to close.
    return WaitForCancel(*context);
  }

  grpc::Status DWarp(grpc::ServerContext* context, const v1::DWarpRequest* request,
                     v1::DWarpResponse* response) override {
    if (auto denied = CheckToken(*context); !denied.ok()) return denied;
    *response->mutable_sweep() = Sweep(v1::SWEEP_RUNNING);
    v1::DWarpRecord* record = response->add_records();
    record->set_model("mlp");
    record->set_dataset("it");
    record->set_status(v1::DWARP_PROVISIONAL);
    record->set_d_warp(42);
    record->set_threshold(0.3);
    (void)request;
    return grpc::Status::OK;
  }

  grpc::Status Cancel(grpc::ServerContext* context, const v1::CancelSweepRequest* request,
                      v1::CancelSweepResponse* response) override {
    if (auto denied = CheckToken(*context); !denied.ok()) return denied;
    *response->mutable_sweep() = Sweep(v1::SWEEP_CANCELLED);
    response->mutable_sweep()->set_sweep_id(request->sweep_id());
    response->set_cancelled_queued(5);
    response->set_cancelling_running(2);
    return grpc::Status::OK;
  }

  grpc::Status ListWorkers(grpc::ServerContext* context, const v1::ListWorkersRequest*,
                           v1::ListWorkersResponse* response) override {
    if (auto denied = CheckToken(*context); !denied.ok()) return denied;
    v1::WorkerInfo* worker = response->add_workers();
    worker->set_worker_id("w-1");
    worker->set_host("gpu01");
    worker->add_devices("cuda:0");
    return grpc::Status::OK;
  }

 private:
  static v1::Sweep Sweep(v1::SweepState state) {
    v1::Sweep sweep;
    sweep.set_sweep_id("sw1");
    sweep.set_name("test_sweep");
    sweep.set_state(state);
    sweep.mutable_counts()->set_total(1);
    return sweep;
  }

  static grpc::Status CheckToken(const grpc::ServerContext& context) {
    const auto& metadata = context.client_metadata();
    const auto it = metadata.find("authorization");
    if (it == metadata.end() || rpc::TokenFromAuthorizationHeader(std::string(it->second.data(), it->second.size())) != kToken)
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or wrong token");
    return grpc::Status::OK;
  }

  // The server side learns of a client's cancel only by asking; the handler has nothing else to wait on.
  static grpc::Status WaitForCancel(grpc::ServerContext& context) {
    while (!context.IsCancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return grpc::Status::CANCELLED;
  }

  std::mutex mutex_;
  v1::SubmitRequest last_submit_;
};

class SweepCommandsTest : public dwarp::testing::FreshDirTest {
 protected:
  SweepCommandsTest() : FreshDirTest("dwarp_sweep_commands_test") {}

  void SetUp() override {
    unsetenv("DWARP_TOKEN");
    unsetenv("DWARP_TOKEN_FILE");
    unsetenv("DWARP_COORDINATOR");
    server_ = std::make_unique<dwarp::testing::LoopbackServer>(&service_);
    ASSERT_TRUE(server_->ok());
    port_ = server_->port();
    token_file_ = (dir_ / "token").string();
    std::ofstream(token_file_) << kToken << "\n";
    fs::permissions(token_file_, fs::perms::owner_read | fs::perms::owner_write);  // others may not read it
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  SweepClient Client(bool with_token = true, double timeout_seconds = 10) {
    ConnectionFlags flags;
    flags.coordinator = "127.0.0.1:" + std::to_string(port_);
    if (with_token) flags.token_file = token_file_;
    flags.timeout_seconds = timeout_seconds;
    auto client = ConnectSweepClient(flags);
    EXPECT_TRUE(client.ok()) << client.status();
    return std::move(client).value();
  }

  FakeSweepService service_;
  std::unique_ptr<dwarp::testing::LoopbackServer> server_;
  int port_ = 0;
  std::string token_file_;
};

TEST_F(SweepCommandsTest, ListPrintsTheSweeps) {
  SweepClient client = Client();
  std::ostringstream out;
  const CommandResult result = RunList(client, out);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_NE(out.str().find("test_sweep"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("0/1"), std::string::npos) << out.str();
}

TEST_F(SweepCommandsTest, AMissingTokenExitsFour) {
  SweepClient client = Client(/*with_token=*/false);
  std::ostringstream out;
  const CommandResult result = RunList(client, out);
  EXPECT_EQ(ExitCodeFor(result), kExitUnauthenticated) << result.status;
  EXPECT_NE(result.status.message().find("refused the call: missing or wrong token (set --token-file"),
            std::string::npos) << result.status;
  EXPECT_TRUE(out.str().empty());
}

TEST_F(SweepCommandsTest, AnUnreadableTokenFileIsLocalInput) {
  ConnectionFlags flags;
  flags.coordinator = "127.0.0.1:" + std::to_string(port_);
  flags.token_file = (dir_ / "no-such-token").string();
  auto client = ConnectSweepClient(flags);
  ASSERT_FALSE(client.ok());
  EXPECT_NE(client.status().message().find("no-such-token"), std::string::npos) << client.status();
}

TEST_F(SweepCommandsTest, AnUnknownSweepExitsOneNamingIt) {
  SweepClient client = Client();
  std::ostringstream out;
  const CommandResult result = RunStatus(client, "nope", out);
  EXPECT_EQ(ExitCodeFor(result), kExitRefused) << result.status;
  EXPECT_NE(result.status.message().find("sweep 'nope' not found"), std::string::npos) << result.status;
}

TEST_F(SweepCommandsTest, StatusResultsDWarpCancelAndWorkersPrintWhatTheCoordinatorSent) {
  SweepClient client = Client();
  std::ostringstream status, csv, dwarp, cancel, workers;
  ASSERT_TRUE(RunStatus(client, "sw1", status).status.ok());
  EXPECT_NE(status.str().find("mlp/fc1/it d=300 seed=0"), std::string::npos) << status.str();
  ASSERT_TRUE(RunResults(client, "sw1", OutputFormat::kCsv, "", csv).status.ok());
  EXPECT_EQ(csv.str().substr(0, csv.str().find('\n')),
            "sweep,model,layer,dataset,variant,d,seed,state,attempt,metric,train,val,test,pearson_mean,"
            "pearson_median,noise_ceiling,epochs,seconds,trained_d,D,device,error,reason");
  // The job's row ends with why it was created.
  EXPECT_NE(csv.str().find(",coarse grid\n"), std::string::npos) << csv.str();
  ASSERT_TRUE(RunDWarp(client, "sw1", OutputFormat::kTable, dwarp).status.ok());
  EXPECT_NE(dwarp.str().find("~42.0"), std::string::npos) << dwarp.str();
  ASSERT_TRUE(RunCancel(client, "sw1", cancel).status.ok());
  EXPECT_NE(cancel.str().find("5 queued jobs cancelled, 2 running"), std::string::npos) << cancel.str();
  ASSERT_TRUE(RunWorkers(client, workers).status.ok());
  EXPECT_NE(workers.str().find("gpu01"), std::string::npos) << workers.str();
}

TEST_F(SweepCommandsTest, ResultsToAFileWriteTheWholeTable) {
  SweepClient client = Client();
  std::ostringstream out;
  const std::string path = (dir_ / "sub" / "results.json").string();
  ASSERT_TRUE(RunResults(client, "sw1", OutputFormat::kJson, path, out).status.ok());
  EXPECT_EQ(out.str(), "wrote 1 rows to " + path + "\n");
  std::ifstream file(path);
  const nlohmann::json rows = nlohmann::json::parse(file);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_DOUBLE_EQ(rows[0]["test"].get<double>(), 0.5);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_ / "sub"), fs::directory_iterator()), 1) << "temporary file left";
}

TEST_F(SweepCommandsTest, AnUnwritableOutputFileIsLocalInput) {
  SweepClient client = Client();
  std::ostringstream out;
  std::ofstream(dir_ / "plain") << "a file, not a folder";
  const std::string path = (dir_ / "plain" / "results.csv").string();
  const CommandResult result = RunResults(client, "sw1", OutputFormat::kCsv, path, out);
  EXPECT_EQ(ExitCodeFor(result), kExitUsage) << result.status;
  EXPECT_NE(result.status.message().find((dir_ / "plain").string()), std::string::npos) << result.status;
}

TEST_F(SweepCommandsTest, SubmitSendsTheComposedSweepWithItsFolder) {
  const fs::path file = dir_ / "sweep.yaml";
  std::ofstream(file) << "name: test_sweep\n"
                         "models: [{name: mlp, arch: mlp, hidden: [8], layers: [fc1]}]\n"
                         "datasets: [{name: it, kind: majaj_hong, file: hvm.nc, stimuli: images/, roi: IT}]\n"
                         "dims: [0, 10, 20]\n";
  SubmitOptions options;
  options.sweep_file = file.string();
  options.overrides = {"seeds=[0,1]"};
  auto request = BuildSubmitRequest(options);
  ASSERT_TRUE(request.ok()) << request.status();
  // The sweep as composed here (overrides applied, paths absolute), as JSON: nothing left for the coordinator
  // to resolve against this machine's files.
  EXPECT_EQ(request->format(), "json");
  EXPECT_EQ(request->overrides_size(), 0);
  const nlohmann::json sent_spec = nlohmann::json::parse(request->sweep_text());
  EXPECT_EQ(sent_spec["seeds"], nlohmann::json::array({0, 1}));
  EXPECT_EQ(sent_spec["datasets"][0]["file"], (fs::absolute(dir_).lexically_normal() / "hvm.nc").string())
      << sent_spec.dump(2);
  EXPECT_EQ(request->base_dir(), fs::absolute(dir_).lexically_normal().string());
  EXPECT_EQ(request->source_name(), file.string());

  SweepClient client = Client();
  std::ostringstream out;
  ASSERT_TRUE(RunSubmit(client, *request, /*watch=*/false, out, /*tty=*/false).status.ok());
  EXPECT_EQ(out.str(), "submitted sweep sw1 (test_sweep): 3 jobs\n");
  const v1::SubmitRequest sent = service_.last_submit();
  EXPECT_NE(sent.sweep_text().find("\"name\":\"test_sweep\""), std::string::npos) << sent.sweep_text();

  // A bad override is the user's input: refused locally, naming the file.
  options.overrides = {"dims=[oops"};
  auto bad = BuildSubmitRequest(options);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(file.string()), std::string::npos) << bad.status();
}

TEST_F(SweepCommandsTest, TheCoordinatorRefusingASweepExitsOneWithItsMessage) {
  v1::SubmitRequest request;
  request.set_sweep_text("refuse me");
  request.set_source_name("sweeps/x.yaml");
  SweepClient client = Client();
  std::ostringstream out;
  const CommandResult result = RunSubmit(client, request, false, out, false);
  EXPECT_EQ(ExitCodeFor(result), kExitRefused);
  EXPECT_EQ(result.status.message(), "sweeps/x.yaml: refused by the fake");
}

TEST_F(SweepCommandsTest, WatchReturnsWhenTheSweepIsDone) {
  SweepClient client = Client();
  std::ostringstream out;
  const CommandResult result = RunWatch(client, "sw1", out, /*tty=*/false);
  ASSERT_TRUE(result.status.ok()) << result.status;
  const std::string text = out.str();
  EXPECT_NE(text.find("job 1 mlp/fc1/it d=300 seed=0: running (attempt 1, worker w-1)"), std::string::npos) << text;
  EXPECT_NE(text.find("epoch 2"), std::string::npos) << text;
  EXPECT_NE(text.find("d_warp it/mlp/fc1: reached 300.0"), std::string::npos) << text;
  EXPECT_NE(text.find("sweep sw1 (test_sweep): done"), std::string::npos) << text;
}

TEST_F(SweepCommandsTest, WatchOnATerminalRedrawsTheFinalPicture) {
  SweepClient client = Client();
  std::ostringstream out;
  ASSERT_TRUE(RunWatch(client, "sw1", out, /*tty=*/true).status.ok());
  const std::string text = out.str();
  const size_t last_clear = text.rfind("\x1b[H\x1b[J");
  ASSERT_NE(last_clear, std::string::npos) << text;
  const std::string last_screen = text.substr(last_clear);
  EXPECT_NE(last_screen.find(": done,"), std::string::npos) << last_screen;
  EXPECT_NE(last_screen.find("300.0"), std::string::npos) << last_screen;
}

TEST_F(SweepCommandsTest, ABrokenWatchStreamExitsThree) {
  service_.watch_script = WatchScript::kBreakMidway;
  SweepClient client = Client();
  std::ostringstream out;
  const CommandResult result = RunWatch(client, "sw1", out, false);
  EXPECT_EQ(ExitCodeFor(result), kExitUnreachable) << result.status;
  EXPECT_NE(result.status.message().find("broke before the sweep finished"), std::string::npos) << result.status;
}

TEST_F(SweepCommandsTest, AWatchThatSendsNothingTimesOut) {
  service_.watch_script = WatchScript::kSilent;
  SweepClient client = Client(true, /*timeout_seconds=*/0.5);
  std::ostringstream out;
  const auto start = std::chrono::steady_clock::now();
  const CommandResult result = RunWatch(client, "sw1", out, false);
  EXPECT_EQ(ExitCodeFor(result), kExitUnreachable) << result.status;
  EXPECT_NE(result.status.message().find("sent no watch event"), std::string::npos) << result.status;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST_F(SweepCommandsTest, WatchingAnUnknownSweepExitsOne) {
  SweepClient client = Client();
  std::ostringstream out;
  const CommandResult result = RunWatch(client, "nope", out, false);
  EXPECT_EQ(ExitCodeFor(result), kExitRefused) << result.status;
  EXPECT_NE(result.status.message().find("'nope'"), std::string::npos) << result.status;
}

}  // namespace
}  // namespace dwarp::clients
