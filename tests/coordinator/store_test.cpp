// The SweepStore contract (coordinator/store.h), one suite run against both implementations, plus what
// only the SQLite store promises (a file that survives reopening, WAL mode, schema versions, clear errors
// for files it cannot use).
#include <gtest/gtest.h>
#include <unistd.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "coordinator/memory_store.h"
#include "coordinator/sqlite_store.h"

namespace dwarp::coordinator {
namespace {

namespace fs = std::filesystem;

// A fresh folder under the system's temp folder; removed (with everything in it) on destruction.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "dwarp_store_test_XXXXXX").string();
    char* made = mkdtemp(pattern.data());
    EXPECT_NE(made, nullptr) << "mkdtemp " << pattern;
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Field-by-field views, so that EXPECT_EQ compares (and prints) every field.
auto Fields(const SweepRow& s) {
  return std::make_tuple(s.sweep_id, s.name, static_cast<int>(s.state), s.created_ms, s.finished_ms, s.spec_json,
                         s.request_id);
}
auto Fields(const JobRow& j) {
  return std::make_tuple(j.job_id, j.sweep_id, j.model, j.layer, j.dataset, j.d.ToString(), j.variant, j.seed, j.spec_json,
                         static_cast<int>(j.state), j.attempt, j.lease_id, j.worker_id, j.lease_expires_ms, j.error,
                         j.created_ms, j.started_ms, j.finished_ms, j.cancel_requested, j.reason);
}
// NaN ("unknown") as an empty optional, so that two unknowns compare equal.
std::optional<double> NanAsEmpty(double x) { return std::isnan(x) ? std::nullopt : std::optional<double>(x); }

auto Fields(const ResultRow& r) {
  return std::make_tuple(r.metric, r.train_score, r.val_score, r.test_score, r.test_pearson_mean,
                         r.test_pearson_median, r.epochs_run, r.best_epoch, r.seconds, r.numbers_trained, r.parameters_warped,
                         r.device, r.result_json, NanAsEmpty(r.noise_ceiling), r.attempt, r.worker_id,
                         r.recorded_ms);
}
auto Fields(const MetricRow& m) {
  return std::make_tuple(m.job_id, m.attempt, m.epoch, m.train_loss, m.val_score, m.time_ms);
}
auto Fields(const WorkerRow& w) {
  return std::make_tuple(w.worker_id, w.name, w.host, w.devices, w.registered_ms, w.last_seen_ms,
                         w.consecutive_failures, w.blocked, w.draining, w.jobs_succeeded, w.jobs_failed);
}

void ExpectSameJob(const JobRow& want, const JobRow& got) {
  EXPECT_EQ(Fields(want), Fields(got));
  ASSERT_EQ(want.result.has_value(), got.result.has_value()) << "job " << want.job_id;
  if (want.result) {
    EXPECT_EQ(Fields(*want.result), Fields(*got.result));
  }
}

// Rows with every field set to something other than its default, and text that needs care (quotes,
// commas, newlines, non-ASCII) where a careless encoding would lose it.
SweepRow MakeSweep(const std::string& id, int64_t created_ms = 1'700'000'000'000) {
  SweepRow s;
  s.sweep_id = id;
  s.name = "resnet vs \"IT\", run 1\nü";
  s.state = SweepState::kRunning;
  s.created_ms = created_ms;
  s.finished_ms = 0;
  s.spec_json = R"({"name":"sweep )" + id + R"(","d":[0,10,100]})";
  return s;
}

JobRow MakeJob(const std::string& d, uint64_t seed) {
  JobRow j;
  j.model = "resnet18";
  j.layer = "layer4";
  j.dataset = "majaj_hong";
  j.d = *SubspaceDim::Parse(d);
  j.variant = "lr=1e-3,wd=0";
  j.seed = seed;
  j.spec_json = R"({"d":")" + d + R"(","train":{"seed":)" + std::to_string(seed) + "}}";
  j.state = JobState::kQueued;
  j.attempt = 0;
  j.created_ms = 1'700'000'000'123;
  j.reason = "bisect log d between 300 and \"1000\", ünïcode";
  return j;
}

ResultRow MakeResult(int32_t attempt) {
  ResultRow r;
  r.metric = "r2";
  r.train_score = 0.1 + 0.2;  // not exactly 0.3: checks doubles round-trip bit for bit
  r.val_score = 1.0 / 3.0;
  r.test_score = -2.5e-300;
  r.test_pearson_mean = 0.7071067811865476;
  r.test_pearson_median = 0.69314718055994531;
  r.epochs_run = 42;
  r.best_epoch = 37;
  r.seconds = 1234.5678;
  r.numbers_trained = 1000;
  r.parameters_warped = 11'689'512;
  r.device = "cuda:0";
  r.result_json = R"({"test":{"r2":-2.5e-300},"note":"a\"b"})";
  r.noise_ceiling = 1.0 / 1.01;  // a synthetic brain's, noise 0.1
  r.attempt = attempt;
  r.worker_id = "worker-7";
  r.recorded_ms = 1'700'000'100'000;
  return r;
}

WorkerRow MakeWorker(const std::string& id) {
  WorkerRow w;
  w.worker_id = id;
  w.name = "gpu box " + id;
  w.host = "node17.cluster.example:50051";
  w.devices = {"cuda:0", "cuda:1", "odd \"name\", with\\backslash\tand tab", "ü"};
  w.registered_ms = 1'700'000'000'000;
  w.last_seen_ms = 1'700'000'000'999;
  w.consecutive_failures = 3;
  w.blocked = true;
  w.draining = true;
  w.jobs_succeeded = 12;
  w.jobs_failed = 4;
  return w;
}

MetricRow Point(int64_t job_id, int32_t attempt, int64_t epoch) {
  MetricRow m;
  m.job_id = job_id;
  m.attempt = attempt;
  m.epoch = epoch;
  m.train_loss = 1.0 / static_cast<double>(epoch + 3);
  m.val_score = 0.5 + 0.01 * static_cast<double>(epoch);
  m.time_ms = 1'700'000'000'000 + 1000 * epoch + attempt;
  return m;
}

// A job as UpdateJobs / RecordResult write it: every mutable field changed.
JobRow Leased(JobRow j, int32_t attempt) {
  j.state = JobState::kRunning;
  j.attempt = attempt;
  j.lease_id = "lease-" + std::to_string(j.job_id) + "-" + std::to_string(attempt);
  j.worker_id = "worker-7";
  j.lease_expires_ms = 1'700'000'030'000;
  j.error = "previous attempt: CUDA out of memory";
  j.started_ms = 1'700'000'000'500;
  j.finished_ms = 1'700'000'000'600;
  j.cancel_requested = true;
  return j;
}

enum class StoreKind { kMemory, kSqlite };

std::string KindName(StoreKind kind) { return kind == StoreKind::kMemory ? "Memory" : "Sqlite"; }
std::string TestNameOf(const ::testing::TestParamInfo<StoreKind>& info) { return KindName(info.param); }
// So that a failure names the store rather than printing the parameter's bytes.
void PrintTo(StoreKind kind, std::ostream* os) { *os << KindName(kind); }

class StoreTest : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<TempDir>();
    if (GetParam() == StoreKind::kMemory) {
      store_ = std::make_unique<MemorySweepStore>();
      return;
    }
    auto opened = SqliteSweepStore::Open((dir_->path() / "store.db").string());
    ASSERT_TRUE(opened.ok()) << opened.status();
    store_ = std::move(opened).value();
  }
  void TearDown() override {
    store_.reset();
    dir_.reset();
  }

  // Creates a sweep with jobs at the given d's (seed 0, 1, ...) and returns the jobs with their ids.
  std::vector<JobRow> CreateSweepWithJobs(const std::string& id, const std::vector<std::string>& ds) {
    std::vector<JobRow> jobs;
    for (size_t i = 0; i < ds.size(); ++i) jobs.push_back(MakeJob(ds[i], i));
    Status status = store_->CreateSweep(MakeSweep(id), jobs);
    EXPECT_TRUE(status.ok()) << status;
    return jobs;
  }

  std::vector<JobRow> Jobs() {
    auto jobs = store_->LoadJobs();
    EXPECT_TRUE(jobs.ok()) << jobs.status();
    return jobs.ok() ? *jobs : std::vector<JobRow>{};
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<SweepStore> store_;
};

