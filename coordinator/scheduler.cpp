#include "coordinator/scheduler.h"

#include <spdlog/spdlog.h>

#include <sys/random.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>

#include "coordinator/adaptive_search.h"

namespace dwarp::coordinator {

struct Scheduler::SweepState_ {
  SweepRow row;
  SweepSpec spec;
  std::vector<int64_t> job_ids;                    // ascending
  std::set<std::pair<int64_t, int64_t>> queued;    // (d rank, job id): smallest d first
  int32_t running = 0;
  std::vector<GroupDWarp> dwarp;
  bool dwarp_dirty = false;  // a job finished since `dwarp` was computed
};

struct Scheduler::WorkerState_ {
  WorkerRow row;
};

namespace {

int64_t SystemNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Queue order inside a sweep: d = 0 first, then ascending d, full last.
int64_t DRank(const std::string& d) {
  if (d == "full") return std::numeric_limits<int64_t>::max();
  try {
    return std::stoll(d);
  } catch (...) {
    return std::numeric_limits<int64_t>::max() - 1;
  }
}

const char* JobStateName(JobState state) {
  switch (state) {
    case JobState::kQueued: return "queued";
    case JobState::kRunning: return "running";
    case JobState::kSucceeded: return "succeeded";
    case JobState::kFailed: return "failed";
    case JobState::kCancelled: return "cancelled";
  }
  return "unknown";
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

}  // namespace

// ---------------------------------------------------------------------------------------------------
// WatchQueue

std::optional<WatchEventData> WatchQueue::Pop(int64_t timeout_ms) {
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return !events_.empty() || closed_; });
  if (events_.empty()) return std::nullopt;
  WatchEventData event = std::move(events_.front());
  events_.pop_front();
  return event;
}

bool WatchQueue::closed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return closed_ && events_.empty();
}

bool WatchQueue::overflowed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return overflowed_;
}

void WatchQueue::Push(WatchEventData event, size_t max_queue) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return;
    if (events_.size() >= max_queue) {
      overflowed_ = true;
      closed_ = true;
    } else {
      events_.push_back(std::move(event));
    }
  }
  cv_.notify_all();
}

void WatchQueue::Close() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }
  cv_.notify_all();
}

// ---------------------------------------------------------------------------------------------------
// Construction, restart, shutdown

Scheduler::Scheduler(SweepStore* store, SchedulerOptions options) : store_(store), options_(std::move(options)) {}

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
    for (auto& [id, queue] : watchers_) queue->Close();
    watchers_.clear();
  }
  work_cv_.notify_all();
  stop_cv_.notify_all();
  if (reaper_.joinable()) reaper_.join();
  if (flusher_.joinable()) flusher_.join();
  Status flushed = FlushMetrics();
  if (!flushed.ok()) spdlog::error("metric points lost at shutdown: {}", flushed.ToString());
}

bool Scheduler::serving() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return !shutdown_;
}

int64_t Scheduler::Now() const { return options_.now_ms ? options_.now_ms() : SystemNowMs(); }

Status CheckResultScores(const ResultRow& result) {
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

std::string Scheduler::NewId(const char* prefix) {
  // Lease and worker ids: 128 bits from the kernel's cryptographic generator. A lease id is a capability
  // (whoever knows it may report that job's outcome), so it must not be predictable from ids seen before,
  // as a seeded mt19937_64's output is; 128 bits also mean a restarted coordinator never reissues an id.
  uint64_t words[2] = {0, 0};
  auto* bytes = reinterpret_cast<unsigned char*>(words);
  size_t filled = 0;
  while (filled < sizeof(words)) {
    const ssize_t got = ::getrandom(bytes + filled, sizeof(words) - filled, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      // getrandom(2) fails only on kernels before 3.17 or under a seccomp filter: fall back to the device.
      std::ifstream urandom("/dev/urandom", std::ios::binary);
      urandom.read(reinterpret_cast<char*>(bytes + filled), static_cast<std::streamsize>(sizeof(words) - filled));
      if (!urandom) {
        spdlog::critical("no cryptographic random source (getrandom, /dev/urandom): cannot issue ids");
        std::abort();
      }
      break;
    }
    filled += static_cast<size_t>(got);
  }
  char text[40];
  std::snprintf(text, sizeof(text), "%s%016llx%016llx", prefix, static_cast<unsigned long long>(words[0]),
                static_cast<unsigned long long>(words[1]));
  return text;
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
    auto state = std::make_unique<SweepState_>();
    state->row = std::move(row);
    state->spec = std::move(*spec);
    sweeps_by_id_[state->row.sweep_id] = state.get();
    if (!state->row.request_id.empty()) sweeps_by_request_id_[state->row.request_id] = state.get();
    sweeps_.push_back(std::move(state));
  }
  for (JobRow& job : *jobs) {
    auto found = sweeps_by_id_.find(job.sweep_id);
    if (found == sweeps_by_id_.end())
      return InternalError("stored job " + std::to_string(job.job_id) + " names unknown sweep '" + job.sweep_id + "'");
    SweepState_& sweep = *found->second;
    sweep.job_ids.push_back(job.job_id);
    if (job.state == JobState::kQueued) sweep.queued.insert({DRank(job.d), job.job_id});
    if (job.state == JobState::kRunning) ++sweep.running;
    if (job.state == JobState::kRunning || (job.state == JobState::kCancelled && job.cancel_requested))
      if (!job.lease_id.empty()) lease_to_job_[job.lease_id] = job.job_id;
    job_sweep_[job.job_id] = job.sweep_id;
    jobs_[job.job_id] = std::move(job);
  }
  for (WorkerRow& row : *workers) {
    auto state = std::make_unique<WorkerState_>();
    state->row = std::move(row);
    workers_[state->row.worker_id] = std::move(state);
  }
  for (auto& sweep : sweeps_) {
    std::sort(sweep->job_ids.begin(), sweep->job_ids.end());
    // An adaptive search whose next jobs were not stored before a crash asks for them now.
    ExtendSearchLocked(*sweep);
    RecomputeDWarpLocked(*sweep);
  }
  if (!sweeps_.empty())
    spdlog::info("restored {} sweeps, {} jobs ({} leases still held), {} workers from the store", sweeps_.size(),
                 jobs_.size(), lease_to_job_.size(), workers_.size());
  return OkStatus();
}

