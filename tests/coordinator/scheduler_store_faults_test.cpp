// The scheduler (coordinator/scheduler.h) when its store fails: every branch where a store call can fail,
// driven by a FaultInjectingStore over a real MemorySweepStore and a real SQLite file. What each must do:
//
//   store call fails                     caller gets                    memory and store afterwards
//   Load{Sweeps,Jobs,Workers} (Create)   Internal "cannot load ..."     no scheduler
//   CreateSweep (Submit)                 Internal naming the sweep      no sweep; its id is not used up
//   UpsertWorker (Register)              Internal naming the worker     no worker
//   UpdateJobs (Acquire)                 Internal naming the job        the job stays queued, attempt 0
//   UpdateJobs (Heartbeat)               the lease, with its old expiry the lease keeps its old expiry
//   RecordResult (Complete)              Internal naming the job        running, lease valid: a retry lands
//   UpdateJobs (Fail)                    Internal naming the job        running, lease valid, breaker as was
//   UpdateJobs (expiry)                  (reaper) 0 expired             running; the next pass expires it
//   UpdateJobs / UpdateSweep (Cancel)    Internal naming the sweep      as before the call, store included
//   UpdateSweep (sweep's end)            (logged)                       running; a later refresh ends it
//   UpdateJobs (early stop)              (logged)                       queued; a later refresh cancels
//   AddJobs (adaptive search's next)     (logged; the outcome stands)   not added, the sweep does not end;
//                                                                       a later refresh adds them once
//   AppendMetrics Internal / other       the error                      kept for the next flush / dropped
//   LoadMetrics (Metrics)                Internal naming the job        -
//   UpsertWorker after an outcome        (logged; the outcome stands)   memory counts it; next write stores
//   UpsertWorker (Heartbeat, drain)      the heartbeat's answer         draining in memory; next write stores
//   AppendMetrics before a result        Complete succeeds              points kept for the next flush
#include <gtest/gtest.h>

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <string>

#include "coordinator/memory_store.h"
#include "coordinator/scheduler.h"
#include "coordinator/sqlite_store.h"
#include "tests/coordinator/fault_injecting_store.h"
#include "tests/coordinator/manual_clock_options.h"

namespace dwarp::coordinator {
namespace {

namespace fs = std::filesystem;
using Method = FaultInjectingStore::Method;

enum class StoreKind { kMemory, kSqlite };

std::string KindName(StoreKind kind) { return kind == StoreKind::kMemory ? "Memory" : "Sqlite"; }
void PrintTo(StoreKind kind, std::ostream* os) { *os << KindName(kind); }

// One model x d {0, 10, 100} x seed 0 = 3 jobs, run in that order; the data path is never opened here.
std::string ThreeJobSweep(const std::string& extra = "") {
  return "name: f\n"
         "models:\n"
         "  - {name: small, arch: mlp, hidden: [8]}\n"
         "datasets:\n"
         "  - {name: syn, kind: synthetic, images: /nonexistent/dwarp/images-idx3-ubyte}\n"
         "dims: [0, 10, 100]\n"
         "seeds: [0]\n"
         "threshold: {kind: absolute, value: 0.5}\n"
         "max_attempts: 2\n" +
         extra;
}

class SchedulerStoreFaultsTest : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "dwarp_store_faults_XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr) << pattern;
    dir_ = pattern;
    if (GetParam() == StoreKind::kMemory) {
      real_ = std::make_unique<MemorySweepStore>();
    } else {
      auto opened = SqliteSweepStore::Open((dir_ / "dwarp.db").string());
      ASSERT_TRUE(opened.ok()) << opened.status();
      real_ = std::move(opened).value();
    }
    store_ = std::make_unique<FaultInjectingStore>(real_.get());
    auto scheduler = Scheduler::Create(store_.get(), Options());
    ASSERT_TRUE(scheduler.ok()) << scheduler.status();
    scheduler_ = std::move(*scheduler);
  }