TEST_P(StoreTest, EmptyStoreLoadsNothing) {
  auto sweeps = store_->LoadSweeps();
  ASSERT_TRUE(sweeps.ok()) << sweeps.status();
  EXPECT_TRUE(sweeps->empty());
  EXPECT_TRUE(Jobs().empty());
  auto workers = store_->LoadWorkers();
  ASSERT_TRUE(workers.ok()) << workers.status();
  EXPECT_TRUE(workers->empty());
  auto metrics = store_->LoadMetrics(1);
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_TRUE(metrics->empty());
  auto count = store_->CountResults(1);
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(*count, 0);
}

TEST_P(StoreTest, SweepAndJobsRoundTripEveryField) {
  SweepRow sweep = MakeSweep("sweep-a");
  std::vector<JobRow> jobs = {MakeJob("0", 0), MakeJob("300", std::numeric_limits<uint64_t>::max() - 5),
                              MakeJob("full", 1)};
  jobs[2].state = JobState::kCancelled;  // a job may be created in any state
  jobs[2].error = "cancelled before it ran";
  jobs[2].cancel_requested = true;
  ASSERT_TRUE(store_->CreateSweep(sweep, jobs).ok());

  auto sweeps = store_->LoadSweeps();
  ASSERT_TRUE(sweeps.ok()) << sweeps.status();
  ASSERT_EQ(sweeps->size(), 1u);
  EXPECT_EQ(Fields((*sweeps)[0]), Fields(sweep));

  // CreateSweep filled in the ids and the sweep id; the stored rows equal the caller's.
  std::vector<JobRow> loaded = Jobs();
  ASSERT_EQ(loaded.size(), jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i) {
    EXPECT_EQ(jobs[i].sweep_id, "sweep-a");
    ExpectSameJob(jobs[i], loaded[i]);
  }
  EXPECT_EQ(loaded[1].seed, std::numeric_limits<uint64_t>::max() - 5);
}

TEST_P(StoreTest, UpdateSweepWritesStateAndFinishTime) {
  CreateSweepWithJobs("sweep-a", {"0"});
  SweepRow done = MakeSweep("sweep-a");
  done.state = SweepState::kDone;
  done.finished_ms = 1'700'000'900'000;
  ASSERT_TRUE(store_->UpdateSweep(done).ok());
  auto sweeps = store_->LoadSweeps();
  ASSERT_TRUE(sweeps.ok()) << sweeps.status();
  ASSERT_EQ(sweeps->size(), 1u);
  EXPECT_EQ((*sweeps)[0].state, SweepState::kDone);
  EXPECT_EQ((*sweeps)[0].finished_ms, 1'700'000'900'000);

  SweepRow unknown = MakeSweep("no-such-sweep");
  Status status = store_->UpdateSweep(unknown);
  EXPECT_EQ(status.code(), StatusCode::kNotFound) << status;
  EXPECT_NE(status.message().find("no-such-sweep"), std::string::npos) << status;
}

TEST_P(StoreTest, SweepsLoadInCreationOrder) {
  // Ids deliberately not in alphabetical order: the order is creation's, not the id's.
  CreateSweepWithJobs("zeta", {"0"});
  CreateSweepWithJobs("alpha", {"0"});
  CreateSweepWithJobs("mu", {"0"});
  auto sweeps = store_->LoadSweeps();
  ASSERT_TRUE(sweeps.ok()) << sweeps.status();
  ASSERT_EQ(sweeps->size(), 3u);
  EXPECT_EQ((*sweeps)[0].sweep_id, "zeta");
  EXPECT_EQ((*sweeps)[1].sweep_id, "alpha");
  EXPECT_EQ((*sweeps)[2].sweep_id, "mu");
}

TEST_P(StoreTest, JobIdsAscendAcrossSweepsAndAreNeverReused) {
  std::vector<JobRow> a = CreateSweepWithJobs("sweep-a", {"0", "10", "100"});
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[0].job_id, 1);
  EXPECT_EQ(a[1].job_id, 2);
  EXPECT_EQ(a[2].job_id, 3);

  // A refused sweep assigns nothing ...
  std::vector<JobRow> refused = {MakeJob("0", 9)};
  EXPECT_EQ(store_->CreateSweep(MakeSweep("sweep-a"), refused).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(refused[0].job_id, 0);

  // ... and the next sweep's ids continue above every id handed out.
  std::vector<JobRow> b = CreateSweepWithJobs("sweep-b", {"0", "10"});
  ASSERT_EQ(b.size(), 2u);
  EXPECT_GT(b[0].job_id, a[2].job_id);
  EXPECT_GT(b[1].job_id, b[0].job_id);

  std::vector<JobRow> loaded = Jobs();
  ASSERT_EQ(loaded.size(), 5u);
  for (size_t i = 1; i < loaded.size(); ++i) EXPECT_LT(loaded[i - 1].job_id, loaded[i].job_id);
  EXPECT_EQ(loaded[3].sweep_id, "sweep-b");
}

TEST_P(StoreTest, DuplicateSweepIdIsAlreadyExistsAndWritesNothing) {
  std::vector<JobRow> first = CreateSweepWithJobs("sweep-a", {"0", "10"});
  SweepRow again = MakeSweep("sweep-a", 1'800'000'000'000);
  again.name = "a different sweep";
  std::vector<JobRow> more = {MakeJob("0", 5), MakeJob("10", 5), MakeJob("full", 5)};
  Status status = store_->CreateSweep(again, more);
  EXPECT_EQ(status.code(), StatusCode::kAlreadyExists) << status;
  EXPECT_NE(status.message().find("sweep-a"), std::string::npos) << status;
  for (const JobRow& job : more) EXPECT_EQ(job.job_id, 0);

  auto sweeps = store_->LoadSweeps();
  ASSERT_TRUE(sweeps.ok()) << sweeps.status();
  ASSERT_EQ(sweeps->size(), 1u);
  EXPECT_EQ(Fields((*sweeps)[0]), Fields(MakeSweep("sweep-a")));
  std::vector<JobRow> loaded = Jobs();
  ASSERT_EQ(loaded.size(), 2u);
  ExpectSameJob(first[0], loaded[0]);
  ExpectSameJob(first[1], loaded[1]);
}

TEST_P(StoreTest, RequestIdRoundTripsAndASecondSweepWithItIsAlreadyExistsAndWritesNothing) {
  SweepRow first = MakeSweep("sweep-a");
  first.request_id = "req-0123456789abcdef";
  std::vector<JobRow> jobs = {MakeJob("0", 0)};
  ASSERT_TRUE(store_->CreateSweep(first, jobs).ok());
  // Sweeps without a request id do not collide with each other.
  CreateSweepWithJobs("sweep-b", {"0"});
  CreateSweepWithJobs("sweep-c", {"0"});

  SweepRow again = MakeSweep("sweep-d");
  again.request_id = first.request_id;
  std::vector<JobRow> more = {MakeJob("0", 1), MakeJob("10", 1)};
  Status status = store_->CreateSweep(again, more);
  EXPECT_EQ(status.code(), StatusCode::kAlreadyExists) << status;
  EXPECT_NE(status.message().find("req-0123456789abcdef"), std::string::npos) << status;
  EXPECT_NE(status.message().find("sweep-a"), std::string::npos) << status;
  for (const JobRow& job : more) EXPECT_EQ(job.job_id, 0);

  auto sweeps = store_->LoadSweeps();
  ASSERT_TRUE(sweeps.ok()) << sweeps.status();
  ASSERT_EQ(sweeps->size(), 3u);
  EXPECT_EQ(Fields((*sweeps)[0]), Fields(first));
  EXPECT_EQ((*sweeps)[1].request_id, "");
  EXPECT_EQ(Jobs().size(), 3u);
}

TEST_P(StoreTest, JobOfAnotherSweepIsRefusedAndNothingWritten) {
  std::vector<JobRow> jobs = {MakeJob("0", 0), MakeJob("10", 0)};
  jobs[1].sweep_id = "other-sweep";
  Status status = store_->CreateSweep(MakeSweep("sweep-a"), jobs);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("other-sweep"), std::string::npos) << status;
  auto sweeps = store_->LoadSweeps();
  ASSERT_TRUE(sweeps.ok()) << sweeps.status();
  EXPECT_TRUE(sweeps->empty());
  EXPECT_TRUE(Jobs().empty());
}