// ---------------------------------------------------------------------------------------------------
// Lookups

void Scheduler::RefreshLocked() {
  for (auto& sweep : sweeps_) {
    if (!sweep->dwarp_dirty) continue;
    RecomputeDWarpLocked(*sweep);
    MaybeFinishSweepLocked(*sweep);  // early stop may have cancelled the last queued jobs
  }
}

Scheduler::SweepState_* Scheduler::FindSweepLocked(const std::string& sweep) {
  return const_cast<SweepState_*>(static_cast<const Scheduler*>(this)->FindSweepLocked(sweep));
}

const Scheduler::SweepState_* Scheduler::FindSweepLocked(const std::string& sweep) const {
  auto found = sweeps_by_id_.find(sweep);
  if (found != sweeps_by_id_.end()) return found->second;
  for (auto it = sweeps_.rbegin(); it != sweeps_.rend(); ++it)
    if ((*it)->row.name == sweep) return it->get();
  return nullptr;
}

SweepSummary Scheduler::SummaryLocked(const SweepState_& sweep) const {
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

StatusOr<SweepSummary> Scheduler::GetSweep(const std::string& sweep) {
  std::lock_guard<std::mutex> lock(mutex_);
  RefreshLocked();
  const SweepState_* state = FindSweepLocked(sweep);
  if (state == nullptr) return SweepNotFound(sweep);
  return SummaryLocked(*state);
}

std::vector<SweepSummary> Scheduler::ListSweeps() {
  std::lock_guard<std::mutex> lock(mutex_);
  RefreshLocked();
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
  std::lock_guard<std::mutex> lock(mutex_);
  RefreshLocked();
  const SweepState_* state = FindSweepLocked(sweep);
  if (state == nullptr) return SweepNotFound(sweep);
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
  std::lock_guard<std::mutex> lock(mutex_);
  RefreshLocked();
  const SweepState_* state = FindSweepLocked(sweep);
  if (state == nullptr) return SweepNotFound(sweep);
  return state->dwarp;
}

StatusOr<std::vector<MetricRow>> Scheduler::Metrics(int64_t job_id) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (jobs_.count(job_id) == 0) return NotFoundError("job " + std::to_string(job_id) + " not found");
  }
  DWARP_RETURN_IF_ERROR(FlushMetrics());
  return store_->LoadMetrics(job_id);
}

std::vector<WorkerView> Scheduler::Workers() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<WorkerView> out;
  for (const auto& [id, worker] : workers_) out.push_back({worker->row, 0});
  for (const auto& [lease, job_id] : lease_to_job_) {
    const JobRow& job = jobs_.at(job_id);
    if (job.state != JobState::kRunning) continue;
    for (WorkerView& view : out)
      if (view.row.worker_id == job.worker_id) ++view.running_jobs;
  }
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
  return "model " + job.model + ", layer " + job.layer + ", dataset " + job.dataset + ", d " + job.d + ", seed " +
         std::to_string(job.seed) + (job.variant.empty() ? "" : ", variant " + job.variant);
}

}  // namespace

