// Scheduler (scheduler.h): the front over the parts (job_queue.h, lease_table.h, worker_registry.h,
// watch_hub.h). Sections, in order: construction and restart (LoadFromStore), lookups, sweeps (Submit,
// Cancel, Watch, d_warp refresh and early stop, a sweep's end), workers (Register, Acquire, Heartbeat,
// RecordMetrics, Complete, Fail), background work (ExpireLeases, FlushMetrics, the reaper and flusher),
// the state thread. Each change: compute the next rows, write them through the store, then apply them in
// memory. A method named *Locked runs with mutex_ held; the bodies of changes run on the state thread.
#include "coordinator/scheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <future>
#include <limits>

#include "coordinator/adaptive_search.h"
#include "coordinator/random_id.h"

namespace dwarp::coordinator {

struct Scheduler::SweepRecord {
  SweepRow row;
  SweepSpec spec;
  std::vector<int64_t> job_ids;   // ascending
  std::vector<GroupDWarp> dwarp;
  bool dwarp_stale = false;  // a job finished since `dwarp` was computed
  // An adaptive search's next jobs are still to be asked for (their store write failed, or early stop
  // cancelled jobs the plan waited on): the next refresh asks again, and the sweep does not end before.
  bool search_pending = false;
};

namespace {

int64_t SystemNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What watchers compare to decide whether a group's record changed.
bool SameDWarp(const GroupDWarp& a, const GroupDWarp& b) {
  auto same_double = [](double x, double y) { return (std::isnan(x) && std::isnan(y)) || x == y; };
  if (a.status != b.status || !same_double(a.d_warp, b.d_warp) || !same_double(a.threshold, b.threshold) ||
      !same_double(a.noise_ceiling, b.noise_ceiling) || a.grid_d != b.grid_d || a.has_full != b.has_full || a.curve.size() != b.curve.size() || a.note != b.note)
    return false;
  for (size_t i = 0; i < a.curve.size(); ++i) {
    if (a.curve[i].seeds_done != b.curve[i].seeds_done || !same_double(a.curve[i].mean_score, b.curve[i].mean_score))
      return false;
  }
  return true;
}

// The scheduler whose state thread the calling thread is (nullptr on every other thread).
thread_local const Scheduler* state_thread_owner = nullptr;

}  // namespace

// The store as the scheduler calls it: on the state thread, each call runs with mutex_ released, so that
// readers (and long-polls) never wait on a SQLite write; the state thread is the only one that changes the
// state, so nothing changes under it while it waits for the store. Elsewhere (the state thread not running)
// the call runs as it comes.
class Scheduler::StoreOutsideLock : public SweepStore {
 public:
  StoreOutsideLock(const Scheduler* scheduler, SweepStore* store) : scheduler_(scheduler), store_(store) {}

  Status CreateSweep(const SweepRow& sweep, std::vector<JobRow>& jobs) override {
    return Call([&] { return store_->CreateSweep(sweep, jobs); });
  }
  Status AddJobs(const std::string& sweep_id, std::vector<JobRow>& jobs) override {
    return Call([&] { return store_->AddJobs(sweep_id, jobs); });
  }
  Status UpdateSweep(const SweepRow& sweep) override { return Call([&] { return store_->UpdateSweep(sweep); }); }
  Status UpdateJobs(const std::vector<JobRow>& jobs) override { return Call([&] { return store_->UpdateJobs(jobs); }); }
  Status RecordResult(const JobRow& job, const ResultRow& result) override {
    return Call([&] { return store_->RecordResult(job, result); });
  }
  Status AppendMetrics(const std::vector<MetricRow>& points) override {
    return Call([&] { return store_->AppendMetrics(points); });
  }
  Status UpsertWorker(const WorkerRow& worker) override { return Call([&] { return store_->UpsertWorker(worker); }); }
  StatusOr<std::vector<SweepRow>> LoadSweeps() override { return Call([&] { return store_->LoadSweeps(); }); }
  StatusOr<std::vector<JobRow>> LoadJobs() override { return Call([&] { return store_->LoadJobs(); }); }
  StatusOr<std::vector<WorkerRow>> LoadWorkers() override { return Call([&] { return store_->LoadWorkers(); }); }
  StatusOr<std::vector<MetricRow>> LoadMetrics(int64_t job_id, int32_t attempt) override {
    return Call([&] { return store_->LoadMetrics(job_id, attempt); });
  }
  StatusOr<int64_t> CountResults(int64_t job_id) override { return Call([&] { return store_->CountResults(job_id); }); }
  // Worker credentials are the gRPC layer's (worker_credentials.h); they pass through for completeness.
  Status PutWorkerCredential(const WorkerCredentialRow& credential) override {
    return Call([&] { return store_->PutWorkerCredential(credential); });
  }
  StatusOr<std::vector<WorkerCredentialRow>> LoadWorkerCredentials() override {
    return Call([&] { return store_->LoadWorkerCredentials(); });
  }

 private:
  template <typename StoreCall>
  auto Call(StoreCall&& call) -> decltype(call()) {
    std::unique_lock<std::mutex>* lock = scheduler_->StateLockToRelease();
    if (lock == nullptr) return call();
    lock->unlock();
    auto result = call();
    lock->lock();
    return result;
  }