  void TearDown() override {
    scheduler_.reset();
    store_.reset();
    real_.reset();
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  SchedulerOptions Options() {
    SchedulerOptions options = ManualClockOptions([this] { return now_; });
    options.circuit_breaker_failures = 2;
    return options;
  }

  void Submit(const std::string& text = ThreeJobSweep()) {
    SubmitRequestData request;
    request.text = text;
    auto submitted = scheduler_->Submit(request);
    ASSERT_TRUE(submitted.ok()) << submitted.status();
  }

  std::string RegisterWorker() {
    auto worker = scheduler_->Register("w", "host", {"cpu"}, "");
    EXPECT_TRUE(worker.ok()) << worker.status();
    return worker.ok() ? worker->worker_id : "";
  }

  Lease AcquireNow(const std::string& worker) {
    auto acquired = scheduler_->Acquire(worker, "cpu", 0);
    EXPECT_TRUE(acquired.ok() && acquired->lease) << (acquired.ok() ? "no job leased" : acquired.status().ToString());
    return acquired.ok() && acquired->lease ? *acquired->lease : Lease{};
  }

  static JobResult Result(double score) {
    JobResult result;
    result.metric = "r2";
    result.train_score = result.val_score = result.test_score = score;
    return result;
  }

  // The jobs as the real store holds them, by id.
  std::vector<JobRow> StoredJobs() {
    auto jobs = real_->LoadJobs();
    EXPECT_TRUE(jobs.ok()) << jobs.status();
    return jobs.ok() ? *jobs : std::vector<JobRow>{};
  }
  WorkerRow StoredWorker(const std::string& id) {
    auto workers = real_->LoadWorkers();
    EXPECT_TRUE(workers.ok()) << workers.status();
    for (const WorkerRow& row : workers.ok() ? *workers : std::vector<WorkerRow>{})
      if (row.worker_id == id) return row;
    ADD_FAILURE() << "worker " << id << " not stored";
    return {};
  }
  WorkerRow WorkerInMemory(const std::string& id) {
    for (const WorkerView& view : scheduler_->Workers())
      if (view.row.worker_id == id) return view.row;
    ADD_FAILURE() << "worker " << id << " not known";
    return {};
  }
  JobCounts Counts() {
    auto sweep = scheduler_->GetSweep("f-1");
    EXPECT_TRUE(sweep.ok()) << sweep.status();
    return sweep.ok() ? sweep->counts : JobCounts{};
  }

  fs::path dir_;
  int64_t now_ = 1'000'000;
  std::unique_ptr<SweepStore> real_;
  std::unique_ptr<FaultInjectingStore> store_;
  std::unique_ptr<Scheduler> scheduler_;
};

TEST_P(SchedulerStoreFaultsTest, CreateFailsWhenTheStoreCannotBeRead) {
  Submit();
  RegisterWorker();
  scheduler_.reset();
  for (auto [method, what] : {std::pair<Method, const char*>{Method::kLoadSweeps, "cannot load sweeps"},
                              {Method::kLoadJobs, "cannot load jobs"},
                              {Method::kLoadWorkers, "cannot load workers"}}) {
    store_->FailCall(method);
    auto scheduler = Scheduler::Create(store_.get(), Options());
    ASSERT_FALSE(scheduler.ok()) << what;
    EXPECT_EQ(scheduler.status().code(), StatusCode::kInternal);
    EXPECT_NE(scheduler.status().message().find(what), std::string::npos) << scheduler.status();
  }
  // With the store readable again, everything is there.
  auto scheduler = Scheduler::Create(store_.get(), Options());
  ASSERT_TRUE(scheduler.ok()) << scheduler.status();
  EXPECT_EQ((*scheduler)->ListSweeps().size(), 1u);
  EXPECT_EQ((*scheduler)->Workers().size(), 1u);
}

TEST_P(SchedulerStoreFaultsTest, SubmitThatCannotBeStoredLeavesNoSweep) {
  store_->FailCall(Method::kCreateSweep);
  SubmitRequestData request;
  request.text = ThreeJobSweep();
  auto submitted = scheduler_->Submit(request);
  ASSERT_FALSE(submitted.ok());
  EXPECT_EQ(submitted.status().code(), StatusCode::kInternal);
  EXPECT_NE(submitted.status().message().find("cannot store sweep 'f-1'"), std::string::npos) << submitted.status();
  EXPECT_TRUE(scheduler_->ListSweeps().empty());
  EXPECT_TRUE(StoredJobs().empty());
  const std::string worker = RegisterWorker();
  auto acquired = scheduler_->Acquire(worker, "cpu", 0);
  ASSERT_TRUE(acquired.ok());
  EXPECT_FALSE(acquired->lease.has_value()) << "a job of the unstored sweep was leased";
  // The retry takes the same id.
  Submit();
  EXPECT_EQ(scheduler_->ListSweeps().at(0).row.sweep_id, "f-1");
  EXPECT_EQ(StoredJobs().size(), 3u);
}

TEST_P(SchedulerStoreFaultsTest, RegisterThatCannotBeStoredLeavesNoWorker) {
  store_->FailCall(Method::kUpsertWorker);
  auto worker = scheduler_->Register("w", "host", {"cpu"}, "");
  ASSERT_FALSE(worker.ok());
  EXPECT_EQ(worker.status().code(), StatusCode::kInternal);
  EXPECT_NE(worker.status().message().find("cannot store worker w"), std::string::npos) << worker.status();
  EXPECT_TRUE(scheduler_->Workers().empty());
  EXPECT_FALSE(RegisterWorker().empty());
  EXPECT_EQ(scheduler_->Workers().size(), 1u);
}

TEST_P(SchedulerStoreFaultsTest, AcquireThatCannotBeStoredLeasesNothing) {
  Submit();
  const std::string worker = RegisterWorker();
  store_->FailCall(Method::kUpdateJobs);
  auto acquired = scheduler_->Acquire(worker, "cpu", 0);
  ASSERT_FALSE(acquired.ok());
  EXPECT_EQ(acquired.status().code(), StatusCode::kInternal);
  EXPECT_NE(acquired.status().message().find("cannot store the lease of job"), std::string::npos) << acquired.status();
  EXPECT_EQ(Counts().queued, 3);
  EXPECT_EQ(Counts().running, 0);
  for (const JobRow& job : StoredJobs()) {
    EXPECT_EQ(job.state, JobState::kQueued);
    EXPECT_EQ(job.attempt, 0);
  }
  // The next Acquire leases the same job (smallest d) as its first attempt.
  Lease lease = AcquireNow(worker);
  EXPECT_EQ(lease.job.d.ToString(), "0");
  EXPECT_EQ(lease.job.attempt, 1);
}

TEST_P(SchedulerStoreFaultsTest, HeartbeatThatCannotBeStoredKeepsTheOldExpiry) {
  Submit();
  const std::string worker = RegisterWorker();
  Lease lease = AcquireNow(worker);
  now_ += 600;
  store_->FailCall(Method::kUpdateJobs);
  auto beat = scheduler_->Heartbeat(worker, {lease.lease_id}, false);
  ASSERT_TRUE(beat.ok()) << beat.status();
  ASSERT_EQ(beat->leases.size(), 1u);
  EXPECT_TRUE(beat->leases[0].valid);
  EXPECT_EQ(beat->leases[0].expires_ms, lease.expires_ms) << "an expiry that was not stored was reported";
  // Past the old expiry the lease ends: the extension was not applied in memory either.
  now_ = lease.expires_ms + 1;
  EXPECT_EQ(scheduler_->ExpireLeases(), 1);
}

TEST_P(SchedulerStoreFaultsTest, CompleteThatCannotBeStoredKeepsTheLeaseForARetry) {
  Submit();
  const std::string worker = RegisterWorker();
  Lease lease = AcquireNow(worker);
  store_->FailCall(Method::kRecordResult);
  Status completed = scheduler_->Complete(worker, lease.lease_id, Result(0.7));
  EXPECT_EQ(completed.code(), StatusCode::kInternal);
  EXPECT_NE(completed.message().find("cannot store the result of job " + std::to_string(lease.job.job_id)),
            std::string::npos) << completed;
  EXPECT_EQ(Counts().running, 1);
  EXPECT_EQ(Counts().succeeded, 0);
  EXPECT_EQ(WorkerInMemory(worker).jobs_succeeded, 0);
  auto stored = real_->CountResults(lease.job.job_id);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(*stored, 0);
  // The worker retries with the same lease, which still holds.
  ASSERT_TRUE(scheduler_->Complete(worker, lease.lease_id, Result(0.7)).ok());
  EXPECT_EQ(Counts().succeeded, 1);
  stored = real_->CountResults(lease.job.job_id);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(*stored, 1);
}

TEST_P(SchedulerStoreFaultsTest, FailThatCannotBeStoredChangesNothing) {
  Submit();
  const std::string worker = RegisterWorker();
  Lease lease = AcquireNow(worker);
  store_->FailCall(Method::kUpdateJobs);
  auto failed = scheduler_->Fail(worker, lease.lease_id, "CUDA error", /*retryable=*/true);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kInternal);
  EXPECT_NE(failed.status().message().find("cannot store the failure of job"), std::string::npos) << failed.status();
  EXPECT_EQ(Counts().running, 1);
  EXPECT_EQ(WorkerInMemory(worker).consecutive_failures, 0) << "the breaker counted a failure that was not stored";
  EXPECT_EQ(WorkerInMemory(worker).jobs_failed, 0);
  // The lease still holds: the retried Fail requeues the job.
  auto retried = scheduler_->Fail(worker, lease.lease_id, "CUDA error", true);
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_TRUE(*retried);
  EXPECT_EQ(Counts().queued, 3);
  EXPECT_EQ(WorkerInMemory(worker).consecutive_failures, 1);
}

