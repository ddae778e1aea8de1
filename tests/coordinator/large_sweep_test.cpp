// A sweep whose jobs do not fit in one gRPC message, served by the real SweepService (grpc_server.h) in
// process on an OS-chosen loopback port, with the message limit lowered (ServerOptions.max_message_bytes)
// so that a sweep of a thousand jobs is "large": Submit answers a summary and stores the sweep; Results
// pages through every job (and refuses an all-at-once answer that would not fit, saying to page); Watch
// splits its snapshot; the CLI's status, results and watch read every job. And Submit's request id: a
// Submit whose answer was lost is sent again by the CLI and answers the sweep stored the first time.
#include <grpcpp/client_context.h>
#include <grpcpp/server_context.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "clients/sweep/sweep_commands.h"
#include "coordinator/grpc_server.h"
#include "coordinator/memory_store.h"
#include "coordinator/scheduler.h"
#include "tests/support/loopback_sweep_server.h"

namespace dwarp::coordinator {
namespace {

namespace fs = std::filesystem;

constexpr int kMessageLimit = 256 * 1024;
constexpr int kSeeds = 600;
constexpr int kJobs = 2 * kSeeds;  // d in {0, 10}: each job's message is some hundreds of bytes

std::string LargeSweep(const std::string& name = "large") {
  return "name: " + name + "\n" +
         "models: [{name: m, arch: mlp, hidden: [8]}]\n"
         "datasets: [{name: syn, kind: synthetic, images: /nonexistent/dwarp/images-idx3-ubyte}]\n"
         "dims: [0, 10]\n"
         "seeds: " + std::to_string(kSeeds) + "\n";
}

v1::SubmitRequest SubmitRequestFor(const std::string& text, const std::string& request_id = "") {
  v1::SubmitRequest request;
  request.set_sweep_text(text);
  request.set_format("yaml");
  request.set_source_name("large.yaml");
  request.set_request_id(request_id);
  return request;
}

class LargeSweepTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SchedulerOptions options;
    options.reap_interval_ms = 0;
    options.metric_flush_ms = 0;
    auto scheduler = Scheduler::Create(&store_, options);
    ASSERT_TRUE(scheduler.ok()) << scheduler.status();
    scheduler_ = std::move(*scheduler);
    ServerOptions server_options;
    server_options.listen = "127.0.0.1:0";
    server_options.max_message_bytes = kMessageLimit;
    auto server = CoordinatorServer::Start(scheduler_.get(), server_options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    address_ = "127.0.0.1:" + std::to_string(server_->port());
    client_ = testing::LoopbackClient(address_);
  }

  void TearDown() override {
    server_.reset();
    scheduler_.reset();
  }