  const Scheduler* const scheduler_;
  SweepStore* const store_;
};

// ---------------------------------------------------------------------------------------------------
// Construction, restart, shutdown

Scheduler::Scheduler(SweepStore* store, SchedulerOptions options)
    : store_outside_lock_(std::make_unique<StoreOutsideLock>(this, store)),
      store_(store_outside_lock_.get()),
      options_(std::move(options)),
      leases_(&jobs_, options_.lease_ttl_ms),
      workers_(store_, options_.circuit_breaker_failures),
      watch_hub_(options_.max_watch_queue) {}

Status CheckSchedulerOptions(const SchedulerOptions& options) {
  if (options.lease_ttl_ms < 1) return InvalidArgumentError("lease TTL must be >= 1 ms, got " + std::to_string(options.lease_ttl_ms));
  if (options.heartbeat_interval_ms < 1 || options.heartbeat_interval_ms * 2 > options.lease_ttl_ms)
    return InvalidArgumentError("heartbeat interval " + std::to_string(options.heartbeat_interval_ms) +
                                " ms must be >= 1 and at most half the lease TTL (" +
                                std::to_string(options.lease_ttl_ms) + " ms), so one missed heartbeat never ends a lease");
  if (options.circuit_breaker_failures < 1)
    return InvalidArgumentError("circuit breaker threshold must be >= 1, got " +
                                std::to_string(options.circuit_breaker_failures));
  return OkStatus();
}

StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(SweepStore* store, SchedulerOptions options) {
  if (store == nullptr) return InvalidArgumentError("Scheduler needs a store");
  DWARP_RETURN_IF_ERROR(CheckSchedulerOptions(options));
  std::unique_ptr<Scheduler> scheduler(new Scheduler(store, std::move(options)));
  DWARP_RETURN_IF_ERROR(scheduler->LoadFromStore());
  {
    std::lock_guard<std::mutex> lock(scheduler->tasks_mutex_);
    scheduler->tasks_stopped_ = false;
  }
  scheduler->state_thread_ = std::thread([s = scheduler.get()] { s->StateLoop(); });
  if (scheduler->options_.reap_interval_ms > 0) scheduler->reaper_ = std::thread([s = scheduler.get()] { s->ReaperLoop(); });
  if (scheduler->options_.metric_flush_ms > 0) scheduler->flusher_ = std::thread([s = scheduler.get()] { s->FlusherLoop(); });
  return scheduler;
}

Scheduler::~Scheduler() { Shutdown(); }

void Scheduler::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (shutdown_) return;
    shutdown_ = true;
    watch_hub_.CloseAll();
  }
  work_cv_.notify_all();
  stop_cv_.notify_all();
  if (reaper_.joinable()) reaper_.join();
  if (flusher_.joinable()) flusher_.join();
  {
    std::lock_guard<std::mutex> lock(tasks_mutex_);
    tasks_stopped_ = true;
  }
  tasks_cv_.notify_all();
  if (state_thread_.joinable()) state_thread_.join();  // runs what was handed to it first
  // From here every call runs on its caller's thread under mutex_.
  Status flushed = FlushMetrics();
  if (!flushed.ok()) spdlog::error("metric points lost at shutdown: {}", flushed.ToString());
}

bool Scheduler::serving() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return !shutdown_;
}

int64_t Scheduler::Now() const { return options_.now_ms ? options_.now_ms() : SystemNowMs(); }

Status CheckResultScores(const JobResult& result) {
  constexpr double kSlack = 1e-9;
  auto within = [&](const char* field, double value, double low, double high, const char* range) -> Status {
    if (value >= low - kSlack && value <= high + kSlack) return OkStatus();
    char text[64];
    std::snprintf(text, sizeof(text), "%.9g", value);
    return InvalidArgumentError("result " + std::string(field) + " = " + text + " is outside the range of metric '" +
                                result.metric + "', " + range);
  };
  const double infinity = std::numeric_limits<double>::infinity();
  double low = 0.0;
  const char* range = nullptr;
  if (result.metric == "r2") {
    low = -infinity;
    range = "(-inf, 1]";
  } else if (result.metric == "accuracy") {
    range = "[0, 1]";
  } else if (result.metric == "rsa") {  // a correlation between two RDMs
    low = -1.0;
    range = "[-1, 1]";
  } else {
    return InvalidArgumentError("result metric '" + result.metric.substr(0, 64) +
                                "' is not one the coordinator knows; expected r2, accuracy or rsa");
  }
  DWARP_RETURN_IF_ERROR(within("test_score", result.test_score, low, 1.0, range));
  DWARP_RETURN_IF_ERROR(within("val_score", result.val_score, low, 1.0, range));
  DWARP_RETURN_IF_ERROR(within("train_score", result.train_score, low, 1.0, range));
  for (const auto& [field, value] : {std::pair<const char*, double>("test_pearson_mean", result.test_pearson_mean),
                                     {"test_pearson_median", result.test_pearson_median}}) {
    if (std::isnan(value)) continue;
    DWARP_RETURN_IF_ERROR(within(field, value, -1.0, 1.0, "[-1, 1]"));
  }
  return OkStatus();
}

Status Scheduler::LoadFromStore() {
  auto sweeps = store_->LoadSweeps();
  if (!sweeps.ok()) return InternalError("cannot load sweeps: " + sweeps.status().message());
  auto jobs = store_->LoadJobs();
  if (!jobs.ok()) return InternalError("cannot load jobs: " + jobs.status().message());
  auto workers = store_->LoadWorkers();
  if (!workers.ok()) return InternalError("cannot load workers: " + workers.status().message());

  std::lock_guard<std::mutex> lock(mutex_);
  for (SweepRow& row : *sweeps) {
    auto spec = SweepSpecFromJson(nlohmann::json::parse(row.spec_json, nullptr, /*allow_exceptions=*/false));
    if (!spec.ok())
      return InternalError("stored sweep '" + row.sweep_id + "' no longer parses: " + spec.status().message());
    auto state = std::make_unique<SweepRecord>();
    state->row = std::move(row);
    state->spec = std::move(*spec);
    sweeps_by_id_[state->row.sweep_id] = state.get();
    if (!state->row.request_id.empty()) sweeps_by_request_id_[state->row.request_id] = state.get();
    queue_.AddSweep(state->row.sweep_id, state->row.state == SweepState::kRunning);
    sweeps_.push_back(std::move(state));
  }
  for (JobRow& job : *jobs) {
    auto found = sweeps_by_id_.find(job.sweep_id);
    if (found == sweeps_by_id_.end())
      return InternalError("stored job " + std::to_string(job.job_id) + " names unknown sweep '" + job.sweep_id + "'");
    SweepRecord& sweep = *found->second;
    sweep.job_ids.push_back(job.job_id);
    queue_.AddJob(job.sweep_id, job.job_id, job.d, job.state);
    if (job.state == JobState::kRunning || (job.state == JobState::kCancelled && job.cancel_requested))
      if (!job.lease_id.empty()) leases_.Add(job.lease_id, job.job_id);
    jobs_[job.job_id] = std::move(job);
  }
  workers_.Load(std::move(*workers));
  for (auto& sweep : sweeps_) {
    std::sort(sweep->job_ids.begin(), sweep->job_ids.end());
    // An adaptive search whose next jobs were not stored before a crash asks for them now.
    ExtendSearchLocked(*sweep);
    RecomputeDWarpLocked(*sweep);
  }
  if (!sweeps_.empty())
    spdlog::info("restored {} sweeps, {} jobs ({} leases still held), {} workers from the store", sweeps_.size(),
                 jobs_.size(), leases_.size(), workers_.size());
  return OkStatus();
}

// ---------------------------------------------------------------------------------------------------
// Lookups

void Scheduler::RefreshLocked() {
  for (auto& sweep : sweeps_) {
    if (sweep->dwarp_stale) RecomputeDWarpLocked(*sweep);
    if (sweep->search_pending) ExtendSearchLocked(*sweep);
    // Early stop may have cancelled the last queued jobs; and a sweep whose end was not stored (a failed
    // store write) ends here on a later pass.
    MaybeFinishSweepLocked(*sweep);
  }
}