TEST_P(SchedulerStoreFaultsTest, ExpiryThatCannotBeStoredIsRetriedOnTheNextPass) {
  Submit();
  const std::string worker = RegisterWorker();
  Lease lease = AcquireNow(worker);
  now_ = lease.expires_ms + 1;
  store_->FailCall(Method::kUpdateJobs);
  EXPECT_EQ(scheduler_->ExpireLeases(), 0);
  EXPECT_EQ(Counts().running, 1);
  for (const JobRow& job : StoredJobs())
    if (job.job_id == lease.job.job_id) EXPECT_EQ(job.state, JobState::kRunning);
  EXPECT_EQ(scheduler_->ExpireLeases(), 1);
  EXPECT_EQ(Counts().queued, 3);
  for (const JobRow& job : StoredJobs())
    if (job.job_id == lease.job.job_id) {
      EXPECT_EQ(job.state, JobState::kQueued);
      EXPECT_TRUE(job.lease_id.empty());
    }
}

TEST_P(SchedulerStoreFaultsTest, CancelThatCannotBeStoredLeavesTheSweepAsItWas) {
  Submit();
  const std::string worker = RegisterWorker();
  Lease lease = AcquireNow(worker);
  // The jobs' write fails, then (next try) the sweep's write after the jobs' succeeded.
  for (Method method : {Method::kUpdateJobs, Method::kUpdateSweep}) {
    store_->FailCall(method);
    auto cancelled = scheduler_->Cancel("f-1");
    ASSERT_FALSE(cancelled.ok());
    EXPECT_EQ(cancelled.status().code(), StatusCode::kInternal);
    EXPECT_NE(cancelled.status().message().find("cannot store the cancellation of sweep 'f-1'"), std::string::npos)
        << cancelled.status();
    EXPECT_EQ(scheduler_->GetSweep("f-1")->row.state, SweepState::kRunning);
    EXPECT_EQ(Counts().queued, 2);
    EXPECT_EQ(Counts().running, 1);
    for (const JobRow& job : StoredJobs())
      EXPECT_EQ(job.state, job.job_id == lease.job.job_id ? JobState::kRunning : JobState::kQueued)
          << "job " << job.job_id << " after a failed " << (method == Method::kUpdateJobs ? "UpdateJobs" : "UpdateSweep");
    auto beat = scheduler_->Heartbeat(worker, {lease.lease_id}, false);
    ASSERT_TRUE(beat.ok());
    EXPECT_FALSE(beat->leases.at(0).cancel);
  }
  auto cancelled = scheduler_->Cancel("f-1");
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->cancelled_queued, 2);
  EXPECT_EQ(cancelled->cancelling_running, 1);
}