  // Submits the large sweep through the raw stub; the sweep id.
  std::string SubmitLarge() {
    v1::SubmitResponse response;
    grpc::ClientContext context;
    const grpc::Status status = client_.stub->Submit(&context, SubmitRequestFor(LargeSweep()), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.sweep().sweep_id();
  }

  std::vector<int64_t> StoredJobIds() {
    std::vector<int64_t> ids;
    // The StatusOr is held: a range-for over *LoadJobs() would read its vector after the temporary died.
    const auto jobs = store_.LoadJobs();
    EXPECT_TRUE(jobs.ok()) << jobs.status();
    if (jobs.ok()) {
      for (const JobRow& job : *jobs) ids.push_back(job.job_id);
    }
    return ids;
  }

  MemorySweepStore store_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<CoordinatorServer> server_;
  std::string address_;
  clients::SweepClient client_;
};

TEST_F(LargeSweepTest, SubmitStoresTheSweepAndAnswersASummaryThatFits) {
  v1::SubmitResponse response;
  grpc::ClientContext context;
  const grpc::Status status = client_.stub->Submit(&context, SubmitRequestFor(LargeSweep()), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.sweep().sweep_id(), "large-1");
  EXPECT_EQ(response.sweep().counts().total(), kJobs);
  EXPECT_EQ(response.jobs_size(), 0);
  EXPECT_LT(response.ByteSizeLong(), static_cast<size_t>(kMessageLimit));
  EXPECT_EQ(StoredJobIds().size(), static_cast<size_t>(kJobs));

  // A dry run lists what fits and counts the rest; nothing more is stored.
  v1::SubmitRequest dry = SubmitRequestFor(LargeSweep());
  dry.set_dry_run(true);
  v1::SubmitResponse planned;
  grpc::ClientContext dry_context;
  ASSERT_TRUE(client_.stub->Submit(&dry_context, dry, &planned).ok());
  EXPECT_GT(planned.jobs_size(), 0);
  EXPECT_GT(planned.jobs_omitted(), 0);
  EXPECT_EQ(planned.jobs_size() + planned.jobs_omitted(), kJobs);
  EXPECT_LE(planned.ByteSizeLong(), static_cast<size_t>(kMessageLimit));
  EXPECT_EQ(store_.LoadSweeps()->size(), 1u);
}

TEST_F(LargeSweepTest, ResultsAllAtOnceIsRefusedSayingToPageAndPagesCoverEveryJobOnce) {
  const std::string sweep_id = SubmitLarge();
  ASSERT_FALSE(sweep_id.empty());

  v1::ResultsRequest request;
  request.set_sweep_id(sweep_id);
  v1::ResultsResponse everything;
  grpc::ClientContext context;
  const grpc::Status refused = client_.stub->Results(&context, request, &everything);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_NE(refused.error_message().find("the " + std::to_string(kJobs) + " jobs of sweep 'large-1'"),
            std::string::npos) << refused.error_message();
  EXPECT_NE(refused.error_message().find("page_size"), std::string::npos) << refused.error_message();
  EXPECT_NE(refused.error_message().find(std::to_string(kMessageLimit)), std::string::npos) << refused.error_message();

  // Pages of (at most) kJobs jobs: the coordinator cuts each to fit its limit, and the tokens lead through all.
  request.set_page_size(kJobs);
  std::vector<int64_t> seen;
  int pages = 0;
  while (true) {
    v1::ResultsResponse page;
    grpc::ClientContext page_context;
    const grpc::Status status = client_.stub->Results(&page_context, request, &page);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ++pages;
    ASSERT_LE(pages, kJobs) << "the pages do not end";
    EXPECT_LE(page.ByteSizeLong(), static_cast<size_t>(kMessageLimit));
    EXPECT_EQ(page.sweep().counts().total(), kJobs);
    for (const v1::Job& job : page.jobs()) seen.push_back(job.job_id());
    if (page.next_page_token().empty()) break;
    request.set_page_token(page.next_page_token());
  }
  EXPECT_GT(pages, 2);
  EXPECT_EQ(seen, StoredJobIds());
}

TEST_F(LargeSweepTest, BadPageRequestsAreRefusedNamingTheValue) {
  const std::string sweep_id = SubmitLarge();
  const auto results = [&](int32_t page_size, const std::string& token) {
    v1::ResultsRequest request;
    request.set_sweep_id(sweep_id);
    request.set_page_size(page_size);
    request.set_page_token(token);
    v1::ResultsResponse response;
    grpc::ClientContext context;
    return client_.stub->Results(&context, request, &response);
  };
  grpc::Status status = results(-5, "");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("page_size = -5"), std::string::npos) << status.error_message();
  status = results(10, "page-2");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("page_token 'page-2'"), std::string::npos) << status.error_message();
  status = results(10, "after:99999999999999999999");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  status = results(0, "after:10");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("page_size 0"), std::string::npos) << status.error_message();
  // A token past the last job is an empty last page.
  v1::ResultsRequest request;
  request.set_sweep_id(sweep_id);
  request.set_page_size(10);
  request.set_page_token("after:" + std::to_string(StoredJobIds().back()));
  v1::ResultsResponse response;
  grpc::ClientContext context;
  ASSERT_TRUE(client_.stub->Results(&context, request, &response).ok());
  EXPECT_EQ(response.jobs_size(), 0);
  EXPECT_TRUE(response.next_page_token().empty());
}

TEST_F(LargeSweepTest, WatchSplitsTheSnapshotAndEveryJobArrivesBeforeAnyOtherEvent) {
  const std::string sweep_id = SubmitLarge();
  grpc::ClientContext context;
  v1::WatchRequest request;
  request.set_sweep_id(sweep_id);
  auto reader = client_.stub->Watch(&context, request);
  v1::WatchEvent event;
  ASSERT_TRUE(reader->Read(&event));
  ASSERT_TRUE(event.has_snapshot());
  EXPECT_LE(event.ByteSizeLong(), static_cast<size_t>(kMessageLimit));
  const int to_follow = event.snapshot().jobs_to_follow();
  EXPECT_GT(to_follow, 0);
  EXPECT_EQ(event.snapshot().jobs_size() + to_follow, kJobs);
  std::set<int64_t> ids;
  for (const v1::Job& job : event.snapshot().jobs()) ids.insert(job.job_id());
  int followed = 0;
  while (followed < to_follow) {
    ASSERT_TRUE(reader->Read(&event));
    ASSERT_EQ(event.event_case(), v1::WatchEvent::kSnapshotJobs);
    EXPECT_LE(event.ByteSizeLong(), static_cast<size_t>(kMessageLimit));
    followed += event.snapshot_jobs().jobs_size();
    for (const v1::Job& job : event.snapshot_jobs().jobs()) ids.insert(job.job_id());
  }
  EXPECT_EQ(followed, to_follow);
  EXPECT_EQ(ids.size(), static_cast<size_t>(kJobs));
  context.TryCancel();
  (void)reader->Finish();
}