Scheduler::SweepRecord* Scheduler::FindSweepLocked(const std::string& sweep) {
  return const_cast<SweepRecord*>(static_cast<const Scheduler*>(this)->FindSweepLocked(sweep));
}

const Scheduler::SweepRecord* Scheduler::FindSweepLocked(const std::string& sweep) const {
  auto found = sweeps_by_id_.find(sweep);
  if (found != sweeps_by_id_.end()) return found->second;
  for (auto it = sweeps_.rbegin(); it != sweeps_.rend(); ++it)
    if ((*it)->row.name == sweep) return it->get();
  return nullptr;
}

SweepSummary Scheduler::SummaryLocked(const SweepRecord& sweep) const {
  SweepSummary summary{sweep.row, sweep.spec, {}};
  for (int64_t id : sweep.job_ids) {
    const JobRow& job = jobs_.at(id);
    ++summary.counts.total;
    switch (job.state) {
      case JobState::kQueued: ++summary.counts.queued; break;
      case JobState::kRunning: ++summary.counts.running; break;
      case JobState::kSucceeded: ++summary.counts.succeeded; break;
      case JobState::kFailed: ++summary.counts.failed; break;
      case JobState::kCancelled: ++summary.counts.cancelled; break;
    }
  }
  return summary;
}

JobView Scheduler::ViewLocked(const JobRow& job) const {
  JobView view{job, std::nullopt};
  auto found = latest_metric_.find(job.job_id);
  if (found != latest_metric_.end() && found->second.attempt == job.attempt) view.latest_metric = found->second;
  return view;
}

static Status SweepNotFound(const std::string& sweep) {
  return NotFoundError("sweep '" + sweep + "' not found (neither a sweep id nor the name of a sweep)");
}

bool Scheduler::RefreshDueLocked() const {
  for (const auto& sweep : sweeps_) {
    const std::string& id = sweep->row.sweep_id;
    if (sweep->dwarp_stale || sweep->search_pending) return true;
    if (sweep->row.state == SweepState::kRunning && queue_.queued(id) == 0 && queue_.running(id) == 0) return true;
  }
  return false;
}

void Scheduler::RefreshIfDue() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!RefreshDueLocked()) return;
  }
  OnStateThread<int>([&] {
    RefreshLocked();
    return 0;
  });
}

StatusOr<const Scheduler::SweepRecord*> Scheduler::FoundSweepLocked(const std::string& sweep) const {
  const SweepRecord* found = FindSweepLocked(sweep);
  if (found == nullptr) return SweepNotFound(sweep);
  return found;
}

StatusOr<SweepSummary> Scheduler::GetSweep(const std::string& sweep) {
  RefreshIfDue();
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = FoundSweepLocked(sweep);
  if (!found.ok()) return found.status();
  return SummaryLocked(**found);
}

std::vector<SweepSummary> Scheduler::ListSweeps() {
  RefreshIfDue();
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<SweepSummary> out;
  for (const auto& sweep : sweeps_) out.push_back(SummaryLocked(*sweep));
  return out;
}

StatusOr<std::vector<JobView>> Scheduler::Jobs(const std::string& sweep) {
  auto page = JobsPage(sweep, 0, std::numeric_limits<size_t>::max());
  if (!page.ok()) return page.status();
  return std::move(page->jobs);
}

StatusOr<JobPage> Scheduler::JobsPage(const std::string& sweep, int64_t after_job_id, size_t max_jobs) {
  RefreshIfDue();
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = FoundSweepLocked(sweep);
  if (!found.ok()) return found.status();
  const SweepRecord* state = *found;
  JobPage page;
  page.sweep = SummaryLocked(*state);
  auto first = std::upper_bound(state->job_ids.begin(), state->job_ids.end(), after_job_id);
  const size_t available = static_cast<size_t>(state->job_ids.end() - first);
  const size_t count = std::min(available, max_jobs);
  page.jobs.reserve(count);
  for (auto it = first; it != first + static_cast<std::ptrdiff_t>(count); ++it) page.jobs.push_back(ViewLocked(jobs_.at(*it)));
  page.remaining = static_cast<int64_t>(available - count);
  return page;
}

StatusOr<std::vector<GroupDWarp>> Scheduler::DWarp(const std::string& sweep) {
  RefreshIfDue();
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = FoundSweepLocked(sweep);
  if (!found.ok()) return found.status();
  return (*found)->dwarp;
}

StatusOr<std::vector<MetricRow>> Scheduler::Metrics(int64_t job_id) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (jobs_.count(job_id) == 0) return NotFoundError("job " + std::to_string(job_id) + " not found");
  }
  return OnStateThread<StatusOr<std::vector<MetricRow>>>([&]() -> StatusOr<std::vector<MetricRow>> {
    DWARP_RETURN_IF_ERROR(FlushMetricsLocked());
    auto points = store_->LoadMetrics(job_id);
    if (!points.ok())
      return InternalError("cannot read the metric points of job " + std::to_string(job_id) + ": " +
                           points.status().message());
    return points;
  });
}

std::vector<WorkerView> Scheduler::Workers() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<WorkerView> out;
  for (WorkerRow& row : workers_.Rows()) out.push_back({std::move(row), 0});
  const std::map<std::string, int32_t> running = leases_.RunningJobsByWorker();
  for (WorkerView& view : out)
    if (auto found = running.find(view.row.worker_id); found != running.end()) view.running_jobs = found->second;
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Sweeps

std::string Scheduler::NewSweepIdLocked(const std::string& name) const {
  // "<name>-<n>": readable on a command line, unique in the store (n counts the name's sweeps).
  int64_t n = 1;
  while (sweeps_by_id_.count(name + "-" + std::to_string(n)) != 0) ++n;
  return name + "-" + std::to_string(n);
}

namespace {

Status CheckRequestId(const std::string& request_id) {
  if (request_id.size() > kMaxRequestIdLength)
    return InvalidArgumentError("request id of " + std::to_string(request_id.size()) + " characters; expected at most " +
                                std::to_string(kMaxRequestIdLength));
  for (size_t i = 0; i < request_id.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(request_id[i]);
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == ':') continue;
    // Printed as a code, not as the byte itself: it may be a control character.
    return InvalidArgumentError("request id '" + request_id.substr(0, i) + "...' has character code " +
                                std::to_string(c) + " at position " + std::to_string(i) +
                                "; expected letters, digits, '-', '_', '.' or ':'");
  }
  return OkStatus();
}