TEST_P(StoreTest, AddJobsAppendsToAnExistingSweepWithNewIdsAndTheirReasons) {
  SweepRow sweep = MakeSweep("sweep-a");
  std::vector<JobRow> grid = {MakeJob("0", 0), MakeJob("1000", 0)};
  ASSERT_TRUE(store_->CreateSweep(sweep, grid).ok());
  std::vector<JobRow> more = {MakeJob("316", 0), MakeJob("316", 1)};
  more[1].reason = "seed 1 at d = 316: one seed gives no interval";
  ASSERT_TRUE(store_->AddJobs("sweep-a", more).ok());
  EXPECT_GT(more[0].job_id, grid[1].job_id);
  EXPECT_GT(more[1].job_id, more[0].job_id);
  EXPECT_EQ(more[1].sweep_id, "sweep-a");
  std::vector<JobRow> loaded = Jobs();
  ASSERT_EQ(loaded.size(), 4u);
  ExpectSameJob(more[0], loaded[2]);
  ExpectSameJob(more[1], loaded[3]);
  EXPECT_EQ(loaded[3].reason, "seed 1 at d = 316: one seed gives no interval");
}

TEST_P(StoreTest, AddJobsToAnUnknownSweepIsNotFoundAndJobsOfAnotherSweepAreRefused) {
  std::vector<JobRow> grid = {MakeJob("0", 0)};
  ASSERT_TRUE(store_->CreateSweep(MakeSweep("sweep-a"), grid).ok());
  std::vector<JobRow> more = {MakeJob("316", 0)};
  Status unknown = store_->AddJobs("no-such-sweep", more);
  EXPECT_EQ(unknown.code(), StatusCode::kNotFound) << unknown;
  EXPECT_NE(unknown.message().find("no-such-sweep"), std::string::npos) << unknown;
  more[0].sweep_id = "other-sweep";
  Status other = store_->AddJobs("sweep-a", more);
  EXPECT_EQ(other.code(), StatusCode::kInvalidArgument) << other;
  EXPECT_NE(other.message().find("other-sweep"), std::string::npos) << other;
  EXPECT_EQ(Jobs().size(), 1u);
}

TEST_P(StoreTest, UpdateJobsWritesEveryMutableField) {
  std::vector<JobRow> jobs = CreateSweepWithJobs("sweep-a", {"0", "10", "100"});
  std::vector<JobRow> updated = {Leased(jobs[0], 1), Leased(jobs[2], 4)};
  updated[1].state = JobState::kFailed;
  ASSERT_TRUE(store_->UpdateJobs(updated).ok());

  std::vector<JobRow> loaded = Jobs();
  ASSERT_EQ(loaded.size(), 3u);
  ExpectSameJob(updated[0], loaded[0]);
  ExpectSameJob(jobs[1], loaded[1]);  // not in the batch: untouched
  ExpectSameJob(updated[1], loaded[2]);

  // Back to the defaults: "" and 0 and false are written too, not skipped as "unset".
  ASSERT_TRUE(store_->UpdateJobs({jobs[0]}).ok());
  ExpectSameJob(jobs[0], Jobs()[0]);
}

TEST_P(StoreTest, UpdateJobsWithAnUnknownIdIsNotFoundAndWritesNothing) {
  std::vector<JobRow> jobs = CreateSweepWithJobs("sweep-a", {"0", "10"});
  JobRow unknown = Leased(jobs[1], 1);
  unknown.job_id = 999;
  // The known job comes first: its update must be undone with the rest of the batch.
  Status status = store_->UpdateJobs({Leased(jobs[0], 1), unknown, Leased(jobs[1], 1)});
  EXPECT_EQ(status.code(), StatusCode::kNotFound) << status;
  EXPECT_NE(status.message().find("999"), std::string::npos) << status;

  std::vector<JobRow> loaded = Jobs();
  ASSERT_EQ(loaded.size(), 2u);
  ExpectSameJob(jobs[0], loaded[0]);
  ExpectSameJob(jobs[1], loaded[1]);
}

TEST_P(StoreTest, RecordResultStoresResultAndJobRow) {
  std::vector<JobRow> jobs = CreateSweepWithJobs("sweep-a", {"0", "10"});
  JobRow done = Leased(jobs[1], 2);
  done.state = JobState::kSucceeded;
  done.lease_id = "";
  done.cancel_requested = false;
  ASSERT_TRUE(store_->RecordResult(done, MakeResult(2)).ok());

  std::vector<JobRow> loaded = Jobs();
  ASSERT_EQ(loaded.size(), 2u);
  ExpectSameJob(jobs[0], loaded[0]);  // no result
  done.result = MakeResult(2);
  ExpectSameJob(done, loaded[1]);
  auto count = store_->CountResults(done.job_id);
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(*count, 1);
}

TEST_P(StoreTest, AnUnknownNoiseCeilingRoundTripsAsNaN) {
  std::vector<JobRow> jobs = CreateSweepWithJobs("sweep-a", {"0", "10"});
  JobRow with = Leased(jobs[0], 1), without = Leased(jobs[1], 1);
  with.state = without.state = JobState::kSucceeded;
  ResultRow unknown = MakeResult(1);
  unknown.noise_ceiling = std::numeric_limits<double>::quiet_NaN();
  ASSERT_TRUE(store_->RecordResult(with, MakeResult(1)).ok());
  ASSERT_TRUE(store_->RecordResult(without, unknown).ok());

  std::vector<JobRow> loaded = Jobs();
  ASSERT_EQ(loaded.size(), 2u);
  ASSERT_TRUE(loaded[0].result.has_value());
  EXPECT_EQ(loaded[0].result->noise_ceiling, 1.0 / 1.01);  // bit for bit
  ASSERT_TRUE(loaded[1].result.has_value());
  EXPECT_TRUE(std::isnan(loaded[1].result->noise_ceiling)) << loaded[1].result->noise_ceiling;
  without.result = unknown;
  ExpectSameJob(without, loaded[1]);
}

TEST_P(StoreTest, SecondResultIsAlreadyExistsAndWritesNothing) {
  std::vector<JobRow> jobs = CreateSweepWithJobs("sweep-a", {"0"});
  JobRow done = Leased(jobs[0], 1);
  done.state = JobState::kSucceeded;
  ASSERT_TRUE(store_->RecordResult(done, MakeResult(1)).ok());

  // A retried completion (another attempt, another worker) must neither add a result nor touch the row.
  JobRow retry = Leased(jobs[0], 2);
  retry.state = JobState::kFailed;
  ResultRow other = MakeResult(2);
  other.test_score = 0.99;
  Status status = store_->RecordResult(retry, other);
  EXPECT_EQ(status.code(), StatusCode::kAlreadyExists) << status;
  EXPECT_NE(status.message().find(std::to_string(jobs[0].job_id)), std::string::npos) << status;

  auto count = store_->CountResults(jobs[0].job_id);
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(*count, 1);
  done.result = MakeResult(1);
  std::vector<JobRow> loaded = Jobs();
  ASSERT_EQ(loaded.size(), 1u);
  ExpectSameJob(done, loaded[0]);
}

TEST_P(StoreTest, ResultForAnUnknownJobIsNotFound) {
  CreateSweepWithJobs("sweep-a", {"0"});
  JobRow ghost = MakeJob("0", 0);
  ghost.job_id = 42;
  Status status = store_->RecordResult(ghost, MakeResult(1));
  EXPECT_EQ(status.code(), StatusCode::kNotFound) << status;
  EXPECT_NE(status.message().find("42"), std::string::npos) << status;
  auto count = store_->CountResults(42);
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(*count, 0);
}