TEST_F(LargeSweepTest, TheCliReadsEveryJobOfStatusResultsAndWatch) {
  const std::string sweep_id = SubmitLarge();
  auto fetched = clients::FetchResults(client_, sweep_id, /*include_metrics=*/false);
  ASSERT_TRUE(fetched.ok()) << fetched.status();
  std::vector<int64_t> ids;
  for (const v1::Job& job : fetched->jobs()) ids.push_back(job.job_id());
  EXPECT_EQ(ids, StoredJobIds());
  EXPECT_TRUE(fetched->next_page_token().empty());

  std::ostringstream status_out;
  clients::CommandResult status = clients::RunStatus(client_, sweep_id, status_out);
  ASSERT_TRUE(status.status.ok()) << status.status;
  EXPECT_NE(status_out.str().find("\n" + std::to_string(StoredJobIds().back()) + " "), std::string::npos);

  const fs::path csv = fs::temp_directory_path() / ("dwarp-large-sweep-" + std::to_string(::getpid()) + ".csv");
  std::ostringstream results_out;
  clients::CommandResult results =
      clients::RunResults(client_, sweep_id, clients::OutputFormat::kCsv, csv.string(), results_out);
  ASSERT_TRUE(results.status.ok()) << results.status;
  EXPECT_EQ(results_out.str(), "wrote " + std::to_string(kJobs) + " rows to " + csv.string() + "\n");
  std::ifstream written(csv);
  int lines = 0;
  for (std::string line; std::getline(written, line);) ++lines;
  EXPECT_EQ(lines, kJobs + 1);  // the header and one row per job
  fs::remove(csv);

  // A cancelled sweep's watch is its snapshot, then its end: the command returns once every job arrived.
  ASSERT_TRUE(scheduler_->Cancel(sweep_id).ok());
  std::ostringstream watch_out;
  clients::CommandResult watched = clients::RunWatch(client_, sweep_id, watch_out, /*tty=*/false);
  ASSERT_TRUE(watched.status.ok()) << watched.status;
  EXPECT_NE(watch_out.str().find(std::to_string(kJobs) + " jobs"), std::string::npos) << watch_out.str().substr(0, 500);
}

// A SweepService in front of the real one that loses the answer of the first Submit after the coordinator
// stored it, as a client whose call timed out just after the commit sees it.
class LosesFirstSubmitAnswer final : public v1::SweepService::Service {
 public:
  explicit LosesFirstSubmitAnswer(v1::SweepService::StubInterface* coordinator) : coordinator_(coordinator) {}

  grpc::Status Submit(grpc::ServerContext*, const v1::SubmitRequest* request, v1::SubmitResponse* response) override {
    grpc::ClientContext context;
    const grpc::Status status = coordinator_->Submit(&context, *request, response);
    std::lock_guard<std::mutex> lock(mutex_);
    request_ids_.push_back(request->request_id());
    if (request_ids_.size() == 1) return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "answer lost on the way");
    return status;
  }

  std::vector<std::string> request_ids() {
    std::lock_guard<std::mutex> lock(mutex_);
    return request_ids_;
  }

 private:
  v1::SweepService::StubInterface* coordinator_;
  std::mutex mutex_;
  std::vector<std::string> request_ids_;
};