TEST_P(SchedulerStoreFaultsTest, SweepEndThatCannotBeStoredIsStoredByALaterRefresh) {
  Submit();
  const std::string worker = RegisterWorker();
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(scheduler_->Complete(worker, AcquireNow(worker).lease_id, Result(0.2)).ok());
  Lease last = AcquireNow(worker);
  store_->FailCall(Method::kUpdateSweep);
  ASSERT_TRUE(scheduler_->Complete(worker, last.lease_id, Result(0.2)).ok()) << "the result is stored all the same";
  auto sweeps = real_->LoadSweeps();
  ASSERT_TRUE(sweeps.ok());
  EXPECT_EQ(sweeps->at(0).state, SweepState::kRunning);
  EXPECT_EQ(store_->injected(), 1);
  // The next query finds the sweep with nothing left to run and ends it.
  EXPECT_EQ(scheduler_->GetSweep("f-1")->row.state, SweepState::kDone);
  sweeps = real_->LoadSweeps();
  ASSERT_TRUE(sweeps.ok());
  EXPECT_EQ(sweeps->at(0).state, SweepState::kDone);
}

TEST_P(SchedulerStoreFaultsTest, EarlyStopThatCannotBeStoredIsRetriedByALaterRefresh) {
  Submit(ThreeJobSweep("early_stop: true\n"));
  const std::string worker = RegisterWorker();
  // d = 0 scores below the threshold, d = 10 above: d = 100 is not needed.
  ASSERT_TRUE(scheduler_->Complete(worker, AcquireNow(worker).lease_id, Result(0.1)).ok());
  ASSERT_TRUE(scheduler_->Complete(worker, AcquireNow(worker).lease_id, Result(0.9)).ok());
  store_->FailCall(Method::kUpdateJobs);
  EXPECT_EQ(Counts().queued, 1) << "the early stop was applied although its write failed";
  for (const JobRow& job : StoredJobs())
    if (job.d.ToString() == "100") EXPECT_EQ(job.state, JobState::kQueued);
  EXPECT_EQ(store_->injected(), 1);
  EXPECT_EQ(Counts().cancelled, 1);
  EXPECT_EQ(scheduler_->GetSweep("f-1")->row.state, SweepState::kDone);
  for (const JobRow& job : StoredJobs())
    if (job.d.ToString() == "100") EXPECT_EQ(job.state, JobState::kCancelled);
}