TEST_P(StoreTest, MetricsLoadByAttemptThenEpochAndFilterByAttempt) {
  std::vector<JobRow> jobs = CreateSweepWithJobs("sweep-a", {"0", "10"});
  const int64_t a = jobs[0].job_id, b = jobs[1].job_id;
  // One batch, out of order and interleaved across jobs and attempts.
  std::vector<MetricRow> batch = {Point(a, 2, 1), Point(b, 1, 0), Point(a, 1, 2), Point(a, 2, 0),
                                  Point(a, 1, 0), Point(b, 1, 1), Point(a, 1, 1)};
  ASSERT_TRUE(store_->AppendMetrics(batch).ok());
  ASSERT_TRUE(store_->AppendMetrics({Point(a, 1, 3)}).ok());  // a second batch adds to the first

  auto all = store_->LoadMetrics(a);
  ASSERT_TRUE(all.ok()) << all.status();
  std::vector<MetricRow> want = {Point(a, 1, 0), Point(a, 1, 1), Point(a, 1, 2), Point(a, 1, 3),
                                 Point(a, 2, 0), Point(a, 2, 1)};
  ASSERT_EQ(all->size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(Fields((*all)[i]), Fields(want[i])) << "point " << i;

  auto second = store_->LoadMetrics(a, 2);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->size(), 2u);
  EXPECT_EQ(Fields((*second)[0]), Fields(Point(a, 2, 0)));
  EXPECT_EQ(Fields((*second)[1]), Fields(Point(a, 2, 1)));

  auto other_job = store_->LoadMetrics(b);
  ASSERT_TRUE(other_job.ok()) << other_job.status();
  ASSERT_EQ(other_job->size(), 2u);
  EXPECT_EQ(Fields((*other_job)[0]), Fields(Point(b, 1, 0)));
  EXPECT_EQ(Fields((*other_job)[1]), Fields(Point(b, 1, 1)));

  auto no_such_attempt = store_->LoadMetrics(a, 7);
  ASSERT_TRUE(no_such_attempt.ok()) << no_such_attempt.status();
  EXPECT_TRUE(no_such_attempt->empty());
}

TEST_P(StoreTest, AMetricPointSentAgainIsStoredOnceAndKeepsItsFirstCopy) {
  std::vector<JobRow> jobs = CreateSweepWithJobs("sweep-a", {"0"});
  const int64_t a = jobs[0].job_id;
  ASSERT_TRUE(store_->AppendMetrics({Point(a, 1, 1), Point(a, 1, 2)}).ok());
  // A worker whose stream broke sends its curve again, then goes on; one batch may repeat itself too.
  MetricRow changed = Point(a, 1, 2);
  changed.val_score = 0.99;
  Status again = store_->AppendMetrics({Point(a, 1, 1), changed, Point(a, 1, 3), Point(a, 1, 3), Point(a, 2, 2)});
  ASSERT_TRUE(again.ok()) << again;
  auto points = store_->LoadMetrics(a);
  ASSERT_TRUE(points.ok()) << points.status();
  std::vector<MetricRow> want = {Point(a, 1, 1), Point(a, 1, 2), Point(a, 1, 3), Point(a, 2, 2)};
  ASSERT_EQ(points->size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(Fields((*points)[i]), Fields(want[i])) << "point " << i;
}

TEST_P(StoreTest, MetricsOfAnUnknownJobAreNotFoundAndTheBatchIsNotWritten) {
  std::vector<JobRow> jobs = CreateSweepWithJobs("sweep-a", {"0"});
  const int64_t a = jobs[0].job_id;
  Status status = store_->AppendMetrics({Point(a, 1, 0), Point(777, 1, 0), Point(a, 1, 1)});
  EXPECT_EQ(status.code(), StatusCode::kNotFound) << status;
  EXPECT_NE(status.message().find("777"), std::string::npos) << status;
  auto points = store_->LoadMetrics(a);
  ASSERT_TRUE(points.ok()) << points.status();
  EXPECT_TRUE(points->empty());
}

TEST_P(StoreTest, WorkersRoundTripAndUpsertReplaces) {
  WorkerRow w2 = MakeWorker("w2");
  WorkerRow w1 = MakeWorker("w1");
  w1.devices.clear();  // a CPU-only worker
  w1.blocked = false;
  ASSERT_TRUE(store_->UpsertWorker(w2).ok());
  ASSERT_TRUE(store_->UpsertWorker(w1).ok());

  auto workers = store_->LoadWorkers();
  ASSERT_TRUE(workers.ok()) << workers.status();
  ASSERT_EQ(workers->size(), 2u);
  EXPECT_EQ(Fields((*workers)[0]), Fields(w1));  // by id
  EXPECT_EQ(Fields((*workers)[1]), Fields(w2));

  WorkerRow replaced = w2;
  replaced.name = "renamed";
  replaced.devices = {"cuda:3"};
  replaced.last_seen_ms += 5000;
  replaced.consecutive_failures = 0;
  replaced.blocked = false;
  replaced.draining = false;
  replaced.jobs_succeeded = 13;
  ASSERT_TRUE(store_->UpsertWorker(replaced).ok());
  workers = store_->LoadWorkers();
  ASSERT_TRUE(workers.ok()) << workers.status();
  ASSERT_EQ(workers->size(), 2u);
  EXPECT_EQ(Fields((*workers)[0]), Fields(w1));
  EXPECT_EQ(Fields((*workers)[1]), Fields(replaced));
}

TEST_P(StoreTest, WorkerCredentialsRoundTripAndANewOneReplacesTheOld) {
  auto none = store_->LoadWorkerCredentials();
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty());
  ASSERT_TRUE(store_->PutWorkerCredential({"w2", std::string(64, 'b'), 2000}).ok());
  ASSERT_TRUE(store_->PutWorkerCredential({"w1", std::string(64, 'a'), 1000}).ok());
  ASSERT_TRUE(store_->PutWorkerCredential({"w2", std::string(64, 'c'), 3000}).ok());
  auto credentials = store_->LoadWorkerCredentials();
  ASSERT_TRUE(credentials.ok()) << credentials.status();
  ASSERT_EQ(credentials->size(), 2u);
  EXPECT_EQ((*credentials)[0].worker_id, "w1");  // by id
  EXPECT_EQ((*credentials)[0].secret_sha256, std::string(64, 'a'));
  EXPECT_EQ((*credentials)[0].issued_ms, 1000);
  EXPECT_EQ((*credentials)[1].worker_id, "w2");
  EXPECT_EQ((*credentials)[1].secret_sha256, std::string(64, 'c'));
  EXPECT_EQ((*credentials)[1].issued_ms, 3000);
}