StatusOr<std::optional<SubmitResult>> Scheduler::ResubmittedLocked(const std::string& request_id,
                                                                   const std::string& spec_json) const {
  if (request_id.empty()) return std::optional<SubmitResult>();
  auto found = sweeps_by_request_id_.find(request_id);
  if (found == sweeps_by_request_id_.end()) return std::optional<SubmitResult>();
  const SweepState_& sweep = *found->second;
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
  auto spec = ParseSweepSpec(request.text, request.format, request.overrides, request.base_dir);
  if (!spec.ok()) return Status(spec.status().code(), source + ": " + spec.status().message());

  const int64_t now = Now();
  SweepRow row;
  row.name = spec->name;
  row.state = SweepState::kRunning;
  row.created_ms = now;
  row.spec_json = ToJson(*spec).dump();
  row.request_id = request_id;
  if (row.spec_json.size() > options_.max_spec_bytes)
    return InvalidArgumentError(source + ": the resolved sweep is " + std::to_string(row.spec_json.size()) +
                                " bytes of JSON; expected at most " + std::to_string(options_.max_spec_bytes));
  {
    // A retry of a stored submission is answered before the expansion, which may be long.
    std::lock_guard<std::mutex> lock(mutex_);
    auto resubmitted = ResubmittedLocked(request_id, row.spec_json);
    if (!resubmitted.ok()) return resubmitted.status();
    if (*resubmitted) return std::move(**resubmitted);
  }
  auto planned = ExpandSweep(*spec);
  if (!planned.ok()) return Status(planned.status().code(), source + ": " + planned.status().message());

  std::vector<JobRow> jobs;
  jobs.reserve(planned->size());
  for (const PlannedJob& plan : *planned) {
    JobRow job;
    job.model = plan.model;
    job.layer = plan.layer;
    job.dataset = plan.dataset;
    job.variant = plan.variant;
    job.d = plan.d.ToString();
    job.seed = plan.seed;
    job.spec_json = ToJson(plan.spec).dump();
    job.state = JobState::kQueued;
    job.created_ms = now;
    job.reason = InitialJobReason(*spec);
    // The spec and the key travel together (a lease, a page of results).
    const size_t bytes = job.spec_json.size() + job.model.size() + job.layer.size() + job.dataset.size() +
                         job.variant.size() + job.d.size();
    if (bytes > options_.max_spec_bytes)
      return InvalidArgumentError(source + ": job " + std::to_string(jobs.size() + 1) + " of " +
                                  std::to_string(planned->size()) + " (" + DescribeJobKey(job) + ") is " +
                                  std::to_string(bytes) + " bytes with its key; expected at most " +
                                  std::to_string(options_.max_spec_bytes));
    jobs.push_back(std::move(job));
  }
  if (request.dry_run) {
    SubmitResult result;
    result.sweep.row = row;
    result.sweep.spec = *spec;
    result.sweep.counts.total = result.sweep.counts.queued = static_cast<int32_t>(jobs.size());
    result.jobs = std::move(jobs);
    return result;
  }

  std::unique_lock<std::mutex> lock(mutex_);
  if (shutdown_) return UnavailableError("the coordinator is shutting down");
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
  auto state = std::make_unique<SweepState_>();
  state->row = row;
  state->spec = std::move(*spec);
  for (const JobRow& job : jobs) {
    state->job_ids.push_back(job.job_id);
    state->queued.insert({DRank(job.d), job.job_id});
    job_sweep_[job.job_id] = row.sweep_id;
    jobs_[job.job_id] = job;
  }
  SweepState_& sweep = *state;
  sweeps_by_id_[row.sweep_id] = state.get();
  if (!row.request_id.empty()) sweeps_by_request_id_[row.request_id] = state.get();
  sweeps_.push_back(std::move(state));
  RecomputeDWarpLocked(sweep);
  SubmitResult result{SummaryLocked(sweep), jobs, false};
  lock.unlock();
  work_cv_.notify_all();
  spdlog::info("sweep {} submitted: {} jobs", row.sweep_id, jobs.size());
  return result;
}

StatusOr<CancelResult> Scheduler::Cancel(const std::string& sweep_name) {
  std::lock_guard<std::mutex> lock(mutex_);
  SweepState_* sweep = FindSweepLocked(sweep_name);
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
  DWARP_RETURN_IF_ERROR(store_->UpdateJobs(changed));
  DWARP_RETURN_IF_ERROR(store_->UpdateSweep(row));
  for (const JobRow& job : changed) {
    JobRow& stored = jobs_.at(job.job_id);
    if (stored.state == JobState::kQueued) sweep->queued.erase({DRank(stored.d), stored.job_id});
    if (stored.state == JobState::kRunning) --sweep->running;
    stored = job;
    PublishLocked(sweep->row.sweep_id, [&] { return WatchEventData(ViewLocked(stored)); });
  }
  sweep->row = row;
  RecomputeDWarpLocked(*sweep);
  result.sweep = SummaryLocked(*sweep);
  PublishLocked(sweep->row.sweep_id, [&] { return WatchEventData(result.sweep); });
  auto range = watchers_.equal_range(sweep->row.sweep_id);
  for (auto it = range.first; it != range.second; ++it) it->second->Close();
  watchers_.erase(sweep->row.sweep_id);
  spdlog::info("sweep {} cancelled: {} queued jobs cancelled, {} running jobs told to stop", row.sweep_id,
               result.cancelled_queued, result.cancelling_running);
  return result;
}