std::string DescribeJobKey(const JobRow& job) {
  return "model " + job.model + ", layer " + job.layer + ", dataset " + job.dataset + ", d " + job.d.ToString() + ", seed " +
         std::to_string(job.seed) + (job.variant.empty() ? "" : ", variant " + job.variant);
}

}  // namespace

StatusOr<std::optional<SubmitResult>> Scheduler::ResubmittedLocked(const std::string& request_id,
                                                                   const std::string& spec_json) const {
  if (request_id.empty()) return std::optional<SubmitResult>();
  auto found = sweeps_by_request_id_.find(request_id);
  if (found == sweeps_by_request_id_.end()) return std::optional<SubmitResult>();
  const SweepRecord& sweep = *found->second;
  if (sweep.row.spec_json != spec_json)
    return AlreadyExistsError("request id '" + request_id + "' already submitted sweep '" + sweep.row.sweep_id +
                              "', which differs from this one; a request id names one submission: use a new one "
                              "for another sweep");
  spdlog::info("sweep {}: a Submit with its request id {} came again and was answered with it", sweep.row.sweep_id,
               request_id);
  SubmitResult result;
  result.sweep = SummaryLocked(sweep);
  result.already_submitted = true;
  return std::optional<SubmitResult>(std::move(result));
}

StatusOr<SubmitResult> Scheduler::Submit(const SubmitRequestData& request) {
  const std::string source = request.source_name.empty() ? "sweep" : request.source_name;
  DWARP_RETURN_IF_ERROR(CheckRequestId(request.request_id));
  const std::string request_id = request.dry_run ? "" : request.request_id;
  // The one validation of record (the request is untrusted input): parsed, validated and expanded once.
  auto expanded = ParseAndExpandSweepSpec(request.text, request.format, request.overrides, request.base_dir);
  if (!expanded.ok()) return Status(expanded.status().code(), source + ": " + expanded.status().message());
  SweepSpec& spec = expanded->spec;
  const std::vector<PlannedJob>& planned = expanded->jobs;

  const int64_t now = Now();
  SweepRow row;
  row.name = spec.name;
  row.state = SweepState::kRunning;
  row.created_ms = now;
  row.spec_json = CanonicalSweepJson(spec);
  row.request_id = request_id;
  if (row.spec_json.size() > options_.max_spec_bytes)
    return InvalidArgumentError(source + ": the resolved sweep is " + std::to_string(row.spec_json.size()) +
                                " bytes of JSON; expected at most " + std::to_string(options_.max_spec_bytes));
  {
    // A retry of a stored submission is answered before its jobs' specs are written out.
    std::lock_guard<std::mutex> lock(mutex_);
    auto resubmitted = ResubmittedLocked(request_id, row.spec_json);
    if (!resubmitted.ok()) return resubmitted.status();
    if (*resubmitted) return std::move(**resubmitted);
  }
  std::vector<JobRow> jobs;
  jobs.reserve(planned.size());
  for (const PlannedJob& plan : planned) {
    JobRow job = QueuedJobRow(plan, InitialJobReason(spec), now);
    // The spec and the key travel together (a lease, a page of results).
    const size_t bytes = job.spec_json.size() + job.model.size() + job.layer.size() + job.dataset.size() +
                         job.variant.size() + job.d.ToString().size();
    if (bytes > options_.max_spec_bytes)
      return InvalidArgumentError(source + ": job " + std::to_string(jobs.size() + 1) + " of " +
                                  std::to_string(planned.size()) + " (" + DescribeJobKey(job) + ") is " +
                                  std::to_string(bytes) + " bytes with its key; expected at most " +
                                  std::to_string(options_.max_spec_bytes));
    jobs.push_back(std::move(job));
  }
  if (request.dry_run) {
    SubmitResult result;
    result.sweep.row = row;
    result.sweep.spec = spec;
    result.sweep.counts.total = result.sweep.counts.queued = static_cast<int32_t>(jobs.size());
    result.jobs = std::move(jobs);
    return result;
  }

  return OnStateThread<StatusOr<SubmitResult>>([&] { return StoreSweepLocked(std::move(row), std::move(spec), std::move(jobs)); });
}

StatusOr<SubmitResult> Scheduler::StoreSweepLocked(SweepRow row, SweepSpec spec, std::vector<JobRow> jobs) {
  if (shutdown_) return UnavailableError("the coordinator is shutting down");
  const std::string& request_id = row.request_id;
  {
    // A twin of this request may have been stored while this one expanded.
    auto resubmitted = ResubmittedLocked(request_id, row.spec_json);
    if (!resubmitted.ok()) return resubmitted.status();
    if (*resubmitted) return std::move(**resubmitted);
  }
  row.sweep_id = NewSweepIdLocked(row.name);
  for (JobRow& job : jobs) job.sweep_id = row.sweep_id;
  Status stored = store_->CreateSweep(row, jobs);
  if (!stored.ok()) return InternalError("cannot store sweep '" + row.sweep_id + "': " + stored.message());
  auto state = std::make_unique<SweepRecord>();
  state->row = row;
  state->spec = std::move(spec);
  queue_.AddSweep(row.sweep_id, /*open=*/true);
  for (size_t i = 0; i < jobs.size(); ++i) {
    const JobRow& job = jobs[i];
    state->job_ids.push_back(job.job_id);
    queue_.AddJob(row.sweep_id, job.job_id, job.d, JobState::kQueued);
    jobs_[job.job_id] = job;
  }
  SweepRecord& sweep = *state;
  sweeps_by_id_[row.sweep_id] = state.get();
  if (!row.request_id.empty()) sweeps_by_request_id_[row.request_id] = state.get();
  sweeps_.push_back(std::move(state));
  RecomputeDWarpLocked(sweep);
  SubmitResult result{SummaryLocked(sweep), jobs, false};
  work_cv_.notify_all();
  spdlog::info("sweep {} submitted: {} jobs", row.sweep_id, jobs.size());
  return result;
}

StatusOr<CancelResult> Scheduler::Cancel(const std::string& sweep_name) {
  return OnStateThread<StatusOr<CancelResult>>([&] { return CancelLocked(sweep_name); });
}