TEST_P(StoreTest, ConcurrentCallsFromManyThreadsAllLand) {
  constexpr int kThreads = 4;
  constexpr int kPointsPerThread = 50;
  std::vector<std::string> ds;
  for (int t = 0; t < kThreads; ++t) ds.push_back(std::to_string(10 * (t + 1)));
  std::vector<JobRow> jobs = CreateSweepWithJobs("sweep-a", ds);
  ASSERT_EQ(jobs.size(), static_cast<size_t>(kThreads));

  std::vector<std::thread> threads;
  std::vector<Status> failures(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int e = 0; e < kPointsPerThread; ++e) {
        Status s = store_->AppendMetrics({Point(jobs[t].job_id, 1, e)});
        if (s.ok()) s = store_->UpdateJobs({Leased(jobs[t], e + 1)});
        if (s.ok()) s = store_->UpsertWorker(MakeWorker("w" + std::to_string(t)));
        if (!s.ok()) {
          failures[t] = s;
          return;
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_TRUE(failures[t].ok()) << "thread " << t << ": " << failures[t];

  std::vector<JobRow> loaded = Jobs();
  ASSERT_EQ(loaded.size(), static_cast<size_t>(kThreads));
  for (int t = 0; t < kThreads; ++t) {
    auto points = store_->LoadMetrics(jobs[t].job_id);
    ASSERT_TRUE(points.ok()) << points.status();
    EXPECT_EQ(points->size(), static_cast<size_t>(kPointsPerThread)) << "job " << jobs[t].job_id;
    EXPECT_EQ(loaded[t].attempt, kPointsPerThread);  // the last update of each job wins
  }
  auto workers = store_->LoadWorkers();
  ASSERT_TRUE(workers.ok()) << workers.status();
  EXPECT_EQ(workers->size(), static_cast<size_t>(kThreads));
}

INSTANTIATE_TEST_SUITE_P(BothStores, StoreTest, ::testing::Values(StoreKind::kMemory, StoreKind::kSqlite),
                         TestNameOf);

// ---- SQLite only ----

// The first column of the first row of `sql`, as text, through a separate, raw connection: what another
// process would see. A query without a (non-NULL) value is a test failure.
std::string RawValue(const fs::path& file, const std::string& sql) {
  sqlite3* conn = nullptr;
  std::string value;
  if (sqlite3_open_v2(file.c_str(), &conn, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(conn, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW &&
        sqlite3_column_text(stmt, 0) != nullptr) {
      value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
  }
  EXPECT_NE(conn, nullptr);
  if (value.empty()) ADD_FAILURE() << sql << " on " << file << ": " << sqlite3_errmsg(conn);
  sqlite3_close(conn);
  return value;
}

std::string RawPragma(const fs::path& file, const std::string& pragma) { return RawValue(file, "PRAGMA " + pragma); }

// Runs SQL on `file` through a raw connection (to prepare files the store must cope with).
void RawExec(const fs::path& file, const std::string& sql) {
  sqlite3* conn = nullptr;
  ASSERT_EQ(sqlite3_open(file.c_str(), &conn), SQLITE_OK);
  char* error = nullptr;
  int rc = sqlite3_exec(conn, sql.c_str(), nullptr, nullptr, &error);
  EXPECT_EQ(rc, SQLITE_OK) << (error != nullptr ? error : "");
  sqlite3_free(error);
  sqlite3_close(conn);
}

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<TempDir>();
    file_ = dir_->path() / "store.db";
  }
  void TearDown() override { dir_.reset(); }

  std::unique_ptr<SqliteSweepStore> OpenOrFail() {
    auto store = SqliteSweepStore::Open(file_.string());
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  std::unique_ptr<TempDir> dir_;
  fs::path file_;
};

TEST_F(SqliteStoreTest, EverythingSurvivesCloseAndReopen) {
  std::vector<JobRow> jobs = {MakeJob("0", 0), MakeJob("10", 1)};
  WorkerRow worker = MakeWorker("w1");
  JobRow done;
  {
    std::unique_ptr<SqliteSweepStore> store = OpenOrFail();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->path(), file_.string());
    ASSERT_TRUE(store->CreateSweep(MakeSweep("sweep-a"), jobs).ok());
    done = Leased(jobs[0], 1);
    done.state = JobState::kSucceeded;
    ASSERT_TRUE(store->RecordResult(done, MakeResult(1)).ok());
    ASSERT_TRUE(store->UpdateJobs({Leased(jobs[1], 3)}).ok());
    ASSERT_TRUE(store->AppendMetrics({Point(jobs[1].job_id, 3, 0), Point(jobs[1].job_id, 3, 1)}).ok());
    ASSERT_TRUE(store->UpsertWorker(worker).ok());
  }

  std::unique_ptr<SqliteSweepStore> store = OpenOrFail();
  ASSERT_NE(store, nullptr);
  auto sweeps = store->LoadSweeps();
  ASSERT_TRUE(sweeps.ok()) << sweeps.status();
  ASSERT_EQ(sweeps->size(), 1u);
  EXPECT_EQ(Fields((*sweeps)[0]), Fields(MakeSweep("sweep-a")));

  auto loaded = store->LoadJobs();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_EQ(loaded->size(), 2u);
  done.result = MakeResult(1);
  ExpectSameJob(done, (*loaded)[0]);
  ExpectSameJob(Leased(jobs[1], 3), (*loaded)[1]);

  auto points = store->LoadMetrics(jobs[1].job_id, 3);
  ASSERT_TRUE(points.ok()) << points.status();
  ASSERT_EQ(points->size(), 2u);
  EXPECT_EQ(Fields((*points)[1]), Fields(Point(jobs[1].job_id, 3, 1)));

  auto workers = store->LoadWorkers();
  ASSERT_TRUE(workers.ok()) << workers.status();
  ASSERT_EQ(workers->size(), 1u);
  EXPECT_EQ(Fields((*workers)[0]), Fields(worker));

  // The one-result rule and the id sequence hold across the restart too.
  EXPECT_EQ(store->RecordResult(done, MakeResult(2)).code(), StatusCode::kAlreadyExists);
  std::vector<JobRow> later = {MakeJob("100", 0)};
  ASSERT_TRUE(store->CreateSweep(MakeSweep("sweep-b"), later).ok());
  EXPECT_EQ(later[0].job_id, jobs[1].job_id + 1);
}

TEST_F(SqliteStoreTest, ASecondOpenOfTheSameFileIsRefusedUntilTheFirstCloses) {
  std::unique_ptr<SqliteSweepStore> first = OpenOrFail();
  ASSERT_NE(first, nullptr);
  auto second = SqliteSweepStore::Open(file_.string());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition) << second.status();
  EXPECT_NE(second.status().message().find("process " + std::to_string(::getpid())), std::string::npos)
      << second.status();
  EXPECT_NE(second.status().message().find(file_.string() + ".lock"), std::string::npos) << second.status();
  first.reset();
  EXPECT_NE(OpenOrFail(), nullptr);
}

TEST_F(SqliteStoreTest, FileIsInWalModeAtTheCurrentSchemaVersionWithDwarpsApplicationId) {
  std::unique_ptr<SqliteSweepStore> store = OpenOrFail();
  ASSERT_NE(store, nullptr);
  // journal_mode=WAL is a property of the file, so a second connection sees it.
  EXPECT_EQ(RawPragma(file_, "journal_mode"), "wal");
  EXPECT_EQ(RawPragma(file_, "user_version"), std::to_string(SqliteSweepStore::kSchemaVersion));
  EXPECT_EQ(RawPragma(file_, "application_id"), std::to_string(SqliteSweepStore::kApplicationId));
}

// The file's tables, views and indexes, one name per line, through a raw connection.
std::string SchemaNames(const fs::path& file) {
  return RawValue(file, "SELECT coalesce(group_concat(name, ' '), '(none)') FROM (SELECT name FROM sqlite_master"
                        " ORDER BY name)");
}

TEST_F(SqliteStoreTest, AnEmptyFileThatExistedBeforeOpenIsRefusedAndLeftAlone) {
  std::ofstream(file_).close();
  ASSERT_EQ(fs::file_size(file_), 0u);
  auto store = SqliteSweepStore::Open(file_.string());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition) << store.status();
  const std::string& message = store.status().message();
  EXPECT_NE(message.find("'" + file_.string() + "' exists but is empty (0 bytes)"), std::string::npos) << message;
  EXPECT_NE(message.find("Remove the file"), std::string::npos) << message;
  EXPECT_EQ(fs::file_size(file_), 0u);
  EXPECT_FALSE(fs::exists(file_.string() + "-wal"));
}

TEST_F(SqliteStoreTest, AFileThatDoesNotExistIsCreated) {
  ASSERT_FALSE(fs::exists(file_));
  ASSERT_NE(OpenOrFail(), nullptr);
  EXPECT_GT(fs::file_size(file_), 0u);
  // And it is accepted again (it has dwarp's application_id now), however often.
  ASSERT_NE(OpenOrFail(), nullptr);
}

TEST_F(SqliteStoreTest, AnEmptySqliteDatabaseIsTakenAsNew) {
  RawExec(file_, "CREATE TABLE scratch (x INTEGER); DROP TABLE scratch;");  // a header, no tables
  ASSERT_GT(fs::file_size(file_), 0u);
  ASSERT_NE(OpenOrFail(), nullptr);
  EXPECT_EQ(RawPragma(file_, "application_id"), std::to_string(SqliteSweepStore::kApplicationId));
}

TEST_F(SqliteStoreTest, AnotherProgramsDatabaseIsRefusedNamingWhatWasFoundAndLeftAlone) {
  RawExec(file_, "CREATE TABLE contacts (name TEXT); CREATE TABLE calls (who TEXT);"
                 "INSERT INTO contacts VALUES ('ada'); PRAGMA user_version = 1;");
  auto store = SqliteSweepStore::Open(file_.string());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition) << store.status();
  const std::string& message = store.status().message();
  EXPECT_NE(message.find("'" + file_.string() + "' is not a dwarp database"), std::string::npos) << message;
  EXPECT_NE(message.find("user_version 1"), std::string::npos) << message;
  EXPECT_NE(message.find("the tables calls, contacts"), std::string::npos) << message;
  // Untouched: no dwarp tables, the version, the journal mode and the application_id as they were.
  EXPECT_EQ(SchemaNames(file_), "calls contacts");
  EXPECT_EQ(RawPragma(file_, "user_version"), "1");
  EXPECT_EQ(RawPragma(file_, "journal_mode"), "delete");
  EXPECT_EQ(RawPragma(file_, "application_id"), "0");
}