StatusOr<WatchSubscription> Scheduler::Watch(const std::string& sweep_name) {
  std::lock_guard<std::mutex> lock(mutex_);
  RefreshLocked();
  const SweepState_* sweep = FindSweepLocked(sweep_name);
  if (sweep == nullptr) return SweepNotFound(sweep_name);
  WatchSubscription subscription;
  subscription.sweep = SummaryLocked(*sweep);
  for (int64_t id : sweep->job_ids) subscription.jobs.push_back(ViewLocked(jobs_.at(id)));
  subscription.dwarp = sweep->dwarp;
  subscription.queue = std::make_shared<WatchQueue>();
  if (sweep->row.state == SweepState::kRunning && !shutdown_) {
    watchers_.emplace(sweep->row.sweep_id, subscription.queue);
  } else {
    subscription.queue->Close();  // nothing will change: the snapshot is all there is
  }
  return subscription;
}

void Scheduler::Unwatch(const std::shared_ptr<WatchQueue>& queue) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = watchers_.begin(); it != watchers_.end(); ++it) {
    if (it->second == queue) {
      watchers_.erase(it);
      break;
    }
  }
  queue->Close();
}

void Scheduler::PublishLocked(const std::string& sweep_id, const std::function<WatchEventData()>& make_event) {
  auto range = watchers_.equal_range(sweep_id);
  if (range.first == range.second) return;  // nobody watches: build nothing
  const WatchEventData event = make_event();
  for (auto it = range.first; it != range.second;) {
    it->second->Push(event, options_.max_watch_queue);
    if (it->second->overflowed()) {
      spdlog::warn("a watcher of sweep {} fell {} events behind and was dropped", sweep_id, options_.max_watch_queue);
      it = watchers_.erase(it);
    } else {
      ++it;
    }
  }
}

void Scheduler::RecomputeDWarpLocked(SweepState_& sweep) {
  std::vector<JobOutcome> outcomes;
  outcomes.reserve(sweep.job_ids.size());
  for (int64_t id : sweep.job_ids) outcomes.push_back(OutcomeOf(jobs_.at(id)));
  sweep.dwarp_dirty = false;
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
    if (changed) PublishLocked(sweep.row.sweep_id, [&] { return WatchEventData(record); });
  }
  sweep.dwarp = std::move(records);

  if (!sweep.spec.early_stop || sweep.row.state != SweepState::kRunning) return;
  std::vector<JobRow> unnecessary;
  for (size_t index : JobsMadeUnnecessary(sweep.spec.threshold, outcomes)) {
    JobRow job = jobs_.at(sweep.job_ids.at(index));
    if (job.state != JobState::kQueued) continue;
    job.state = JobState::kCancelled;
    job.error = "early stop: d = " + job.d + " is above the final d_warp crossing of its group";
    job.finished_ms = Now();
    unnecessary.push_back(std::move(job));
  }
  if (unnecessary.empty()) return;
  Status stored = store_->UpdateJobs(unnecessary);
  if (!stored.ok()) {
    spdlog::error("early stop of {} jobs not stored: {}", unnecessary.size(), stored.ToString());
    return;
  }
  for (const JobRow& job : unnecessary) {
    sweep.queued.erase({DRank(job.d), job.job_id});
    jobs_.at(job.job_id) = job;
    PublishLocked(sweep.row.sweep_id, [&] { return WatchEventData(ViewLocked(job)); });
  }
  spdlog::info("sweep {}: early stop cancelled {} queued jobs", sweep.row.sweep_id, unnecessary.size());
}

void Scheduler::MaybeFinishSweepLocked(SweepState_& sweep) {
  if (sweep.row.state != SweepState::kRunning || !sweep.queued.empty() || sweep.running > 0) return;
  if (sweep.dwarp_dirty) RecomputeDWarpLocked(sweep);  // watchers get the final records before the end
  SweepRow row = sweep.row;
  row.state = SweepState::kDone;
  row.finished_ms = Now();
  Status stored = store_->UpdateSweep(row);
  if (!stored.ok()) {
    spdlog::error("sweep {} finished but its state was not stored: {}", row.sweep_id, stored.ToString());
    return;
  }
  sweep.row = row;
  PublishLocked(row.sweep_id, [&] { return WatchEventData(SummaryLocked(sweep)); });
  auto range = watchers_.equal_range(row.sweep_id);
  for (auto it = range.first; it != range.second; ++it) it->second->Close();
  watchers_.erase(row.sweep_id);
  spdlog::info("sweep {} done", row.sweep_id);
}