TEST_F(LargeSweepTest, ASubmitWhoseAnswerWasLostIsSentAgainAndStoresOneSweep) {
  LosesFirstSubmitAnswer proxy(client_.stub.get());
  testing::LoopbackServer lossy(&proxy);
  ASSERT_TRUE(lossy.ok());
  clients::SweepClient client = testing::LoopbackClient(lossy.address());
  client.retry_delay = std::chrono::milliseconds(10);

  const fs::path file = fs::temp_directory_path() / ("dwarp-retry-" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(file) << LargeSweep("retried");
  clients::SubmitOptions options;
  options.sweep_file = file.string();
  auto request = clients::BuildSubmitRequest(options);
  auto another = clients::BuildSubmitRequest(options);  // another invocation: another submission
  fs::remove(file);
  ASSERT_TRUE(request.ok()) << request.status();
  ASSERT_TRUE(another.ok()) << another.status();
  EXPECT_EQ(request->request_id().rfind("cli-", 0), 0u) << request->request_id();
  EXPECT_EQ(request->request_id().size(), 4u + 32u) << request->request_id();
  EXPECT_NE(request->request_id(), another->request_id());

  std::ostringstream out;
  clients::CommandResult submitted = clients::RunSubmit(client, *request, /*watch=*/false, out, /*tty=*/false);
  ASSERT_TRUE(submitted.status.ok()) << submitted.status;
  EXPECT_EQ(proxy.request_ids(), (std::vector<std::string>{request->request_id(), request->request_id()}));
  EXPECT_NE(out.str().find("sweep retried-1 (retried): " + std::to_string(kJobs) + " jobs, stored by an earlier try"),
            std::string::npos) << out.str();
  auto sweeps = store_.LoadSweeps();
  ASSERT_EQ(sweeps->size(), 1u);
  EXPECT_EQ((*sweeps)[0].request_id, request->request_id());
  EXPECT_EQ(StoredJobIds().size(), static_cast<size_t>(kJobs));

  // Without a request id a lost answer is not retried: a second try could store a second sweep.
  LosesFirstSubmitAnswer second_proxy(client_.stub.get());
  testing::LoopbackServer second_lossy(&second_proxy);
  clients::SweepClient second_client = testing::LoopbackClient(second_lossy.address());
  second_client.retry_delay = std::chrono::milliseconds(10);
  v1::SubmitRequest anonymous = *request;
  anonymous.clear_request_id();
  v1::SubmitResponse response;
  std::ostringstream notes;
  const Status lost = clients::SubmitWithRetries(second_client, anonymous, &response, notes);
  EXPECT_EQ(lost.code(), StatusCode::kDeadlineExceeded) << lost;
  EXPECT_EQ(second_proxy.request_ids().size(), 1u);
  EXPECT_EQ(notes.str(), "");
}

// A sweep of `models` x `datasets` groups (dims 0 and 10, one seed): many d_warp records, a long spec.
std::string WideSweep(const std::string& name, int models, int datasets) {
  std::string text = "name: " + name + "\nmodels:\n";
  for (int m = 0; m < models; ++m) text += "  - {name: model_" + std::to_string(m) + ", arch: mlp, hidden: [8]}\n";
  text += "datasets:\n";
  for (int d = 0; d < datasets; ++d)
    text += "  - {name: dataset_" + std::to_string(d) + ", kind: synthetic, images: /nonexistent/dwarp/images-" +
            std::to_string(d) + "-idx3-ubyte}\n";
  return text + "dims: [0, 10]\nseeds: 1\n";
}

TEST_F(LargeSweepTest, ListAndDWarpPageWhenAllAtOnceWouldNotFitAndTheCliReadsEveryPage) {
  constexpr int kModels = 60, kDatasets = 40, kGroups = kModels * kDatasets;
  std::set<std::string> submitted;
  const auto submit = [&](const std::string& text) {
    v1::SubmitResponse response;
    grpc::ClientContext context;
    const grpc::Status status = client_.stub->Submit(&context, SubmitRequestFor(text), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    submitted.insert(response.sweep().sweep_id());
    return response.sweep().sweep_id();
  };
  const std::string wide = submit(WideSweep("wide", kModels, kDatasets));
  // More sweeps (each with a long spec) until the list no longer fits in one message.
  const auto list_fits = [&] {
    v1::ListSweepsResponse response;
    grpc::ClientContext context;
    return client_.stub->List(&context, v1::ListSweepsRequest(), &response).ok();
  };
  while (list_fits() && submitted.size() < 200) submit(WideSweep("more" + std::to_string(submitted.size()), 300, 1));
  const int kSweeps = static_cast<int>(submitted.size());
  ASSERT_LT(kSweeps, 200);

  // All at once: refused, saying to page.
  {
    v1::ListSweepsResponse response;
    grpc::ClientContext context;
    const grpc::Status status = client_.stub->List(&context, v1::ListSweepsRequest(), &response);
    ASSERT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
    EXPECT_NE(status.error_message().find("page_size"), std::string::npos) << status.error_message();
  }
  {
    v1::DWarpRequest request;
    request.set_sweep_id(wide);
    v1::DWarpResponse response;
    grpc::ClientContext context;
    const grpc::Status status = client_.stub->DWarp(&context, request, &response);
    ASSERT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
    EXPECT_NE(status.error_message().find("page_size"), std::string::npos) << status.error_message();
  }

  // Pages: each within the limit, together every sweep / record once, in order.
  std::vector<std::string> listed;
  v1::ListSweepsRequest list_request;
  list_request.set_page_size(1000);
  int list_pages = 0;
  do {
    v1::ListSweepsResponse page;
    grpc::ClientContext context;
    const grpc::Status status = client_.stub->List(&context, list_request, &page);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_LE(page.ByteSizeLong(), static_cast<size_t>(kMessageLimit));
    ASSERT_GT(page.sweeps_size(), 0);
    for (const v1::Sweep& sweep : page.sweeps()) listed.push_back(sweep.sweep_id());
    list_request.set_page_token(page.next_page_token());
    ++list_pages;
  } while (!list_request.page_token().empty());
  EXPECT_GT(list_pages, 1);
  EXPECT_EQ(std::set<std::string>(listed.begin(), listed.end()), submitted);
  EXPECT_EQ(listed.size(), submitted.size());

  v1::DWarpRequest dwarp_request;
  dwarp_request.set_sweep_id(wide);
  dwarp_request.set_page_size(500);
  std::set<std::string> groups;
  int records = 0, dwarp_pages = 0;
  do {
    v1::DWarpResponse page;
    grpc::ClientContext context;
    const grpc::Status status = client_.stub->DWarp(&context, dwarp_request, &page);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_LE(page.ByteSizeLong(), static_cast<size_t>(kMessageLimit));
    EXPECT_LE(page.records_size(), 500);
    EXPECT_EQ(page.sweep().sweep_id(), wide);
    for (const v1::DWarpRecord& record : page.records()) groups.insert(record.model() + "/" + record.dataset());
    records += page.records_size();
    dwarp_request.set_page_token(page.next_page_token());
    ++dwarp_pages;
  } while (!dwarp_request.page_token().empty());
  EXPECT_GT(dwarp_pages, 1);
  EXPECT_EQ(records, kGroups);
  EXPECT_EQ(groups.size(), static_cast<size_t>(kGroups));

  // A token this coordinator did not give, and a negative page size, are refused naming the value.
  {
    v1::ListSweepsRequest request;
    request.set_page_size(10);
    request.set_page_token("at:999999");
    v1::ListSweepsResponse response;
    grpc::ClientContext context;
    const grpc::Status status = client_.stub->List(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(status.error_message().find("at:999999"), std::string::npos) << status.error_message();
    request.set_page_size(-1);
    request.clear_page_token();
    grpc::ClientContext negative;
    EXPECT_EQ(client_.stub->List(&negative, request, &response).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }

  // The CLI reads every page.
  auto all_sweeps = clients::FetchSweepList(client_);
  ASSERT_TRUE(all_sweeps.ok()) << all_sweeps.status();
  EXPECT_EQ(all_sweeps->sweeps_size(), kSweeps);
  EXPECT_TRUE(all_sweeps->next_page_token().empty());
  std::ostringstream list_out;
  ASSERT_TRUE(clients::RunList(client_, list_out).status.ok());
  for (const std::string& id : submitted) EXPECT_NE(list_out.str().find(id), std::string::npos) << id;
  auto all_records = clients::FetchDWarp(client_, wide);
  ASSERT_TRUE(all_records.ok()) << all_records.status();
  EXPECT_EQ(all_records->records_size(), kGroups);
  EXPECT_EQ(all_records->sweep().sweep_id(), wide);
  std::ostringstream dwarp_out;
  ASSERT_TRUE(clients::RunDWarp(client_, wide, clients::OutputFormat::kCsv, dwarp_out).status.ok());
  EXPECT_NE(dwarp_out.str().find("model_59"), std::string::npos);
  EXPECT_NE(dwarp_out.str().find("dataset_39"), std::string::npos);
}

TEST_F(LargeSweepTest, ServerRefusesAMessageLimitOutOfRange) {
  ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.max_message_bytes = 1000;
  auto server = CoordinatorServer::Start(scheduler_.get(), options);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(server.status().message().find("max_message_bytes = 1000"), std::string::npos) << server.status();
}

}  // namespace
}  // namespace dwarp::coordinator