TEST_F(SqliteStoreTest, ADatabaseWithAnotherApplicationIdIsRefusedEvenWithDwarpsTables) {
  {
    std::unique_ptr<SqliteSweepStore> store = OpenOrFail();
    ASSERT_NE(store, nullptr);
  }
  RawExec(file_, "PRAGMA application_id = 1179406164;");  // 0x464c4f54, another program's
  auto store = SqliteSweepStore::Open(file_.string());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition) << store.status();
  EXPECT_NE(store.status().message().find("its application_id is 0x464c4f54"), std::string::npos) << store.status();
  EXPECT_NE(store.status().message().find(file_.string()), std::string::npos) << store.status();
  EXPECT_EQ(RawPragma(file_, "application_id"), "1179406164");
}

TEST_F(SqliteStoreTest, ASchemaVersionFromAnotherProgramIsNotMistakenForANewerDwarp) {
  RawExec(file_, "CREATE TABLE things (x INTEGER); PRAGMA user_version = 40;");
  auto store = SqliteSweepStore::Open(file_.string());
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("is not a dwarp database"), std::string::npos) << store.status();
  EXPECT_NE(store.status().message().find("the tables things"), std::string::npos) << store.status();
}

// Opens `file` as an unprivileged user, so that file permissions apply (the tests may run as root, who
// may write any file): in a child process that drops to uid/gid 65534 first. The status, as text
// "<code> <message>", or "OK".
std::string OpenUnprivileged(const fs::path& file) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) return "pipe failed";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(pipe_fds[0]);
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) _exit(3);
    auto store = SqliteSweepStore::Open(file.string());
    const std::string text =
        store.ok() ? "OK" : std::to_string(static_cast<int>(store.status().code())) + " " + store.status().message();
    (void)!::write(pipe_fds[1], text.data(), text.size());
    _exit(0);
  }
  ::close(pipe_fds[1]);
  std::string text;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(pipe_fds[0], buffer, sizeof(buffer))) > 0) text.append(buffer, static_cast<size_t>(n));
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return text;
}

TEST_F(SqliteStoreTest, AReadOnlyFileIsRefusedAsNotWritable) {
  ASSERT_NE(OpenOrFail(), nullptr);  // a dwarp database, closed again
  fs::permissions(dir_->path(), fs::perms::all);  // the folder is writable (the lock file goes there)
  fs::permissions(file_.string() + ".lock", fs::perms::all);
  fs::permissions(file_, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  const std::string text = OpenUnprivileged(file_);
  const std::string code = std::to_string(static_cast<int>(StatusCode::kFailedPrecondition)) + " ";
  EXPECT_EQ(text.rfind(code, 0), 0u) << text;
  EXPECT_NE(text.find("'" + file_.string() + "' is not writable"), std::string::npos) << text;
  // The same file, writable again, opens.
  fs::permissions(file_, fs::perms::all);
  EXPECT_EQ(OpenUnprivileged(file_), "OK");
}

TEST_F(SqliteStoreTest, AFileInAReadOnlyFolderIsRefusedAsNotWritable) {
  ASSERT_NE(OpenOrFail(), nullptr);
  ASSERT_FALSE(fs::exists(file_.string() + "-wal")) << "closed cleanly: no WAL file left";
  fs::permissions(file_, fs::perms::all);
  std::ofstream(file_.string() + ".lock").close();
  fs::permissions(file_.string() + ".lock", fs::perms::all);
  // The file may be written, but WAL mode cannot create its -wal and -shm files next to it.
  fs::permissions(dir_->path(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                    fs::perms::others_read | fs::perms::others_exec);
  const std::string text = OpenUnprivileged(file_);
  fs::permissions(dir_->path(), fs::perms::all);
  EXPECT_NE(text.find("'" + file_.string() + "' is not writable"), std::string::npos) << text;
  EXPECT_NE(text.find(file_.string() + "-wal"), std::string::npos) << text;
}

TEST_F(SqliteStoreTest, IntegrityCheckIsOk) {
  std::unique_ptr<SqliteSweepStore> store = OpenOrFail();
  ASSERT_NE(store, nullptr);
  std::vector<JobRow> jobs = {MakeJob("0", 0)};
  ASSERT_TRUE(store->CreateSweep(MakeSweep("sweep-a"), jobs).ok());
  ASSERT_TRUE(store->AppendMetrics({Point(jobs[0].job_id, 1, 0)}).ok());
  auto report = store->IntegrityCheck();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(*report, "ok");
}

TEST_F(SqliteStoreTest, PathInAMissingFolderFailsNamingThePath) {
  const fs::path file = dir_->path() / "no-such-folder" / "store.db";
  auto store = SqliteSweepStore::Open(file.string());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kInternal) << store.status();
  EXPECT_NE(store.status().message().find(file.string()), std::string::npos) << store.status();
  EXPECT_FALSE(fs::exists(file.parent_path()));
}

TEST_F(SqliteStoreTest, NewerSchemaVersionIsRefusedAndTheFileLeftAlone) {
  const int newer = SqliteSweepStore::kSchemaVersion + 1;
  // A newer dwarp's file: dwarp's application_id, a version this build does not know.
  RawExec(file_, "CREATE TABLE future (x INTEGER); PRAGMA user_version = " + std::to_string(newer) +
                     "; PRAGMA application_id = " + std::to_string(SqliteSweepStore::kApplicationId) + ";");
  auto store = SqliteSweepStore::Open(file_.string());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition) << store.status();
  const std::string& message = store.status().message();
  EXPECT_NE(message.find(file_.string()), std::string::npos) << message;
  EXPECT_NE(message.find("version " + std::to_string(newer)), std::string::npos) << message;
  EXPECT_NE(message.find("version " + std::to_string(SqliteSweepStore::kSchemaVersion)), std::string::npos)
      << message;
  // Refused before anything was written: neither the version nor the journal mode changed.
  EXPECT_EQ(RawPragma(file_, "user_version"), std::to_string(newer));
  EXPECT_EQ(RawPragma(file_, "journal_mode"), "delete");
}

TEST_F(SqliteStoreTest, FileThatIsNotADatabaseIsRefused) {
  {
    std::ofstream out(file_, std::ios::binary);
    for (int i = 0; i < 200; ++i) out << "this is a results table in CSV, not a database\n";
  }
  auto store = SqliteSweepStore::Open(file_.string());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kInternal) << store.status();
  EXPECT_NE(store.status().message().find(file_.string()), std::string::npos) << store.status();
  EXPECT_NE(store.status().message().find("not a database"), std::string::npos) << store.status();
}