void Scheduler::JobFinishedLocked(SweepState_& sweep, const JobRow& job) {
  PublishLocked(sweep.row.sweep_id, [&] { return WatchEventData(ViewLocked(job)); });
  // d_warp is recomputed at most once per reaper pass or query (RefreshLocked), not per result: with thousands
  // of jobs a recomputation per completion would dominate the coordinator's time per lease.
  sweep.dwarp_dirty = true;
  ExtendSearchLocked(sweep);
  MaybeFinishSweepLocked(sweep);
  if (sweep.row.state == SweepState::kRunning)
    PublishLocked(sweep.row.sweep_id, [&] { return WatchEventData(SummaryLocked(sweep)); });
}

void Scheduler::ExtendSearchLocked(SweepState_& sweep) {
  if (sweep.spec.search.mode != SearchMode::kAdaptive || sweep.row.state != SweepState::kRunning) return;
  std::vector<const JobRow*> rows;
  rows.reserve(sweep.job_ids.size());
  for (int64_t id : sweep.job_ids) rows.push_back(&jobs_.at(id));
  auto next = NextSearchJobs(sweep.spec, sweep.row.sweep_id, rows, Now());
  if (!next.ok()) {
    spdlog::error("sweep {}: the adaptive search's next jobs cannot be built: {}", sweep.row.sweep_id,
                  next.status().ToString());
    return;
  }
  if (next->empty()) return;
  Status stored = store_->AddJobs(sweep.row.sweep_id, *next);
  if (!stored.ok()) {
    // Nothing was added; the next finished job (or a restart) asks again.
    spdlog::error("sweep {}: the adaptive search's {} next jobs not stored: {}", sweep.row.sweep_id, next->size(),
                  stored.ToString());
    return;
  }
  for (const JobRow& job : *next) {
    sweep.job_ids.push_back(job.job_id);
    sweep.queued.insert({DRank(job.d), job.job_id});
    job_sweep_[job.job_id] = job.sweep_id;
    jobs_[job.job_id] = job;
    PublishLocked(sweep.row.sweep_id, [&] { return WatchEventData(ViewLocked(job)); });
    spdlog::info("sweep {}: job {} ({}/{}/{} d={} seed={}) added: {}", sweep.row.sweep_id, job.job_id, job.model,
                 job.layer, job.dataset, job.d, job.seed, job.reason);
  }
  sweep.dwarp_dirty = true;
  work_cv_.notify_all();
}

// ---------------------------------------------------------------------------------------------------
// Workers

StatusOr<WorkerRow> Scheduler::Register(const std::string& name, const std::string& host,
                                        const std::vector<std::string>& devices, const std::string& worker_id) {
  if (devices.empty()) return InvalidArgumentError("a worker must offer at least one device slot; got none");
  std::lock_guard<std::mutex> lock(mutex_);
  if (shutdown_) return UnavailableError("the coordinator is shutting down");
  const int64_t now = Now();
  WorkerRow row;
  auto found = worker_id.empty() ? workers_.end() : workers_.find(worker_id);
  if (found != workers_.end()) {
    row = found->second->row;  // a worker coming back keeps its id, counters and breaker state
  } else {
    row.worker_id = NewId("w");
    row.registered_ms = now;
  }
  row.name = name;
  row.host = host;
  row.devices = devices;
  row.last_seen_ms = now;
  row.draining = false;
  DWARP_RETURN_IF_ERROR(store_->UpsertWorker(row));
  auto& state = workers_[row.worker_id];
  if (!state) state = std::make_unique<WorkerState_>();
  state->row = row;
  spdlog::info("worker {} ({}, {} slots) registered{}", row.worker_id, name, devices.size(),
               found != workers_.end() ? " again" : "");
  return row;
}

std::optional<int64_t> Scheduler::PickJobLocked() {
  // Fair share: the running sweep with the fewest running jobs, the oldest on a tie.
  SweepState_* best = nullptr;
  for (auto& sweep : sweeps_) {
    if (sweep->row.state != SweepState::kRunning || sweep->queued.empty()) continue;
    if (best == nullptr || sweep->running < best->running) best = sweep.get();
  }
  if (best == nullptr) return std::nullopt;
  return best->queued.begin()->second;
}