StatusOr<CancelResult> Scheduler::CancelLocked(const std::string& sweep_name) {
  SweepRecord* sweep = FindSweepLocked(sweep_name);
  if (sweep == nullptr) return SweepNotFound(sweep_name);
  if (sweep->row.state != SweepState::kRunning)
    return FailedPreconditionError("sweep '" + sweep->row.sweep_id + "' is already " +
                                   (sweep->row.state == SweepState::kDone ? "done" : "cancelled"));
  const int64_t now = Now();
  CancelResult result;
  std::vector<JobRow> changed;
  for (int64_t id : sweep->job_ids) {
    JobRow job = jobs_.at(id);
    if (job.state == JobState::kQueued) {
      ++result.cancelled_queued;
    } else if (job.state == JobState::kRunning) {
      job.cancel_requested = true;  // told to the worker on its next heartbeat
      ++result.cancelling_running;
    } else {
      continue;
    }
    job.state = JobState::kCancelled;
    job.error = "cancelled by a user";
    job.finished_ms = now;
    changed.push_back(std::move(job));
  }
  SweepRow row = sweep->row;
  row.state = SweepState::kCancelled;
  row.finished_ms = now;
  const std::string what = "cannot store the cancellation of sweep '" + row.sweep_id + "': ";
  Status stored = store_->UpdateJobs(changed);
  if (!stored.ok()) return InternalError(what + stored.message());
  stored = store_->UpdateSweep(row);
  if (!stored.ok()) {
    // The jobs' rows were written and the sweep's was not: put the jobs' rows back, so that the store, like
    // memory, holds the sweep as it was before this call (the store has no transaction over both).
    std::vector<JobRow> before;
    for (const JobRow& job : changed) before.push_back(jobs_.at(job.job_id));
    Status restored = store_->UpdateJobs(before);
    if (!restored.ok())
      spdlog::error("sweep {}: its jobs are stored as cancelled but the sweep is not, and putting them back "
                    "failed too: {}", row.sweep_id, restored.ToString());
    return InternalError(what + stored.message());
  }
  for (const JobRow& job : changed) {
    JobRow& stored = jobs_.at(job.job_id);
    if (stored.state == JobState::kQueued) queue_.Remove(stored.job_id);
    if (stored.state == JobState::kRunning) queue_.Stop(stored.job_id);
    stored = job;
    watch_hub_.Publish(sweep->row.sweep_id, [&] { return WatchEventData(ViewLocked(stored)); });
  }
  sweep->row = row;
  queue_.CloseSweep(row.sweep_id);
  RecomputeDWarpLocked(*sweep);
  result.sweep = SummaryLocked(*sweep);
  watch_hub_.PublishEnd(sweep->row.sweep_id, [&] { return result.sweep; });
  spdlog::info("sweep {} cancelled: {} queued jobs cancelled, {} running jobs told to stop", row.sweep_id,
               result.cancelled_queued, result.cancelling_running);
  return result;
}

StatusOr<WatchSubscription> Scheduler::Watch(const std::string& sweep_name) {
  RefreshIfDue();
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = FoundSweepLocked(sweep_name);
  if (!found.ok()) return found.status();
  const SweepRecord* sweep = *found;
  WatchSubscription subscription;
  subscription.sweep = SummaryLocked(*sweep);
  for (int64_t id : sweep->job_ids) subscription.jobs.push_back(ViewLocked(jobs_.at(id)));
  subscription.dwarp = sweep->dwarp;
  // A sweep that ended will not change: the snapshot is all there is.
  subscription.queue = sweep->row.state == SweepState::kRunning && !shutdown_ ? watch_hub_.Subscribe(sweep->row.sweep_id)
                                                                              : WatchHub::ClosedQueue();
  return subscription;
}

void Scheduler::Unwatch(const std::shared_ptr<WatchQueue>& queue) {
  std::lock_guard<std::mutex> lock(mutex_);
  watch_hub_.Unsubscribe(queue);
}

void Scheduler::PublishJobLocked(const SweepRecord& sweep, const JobRow& job) {
  watch_hub_.PublishJob(sweep.row.sweep_id, [&] { return ViewLocked(job); }, [&] { return SummaryLocked(sweep); });
}

void Scheduler::RecomputeDWarpLocked(SweepRecord& sweep) {
  std::vector<JobOutcome> outcomes;
  outcomes.reserve(sweep.job_ids.size());
  for (int64_t id : sweep.job_ids) outcomes.push_back(OutcomeOf(jobs_.at(id)));
  sweep.dwarp_stale = false;
  std::vector<GroupDWarp> records = ComputeDWarp(sweep.spec.threshold, outcomes);
  for (const GroupDWarp& record : records) {
    bool changed = true;
    for (const GroupDWarp& old : sweep.dwarp) {
      if (old.model == record.model && old.layer == record.layer && old.dataset == record.dataset &&
          old.variant == record.variant) {
        changed = !SameDWarp(old, record);
        break;
      }
    }
    if (changed) watch_hub_.Publish(sweep.row.sweep_id, [&] { return WatchEventData(record); });
  }
  sweep.dwarp = std::move(records);

  if (!sweep.spec.early_stop || sweep.row.state != SweepState::kRunning) return;
  std::vector<JobRow> unnecessary;
  for (size_t index : JobsMadeUnnecessary(sweep.spec.threshold, outcomes, sweep.dwarp)) {
    JobRow job = jobs_.at(sweep.job_ids.at(index));
    if (job.state != JobState::kQueued) continue;
    job.state = JobState::kCancelled;
    job.error = "early stop: d = " + job.d.ToString() + " is above the final d_warp crossing of its group";
    job.finished_ms = Now();
    unnecessary.push_back(std::move(job));
  }
  if (unnecessary.empty()) return;
  Status stored = store_->UpdateJobs(unnecessary);
  if (!stored.ok()) {
    // The jobs stay queued; the next refresh computes and tries again.
    spdlog::error("early stop of {} jobs not stored (will retry): {}", unnecessary.size(), stored.ToString());
    sweep.dwarp_stale = true;
    return;
  }
  for (const JobRow& job : unnecessary) {
    queue_.Remove(job.job_id);
    jobs_.at(job.job_id) = job;
    watch_hub_.Publish(sweep.row.sweep_id, [&] { return WatchEventData(ViewLocked(job)); });
  }
  // The adaptive plan waits for every job of a group to finish; cancelled ones count as finished.
  sweep.search_pending = sweep.spec.search.mode == SearchMode::kAdaptive;
  spdlog::info("sweep {}: early stop cancelled {} queued jobs", sweep.row.sweep_id, unnecessary.size());
}