// A file as schema version 1 wrote it (the first schema, frozen here as released), with one sweep, two jobs
// and a result of the first.
constexpr const char* kVersionOneFile = R"sql(
CREATE TABLE sweeps (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  sweep_id     TEXT    NOT NULL UNIQUE,
  name         TEXT    NOT NULL,
  state        INTEGER NOT NULL,
  created_ms   INTEGER NOT NULL,
  finished_ms  INTEGER NOT NULL,
  spec_json    TEXT    NOT NULL
);
CREATE TABLE jobs (
  job_id            INTEGER PRIMARY KEY AUTOINCREMENT,
  sweep_id          TEXT    NOT NULL REFERENCES sweeps (sweep_id),
  model             TEXT    NOT NULL,
  layer             TEXT    NOT NULL,
  dataset           TEXT    NOT NULL,
  d                 TEXT    NOT NULL,
  variant           TEXT    NOT NULL,
  seed              INTEGER NOT NULL,
  spec_json         TEXT    NOT NULL,
  state             INTEGER NOT NULL,
  attempt           INTEGER NOT NULL,
  lease_id          TEXT    NOT NULL,
  worker_id         TEXT    NOT NULL,
  lease_expires_ms  INTEGER NOT NULL,
  error             TEXT    NOT NULL,
  created_ms        INTEGER NOT NULL,
  started_ms        INTEGER NOT NULL,
  finished_ms       INTEGER NOT NULL,
  cancel_requested  INTEGER NOT NULL
);
CREATE INDEX jobs_by_sweep ON jobs (sweep_id);
CREATE TABLE results (
  job_id               INTEGER PRIMARY KEY REFERENCES jobs (job_id),
  metric               TEXT    NOT NULL,
  train_score          REAL    NOT NULL,
  val_score            REAL    NOT NULL,
  test_score           REAL    NOT NULL,
  test_pearson_mean    REAL    NOT NULL,
  test_pearson_median  REAL    NOT NULL,
  epochs_run           INTEGER NOT NULL,
  best_epoch           INTEGER NOT NULL,
  seconds              REAL    NOT NULL,
  trained_d            INTEGER NOT NULL,
  warped_params        INTEGER NOT NULL,
  device               TEXT    NOT NULL,
  result_json          TEXT    NOT NULL,
  attempt              INTEGER NOT NULL,
  worker_id            TEXT    NOT NULL,
  recorded_ms          INTEGER NOT NULL
);
CREATE TABLE metrics (
  job_id      INTEGER NOT NULL REFERENCES jobs (job_id),
  attempt     INTEGER NOT NULL,
  epoch       INTEGER NOT NULL,
  train_loss  REAL    NOT NULL,
  val_score   REAL    NOT NULL,
  time_ms     INTEGER NOT NULL
);
CREATE INDEX metrics_by_job ON metrics (job_id, attempt, epoch);
CREATE TABLE workers (
  worker_id             TEXT    PRIMARY KEY,
  name                  TEXT    NOT NULL,
  host                  TEXT    NOT NULL,
  devices               TEXT    NOT NULL,
  registered_ms         INTEGER NOT NULL,
  last_seen_ms          INTEGER NOT NULL,
  consecutive_failures  INTEGER NOT NULL,
  blocked               INTEGER NOT NULL,
  draining              INTEGER NOT NULL,
  jobs_succeeded        INTEGER NOT NULL,
  jobs_failed           INTEGER NOT NULL
);
PRAGMA user_version = 1;
INSERT INTO sweeps (sweep_id, name, state, created_ms, finished_ms, spec_json)
  VALUES ('old', 'before noise ceilings', 1, 1700000000000, 0, '{}');
INSERT INTO jobs (sweep_id, model, layer, dataset, d, variant, seed, spec_json, state, attempt, lease_id,
                  worker_id, lease_expires_ms, error, created_ms, started_ms, finished_ms, cancel_requested)
  VALUES ('old', 'mlp', 'fc1', 'syn', '10', '', 0, '{}', 3, 1, '', 'w1', 0, '', 1700000000001, 1700000000002,
          1700000000003, 0),
         ('old', 'mlp', 'fc1', 'syn', '100', '', 0, '{}', 2, 1, 'lease-2', 'w1', 1700000009999, '',
          1700000000001, 1700000000002, 0, 0);
INSERT INTO results (job_id, metric, train_score, val_score, test_score, test_pearson_mean, test_pearson_median,
                     epochs_run, best_epoch, seconds, trained_d, warped_params, device, result_json, attempt,
                     worker_id, recorded_ms)
  VALUES (1, 'r2', 0.5, 0.25, 0.125, 0.75, 0.7, 4, 3, 1.5, 10, 12560, 'cpu', '{}', 1, 'w1', 1700000000003);
INSERT INTO metrics (job_id, attempt, epoch, train_loss, val_score, time_ms)
  VALUES (2, 1, 1, 0.5, 0.1, 1700000000010), (2, 1, 1, 0.5, 0.1, 1700000000010), (2, 1, 2, 0.4, 0.2, 1700000000020);
)sql";

TEST_F(SqliteStoreTest, AVersionOneFileIsMigratedAndItsResultsHaveAnUnknownNoiseCeiling) {
  RawExec(file_, kVersionOneFile);
  ASSERT_EQ(RawPragma(file_, "user_version"), "1");
  {
    std::unique_ptr<SqliteSweepStore> store = OpenOrFail();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(RawPragma(file_, "user_version"), std::to_string(SqliteSweepStore::kSchemaVersion));
    EXPECT_EQ(RawValue(file_, "SELECT type FROM pragma_table_info('results') WHERE name = 'noise_ceiling'"), "REAL");
    // Recognised by its tables (version 1 had no application_id), and stamped now.
    EXPECT_EQ(RawPragma(file_, "application_id"), std::to_string(SqliteSweepStore::kApplicationId));
    // The curve point stored twice (before points had a unique key) is kept once.
    auto points = store->LoadMetrics(2);
    ASSERT_TRUE(points.ok()) << points.status();
    ASSERT_EQ(points->size(), 2u);
    EXPECT_EQ((*points)[0].epoch, 1);
    EXPECT_EQ((*points)[1].epoch, 2);
    EXPECT_EQ(RawValue(file_, "SELECT \"unique\" FROM pragma_index_list('metrics') WHERE name = 'metrics_by_point'"),
              "1");

    auto jobs = store->LoadJobs();
    ASSERT_TRUE(jobs.ok()) << jobs.status();
    ASSERT_EQ(jobs->size(), 2u);
    const JobRow& old = (*jobs)[0];
    ASSERT_TRUE(old.result.has_value());
    EXPECT_EQ(old.result->test_score, 0.125);  // the old columns still read as before
    EXPECT_EQ(old.result->parameters_warped, 12560);
    EXPECT_EQ(old.result->recorded_ms, 1700000000003);
    EXPECT_TRUE(std::isnan(old.result->noise_ceiling)) << old.result->noise_ceiling;
    // Workers of an old file have no credential: they register again under new ids.
    auto credentials = store->LoadWorkerCredentials();
    ASSERT_TRUE(credentials.ok()) << credentials.status();
    EXPECT_TRUE(credentials->empty());

    // The migrated file takes new results with their ceiling.
    JobRow done = (*jobs)[1];
    done.state = JobState::kSucceeded;
    done.lease_id = "";
    ASSERT_TRUE(store->RecordResult(done, MakeResult(1)).ok());
  }
  // Reopened: nothing to migrate, and both results read back as written.
  std::unique_ptr<SqliteSweepStore> store = OpenOrFail();
  ASSERT_NE(store, nullptr);
  auto jobs = store->LoadJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 2u);
  ASSERT_TRUE((*jobs)[0].result.has_value());
  EXPECT_TRUE(std::isnan((*jobs)[0].result->noise_ceiling));
  ASSERT_TRUE((*jobs)[1].result.has_value());
  EXPECT_EQ(Fields(*(*jobs)[1].result), Fields(MakeResult(1)));
  auto report = store->IntegrityCheck();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(*report, "ok");
}

TEST_F(SqliteStoreTest, AVersionOneFileIsMigratedToRequestIdsAndItsSweepsHaveNone) {
  RawExec(file_, kVersionOneFile);
  {
    std::unique_ptr<SqliteSweepStore> store = OpenOrFail();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(RawPragma(file_, "user_version"), std::to_string(SqliteSweepStore::kSchemaVersion));
    auto sweeps = store->LoadSweeps();
    ASSERT_TRUE(sweeps.ok()) << sweeps.status();
    ASSERT_EQ(sweeps->size(), 1u);
    EXPECT_EQ((*sweeps)[0].sweep_id, "old");
    EXPECT_EQ((*sweeps)[0].request_id, "");
    SweepRow added = MakeSweep("new");
    added.request_id = "req-after-migration";
    std::vector<JobRow> jobs = {MakeJob("0", 0)};
    ASSERT_TRUE(store->CreateSweep(added, jobs).ok());
  }
  // The request id survives reopening, and still refuses a second sweep.
  std::unique_ptr<SqliteSweepStore> store = OpenOrFail();
  ASSERT_NE(store, nullptr);
  auto sweeps = store->LoadSweeps();
  ASSERT_TRUE(sweeps.ok()) << sweeps.status();
  ASSERT_EQ(sweeps->size(), 2u);
  EXPECT_EQ((*sweeps)[1].request_id, "req-after-migration");
  SweepRow again = MakeSweep("newer");
  again.request_id = "req-after-migration";
  std::vector<JobRow> jobs = {MakeJob("0", 0)};
  EXPECT_EQ(store->CreateSweep(again, jobs).code(), StatusCode::kAlreadyExists);
}