StatusOr<AcquireResult> Scheduler::Acquire(const std::string& worker_id, const std::string& device,
                                           int64_t wait_ms) {
  const int64_t wait = std::clamp<int64_t>(wait_ms, 0, options_.max_acquire_wait_ms);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait);
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    AcquireResult result;
    if (shutdown_) return result;
    auto worker = workers_.find(worker_id);
    if (worker == workers_.end()) {
      result.stop = true;
      result.reason = "unknown worker '" + worker_id + "': register first";
      return result;
    }
    WorkerRow& row = worker->second->row;
    row.last_seen_ms = Now();
    if (row.blocked) {
      result.stop = true;
      result.reason = "worker blocked by the circuit breaker after " + std::to_string(row.consecutive_failures) +
                      " failures in a row";
      return result;
    }
    if (row.draining) return result;
    if (std::optional<int64_t> job_id = PickJobLocked()) {
      const int64_t now = Now();
      JobRow job = jobs_.at(*job_id);
      job.state = JobState::kRunning;
      job.attempt += 1;
      job.lease_id = NewId("l");
      job.worker_id = worker_id;
      job.lease_expires_ms = now + options_.lease_ttl_ms;
      job.started_ms = now;
      job.cancel_requested = false;
      Status stored = store_->UpdateJobs({job});
      if (!stored.ok()) return InternalError("cannot store the lease of job " + std::to_string(job.job_id) + ": " + stored.message());
      SweepState_& sweep = *sweeps_by_id_.at(job.sweep_id);
      JobRow& current = jobs_.at(job.job_id);
      sweep.queued.erase({DRank(current.d), current.job_id});
      ++sweep.running;
      current = job;
      lease_to_job_[job.lease_id] = job.job_id;
      latest_metric_.erase(job.job_id);
      PublishLocked(job.sweep_id, [&] { return WatchEventData(ViewLocked(current)); });
      PublishLocked(job.sweep_id, [&] { return WatchEventData(SummaryLocked(sweep)); });
      spdlog::debug("job {} ({}/{}/{} d={} seed={}) leased to {} on {} (attempt {})", job.job_id, job.model,
                    job.layer, job.dataset, job.d, job.seed, worker_id, device, job.attempt);
      result.lease = Lease{job.lease_id, job, options_.lease_ttl_ms, job.lease_expires_ms};
      return result;
    }
    if (work_cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      if (!shutdown_ && PickJobLocked().has_value()) continue;  // work arrived exactly at the deadline
      return AcquireResult{};
    }
  }
}

StatusOr<HeartbeatResult> Scheduler::Heartbeat(const std::string& worker_id, const std::vector<std::string>& lease_ids,
                                               bool draining) {
  std::lock_guard<std::mutex> lock(mutex_);
  HeartbeatResult result;
  auto worker = workers_.find(worker_id);
  if (worker == workers_.end()) {
    result.unknown_worker = true;
    return result;
  }
  const int64_t now = Now();
  WorkerRow row = worker->second->row;
  row.last_seen_ms = now;
  row.draining = draining;
  std::vector<JobRow> extended;
  std::vector<std::string> released;
  for (const std::string& lease_id : lease_ids) {
    LeaseCheck check;
    check.lease_id = lease_id;
    auto found = lease_to_job_.find(lease_id);
    if (found != lease_to_job_.end()) {
      const JobRow& job = jobs_.at(found->second);
      if (job.lease_id == lease_id && job.worker_id == worker_id) {
        if (job.state == JobState::kRunning && now <= job.lease_expires_ms) {
          JobRow copy = job;
          copy.lease_expires_ms = now + options_.lease_ttl_ms;
          check.valid = true;
          check.expires_ms = copy.lease_expires_ms;
          extended.push_back(std::move(copy));
        } else if (job.state == JobState::kCancelled && job.cancel_requested) {
          check.cancel = true;
          released.push_back(lease_id);
        }
      }
    }
    result.leases.push_back(check);
  }
  if (!extended.empty()) {
    Status stored = store_->UpdateJobs(extended);
    if (!stored.ok()) {
      // Not extending is safe: the leases keep their old expiry and the worker tries again.
      spdlog::error("heartbeat of {}: leases not extended: {}", worker_id, stored.ToString());
      for (LeaseCheck& check : result.leases)
        if (check.valid) check.expires_ms = jobs_.at(lease_to_job_.at(check.lease_id)).lease_expires_ms;
    } else {
      for (JobRow& job : extended) jobs_.at(job.job_id).lease_expires_ms = job.lease_expires_ms;
    }
  }
  for (const std::string& lease_id : released) lease_to_job_.erase(lease_id);
  if (row.draining != worker->second->row.draining) {
    Status stored = store_->UpsertWorker(row);
    if (!stored.ok()) spdlog::error("worker {} not stored: {}", worker_id, stored.ToString());
  }
  worker->second->row = row;
  return result;
}

