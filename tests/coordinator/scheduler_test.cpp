// Scheduler (coordinator/scheduler.h) over a real store, with a manual clock so lease expiry is exact:
// submit and expansion, lease fencing, heartbeats extending leases, expiry requeue up to max attempts,
// exactly one result, cancellation through heartbeats, the circuit breaker, fair share across sweeps,
// d_warp recomputed and pushed to watchers, restart from the store with live leases honoured.
#include "coordinator/scheduler.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "coordinator/memory_store.h"
#include "coordinator/sqlite_store.h"
#include "tests/coordinator/manual_clock_options.h"
#include "tests/support/test_dir.h"

namespace dwarp::coordinator {
namespace {

// Two models x one dataset x d {0, 10, 100} x seeds {0, 1} = 12 jobs; the data path is never opened here.
std::string SweepText(const std::string& name = "t", const std::string& extra = "") {
  return "name: " + name + "\n" +
         "models:\n"
         "  - {name: small, arch: mlp, hidden: [8]}\n"
         "  - {name: wide, arch: mlp, hidden: [32]}\n"
         "datasets:\n"
         "  - {name: syn, kind: synthetic, images: /nonexistent/dwarp/images-idx3-ubyte}\n"
         "dims: [0, 10, 100]\n"
         "seeds: [0, 1]\n"
         "threshold: {kind: absolute, value: 0.5}\n"
         "max_attempts: 2\n" +
         extra;
}

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }

  void Start() {
    SchedulerOptions options = ManualClockOptions([this] { return now_.load(); });
    options.max_spec_bytes = max_spec_bytes_;
    auto scheduler = Scheduler::Create(&store_, options);
    ASSERT_TRUE(scheduler.ok()) << scheduler.status();
    scheduler_ = std::move(*scheduler);
  }

  SubmitResult Submit(const std::string& text) {
    SubmitRequestData request;
    request.text = text;
    request.source_name = "test.yaml";
    auto result = scheduler_->Submit(request);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : SubmitResult{};
  }

  std::string RegisterWorker(const std::string& name = "w") {
    auto worker = scheduler_->Register(name, "host", {"cpu"}, "");
    EXPECT_TRUE(worker.ok()) << worker.status();
    return worker.ok() ? worker->worker_id : "";
  }

  Lease AcquireNow(const std::string& worker) {
    auto result = scheduler_->Acquire(worker, "cpu", 0);
    EXPECT_TRUE(result.ok()) << result.status();
    EXPECT_TRUE(result.ok() && result->lease.has_value()) << "no job was leased";
    return result.ok() && result->lease ? *result->lease : Lease{};
  }

  JobResult Result(double test) {
    JobResult result;
    result.metric = "r2";
    result.test_score = test;
    result.val_score = test;
    result.train_score = test;
    return result;
  }

  SubmitRequestData WithRequestId(const std::string& text, const std::string& request_id) {
    SubmitRequestData request;
    request.text = text;
    request.source_name = "test.yaml";
    request.request_id = request_id;
    return request;
  }

  size_t max_spec_bytes_ = SchedulerOptions().max_spec_bytes;
  std::atomic<int64_t> now_{1'000'000};
  MemorySweepStore store_;
  std::unique_ptr<Scheduler> scheduler_;
};

TEST_F(SchedulerTest, SubmitExpandsAndStoresEveryJob) {
  SubmitResult submitted = Submit(SweepText());
  EXPECT_EQ(submitted.sweep.row.sweep_id, "t-1");
  ASSERT_EQ(submitted.jobs.size(), 12u);
  EXPECT_EQ(submitted.sweep.counts.queued, 12);
  auto stored = store_.LoadJobs();
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->size(), 12u);
  // Each stored job carries its typed d and a spec in the versioned format a worker decodes as it is.
  std::set<std::string> dims;
  for (const JobRow& job : *stored) {
    dims.insert(job.d.ToString());
    const nlohmann::json spec = nlohmann::json::parse(job.spec_json);
    EXPECT_EQ(spec["spec_version"], kJobSpecVersion) << job.spec_json;
    StatusOr<JobSpec> decoded = DecodeJobSpec(spec);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(decoded->d, job.d);
    EXPECT_EQ(decoded->train.seed, job.seed);
  }
  EXPECT_EQ(dims.size(), 3u);
  // The sweep is stored in the canonical form a client computes locally.
  auto sweeps = store_.LoadSweeps();
  ASSERT_TRUE(sweeps.ok());
  EXPECT_EQ(sweeps->at(0).spec_json, CanonicalSweepJson(submitted.sweep.spec));
  // A second sweep of the same name gets the next id; the name finds the latest.
  SubmitResult second = Submit(SweepText());
  EXPECT_EQ(second.sweep.row.sweep_id, "t-2");
  auto by_name = scheduler_->GetSweep("t");
  ASSERT_TRUE(by_name.ok());
  EXPECT_EQ(by_name->row.sweep_id, "t-2");
}