// The adaptive search's next jobs, asked for when the sweep's last job lands, cannot be stored: the result
// stands, the sweep is not ended (its search is not over), and a later refresh asks the plan again.
TEST_P(SchedulerStoreFaultsTest, AdaptiveJobsThatCannotBeStoredAreAddedByALaterRefresh) {
  Submit(ThreeJobSweep("search: {mode: adaptive, rel_width: 0.25}\n"));
  const std::string worker = RegisterWorker();
  // d = 0 and 10 score below the threshold, d = 100 above: the bracket 10 .. 100 is bisected at d = 32.
  ASSERT_TRUE(scheduler_->Complete(worker, AcquireNow(worker).lease_id, Result(0.1)).ok());
  ASSERT_TRUE(scheduler_->Complete(worker, AcquireNow(worker).lease_id, Result(0.2)).ok());
  Lease last = AcquireNow(worker);
  ASSERT_EQ(last.job.d.ToString(), "100");
  store_->FailCall(Method::kAddJobs, 1, InternalError("injected store fault"), /*times=*/2);
  ASSERT_TRUE(scheduler_->Complete(worker, last.lease_id, Result(0.9)).ok()) << "the result is stored all the same";
  EXPECT_EQ(StoredJobs().size(), 3u);
  EXPECT_EQ(store_->calls(Method::kAddJobs), 1);
  // The first refresh (this query) fails again: still running, nothing added, and not ended.
  auto sweep = scheduler_->GetSweep("f-1");
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  EXPECT_EQ(sweep->row.state, SweepState::kRunning) << "the sweep ended although its search asks for more jobs";
  EXPECT_EQ(sweep->counts.total, 3);
  EXPECT_EQ(store_->calls(Method::kAddJobs), 2);
  auto sweeps = real_->LoadSweeps();
  ASSERT_TRUE(sweeps.ok());
  EXPECT_EQ(sweeps->at(0).state, SweepState::kRunning);
  // The next refresh stores the bisection's job once and queues it.
  EXPECT_EQ(Counts().queued, 1);
  EXPECT_EQ(Counts().total, 4);
  EXPECT_EQ(store_->injected(), 2);
  std::vector<JobRow> stored = StoredJobs();
  ASSERT_EQ(stored.size(), 4u);
  EXPECT_EQ(stored[3].d.ToString(), "32");
  EXPECT_EQ(stored[3].state, JobState::kQueued);
  EXPECT_EQ(stored[3].reason, "bisect log d between d = 10 and 100");
  // Later queries find nothing more to ask for: no job twice.
  EXPECT_EQ(Counts().total, 4);
  EXPECT_EQ(StoredJobs().size(), 4u);
  Lease bisected = AcquireNow(worker);
  EXPECT_EQ(bisected.job.d.ToString(), "32");
}