void Scheduler::MaybeFinishSweepLocked(SweepRecord& sweep) {
  const std::string& id = sweep.row.sweep_id;
  if (sweep.row.state != SweepState::kRunning || queue_.queued(id) > 0 || queue_.running(id) > 0) return;
  // An adaptive search that could not store its next jobs is not over: RefreshLocked asks it again.
  if (sweep.search_pending) return;
  if (sweep.dwarp_stale) RecomputeDWarpLocked(sweep);  // watchers get the final records before the end
  SweepRow row = sweep.row;
  row.state = SweepState::kDone;
  row.finished_ms = Now();
  Status stored = store_->UpdateSweep(row);
  if (!stored.ok()) {
    spdlog::error("sweep {} finished but its state was not stored (will retry): {}", row.sweep_id, stored.ToString());
    return;
  }
  sweep.row = row;
  queue_.CloseSweep(row.sweep_id);
  watch_hub_.PublishEnd(row.sweep_id, [&] { return SummaryLocked(sweep); });
  spdlog::info("sweep {} done", row.sweep_id);
}

void Scheduler::JobFinishedLocked(SweepRecord& sweep, const JobRow& job) {
  watch_hub_.Publish(sweep.row.sweep_id, [&] { return WatchEventData(ViewLocked(job)); });
  // d_warp is recomputed at most once per reaper pass or query (RefreshLocked), not per result: with thousands
  // of jobs a recomputation per completion would dominate the coordinator's time per lease.
  sweep.dwarp_stale = true;
  ExtendSearchLocked(sweep);
  MaybeFinishSweepLocked(sweep);
  if (sweep.row.state == SweepState::kRunning)
    watch_hub_.Publish(sweep.row.sweep_id, [&] { return WatchEventData(SummaryLocked(sweep)); });
}

void Scheduler::ExtendSearchLocked(SweepRecord& sweep) {
  sweep.search_pending = false;
  if (sweep.spec.search.mode != SearchMode::kAdaptive || sweep.row.state != SweepState::kRunning) return;
  std::vector<const JobRow*> rows;
  rows.reserve(sweep.job_ids.size());
  for (int64_t id : sweep.job_ids) rows.push_back(&jobs_.at(id));
  auto next = NextSearchJobs(sweep.spec, sweep.row.sweep_id, rows, Now());
  rows.clear();  // the pointers are not used past the store call
  if (!next.ok()) {
    // A job spec the plan builds that does not validate: asking again gives the same answer.
    spdlog::error("sweep {}: the adaptive search's next jobs cannot be built: {}", sweep.row.sweep_id,
                  next.status().ToString());
    return;
  }
  if (next->empty()) return;
  // The store adapter releases mutex_ around this write. Nothing the plan was computed from can change
  // meanwhile: every change of jobs, sweeps and the queue runs on the state thread, which is this thread,
  // busy here (without a state thread, before Create or after Shutdown, the store is called under mutex_).
  // So a second result of the same group cannot plan the same job while this one is written: it is applied
  // after this call returns, and its own ExtendSearchLocked sees these jobs. What other threads do in the
  // window (queries, metric points, watchers subscribing, Acquire waiting for work) reads state or touches
  // the metric buffer only; they do not see the new jobs until they are applied below.
  Status stored = store_->AddJobs(sweep.row.sweep_id, *next);
  if (!stored.ok()) {
    // Nothing was added (one transaction). The next refresh (a query or reaper pass) asks the plan again,
    // and the sweep does not end before it has.
    spdlog::error("sweep {}: the adaptive search's {} next jobs not stored (will retry): {}", sweep.row.sweep_id,
                  next->size(), stored.ToString());
    sweep.search_pending = true;
    return;
  }
  for (const JobRow& job : *next) {
    queue_.AddJob(sweep.row.sweep_id, job.job_id, job.d, JobState::kQueued);
    sweep.job_ids.push_back(job.job_id);  // store ids ascend, so job_ids stays sorted
    const JobRow& added = jobs_[job.job_id] = job;
    watch_hub_.Publish(sweep.row.sweep_id, [&] { return WatchEventData(ViewLocked(added)); });
    spdlog::info("sweep {}: job {} ({}/{}/{} d={} seed={}) added: {}", sweep.row.sweep_id, job.job_id, job.model,
                 job.layer, job.dataset, job.d.ToString(), job.seed, job.reason);
  }
  sweep.dwarp_stale = true;
  work_cv_.notify_all();
}

// ---------------------------------------------------------------------------------------------------
// Workers

StatusOr<WorkerRow> Scheduler::Register(const std::string& name, const std::string& host,
                                        const std::vector<std::string>& devices, const std::string& worker_id) {
  if (devices.empty()) return InvalidArgumentError("a worker must offer at least one device slot; got none");
  return OnStateThread<StatusOr<WorkerRow>>([&]() -> StatusOr<WorkerRow> {
    if (shutdown_) return UnavailableError("the coordinator is shutting down");
    bool returning = false;
    auto row = workers_.Register(name, host, devices, worker_id, Now(), &returning);
    if (!row.ok()) return row.status();
    spdlog::info("worker {} ({}, {} slots) registered{}", row->worker_id, name, devices.size(), returning ? " again" : "");
    return row;
  });
}

StatusOr<AcquireResult> Scheduler::Acquire(const std::string& worker_id, const std::string& device,
                                           int64_t wait_ms) {
  const int64_t wait = std::clamp<int64_t>(wait_ms, 0, options_.max_acquire_wait_ms);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait);
  while (true) {
    auto tried = OnStateThread<StatusOr<std::optional<AcquireResult>>>([&] { return TryAcquireLocked(worker_id, device); });
    if (!tried.ok()) return tried.status();
    if (*tried) return std::move(**tried);
    // Nothing to lease: wait for work off the state thread. A job queued before the lock is taken is seen by
    // Pick; one queued later is announced on work_cv_, which the state thread notifies holding mutex_.
    std::unique_lock<std::mutex> lock(mutex_);
    if (shutdown_) return AcquireResult{};
    if (queue_.Pick().has_value()) continue;
    if (work_cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      if (!shutdown_ && queue_.Pick().has_value()) continue;  // work arrived exactly at the deadline
      return AcquireResult{};
    }
  }
}