TEST_F(SchedulerTest, BadSweepsAreRefusedAndNothingIsWritten) {
  SubmitRequestData request;
  request.source_name = "bad.yaml";
  request.text = SweepText("bad", "").replace(SweepText("bad").find("dims: [0, 10, 100]"), 18, "dims: [0, -5]");
  auto negative = scheduler_->Submit(request);
  ASSERT_FALSE(negative.ok());
  EXPECT_EQ(negative.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(negative.status().message().find("bad.yaml"), std::string::npos) << negative.status();
  EXPECT_NE(negative.status().message().find("-5"), std::string::npos) << negative.status();

  request.text = "name: x\nmodels: [{name: m, arch: transformer9000}]\n";
  auto unknown = scheduler_->Submit(request);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("transformer9000"), std::string::npos) << unknown.status();

  request.text = "name: [unclosed\n";
  EXPECT_FALSE(scheduler_->Submit(request).ok());
  EXPECT_TRUE(store_.LoadSweeps()->empty());
  EXPECT_TRUE(store_.LoadJobs()->empty());
  EXPECT_TRUE(scheduler_->ListSweeps().empty());
}

TEST_F(SchedulerTest, DryRunStoresNothing) {
  SubmitRequestData request;
  request.text = SweepText();
  request.dry_run = true;
  auto result = scheduler_->Submit(request);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->jobs.size(), 12u);
  EXPECT_TRUE(store_.LoadSweeps()->empty());
}

TEST_F(SchedulerTest, ASubmitRetriedWithItsRequestIdAnswersTheStoredSweepAndStoresNoOther) {
  auto first = scheduler_->Submit(WithRequestId(SweepText(), "req-1"));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->already_submitted);
  EXPECT_EQ(first->jobs.size(), 12u);

  auto retried = scheduler_->Submit(WithRequestId(SweepText(), "req-1"));
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_TRUE(retried->already_submitted);
  EXPECT_EQ(retried->sweep.row.sweep_id, first->sweep.row.sweep_id);
  EXPECT_EQ(retried->sweep.counts.total, 12);
  EXPECT_EQ(store_.LoadSweeps()->size(), 1u);
  EXPECT_EQ(store_.LoadJobs()->size(), 12u);

  // Another request id (or none) is another submission of the same file.
  auto other = scheduler_->Submit(WithRequestId(SweepText(), "req-2"));
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_FALSE(other->already_submitted);
  EXPECT_EQ(other->sweep.row.sweep_id, "t-2");
  EXPECT_EQ(store_.LoadSweeps()->size(), 2u);
}

TEST_F(SchedulerTest, ARequestIdOfAStoredSweepWithADifferentSweepIsAlreadyExistsAndStoresNothing) {
  ASSERT_TRUE(scheduler_->Submit(WithRequestId(SweepText(), "req-1")).ok());
  auto different = scheduler_->Submit(WithRequestId(SweepText("t", "early_stop: true\n"), "req-1"));
  ASSERT_FALSE(different.ok());
  EXPECT_EQ(different.status().code(), StatusCode::kAlreadyExists) << different.status();
  EXPECT_NE(different.status().message().find("req-1"), std::string::npos) << different.status();
  EXPECT_NE(different.status().message().find("t-1"), std::string::npos) << different.status();
  EXPECT_EQ(store_.LoadSweeps()->size(), 1u);
  EXPECT_EQ(store_.LoadJobs()->size(), 12u);

  // A dry run stores nothing, so its request id is not looked at.
  SubmitRequestData dry = WithRequestId(SweepText("t", "early_stop: true\n"), "req-1");
  dry.dry_run = true;
  auto checked = scheduler_->Submit(dry);
  ASSERT_TRUE(checked.ok()) << checked.status();
  EXPECT_FALSE(checked->already_submitted);
  EXPECT_EQ(checked->jobs.size(), 12u);
}

TEST_F(SchedulerTest, ConcurrentSubmitsWithOneRequestIdStoreOneSweep) {
  constexpr int kThreads = 4;
  std::vector<std::string> ids(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      auto result = scheduler_->Submit(WithRequestId(SweepText(), "req-race"));
      ids[i] = result.ok() ? result->sweep.row.sweep_id : result.status().ToString();
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const std::string& id : ids) EXPECT_EQ(id, "t-1");
  EXPECT_EQ(store_.LoadSweeps()->size(), 1u);
  EXPECT_EQ(store_.LoadJobs()->size(), 12u);
}