TEST_P(SchedulerStoreFaultsTest, MetricPointsAreKeptOnAPassingFailureAndDroppedOnAnother) {
  Submit();
  const std::string worker = RegisterWorker();
  Lease lease = AcquireNow(worker);
  ASSERT_TRUE(scheduler_->RecordMetrics(worker, lease.lease_id, {{1, 0.5, 0.1, 10}, {2, 0.4, 0.2, 20}}).ok());
  store_->FailCall(Method::kAppendMetrics);  // Internal: may pass
  EXPECT_EQ(scheduler_->FlushMetrics().code(), StatusCode::kInternal);
  auto points = scheduler_->Metrics(lease.job.job_id);  // flushes again first
  ASSERT_TRUE(points.ok()) << points.status();
  EXPECT_EQ(points->size(), 2u);

  ASSERT_TRUE(scheduler_->RecordMetrics(worker, lease.lease_id, {{3, 0.3, 0.3, 30}}).ok());
  store_->FailCall(Method::kAppendMetrics, 1, NotFoundError("injected: unknown job"));  // will not pass
  EXPECT_EQ(scheduler_->FlushMetrics().code(), StatusCode::kNotFound);
  EXPECT_TRUE(scheduler_->FlushMetrics().ok());
  points = scheduler_->Metrics(lease.job.job_id);
  ASSERT_TRUE(points.ok()) << points.status();
  EXPECT_EQ(points->size(), 2u) << "a batch refused for good was kept";

  store_->FailCall(Method::kLoadMetrics);
  points = scheduler_->Metrics(lease.job.job_id);
  ASSERT_FALSE(points.ok());
  EXPECT_EQ(points.status().code(), StatusCode::kInternal);
  EXPECT_NE(points.status().message().find("job " + std::to_string(lease.job.job_id)), std::string::npos)
      << points.status();
}

TEST_P(SchedulerStoreFaultsTest, WorkerCountsFollowStoredOutcomesWhenTheirRowCannotBeWritten) {
  Submit();
  const std::string worker = RegisterWorker();
  // Two retryable failures block the worker (circuit_breaker_failures = 2), though neither row write lands.
  store_->FailCall(Method::kUpsertWorker, 1, InternalError("injected store fault"), 2);
  for (int i = 0; i < 2; ++i) {
    auto failed = scheduler_->Fail(worker, AcquireNow(worker).lease_id, "CUDA error", true);
    ASSERT_TRUE(failed.ok()) << failed.status();
  }
  EXPECT_EQ(store_->injected(), 2);
  EXPECT_EQ(WorkerInMemory(worker).jobs_failed, 2);
  EXPECT_TRUE(WorkerInMemory(worker).blocked);
  EXPECT_FALSE(StoredWorker(worker).blocked);
  auto acquired = scheduler_->Acquire(worker, "cpu", 0);
  ASSERT_TRUE(acquired.ok());
  EXPECT_TRUE(acquired->stop);
  // The row's next write (a heartbeat that starts draining) stores what memory holds.
  ASSERT_TRUE(scheduler_->Heartbeat(worker, {}, /*draining=*/true).ok());
  EXPECT_EQ(StoredWorker(worker).jobs_failed, 2);
  EXPECT_TRUE(StoredWorker(worker).blocked);
  EXPECT_TRUE(StoredWorker(worker).draining);
}