StatusOr<std::optional<AcquireResult>> Scheduler::TryAcquireLocked(const std::string& worker_id,
                                                                   const std::string& device) {
  AcquireResult result;
  if (shutdown_) return std::optional<AcquireResult>(result);
  const WorkerRow* worker = workers_.Find(worker_id);
  if (worker == nullptr) {
    result.stop = true;
    result.reason = "unknown worker '" + worker_id + "': register first";
    return std::optional<AcquireResult>(result);
  }
  workers_.Seen(worker_id, Now());
  if (worker->blocked) {
    result.stop = true;
    result.reason = "worker blocked by the circuit breaker after " + std::to_string(worker->consecutive_failures) +
                    " failures in a row";
    return std::optional<AcquireResult>(result);
  }
  if (worker->draining) return std::optional<AcquireResult>(result);
  std::optional<int64_t> job_id = queue_.Pick();
  if (!job_id) return std::optional<AcquireResult>();
  const JobRow job = leases_.Grant(jobs_.at(*job_id), worker_id, Now());
  Status stored = store_->UpdateJobs({job});
  if (!stored.ok()) return InternalError("cannot store the lease of job " + std::to_string(job.job_id) + ": " + stored.message());
  SweepRecord& sweep = *sweeps_by_id_.at(job.sweep_id);
  JobRow& current = jobs_.at(job.job_id);
  queue_.Start(job.job_id);
  current = job;
  leases_.Add(job.lease_id, job.job_id);
  latest_metric_.erase(job.job_id);
  PublishJobLocked(sweep, current);
  spdlog::debug("job {} ({}/{}/{} d={} seed={}) leased to {} on {} (attempt {})", job.job_id, job.model,
                job.layer, job.dataset, job.d.ToString(), job.seed, worker_id, device, job.attempt);
  result.lease = Lease{job.lease_id, job, leases_.ttl_ms(), job.lease_expires_ms};
  return std::optional<AcquireResult>(result);
}

StatusOr<HeartbeatResult> Scheduler::Heartbeat(const std::string& worker_id, const std::vector<std::string>& lease_ids,
                                               bool draining) {
  return OnStateThread<StatusOr<HeartbeatResult>>([&] { return HeartbeatLocked(worker_id, lease_ids, draining); });
}

StatusOr<HeartbeatResult> Scheduler::HeartbeatLocked(const std::string& worker_id,
                                                     const std::vector<std::string>& lease_ids, bool draining) {
  HeartbeatResult result;
  if (workers_.Find(worker_id) == nullptr) {
    result.unknown_worker = true;
    return result;
  }
  const int64_t now = Now();
  std::vector<JobRow> extended;
  std::vector<std::string> released;
  for (const std::string& lease_id : lease_ids) {
    LeaseCheck check;
    check.lease_id = lease_id;
    int64_t job_id = 0;
    switch (leases_.Standing(worker_id, lease_id, now, &job_id)) {
      case LeaseStanding::kLive:
        extended.push_back(leases_.Extended(jobs_.at(job_id), now));
        check.valid = true;
        check.expires_ms = extended.back().lease_expires_ms;
        break;
      case LeaseStanding::kCancelled:
        check.cancel = true;
        released.push_back(lease_id);
        break;
      case LeaseStanding::kUnknown:
        break;
    }
    result.leases.push_back(check);
  }
  if (!extended.empty()) {
    Status stored = store_->UpdateJobs(extended);
    if (!stored.ok()) {
      // Not extending is safe: the leases keep their old expiry and the worker tries again.
      spdlog::error("heartbeat of {}: leases not extended: {}", worker_id, stored.ToString());
      size_t next = 0;
      for (LeaseCheck& check : result.leases)
        if (check.valid) check.expires_ms = jobs_.at(extended[next++].job_id).lease_expires_ms;
    } else {
      for (JobRow& job : extended) jobs_.at(job.job_id).lease_expires_ms = job.lease_expires_ms;
    }
  }
  for (const std::string& lease_id : released) leases_.Remove(lease_id);
  workers_.Heartbeat(worker_id, draining, now);
  return result;
}

StatusOr<JobRow*> Scheduler::CheckLeaseLocked(const std::string& worker_id, const std::string& lease_id) {
  auto job_id = leases_.Check(worker_id, lease_id, Now());
  if (!job_id.ok()) return job_id.status();
  return &jobs_.at(*job_id);
}

Status Scheduler::RecordMetrics(const std::string& worker_id, const std::string& lease_id,
                                const std::vector<MetricPointData>& points) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto job = CheckLeaseLocked(worker_id, lease_id);
  if (!job.ok()) return job.status();
  const JobRow& row = **job;
  for (const MetricPointData& point : points) {
    // A worker sends its held points again after a broken stream; those already here are skipped (the
    // store would keep one copy anyway) so that watchers do not see them twice.
    if (auto latest = latest_metric_.find(row.job_id);
        latest != latest_metric_.end() && latest->second.attempt == row.attempt && point.epoch <= latest->second.epoch)
      continue;
    MetricRow metric{row.job_id, row.attempt, point.epoch, point.train_loss, point.val_score, point.time_ms};
    pending_metrics_.push_back(metric);
    latest_metric_[row.job_id] = metric;
    watch_hub_.Publish(row.sweep_id, [&] { return WatchEventData(metric); });
  }
  return OkStatus();
}

Status Scheduler::Complete(const std::string& worker_id, const std::string& lease_id, JobResult result) {
  if (!std::isfinite(result.test_score) || !std::isfinite(result.val_score) || !std::isfinite(result.train_score))
    return InvalidArgumentError("result scores must be finite (train " + std::to_string(result.train_score) +
                                ", val " + std::to_string(result.val_score) + ", test " +
                                std::to_string(result.test_score) + "); a job that produced NaN must Fail");
  DWARP_RETURN_IF_ERROR(CheckResultScores(result));
  return OnStateThread<Status>([&] { return CompleteLocked(worker_id, lease_id, std::move(result)); });
}

Status Scheduler::CompleteLocked(const std::string& worker_id, const std::string& lease_id, JobResult reported) {
  // A worker ends its metric stream before it reports the result: the points still buffered here are
  // stored first, so that a stored result means a stored curve to whoever reads the database.
  Status flushed = FlushMetricsLocked();
  if (!flushed.ok()) spdlog::error("metric points not stored before a result: {}", flushed.ToString());
  auto found = CheckLeaseLocked(worker_id, lease_id);
  if (!found.ok()) return found.status();
  JobRow& current = **found;
  const int64_t now = Now();
  JobRow job = current;
  job.state = JobState::kSucceeded;
  job.finished_ms = now;
  job.error.clear();
  ResultRow result{std::move(reported)};
  result.attempt = job.attempt;
  result.worker_id = worker_id;
  result.recorded_ms = now;
  Status stored = store_->RecordResult(job, result);
  if (stored.code() == StatusCode::kAlreadyExists)
    return FailedPreconditionError("job " + std::to_string(job.job_id) + " already has its result");
  if (!stored.ok()) return InternalError("cannot store the result of job " + std::to_string(job.job_id) + ": " + stored.message());
  job.result = result;
  SweepRecord& sweep = *sweeps_by_id_.at(job.sweep_id);
  queue_.Stop(job.job_id);
  current = job;
  leases_.Remove(lease_id);
  workers_.RecordOutcome(worker_id, /*succeeded=*/true, /*retryable=*/false, "", now);
  spdlog::info("job {} ({}/{}/{} d={} seed={}) succeeded on {}: test {} = {:.4f}", job.job_id, job.model, job.layer,
               job.dataset, job.d.ToString(), job.seed, worker_id, result.metric, result.test_score);
  JobFinishedLocked(sweep, current);
  return OkStatus();
}