StatusOr<JobRow*> Scheduler::CheckLeaseLocked(const std::string& worker_id, const std::string& lease_id) {
  auto found = lease_to_job_.find(lease_id);
  if (found == lease_to_job_.end())
    return FailedPreconditionError("stale lease '" + lease_id +
                                   "': it is not the current lease of any job (expired, superseded or finished)");
  JobRow& job = jobs_.at(found->second);
  if (job.lease_id != lease_id || job.state != JobState::kRunning)
    return FailedPreconditionError("stale lease '" + lease_id + "': job " + std::to_string(job.job_id) + " is " +
                                   JobStateName(job.state));
  if (job.worker_id != worker_id)
    return FailedPreconditionError("lease '" + lease_id + "' belongs to worker " + job.worker_id + ", not " + worker_id);
  if (Now() > job.lease_expires_ms)
    return FailedPreconditionError("stale lease '" + lease_id + "': it expired " +
                                   std::to_string(Now() - job.lease_expires_ms) + " ms ago");
  return &job;
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
    PublishLocked(row.sweep_id, [&] { return WatchEventData(metric); });
  }
  return OkStatus();
}

Status Scheduler::Complete(const std::string& worker_id, const std::string& lease_id, ResultRow result) {
  if (!std::isfinite(result.test_score) || !std::isfinite(result.val_score) || !std::isfinite(result.train_score))
    return InvalidArgumentError("result scores must be finite (train " + std::to_string(result.train_score) +
                                ", val " + std::to_string(result.val_score) + ", test " +
                                std::to_string(result.test_score) + "); a job that produced NaN must Fail");
  DWARP_RETURN_IF_ERROR(CheckResultScores(result));
  // A worker ends its metric stream before it reports the result: the points still buffered here are
  // stored first, so that a stored result means a stored curve to whoever reads the database.
  Status flushed = FlushMetrics();
  if (!flushed.ok()) spdlog::error("metric points not stored before a result: {}", flushed.ToString());
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = CheckLeaseLocked(worker_id, lease_id);
  if (!found.ok()) return found.status();
  JobRow& current = **found;
  const int64_t now = Now();
  JobRow job = current;
  job.state = JobState::kSucceeded;
  job.finished_ms = now;
  job.error.clear();
  result.attempt = job.attempt;
  result.worker_id = worker_id;
  result.recorded_ms = now;
  Status stored = store_->RecordResult(job, result);
  if (stored.code() == StatusCode::kAlreadyExists)
    return FailedPreconditionError("job " + std::to_string(job.job_id) + " already has its result");
  if (!stored.ok()) return InternalError("cannot store the result of job " + std::to_string(job.job_id) + ": " + stored.message());
  job.result = result;
  SweepState_& sweep = *sweeps_by_id_.at(job.sweep_id);
  --sweep.running;
  current = job;
  lease_to_job_.erase(lease_id);
  if (auto worker = workers_.find(worker_id); worker != workers_.end()) {
    WorkerRow row = worker->second->row;
    row.consecutive_failures = 0;
    ++row.jobs_succeeded;
    row.last_seen_ms = now;
    Status saved = store_->UpsertWorker(row);
    if (!saved.ok()) spdlog::error("worker {} not stored: {}", worker_id, saved.ToString());
    worker->second->row = row;
  }
  spdlog::info("job {} ({}/{}/{} d={} seed={}) succeeded on {}: test {} = {:.4f}", job.job_id, job.model, job.layer,
               job.dataset, job.d, job.seed, worker_id, result.metric, result.test_score);
  JobFinishedLocked(sweep, current);
  return OkStatus();
}