TEST_F(SqliteStoreTest, AVersionOneFileIsMigratedToJobReasonsAndItsJobsHaveNone) {
  RawExec(file_, kVersionOneFile);
  std::unique_ptr<SqliteSweepStore> store = OpenOrFail();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(RawValue(file_, "SELECT type FROM pragma_table_info('jobs') WHERE name = 'reason'"), "TEXT");
  auto jobs = store->LoadJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_FALSE(jobs->empty());
  for (const JobRow& job : *jobs) EXPECT_EQ(job.reason, "") << "job " << job.job_id;
}

// Turns a current (version 7) file into one as version 6 left it: each job's d as text in the column jobs.d,
// written as SubspaceDim::ToString wrote it ("0", "300", "full"), and no typed columns.
constexpr const char* kBackToVersionSix = R"sql(
ALTER TABLE jobs ADD COLUMN d TEXT NOT NULL DEFAULT '';
UPDATE jobs SET d = CASE d_kind WHEN 0 THEN '0' WHEN 2 THEN 'full' ELSE CAST(d_value AS TEXT) END;
ALTER TABLE jobs DROP COLUMN d_kind;
ALTER TABLE jobs DROP COLUMN d_value;
PRAGMA user_version = 6;
)sql";

TEST_F(SqliteStoreTest, AVersionOneFileIsMigratedToTypedDAndItsJobsKeepTheirD) {
  RawExec(file_, kVersionOneFile);
  std::unique_ptr<SqliteSweepStore> store = OpenOrFail();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(RawValue(file_, "SELECT COUNT(*) FROM pragma_table_info('jobs') WHERE name = 'd'"), "0");
  auto jobs = store->LoadJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 2u);
  EXPECT_EQ((*jobs)[0].d, SubspaceDim::Subspace(10));
  EXPECT_EQ((*jobs)[1].d, SubspaceDim::Subspace(100));
}

// A version 6 file (d as text), made from a current file by kBackToVersionSix, with every kind of d and a d
// past 32 bits: migrating to version 7 keeps each job's d, and the file then takes and returns typed d.
TEST_F(SqliteStoreTest, AVersionSixFileIsMigratedAndEachJobKeepsItsD) {
  ASSERT_EQ(SqliteSweepStore::kSchemaVersion, 7) << "a new version: check this test's version 6 file still is one";
  std::vector<JobRow> jobs = {MakeJob("0", 0), MakeJob("300", 0), MakeJob("full", 0), MakeJob("12345678901", 0)};
  {
    std::unique_ptr<SqliteSweepStore> store = OpenOrFail();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateSweep(MakeSweep("six"), jobs).ok());
  }
  RawExec(file_, kBackToVersionSix);
  ASSERT_EQ(RawValue(file_, "SELECT group_concat(d, ' ') FROM (SELECT d FROM jobs ORDER BY job_id)"),
            "0 300 full 12345678901");
  ASSERT_EQ(RawValue(file_, "SELECT COUNT(*) FROM pragma_table_info('jobs') WHERE name = 'd_kind'"), "0");
  {
    std::unique_ptr<SqliteSweepStore> store = OpenOrFail();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(RawPragma(file_, "user_version"), "7");
    EXPECT_EQ(RawValue(file_, "SELECT COUNT(*) FROM pragma_table_info('jobs') WHERE name = 'd'"), "0");
    auto loaded = store->LoadJobs();
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    ASSERT_EQ(loaded->size(), jobs.size());
    for (size_t i = 0; i < jobs.size(); ++i) ExpectSameJob(jobs[i], (*loaded)[i]);
    EXPECT_EQ((*loaded)[2].d, SubspaceDim::Full());
    EXPECT_EQ((*loaded)[3].d, SubspaceDim::Subspace(12345678901));
    std::vector<JobRow> more = {MakeJob("1000", 1)};
    ASSERT_TRUE(store->AddJobs("six", more).ok());
  }
  std::unique_ptr<SqliteSweepStore> store = OpenOrFail();
  ASSERT_NE(store, nullptr);
  auto loaded = store->LoadJobs();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_EQ(loaded->size(), 5u);
  EXPECT_EQ(loaded->back().d, SubspaceDim::Subspace(1000));
  auto report = store->IntegrityCheck();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(*report, "ok");
}

// A version 6 d that SubspaceDim::ToString never wrote (a hand-edited file) is not guessed: loading the jobs
// fails naming the job and what the columns hold.
TEST_F(SqliteStoreTest, AVersionSixDThatIsNotADIsReportedNotGuessed) {
  std::vector<JobRow> jobs = {MakeJob("10", 0), MakeJob("100", 0)};
  {
    std::unique_ptr<SqliteSweepStore> store = OpenOrFail();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateSweep(MakeSweep("six"), jobs).ok());
  }
  RawExec(file_, kBackToVersionSix);
  RawExec(file_, "UPDATE jobs SET d = '1e3' WHERE job_id = 2;");
  std::unique_ptr<SqliteSweepStore> store = OpenOrFail();
  ASSERT_NE(store, nullptr);
  auto loaded = store->LoadJobs();
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kInternal);
  EXPECT_NE(loaded.status().message().find("job 2"), std::string::npos) << loaded.status();
  EXPECT_NE(loaded.status().message().find("d_kind -1"), std::string::npos) << loaded.status();
}

// A file as schema version 5 left it (worker credentials, no job reasons, d as text): made here from a current
// file by dropping what versions 6 and 7 added. Migrating adds the reasons ("" for its jobs) and keeps the
// credentials.
TEST_F(SqliteStoreTest, AVersionFiveFileKeepsItsCredentialsAndItsJobsGetNoReason) {
  ASSERT_EQ(SqliteSweepStore::kSchemaVersion, 7) << "a new version: check this test's version 5 file still is one";
  {
    std::unique_ptr<SqliteSweepStore> store = OpenOrFail();
    ASSERT_NE(store, nullptr);
    std::vector<JobRow> jobs = {MakeJob("0", 0), MakeJob("10", 0)};
    ASSERT_TRUE(store->CreateSweep(MakeSweep("five"), jobs).ok());
    ASSERT_TRUE(store->PutWorkerCredential({"w1", std::string(64, 'a'), 1000}).ok());
  }
  RawExec(file_, kBackToVersionSix);
  RawExec(file_, "ALTER TABLE jobs DROP COLUMN reason; PRAGMA user_version = 5;");
  ASSERT_EQ(RawValue(file_, "SELECT COUNT(*) FROM pragma_table_info('jobs') WHERE name = 'reason'"), "0");
  std::unique_ptr<SqliteSweepStore> store = OpenOrFail();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(RawPragma(file_, "user_version"), "7");
  auto jobs = store->LoadJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 2u);
  for (const JobRow& job : *jobs) EXPECT_EQ(job.reason, "") << "job " << job.job_id;
  auto credentials = store->LoadWorkerCredentials();
  ASSERT_TRUE(credentials.ok()) << credentials.status();
  ASSERT_EQ(credentials->size(), 1u);
  EXPECT_EQ((*credentials)[0].worker_id, "w1");
  EXPECT_EQ((*credentials)[0].secret_sha256, std::string(64, 'a'));
  // And the migrated file takes jobs with reasons.
  std::vector<JobRow> more = {MakeJob("100", 0)};
  more[0].reason = "bisect log d between d = 10 and 1000";
  ASSERT_TRUE(store->AddJobs("five", more).ok());
  jobs = store->LoadJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 3u);
  EXPECT_EQ(jobs->back().reason, "bisect log d between d = 10 and 1000");
}

TEST_F(SqliteStoreTest, OpeningTwiceInARowKeepsTheSchema) {
  // The second Open finds the schema current and must not migrate (CREATE TABLE would fail) again.
  ASSERT_NE(OpenOrFail(), nullptr);
  std::unique_ptr<SqliteSweepStore> store = OpenOrFail();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(RawPragma(file_, "user_version"), std::to_string(SqliteSweepStore::kSchemaVersion));
}

}  // namespace
}  // namespace dwarp::coordinator