StatusOr<bool> Scheduler::Fail(const std::string& worker_id, const std::string& lease_id, const std::string& reason,
                               bool retryable) {
  return OnStateThread<StatusOr<bool>>([&] { return FailLocked(worker_id, lease_id, reason, retryable); });
}

StatusOr<bool> Scheduler::FailLocked(const std::string& worker_id, const std::string& lease_id,
                                     const std::string& reason, bool retryable) {
  auto found = CheckLeaseLocked(worker_id, lease_id);
  if (!found.ok()) return found.status();
  JobRow& current = **found;
  const int32_t max_attempts = sweeps_by_id_.at(current.sweep_id)->spec.max_attempts;
  const JobRow job =
      leases_.EndWithoutResult(current, LeaseTable::Ending::kFailed, retryable, reason, max_attempts, Now());
  Status stored = store_->UpdateJobs({job});
  if (!stored.ok())
    return InternalError("cannot store the failure of job " + std::to_string(job.job_id) + ": " + stored.message());
  workers_.RecordOutcome(worker_id, /*succeeded=*/false, retryable, reason, Now());
  spdlog::info("job {} failed on {} (attempt {}{}): {}", job.job_id, worker_id, job.attempt,
               job.state == JobState::kQueued ? ", requeued" : ", for good", reason);
  const bool requeued = LeaseEndedLocked(current, job);
  if (requeued) work_cv_.notify_all();
  return requeued;
}

bool Scheduler::LeaseEndedLocked(JobRow& current, const JobRow& next) {
  SweepRecord& sweep = *sweeps_by_id_.at(current.sweep_id);
  leases_.Remove(current.lease_id);
  queue_.Stop(current.job_id);
  current = next;
  if (current.state != JobState::kQueued) {
    JobFinishedLocked(sweep, current);
    return false;
  }
  queue_.Requeue(current.job_id);
  PublishJobLocked(sweep, current);
  return true;
}

// ---------------------------------------------------------------------------------------------------
// Background work

int Scheduler::ExpireLeases() {
  return OnStateThread<int>([&] { return ExpireLeasesLocked(); });
}

int Scheduler::ExpireLeasesLocked() {
  const int64_t now = Now();
  std::vector<JobRow> expired;
  for (int64_t job_id : leases_.Expired(now)) {
    const JobRow& job = jobs_.at(job_id);
    const int32_t max_attempts = sweeps_by_id_.at(job.sweep_id)->spec.max_attempts;
    expired.push_back(leases_.EndWithoutResult(job, LeaseTable::Ending::kExpired, /*retryable=*/true, "", max_attempts, now));
  }
  if (expired.empty()) return 0;
  Status stored = store_->UpdateJobs(expired);
  if (!stored.ok()) {
    spdlog::error("expired leases not stored (will retry): {}", stored.ToString());
    return 0;
  }
  bool requeued = false;
  for (const JobRow& job : expired) {
    spdlog::warn("job {}: {}{}", job.job_id, job.error, job.state == JobState::kQueued ? "; requeued" : "; failed");
    requeued = LeaseEndedLocked(jobs_.at(job.job_id), job) || requeued;
  }
  if (requeued) work_cv_.notify_all();
  return static_cast<int>(expired.size());
}

Status Scheduler::FlushMetrics() {
  return OnStateThread<Status>([&] { return FlushMetricsLocked(); });
}

Status Scheduler::FlushMetricsLocked() {
  std::vector<MetricRow> batch;
  batch.swap(pending_metrics_);
  if (batch.empty()) return OkStatus();
  // RecordMetrics may append new points while the batch is written (mutex_ is released for the write).
  Status stored = store_->AppendMetrics(batch);
  if (!stored.ok() && stored.code() != StatusCode::kInternal) {
    // Not a passing I/O problem (e.g. a point of a job the store does not know): retrying cannot help.
    spdlog::error("{} metric points dropped: {}", batch.size(), stored.ToString());
    return stored;
  }
  if (!stored.ok()) {
    pending_metrics_.insert(pending_metrics_.begin(), batch.begin(), batch.end());  // try again next time
    return stored;
  }
  return OkStatus();
}

void Scheduler::ReaperLoop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!shutdown_) {
    stop_cv_.wait_for(lock, std::chrono::milliseconds(options_.reap_interval_ms));
    if (shutdown_) break;
    lock.unlock();
    OnStateThread<int>([&] {
      RefreshLocked();
      return ExpireLeasesLocked();
    });
    lock.lock();
  }
}

void Scheduler::FlusherLoop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!shutdown_) {
    stop_cv_.wait_for(lock, std::chrono::milliseconds(options_.metric_flush_ms));
    if (shutdown_) break;
    lock.unlock();
    Status flushed = FlushMetrics();
    if (!flushed.ok()) spdlog::error("metric points not stored yet: {}", flushed.ToString());
    lock.lock();
  }
}

// ---------------------------------------------------------------------------------------------------
// The state thread

template <typename Result>
Result Scheduler::OnStateThread(const std::function<Result()>& task) {
  if (state_thread_owner == this) return task();  // already on it, holding mutex_
  std::promise<Result> promise;
  std::future<Result> future = promise.get_future();
  bool posted = false;
  {
    std::lock_guard<std::mutex> lock(tasks_mutex_);
    if (!tasks_stopped_) {
      tasks_.push_back([&] {
        try {
          promise.set_value(task());
        } catch (...) {
          promise.set_exception(std::current_exception());  // rethrown on the caller's thread, as before
        }
      });
      posted = true;
    }
  }
  if (posted) {
    tasks_cv_.notify_one();
    return future.get();
  }
  // No state thread (before Create starts it, or after Shutdown stopped it): run here under mutex_, with
  // the store called under it as well.
  std::lock_guard<std::mutex> lock(mutex_);
  return task();
}

void Scheduler::StateLoop() {
  state_thread_owner = this;
  while (true) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(tasks_mutex_);
      tasks_cv_.wait(lock, [&] { return tasks_stopped_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // stopped and drained
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    std::unique_lock<std::mutex> lock(mutex_);
    state_lock_ = &lock;
    task();
    state_lock_ = nullptr;
  }
}

std::unique_lock<std::mutex>* Scheduler::StateLockToRelease() const {
  return state_thread_owner == this ? state_lock_ : nullptr;
}

}  // namespace dwarp::coordinator