StatusOr<bool> Scheduler::Fail(const std::string& worker_id, const std::string& lease_id, const std::string& reason,
                               bool retryable) {
  std::unique_lock<std::mutex> lock(mutex_);
  auto found = CheckLeaseLocked(worker_id, lease_id);
  if (!found.ok()) return found.status();
  JobRow& current = **found;
  SweepState_& sweep = *sweeps_by_id_.at(current.sweep_id);
  const int32_t max_attempts = sweep.spec.max_attempts;
  const int64_t now = Now();
  JobRow job = current;
  const bool requeue = retryable && job.attempt < max_attempts;
  job.error = reason.empty() ? "failed without a reason" : reason;
  job.lease_id.clear();
  job.lease_expires_ms = 0;
  if (requeue) {
    job.state = JobState::kQueued;
  } else {
    job.state = JobState::kFailed;
    job.finished_ms = now;
    if (retryable) job.error += " (attempt " + std::to_string(job.attempt) + " of " + std::to_string(max_attempts) + ")";
  }
  DWARP_RETURN_IF_ERROR(store_->UpdateJobs({job}));
  --sweep.running;
  if (requeue) sweep.queued.insert({DRank(job.d), job.job_id});
  current = job;
  lease_to_job_.erase(lease_id);

  if (auto worker = workers_.find(worker_id); worker != workers_.end()) {
    WorkerRow row = worker->second->row;
    ++row.jobs_failed;
    // The breaker counts what looks like the worker's fault (retryable failures), not bad jobs, and not the
    // jobs a draining worker hands back.
    if (retryable && !row.draining) ++row.consecutive_failures;
    if (row.consecutive_failures >= options_.circuit_breaker_failures && !row.blocked) {
      row.blocked = true;
      spdlog::warn("worker {} blocked: {} failures in a row, the last: {}", worker_id, row.consecutive_failures, reason);
    }
    Status saved = store_->UpsertWorker(row);
    if (!saved.ok()) spdlog::error("worker {} not stored: {}", worker_id, saved.ToString());
    worker->second->row = row;
  }
  spdlog::info("job {} failed on {} (attempt {}{}): {}", job.job_id, worker_id, job.attempt,
               requeue ? ", requeued" : ", for good", reason);
  if (requeue) {
    PublishLocked(sweep.row.sweep_id, [&] { return WatchEventData(ViewLocked(current)); });
    PublishLocked(sweep.row.sweep_id, [&] { return WatchEventData(SummaryLocked(sweep)); });
    lock.unlock();
    work_cv_.notify_all();
  } else {
    JobFinishedLocked(sweep, current);
  }
  return requeue;
}

// ---------------------------------------------------------------------------------------------------
// Background work

int Scheduler::ExpireLeases() {
  std::unique_lock<std::mutex> lock(mutex_);
  const int64_t now = Now();
  std::vector<JobRow> expired;
  for (const auto& [lease_id, job_id] : lease_to_job_) {
    const JobRow& job = jobs_.at(job_id);
    if (job.state != JobState::kRunning || now <= job.lease_expires_ms) continue;
    JobRow copy = job;
    const int32_t max_attempts = sweeps_by_id_.at(job.sweep_id)->spec.max_attempts;
    copy.lease_id.clear();
    copy.lease_expires_ms = 0;
    // Silence has more than one cause: a dead or cut-off worker, or this coordinator being down while the
    // worker waited to report; the message says what was seen, not who is to blame.
    copy.error = "lease of attempt " + std::to_string(job.attempt) + " expired: no heartbeat or result from worker " +
                 job.worker_id + " reached the coordinator within the lease TTL (" +
                 std::to_string(options_.lease_ttl_ms) + " ms)";
    if (job.attempt < max_attempts) {
      copy.state = JobState::kQueued;
    } else {
      copy.state = JobState::kFailed;
      copy.finished_ms = now;
      copy.error += "; all " + std::to_string(max_attempts) + " attempts used";
    }
    expired.push_back(std::move(copy));
  }
  if (expired.empty()) return 0;
  Status stored = store_->UpdateJobs(expired);
  if (!stored.ok()) {
    spdlog::error("expired leases not stored (will retry): {}", stored.ToString());
    return 0;
  }
  bool requeued = false;
  for (const JobRow& job : expired) {
    JobRow& current = jobs_.at(job.job_id);
    lease_to_job_.erase(current.lease_id);
    SweepState_& sweep = *sweeps_by_id_.at(job.sweep_id);
    --sweep.running;
    current = job;
    spdlog::warn("job {}: {}{}", job.job_id, job.error, job.state == JobState::kQueued ? "; requeued" : "; failed");
    if (job.state == JobState::kQueued) {
      sweep.queued.insert({DRank(job.d), job.job_id});
      requeued = true;
      PublishLocked(sweep.row.sweep_id, [&] { return WatchEventData(ViewLocked(current)); });
      PublishLocked(sweep.row.sweep_id, [&] { return WatchEventData(SummaryLocked(sweep)); });
    } else {
      JobFinishedLocked(sweep, current);
    }
  }
  lock.unlock();
  if (requeued) work_cv_.notify_all();
  return static_cast<int>(expired.size());
}

Status Scheduler::FlushMetrics() {
  std::lock_guard<std::mutex> flush_lock(flush_mutex_);
  std::vector<MetricRow> batch;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    batch.swap(pending_metrics_);
  }
  if (batch.empty()) return OkStatus();
  Status stored = store_->AppendMetrics(batch);
  if (!stored.ok() && stored.code() != StatusCode::kInternal) {
    // Not a passing I/O problem (e.g. a point of a job the store does not know): retrying cannot help.
    spdlog::error("{} metric points dropped: {}", batch.size(), stored.ToString());
    return stored;
  }
  if (!stored.ok()) {
    std::lock_guard<std::mutex> lock(mutex_);
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
    RefreshLocked();
    lock.unlock();
    ExpireLeases();
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

}  // namespace dwarp::coordinator