TEST_P(SchedulerStoreFaultsTest, DrainThatCannotBeStoredIsHonouredInMemory) {
  Submit();
  const std::string worker = RegisterWorker();
  store_->FailCall(Method::kUpsertWorker);
  auto beat = scheduler_->Heartbeat(worker, {}, /*draining=*/true);
  ASSERT_TRUE(beat.ok()) << beat.status();
  EXPECT_EQ(store_->injected(), 1);
  EXPECT_TRUE(WorkerInMemory(worker).draining);
  EXPECT_FALSE(StoredWorker(worker).draining);
  // A draining worker is given no job (and not told to stop).
  auto acquired = scheduler_->Acquire(worker, "cpu", 0);
  ASSERT_TRUE(acquired.ok());
  EXPECT_FALSE(acquired->lease.has_value());
  EXPECT_FALSE(acquired->stop);
}

TEST_P(SchedulerStoreFaultsTest, ResultIsStoredWhenTheMetricFlushBeforeItFails) {
  Submit();
  const std::string worker = RegisterWorker();
  Lease lease = AcquireNow(worker);
  ASSERT_TRUE(scheduler_->RecordMetrics(worker, lease.lease_id, {{1, 0.5, 0.1, 10}}).ok());
  store_->FailCall(Method::kAppendMetrics);
  ASSERT_TRUE(scheduler_->Complete(worker, lease.lease_id, Result(0.7)).ok());
  EXPECT_EQ(store_->injected(), 1);
  auto stored = real_->CountResults(lease.job.job_id);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(*stored, 1);
  // The points were kept and land with the next flush.
  auto points = real_->LoadMetrics(lease.job.job_id);
  ASSERT_TRUE(points.ok());
  EXPECT_TRUE(points->empty());
  ASSERT_TRUE(scheduler_->FlushMetrics().ok());
  points = real_->LoadMetrics(lease.job.job_id);
  ASSERT_TRUE(points.ok());
  EXPECT_EQ(points->size(), 1u);
}

// State changes run on the scheduler's state thread, which calls the store with the state lock released:
// while a write is in progress (held here inside the store), queries answer at once with the state before
// the change, and other changes wait their turn instead of interleaving with it.
TEST_P(SchedulerStoreFaultsTest, QueriesDoNotWaitForAStoreWriteInProgress) {
  Submit();
  const std::string worker = RegisterWorker();
  Lease lease = AcquireNow(worker);
  store_->BlockCall(Method::kRecordResult);
  auto complete = std::async(std::launch::async, [&] { return scheduler_->Complete(worker, lease.lease_id, Result(0.7)); });
  store_->WaitUntilBlocked();
  auto queries = std::async(std::launch::async, [&] {
    JobCounts counts = Counts();
    EXPECT_EQ(scheduler_->ListSweeps().size(), 1u);
    EXPECT_EQ(scheduler_->Workers().size(), 1u);
    auto jobs = scheduler_->Jobs("f-1");
    EXPECT_TRUE(jobs.ok());
    EXPECT_TRUE(scheduler_->RecordMetrics(worker, lease.lease_id, {{1, 0.5, 0.1, 10}}).ok());
    return counts;
  });
  const bool answered = queries.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  auto heartbeat = std::async(std::launch::async, [&] { return scheduler_->Heartbeat(worker, {lease.lease_id}, false); });
  const bool heartbeat_waited = heartbeat.wait_for(std::chrono::milliseconds(200)) == std::future_status::timeout;
  store_->Unblock();
  ASSERT_TRUE(answered) << "a query waited for the store write";
  JobCounts during = queries.get();
  EXPECT_EQ(during.running, 1) << "a query saw the result before it was stored";
  EXPECT_EQ(during.succeeded, 0);
  EXPECT_TRUE(heartbeat_waited) << "a heartbeat ran while another change was writing";
  ASSERT_TRUE(complete.get().ok());
  auto beat = heartbeat.get();
  ASSERT_TRUE(beat.ok());
  EXPECT_FALSE(beat->leases.at(0).valid) << "the heartbeat ran before the result it queued behind";
  EXPECT_EQ(Counts().succeeded, 1);
}

INSTANTIATE_TEST_SUITE_P(BothStores, SchedulerStoreFaultsTest,
                         ::testing::Values(StoreKind::kMemory, StoreKind::kSqlite),
                         [](const ::testing::TestParamInfo<StoreKind>& info) { return KindName(info.param); });

}  // namespace
}  // namespace dwarp::coordinator