TEST_F(SchedulerTest, BadRequestIdsAreRefusedNamingWhatIsWrong) {
  auto too_long = scheduler_->Submit(WithRequestId(SweepText(), std::string(129, 'a')));
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(too_long.status().message().find("129 characters"), std::string::npos) << too_long.status();
  EXPECT_NE(too_long.status().message().find("at most 128"), std::string::npos) << too_long.status();

  auto control = scheduler_->Submit(WithRequestId(SweepText(), "req\n1"));
  ASSERT_FALSE(control.ok());
  EXPECT_EQ(control.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(control.status().message().find("character code 10 at position 3"), std::string::npos)
      << control.status();
  EXPECT_TRUE(store_.LoadSweeps()->empty());
  // The longest allowed id, of every allowed kind of character, passes.
  const std::string longest = std::string(124, 'Z') + "-_.:";
  EXPECT_TRUE(scheduler_->Submit(WithRequestId(SweepText(), longest)).ok());
}

TEST_F(SchedulerTest, ASpecOverTheSizeLimitIsRefusedWholeAndNothingIsStored) {
  // Each job spec of this sweep is some hundreds of bytes, its resolved sweep more.
  SubmitRequestData probe = WithRequestId(SweepText(), "");
  probe.dry_run = true;
  auto expanded = scheduler_->Submit(probe);
  ASSERT_TRUE(expanded.ok()) << expanded.status();
  const size_t job_bytes = expanded->jobs.at(0).spec_json.size();
  ASSERT_GT(job_bytes, 100u);
  scheduler_.reset();
  max_spec_bytes_ = job_bytes - 1;
  Start();
  SubmitRequestData request = WithRequestId(SweepText(), "req-big");
  auto jobs_too_big = scheduler_->Submit(request);
  ASSERT_FALSE(jobs_too_big.ok());
  EXPECT_EQ(jobs_too_big.status().code(), StatusCode::kInvalidArgument);
  const std::string message = jobs_too_big.status().message();
  EXPECT_NE(message.find("job 1 of 12"), std::string::npos) << message;
  EXPECT_NE(message.find("at most " + std::to_string(job_bytes - 1)), std::string::npos) << message;
  request.dry_run = true;  // a dry run says the same
  EXPECT_EQ(scheduler_->Submit(request).status().code(), StatusCode::kInvalidArgument);

  scheduler_.reset();
  max_spec_bytes_ = 50;
  Start();
  request.dry_run = false;
  auto sweep_too_big = scheduler_->Submit(request);
  ASSERT_FALSE(sweep_too_big.ok());
  EXPECT_NE(sweep_too_big.status().message().find("resolved sweep is"), std::string::npos) << sweep_too_big.status();
  EXPECT_NE(sweep_too_big.status().message().find("at most 50"), std::string::npos) << sweep_too_big.status();
  EXPECT_TRUE(store_.LoadSweeps()->empty());
  EXPECT_TRUE(store_.LoadJobs()->empty());
  EXPECT_TRUE(scheduler_->ListSweeps().empty());
}

TEST_F(SchedulerTest, JobPagesCoverEveryJobOnceInIdOrder) {
  Submit(SweepText("other"));  // ids of another sweep come first and are not part of t's pages
  SubmitResult submitted = Submit(SweepText());
  std::vector<int64_t> seen;
  std::vector<int64_t> remaining;
  int64_t after = 0;
  while (true) {
    auto page = scheduler_->JobsPage("t", after, 5);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_EQ(page->sweep.row.sweep_id, "t-1");
    remaining.push_back(page->remaining);
    for (const JobView& view : page->jobs) seen.push_back(view.job.job_id);
    if (page->remaining == 0) break;
    ASSERT_FALSE(page->jobs.empty());
    after = page->jobs.back().job.job_id;
  }
  EXPECT_EQ(remaining, (std::vector<int64_t>{7, 2, 0}));
  std::vector<int64_t> expected;
  for (const JobRow& job : submitted.jobs) expected.push_back(job.job_id);
  EXPECT_EQ(seen, expected);
  auto past_the_end = scheduler_->JobsPage("t", seen.back(), 5);
  ASSERT_TRUE(past_the_end.ok());
  EXPECT_TRUE(past_the_end->jobs.empty());
  EXPECT_EQ(scheduler_->JobsPage("nope", 0, 5).status().code(), StatusCode::kNotFound);
}

TEST(CheckResultScoresTest, EachMetricHasItsRange) {
  auto result = [](const std::string& metric, double test) {
    JobResult row;
    row.metric = metric;
    row.train_score = row.val_score = row.test_score = test;
    return row;
  };
  EXPECT_TRUE(CheckResultScores(result("r2", 1.0)).ok());
  EXPECT_TRUE(CheckResultScores(result("r2", -25.0)).ok());  // R² has no lower bound
  EXPECT_EQ(CheckResultScores(result("r2", 1e300)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckResultScores(result("r2", 1.01)).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckResultScores(result("accuracy", 0.0)).ok());
  EXPECT_TRUE(CheckResultScores(result("accuracy", 1.0)).ok());
  Status negative = CheckResultScores(result("accuracy", -0.5));
  EXPECT_EQ(negative.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(negative.message().find("[0, 1]"), std::string::npos) << negative;
  EXPECT_EQ(CheckResultScores(result("accuracy", 1.5)).code(), StatusCode::kInvalidArgument);
  JobResult pearson = result("r2", 0.5);
  pearson.test_pearson_mean = 1.5;
  Status out_of_range = CheckResultScores(pearson);
  EXPECT_EQ(out_of_range.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(out_of_range.message().find("test_pearson_mean"), std::string::npos) << out_of_range;
  EXPECT_NE(out_of_range.message().find("[-1, 1]"), std::string::npos) << out_of_range;
  pearson.test_pearson_mean = std::nan("");  // not computed
  pearson.test_pearson_median = -1.0;
  EXPECT_TRUE(CheckResultScores(pearson).ok());
  Status unknown = CheckResultScores(result("bleu", 0.5));
  EXPECT_EQ(unknown.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.message().find("bleu"), std::string::npos) << unknown;
  EXPECT_EQ(CheckResultScores(result("", 0.5)).code(), StatusCode::kInvalidArgument);
}

TEST_F(SchedulerTest, LeaseAndWorkerIdsAre128RandomBits) {
  Submit(SweepText());
  std::set<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    const std::string worker = RegisterWorker("w" + std::to_string(i));
    Lease lease = AcquireNow(worker);
    for (const std::string& id : {worker, lease.lease_id}) {
      ASSERT_GE(id.size(), 32u) << id;
      const std::string hex = id.substr(id.size() - 32);
      EXPECT_EQ(hex.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
      EXPECT_TRUE(ids.insert(hex).second) << "id issued twice: " << id;
    }
  }
}

TEST_F(SchedulerTest, LeasesGoSmallestDFirstAndAreFenced) {
  Submit(SweepText());
  const std::string worker = RegisterWorker();
  Lease first = AcquireNow(worker);
  EXPECT_EQ(first.job.d.ToString(), "0");
  EXPECT_EQ(first.job.attempt, 1);
  EXPECT_EQ(first.expires_ms, now_ + 1000);

  // A lease that is not the job's current one is refused for metrics, completion and failure.
  EXPECT_EQ(scheduler_->Complete(worker, "l-made-up", Result(0.4)).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(scheduler_->RecordMetrics(worker, "l-made-up", {{1, 0.5, 0.1, now_}}).code(),
            StatusCode::kFailedPrecondition);
  // Another worker cannot use it either.
  const std::string other = RegisterWorker("other");
  EXPECT_EQ(scheduler_->Complete(other, first.lease_id, Result(0.4)).code(), StatusCode::kFailedPrecondition);
  // NaN results are refused (a job that produced NaN must Fail).
  EXPECT_EQ(scheduler_->Complete(worker, first.lease_id, Result(std::nan(""))).code(), StatusCode::kInvalidArgument);
  // So are scores outside the metric's range, naming the value and the range; the lease stays usable.
  {
    Status huge = scheduler_->Complete(worker, first.lease_id, Result(1e300));
    EXPECT_EQ(huge.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(huge.message().find("test_score = 1e+300"), std::string::npos) << huge;
    EXPECT_NE(huge.message().find("(-inf, 1]"), std::string::npos) << huge;
    JobResult rsa = Result(-1.5);
    rsa.metric = "rsa";  // a correlation between RDMs
    Status below = scheduler_->Complete(worker, first.lease_id, rsa);
    EXPECT_EQ(below.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(below.message().find("metric 'rsa', [-1, 1]"), std::string::npos) << below;
    EXPECT_EQ(*store_.CountResults(first.job.job_id), 0);
  }

  ASSERT_TRUE(scheduler_->RecordMetrics(worker, first.lease_id, {{1, 0.5, 0.1, now_}, {2, 0.4, 0.2, now_}}).ok());
  ASSERT_TRUE(scheduler_->Complete(worker, first.lease_id, Result(0.4)).ok());
  // Exactly one result, whatever is retried.
  EXPECT_EQ(scheduler_->Complete(worker, first.lease_id, Result(0.9)).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(*store_.CountResults(first.job.job_id), 1);
  ASSERT_TRUE(scheduler_->FlushMetrics().ok());
  auto points = scheduler_->Metrics(first.job.job_id);
  ASSERT_TRUE(points.ok());
  ASSERT_EQ(points->size(), 2u);
  EXPECT_EQ((*points)[1].epoch, 2);
  EXPECT_DOUBLE_EQ((*points)[1].val_score, 0.2);
}

TEST_F(SchedulerTest, MetricPointsSentAgainAfterABrokenStreamAreStoredAndWatchedOnce) {
  Submit(SweepText());
  auto watch = scheduler_->Watch("t-1");
  ASSERT_TRUE(watch.ok());
  const std::string worker = RegisterWorker();
  Lease lease = AcquireNow(worker);
  ASSERT_TRUE(scheduler_->RecordMetrics(worker, lease.lease_id, {{1, 0.5, 0.1, now_}, {2, 0.4, 0.2, now_}}).ok());
  // The worker's stream broke; the new one carries every held point again, then the next epoch.
  ASSERT_TRUE(scheduler_->RecordMetrics(worker, lease.lease_id,
                                        {{1, 0.5, 0.1, now_}, {2, 0.4, 0.2, now_}, {3, 0.3, 0.3, now_}}).ok());
  ASSERT_TRUE(scheduler_->FlushMetrics().ok());
  auto points = scheduler_->Metrics(lease.job.job_id);
  ASSERT_TRUE(points.ok());
  ASSERT_EQ(points->size(), 3u);
  for (size_t i = 0; i < points->size(); ++i) EXPECT_EQ((*points)[i].epoch, static_cast<int64_t>(i + 1));
  std::vector<int64_t> watched;
  while (auto event = watch->queue->Pop(0)) {
    if (auto* point = std::get_if<MetricRow>(&*event)) watched.push_back(point->epoch);
  }
  EXPECT_EQ(watched, (std::vector<int64_t>{1, 2, 3}));
}

TEST_F(SchedulerTest, HeartbeatsExtendLeasesAndExpiryRequeuesThenFails) {
  Submit(SweepText());
  const std::string worker = RegisterWorker();
  Lease lease = AcquireNow(worker);
  // Heartbeats before expiry keep the lease alive well past its first TTL.
  for (int i = 0; i < 5; ++i) {
    now_ += 600;
    auto beat = scheduler_->Heartbeat(worker, {lease.lease_id}, false);
    ASSERT_TRUE(beat.ok());
    ASSERT_EQ(beat->leases.size(), 1u);
    EXPECT_TRUE(beat->leases[0].valid);
    EXPECT_EQ(beat->leases[0].expires_ms, now_ + 1000);
    EXPECT_EQ(scheduler_->ExpireLeases(), 0);
  }
  // Silence past the TTL: the job is requeued with its next attempt, the old lease is stale.
  now_ += 1001;
  EXPECT_EQ(scheduler_->ExpireLeases(), 1);
  EXPECT_EQ(scheduler_->Complete(worker, lease.lease_id, Result(0.5)).code(), StatusCode::kFailedPrecondition);
  auto beat = scheduler_->Heartbeat(worker, {lease.lease_id}, false);
  ASSERT_TRUE(beat.ok());
  EXPECT_FALSE(beat->leases[0].valid);
  Lease second = AcquireNow(worker);
  EXPECT_EQ(second.job.job_id, lease.job.job_id);
  EXPECT_EQ(second.job.attempt, 2);
  EXPECT_NE(second.lease_id, lease.lease_id);
  // max_attempts = 2: the second expiry fails the job for good.
  now_ += 1001;
  EXPECT_EQ(scheduler_->ExpireLeases(), 1);
  auto jobs = scheduler_->Jobs("t-1");
  ASSERT_TRUE(jobs.ok());
  const JobRow& failed = (*jobs)[0].job.job_id == lease.job.job_id ? (*jobs)[0].job : (*jobs)[1].job;
  EXPECT_EQ(failed.state, JobState::kFailed);
  EXPECT_NE(failed.error.find("expired"), std::string::npos) << failed.error;
  // Silence can be the coordinator's own outage as well as the worker's: the reason says what was seen,
  // not who is to blame.
  EXPECT_EQ(failed.error.find("stopped heartbeating"), std::string::npos) << failed.error;
  EXPECT_NE(failed.error.find("no heartbeat or result from worker " + worker), std::string::npos) << failed.error;
  EXPECT_NE(failed.error.find("1000 ms"), std::string::npos) << failed.error;
}

TEST_F(SchedulerTest, RetryableFailuresRequeueAndTripTheBreaker) {
  Submit(SweepText());
  const std::string worker = RegisterWorker();
  Lease a = AcquireNow(worker);
  auto requeued = scheduler_->Fail(worker, a.lease_id, "CUDA error: out of memory", true);
  ASSERT_TRUE(requeued.ok());
  EXPECT_TRUE(*requeued);
  Lease b = AcquireNow(worker);
  EXPECT_EQ(b.job.job_id, a.job.job_id);
  EXPECT_EQ(b.job.attempt, 2);
  // The second retryable failure exhausts max_attempts = 2.
  requeued = scheduler_->Fail(worker, b.lease_id, "CUDA error again", true);
  ASSERT_TRUE(requeued.ok());
  EXPECT_FALSE(*requeued);
  // A bad job (not retryable) fails at once and does not count against the worker.
  Lease c = AcquireNow(worker);
  ASSERT_TRUE(scheduler_->Fail(worker, c.lease_id, "unknown layer 'fc9'", false).ok());
  Lease d = AcquireNow(worker);
  ASSERT_TRUE(scheduler_->Fail(worker, d.lease_id, "segfault-like", true).ok());
  // Third retryable failure in a row: the breaker blocks the worker.
  auto stopped = scheduler_->Acquire(worker, "cpu", 0);
  ASSERT_TRUE(stopped.ok());
  EXPECT_TRUE(stopped->stop);
  EXPECT_FALSE(stopped->lease.has_value());
  EXPECT_NE(stopped->reason.find("circuit breaker"), std::string::npos) << stopped->reason;
  // Other workers keep taking jobs.
  const std::string healthy = RegisterWorker("healthy");
  EXPECT_FALSE(AcquireNow(healthy).lease_id.empty());
}

TEST_F(SchedulerTest, CancelReachesRunningJobsThroughHeartbeats) {
  Submit(SweepText());
  const std::string worker = RegisterWorker();
  Lease running = AcquireNow(worker);
  auto cancelled = scheduler_->Cancel("t-1");
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->cancelled_queued, 11);
  EXPECT_EQ(cancelled->cancelling_running, 1);
  EXPECT_EQ(cancelled->sweep.row.state, SweepState::kCancelled);
  auto beat = scheduler_->Heartbeat(worker, {running.lease_id}, false);
  ASSERT_TRUE(beat.ok());
  EXPECT_TRUE(beat->leases[0].cancel);
  EXPECT_FALSE(beat->leases[0].valid);
  EXPECT_EQ(scheduler_->Complete(worker, running.lease_id, Result(0.5)).code(), StatusCode::kFailedPrecondition);
  auto none = scheduler_->Acquire(worker, "cpu", 0);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->lease.has_value());
  EXPECT_EQ(scheduler_->Cancel("t-1").status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(scheduler_->Cancel("nope").status().code(), StatusCode::kNotFound);
}

TEST_F(SchedulerTest, SweepsShareWorkersFairly) {
  Submit(SweepText("first"));
  Submit(SweepText("second"));
  const std::string worker = RegisterWorker();
  int first = 0, second = 0;
  for (int i = 0; i < 8; ++i) {
    Lease lease = AcquireNow(worker);
    (lease.job.sweep_id == "first-1" ? first : second) += 1;
  }
  EXPECT_EQ(first, 4);
  EXPECT_EQ(second, 4);
}

TEST_F(SchedulerTest, DWarpIsRecomputedAndWatchersSeeEveryChange) {
  Submit(SweepText());
  auto watch = scheduler_->Watch("t-1");
  ASSERT_TRUE(watch.ok());
  EXPECT_EQ(watch->jobs.size(), 12u);
  ASSERT_EQ(watch->dwarp.size(), 2u);
  EXPECT_EQ(watch->dwarp[0].status, DWarpStatus::kPending);

  const std::string worker = RegisterWorker();
  // Scores: model "small" crosses 0.5 between d = 10 (0.4) and d = 100 (0.6); "wide" never does.
  auto score = [](const JobRow& job) {
    const double base = job.model == "small" ? 0.2 : 0.05;
    return base + (job.d.ToString() == "0" ? 0.0 : job.d.ToString() == "10" ? 0.2 : 0.4);
  };
  for (int i = 0; i < 12; ++i) {
    Lease lease = AcquireNow(worker);
    ASSERT_TRUE(scheduler_->Complete(worker, lease.lease_id, Result(score(lease.job))).ok());
  }
  auto dwarp = scheduler_->DWarp("t-1");
  ASSERT_TRUE(dwarp.ok());
  ASSERT_EQ(dwarp->size(), 2u);
  const GroupDWarp& small = (*dwarp)[0].model == "small" ? (*dwarp)[0] : (*dwarp)[1];
  const GroupDWarp& wide = (*dwarp)[0].model == "small" ? (*dwarp)[1] : (*dwarp)[0];
  EXPECT_EQ(small.status, DWarpStatus::kReached);
  EXPECT_EQ(small.grid_d, 100);
  // 0.5 is halfway between 0.4 and 0.6 in score, so halfway between 10 and 100 in log d.
  EXPECT_NEAR(small.d_warp, std::sqrt(10.0 * 100.0), 1e-6);
  EXPECT_EQ(wide.status, DWarpStatus::kNotReached);

  auto sweep = scheduler_->GetSweep("t-1");
  ASSERT_TRUE(sweep.ok());
  EXPECT_EQ(sweep->row.state, SweepState::kDone);
  EXPECT_EQ(sweep->counts.succeeded, 12);

  // The watcher saw every job change, d_warp records and, last, the sweep's final state; then the queue closed.
  int jobs = 0, dwarps = 0;
  std::optional<SweepSummary> last_sweep;
  while (auto event = watch->queue->Pop(0)) {
    if (std::holds_alternative<JobView>(*event)) ++jobs;
    if (std::holds_alternative<GroupDWarp>(*event)) ++dwarps;
    if (auto* summary = std::get_if<SweepSummary>(&*event)) last_sweep = *summary;
  }
  EXPECT_EQ(jobs, 24);  // leased + succeeded, for 12 jobs
  EXPECT_GE(dwarps, 2);
  ASSERT_TRUE(last_sweep.has_value());
  EXPECT_EQ(last_sweep->row.state, SweepState::kDone);
  EXPECT_TRUE(watch->queue->closed());
}

TEST_F(SchedulerTest, EarlyStopCancelsQueuedJobsAboveAFinalCrossing) {
  Submit(SweepText("es", "early_stop: true\n").replace(SweepText("es").find("seeds: [0, 1]"), 13, "seeds: [0]"));
  const std::string worker = RegisterWorker();
  // Smallest d first: both d = 0 jobs, then both d = 10 jobs. Scores above 0.5 at d = 10 make it final.
  for (int i = 0; i < 4; ++i) {
    Lease lease = AcquireNow(worker);
    ASSERT_TRUE(scheduler_->Complete(worker, lease.lease_id, Result(lease.job.d.ToString() == "0" ? 0.1 : 0.9)).ok());
  }
  auto jobs = scheduler_->Jobs("es-1");
  ASSERT_TRUE(jobs.ok());
  int cancelled = 0;
  for (const JobView& view : *jobs)
    if (view.job.d.ToString() == "100") {
      EXPECT_EQ(view.job.state, JobState::kCancelled);
      ++cancelled;
    }
  EXPECT_EQ(cancelled, 2);
  EXPECT_EQ(scheduler_->GetSweep("es-1")->row.state, SweepState::kDone);
}

TEST_F(SchedulerTest, LongPollWakesWhenWorkArrives) {
  const std::string worker = RegisterWorker();
  std::thread submitter([this] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    Submit(SweepText());
  });
  const auto start = std::chrono::steady_clock::now();
  auto result = scheduler_->Acquire(worker, "cpu", 10000);
  submitter.join();
  ASSERT_TRUE(result.ok());
  EXPECT_TRUE(result->lease.has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  // With nothing queued, a short poll returns empty.
  SchedulerTest::scheduler_->Cancel("t-1").status();
  auto empty = scheduler_->Acquire(worker, "cpu", 50);
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(empty->lease.has_value());
}

// One coordinator process's store and scheduler over one SQLite file. Destroying it drops the scheduler
// before the store, as the process's exit does.
struct Coordinator {
  std::unique_ptr<SqliteSweepStore> store;
  std::unique_ptr<Scheduler> scheduler;
};

// Coordinators started one after another on the same SQLite file, in a fresh folder of the test's own that
// is removed after the test (whose coordinators are gone by then).
class SchedulerRestartTest : public ::testing::Test {
 protected:
  void TearDown() override { std::filesystem::remove_all(dir_); }

  StatusOr<Coordinator> StartCoordinator(const SchedulerOptions& options) {
    auto store = SqliteSweepStore::Open(path_);
    if (!store.ok()) return store.status();
    auto scheduler = Scheduler::Create(store->get(), options);
    if (!scheduler.ok()) return scheduler.status();
    return Coordinator{std::move(*store), std::move(*scheduler)};
  }

  // Real time, and no reaper or flusher thread.
  static SchedulerOptions NoBackgroundThreads() {
    SchedulerOptions options;
    options.reap_interval_ms = 0;
    options.metric_flush_ms = 0;
    return options;
  }

  const std::filesystem::path dir_ = dwarp::testing::FreshTestDir("dwarp-scheduler-restart");
  const std::string path_ = (dir_ / "dwarp.db").string();
};

TEST_F(SchedulerRestartTest, LiveLeasesSurviveARestartOnTheSameDatabase) {
  std::atomic<int64_t> now{5'000'000};
  const SchedulerOptions options = ManualClockOptions([&] { return now.load(); });

  std::string worker, held, expired_lease;
  int64_t held_job = 0;
  {
    auto coordinator = StartCoordinator(options);
    ASSERT_TRUE(coordinator.ok()) << coordinator.status();
    Scheduler& scheduler = *coordinator->scheduler;
    SubmitRequestData request;
    request.text = SweepText();
    ASSERT_TRUE(scheduler.Submit(request).ok());
    worker = scheduler.Register("w", "h", {"cpu", "cpu"}, "")->worker_id;
    auto a = scheduler.Acquire(worker, "cpu", 0);
    auto b = scheduler.Acquire(worker, "cpu", 0);
    ASSERT_TRUE(a.ok() && a->lease && b.ok() && b->lease);
    JobResult first_result;
    first_result.metric = "r2";
    ASSERT_TRUE(scheduler.Complete(worker, a->lease->lease_id, first_result).ok());
    held = b->lease->lease_id;
    held_job = b->lease->job.job_id;
    // The scheduler goes away without Shutdown's courtesies mattering: everything is already stored.
  }
  now += 500;  // within the TTL
  auto coordinator = StartCoordinator(options);
  ASSERT_TRUE(coordinator.ok()) << coordinator.status();
  SqliteSweepStore& store = *coordinator->store;
  Scheduler& scheduler = *coordinator->scheduler;
  auto beat = scheduler.Heartbeat(worker, {held}, false);
  ASSERT_TRUE(beat.ok());
  EXPECT_FALSE(beat->unknown_worker);
  ASSERT_EQ(beat->leases.size(), 1u);
  EXPECT_TRUE(beat->leases[0].valid);
  JobResult result;
  result.metric = "r2";
  result.test_score = 0.7;
  ASSERT_TRUE(scheduler.Complete(worker, held, result).ok());
  EXPECT_EQ(*store.CountResults(held_job), 1);
  auto sweep = scheduler.GetSweep("t-1");
  ASSERT_TRUE(sweep.ok());
  EXPECT_EQ(sweep->counts.succeeded, 2);
  EXPECT_EQ(sweep->counts.queued, 10);
  EXPECT_EQ(*store.IntegrityCheck(), "ok");
}

TEST_F(SchedulerRestartTest, ARequestIdStillFindsItsSweepAfterARestart) {
  const SchedulerOptions options = NoBackgroundThreads();
  SubmitRequestData request;
  request.text = SweepText();
  request.request_id = "cli-5f3a9c";
  std::string sweep_id;
  {
    auto coordinator = StartCoordinator(options);
    ASSERT_TRUE(coordinator.ok()) << coordinator.status();
    Scheduler& scheduler = *coordinator->scheduler;
    auto submitted = scheduler.Submit(request);
    ASSERT_TRUE(submitted.ok()) << submitted.status();
    sweep_id = submitted->sweep.row.sweep_id;
  }
  auto coordinator = StartCoordinator(options);
  ASSERT_TRUE(coordinator.ok()) << coordinator.status();
  SqliteSweepStore& store = *coordinator->store;
  Scheduler& scheduler = *coordinator->scheduler;
  auto retried = scheduler.Submit(request);
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_TRUE(retried->already_submitted);
  EXPECT_EQ(retried->sweep.row.sweep_id, sweep_id);
  EXPECT_EQ(store.LoadSweeps()->size(), 1u);
  EXPECT_EQ(store.LoadJobs()->size(), 12u);
  request.text = SweepText("t", "early_stop: true\n");
  EXPECT_EQ(scheduler.Submit(request).status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(store.LoadSweeps()->size(), 1u);
}

// An adaptive sweep half done when its coordinator goes away: the search's next job is stored with its
// reason, the restarted coordinator neither loses nor repeats it, and a result that landed without its
// follow-up (as if the coordinator died between the two) gets it at the restart.
TEST_F(SchedulerRestartTest, AHalfDoneAdaptiveSweepResumesFromItsStoredJobs) {
  const SchedulerOptions options = NoBackgroundThreads();
  SubmitRequestData request;
  request.text =
      "name: a\n"
      "models: [{name: small, arch: mlp, hidden: [8]}]\n"
      "datasets: [{name: syn, kind: synthetic, images: /nonexistent/dwarp/images-idx3-ubyte}]\n"
      "dims: [0, 100, 1000]\n"
      "threshold: {kind: absolute, value: 0.5}\n"
      "search: {mode: adaptive, rel_width: 0.25}\n";
  // The score of a d: rises through the threshold 0.5 at d = 250.
  auto score = [](const std::string& d) {
    const double x = d == "0" ? 0.0 : std::stod(d);
    return x < 250 ? 0.1 + x / 1000.0 : 0.6 + x / 10000.0;
  };
  // Leases and completes up to `limit` jobs, those the search adds on the way included.
  auto complete_all = [&](Scheduler& scheduler, const std::string& worker, int limit = 1000) {
    int completed = 0;
    while (completed < limit) {
      auto lease = scheduler.Acquire(worker, "cpu", 0);
      if (!lease.ok() || !lease->lease) return completed;
      JobResult result;
      result.metric = "r2";
      result.test_score = score(lease->lease->job.d.ToString());
      EXPECT_TRUE(scheduler.Complete(worker, lease->lease->lease_id, result).ok());
      ++completed;
    }
    return completed;
  };
  auto jobs_by_d = [](SweepStore& store) {
    std::map<std::string, JobRow> by_d;
    auto jobs = store.LoadJobs();
    EXPECT_TRUE(jobs.ok()) << jobs.status();
    if (!jobs.ok()) return by_d;
    for (const JobRow& job : *jobs) {
      EXPECT_EQ(by_d.count(job.d.ToString()), 0u) << "d = " << job.d.ToString() << " created twice";
      by_d[job.d.ToString()] = job;
    }
    return by_d;
  };
  std::string worker;
  {
    auto coordinator = StartCoordinator(options);
    ASSERT_TRUE(coordinator.ok()) << coordinator.status();
    SqliteSweepStore& store = *coordinator->store;
    Scheduler& scheduler = *coordinator->scheduler;
    auto submitted = scheduler.Submit(request);
    ASSERT_TRUE(submitted.ok()) << submitted.status();
    ASSERT_EQ(submitted->jobs.size(), 3u);  // the coarse grid only
    EXPECT_EQ(submitted->jobs[0].reason, "coarse grid");
    worker = scheduler.Register("w", "h", {"cpu"}, "")->worker_id;
    EXPECT_EQ(complete_all(scheduler, worker, 3), 3);
    // The bracket 100 .. 1000 is bisected: d = 316 is stored, queued, with its reason.
    auto stored = jobs_by_d(store);
    ASSERT_EQ(stored.size(), 4u);
    ASSERT_EQ(stored.count("316"), 1u);
    EXPECT_EQ(stored["316"].state, JobState::kQueued);
    EXPECT_EQ(stored["316"].reason, "bisect log d between d = 100 and 1000");
    EXPECT_EQ(scheduler.GetSweep("a-1")->row.state, SweepState::kRunning);
  }
  {
    // Restarted: d = 316 is still the one queued job; nothing was added twice.
    auto coordinator = StartCoordinator(options);
    ASSERT_TRUE(coordinator.ok()) << coordinator.status();
    SqliteSweepStore& store = *coordinator->store;
    Scheduler& scheduler = *coordinator->scheduler;
    EXPECT_EQ(scheduler.GetSweep("a-1")->counts.queued, 1);
    EXPECT_EQ(jobs_by_d(store).size(), 4u);
    // d = 316's result lands in the store without the scheduler (the coordinator died before it asked the
    // plan for the next job).
    JobRow job = jobs_by_d(store)["316"];
    job.state = JobState::kSucceeded;
    job.attempt = 1;
    ResultRow result;
    result.metric = "r2";
    result.test_score = score("316");
    result.attempt = 1;
    ASSERT_TRUE(store.RecordResult(job, result).ok());
  }
  auto coordinator = StartCoordinator(options);
  ASSERT_TRUE(coordinator.ok()) << coordinator.status();
  SqliteSweepStore& store = *coordinator->store;
  Scheduler& scheduler = *coordinator->scheduler;
  // The restart asked the plan: 100 .. 316 is bisected at 178.
  auto stored = jobs_by_d(store);
  ASSERT_EQ(stored.count("178"), 1u);
  EXPECT_EQ(stored["178"].reason, "bisect log d between d = 100 and 316");
  // Run to the end: the sweep is done once the bracket is within 25%, and d_warp lies in it.
  complete_all(scheduler, worker);
  auto sweep = scheduler.GetSweep("a-1");
  ASSERT_TRUE(sweep.ok());
  EXPECT_EQ(sweep->row.state, SweepState::kDone);
  auto dwarp = scheduler.DWarp("a-1");
  ASSERT_TRUE(dwarp.ok());
  ASSERT_EQ(dwarp->size(), 1u);
  const GroupDWarp& group = (*dwarp)[0];
  EXPECT_EQ(group.status, DWarpStatus::kReached) << group.note;
  EXPECT_LE(static_cast<double>(group.grid_d), 1.25 * static_cast<double>(group.below_d));
  EXPECT_LT(group.below_d, 250);
  EXPECT_GE(group.grid_d, 250);
  // One seed per d: the interval is the bracket's ends.
  EXPECT_FALSE(group.interval_bootstrap);
  EXPECT_EQ(group.d_warp_low, static_cast<double>(group.below_d));
  EXPECT_EQ(group.d_warp_high, static_cast<double>(group.grid_d));
  jobs_by_d(store);  // still no d twice
  EXPECT_EQ(*store.IntegrityCheck(), "ok");
}

}  // namespace
}  // namespace dwarp::coordinator
