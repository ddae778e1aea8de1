// Scheduler: the coordinator's state and rules, without gRPC (the services in grpc_server.h are thin
// adapters over it). It owns, in memory, every sweep, job, lease and worker, and writes each change
// through the SweepStore before the call that caused it returns; a restart rebuilds it from the store.
//
// Leases (DESIGN.md "Leases"):
//   Acquire    gives the worker the next queued job (fair across sweeps: the sweep with the fewest running
//              jobs first; inside a sweep the smallest d first, so d_warp firms up early), a fresh lease id,
//              attempt + 1 and an expiry now + lease_ttl; long-polls up to the wait asked (capped).
//   Heartbeat  extends each named lease that is still the job's current one and reports, per lease, valid
//              (false: expired or superseded: stop and drop the result) and cancel (the sweep was cancelled).
//   Complete / Fail / RecordMetrics  carry the lease id and are refused with FailedPrecondition ("stale
//              lease") unless it is the job's current lease and has not expired (fencing).
//   Expiry     a background reaper requeues a running job whose lease expired (attempt < max_attempts) or
//              fails it for good; ExpireLeases() runs one pass synchronously (tests).
//   Breaker    a worker whose retryable failures reach circuit_breaker_failures in a row (drain failures
//              excepted) is blocked: Acquire answers stop.
//   Result     exactly one per job: the store refuses a second one, whatever is retried.
// d_warp (dwarp_tracker.h) is recomputed after jobs of the sweep finish: on the next query, reaper pass
// (every reap_interval_ms) or at the sweep's end, whichever comes first; changed groups go to watchers;
// with early_stop, queued jobs the tracker calls unnecessary are cancelled.
// Adaptive search (adaptive_search.h): Submit stores the coarse grid; after each job that finishes for good,
// and at a restart, the plan is asked again and the jobs it names are stored and queued, each with its
// reason (JobRow::reason); a sweep is done when its queue is empty, nothing runs and the plan adds nothing.
// Metric points are validated and kept as the job's latest point at once, and written to the store in
// batches by a background flusher (every metric_flush_ms); a crash loses at most that window of points.
//
// Thread-safety: every public method is thread-safe (one internal mutex; Acquire waits without holding it).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <variant>
#include <vector>

#include "common/status.h"
#include "common/sweep_spec.h"
#include "coordinator/dwarp_tracker.h"
#include "coordinator/store.h"

namespace dwarp::coordinator {

struct SchedulerOptions {
  int64_t lease_ttl_ms = 30000;           // a lease lives this long without a heartbeat
  int64_t heartbeat_interval_ms = 5000;   // what workers are told to use (< ttl / 2)
  int64_t max_acquire_wait_ms = 20000;    // cap on a long-poll
  int32_t circuit_breaker_failures = 5;   // consecutive retryable failures that block a worker
  int64_t reap_interval_ms = 200;         // how often the reaper looks for expired leases (0: no thread)
  int64_t metric_flush_ms = 200;          // metric batches are written this often (0: no thread; Flush())
  size_t max_watch_queue = 10000;         // events buffered per watcher before it is dropped as too slow
  // A sweep's resolved spec, and each of its job's specs, may be at most this many bytes: each must travel
  // in one gRPC message (rpc::kMaxMessageBytes) with room for what goes with it (a job's result, a page of
  // other jobs). A Submit over it is refused before anything is stored.
  size_t max_spec_bytes = 1 << 20;
  std::function<int64_t()> now_ms;        // the clock (ms since the epoch); unset: the system clock
};

struct JobCounts {
  int32_t total = 0, queued = 0, running = 0, succeeded = 0, failed = 0, cancelled = 0;
};

struct SweepSummary {
  SweepRow row;
  SweepSpec spec;   // parsed back from row.spec_json
  JobCounts counts;
};

struct JobView {
  JobRow job;
  std::optional<MetricRow> latest_metric;  // of the current attempt
};

struct SubmitRequestData {
  std::string text;
  SpecFormat format = SpecFormat::kYaml;
  std::vector<std::string> overrides;
  std::string base_dir;
  std::string source_name;  // for messages: "sweeps/x.yaml"
  bool dry_run = false;
  // The client's name for this submission ("" for none): a Submit with the request id of a stored sweep
  // answers that sweep instead of storing another. Up to kMaxRequestIdLength of [A-Za-z0-9._:-].
  std::string request_id;
};

inline constexpr size_t kMaxRequestIdLength = 128;

struct SubmitResult {
  SweepSummary sweep;
  // The expanded jobs: job ids 0 for a dry run; empty when already_submitted (Jobs() has them).
  std::vector<JobRow> jobs;
  bool already_submitted = false;  // the request id had created this sweep before: nothing was stored
};

// Jobs of one sweep by ascending job id, a page at a time (Scheduler::JobsPage).
struct JobPage {
  SweepSummary sweep;
  std::vector<JobView> jobs;
  int64_t remaining = 0;  // jobs of the sweep after the last one of this page
};

struct Lease {
  std::string lease_id;
  JobRow job;               // attempt already incremented
  int64_t ttl_ms = 0;
  int64_t expires_ms = 0;
};

struct AcquireResult {
  std::optional<Lease> lease;
  bool stop = false;        // unknown or blocked worker
  std::string reason;
};

struct LeaseCheck {
  std::string lease_id;
  bool valid = false;
  bool cancel = false;
  int64_t expires_ms = 0;
};

struct HeartbeatResult {
  bool unknown_worker = false;
  std::vector<LeaseCheck> leases;
};

struct WorkerView {
  WorkerRow row;
  int32_t running_jobs = 0;
};

struct CancelResult {
  SweepSummary sweep;
  int32_t cancelled_queued = 0;
  int32_t cancelling_running = 0;
};

struct MetricPointData {
  int64_t epoch = 0;
  double train_loss = 0.0;
  double val_score = 0.0;
  int64_t time_ms = 0;
};

// One event for watchers of a sweep.
using WatchEventData = std::variant<JobView, MetricRow, GroupDWarp, SweepSummary>;

// A watcher's queue. The scheduler pushes; the Watch RPC pops. Closed when the sweep ends (after its final
// SweepSummary), when the scheduler shuts down, or when the watcher fell max_watch_queue events behind.
class WatchQueue {
 public:
  // Waits up to timeout_ms for an event. nullopt on timeout or when closed and drained (closed() tells).
  std::optional<WatchEventData> Pop(int64_t timeout_ms);
  bool closed() const;
  bool overflowed() const;

 private:
  friend class Scheduler;
  void Push(WatchEventData event, size_t max_queue);
  void Close();

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<WatchEventData> events_;
  bool closed_ = false;
  bool overflowed_ = false;
};

struct WatchSubscription {
  SweepSummary sweep;
  std::vector<JobView> jobs;
  std::vector<GroupDWarp> dwarp;
  std::shared_ptr<WatchQueue> queue;  // events after the snapshot
};

// InvalidArgument naming the value when the options cannot work (a TTL < 1 ms, a heartbeat interval over
// half the TTL, a breaker threshold < 1). Create checks them too; a caller checks them first to refuse a
// configuration before it opens the store.
Status CheckSchedulerOptions(const SchedulerOptions& options);

// Whether a reported result's scores lie in its metric's range (a worker holding a lease must not be able
// to record, say, a test score of 1e300 that would then rule its group's d_warp): metric "r2" with
// train/val/test <= 1; "accuracy" with each in [0, 1]; test_pearson_mean/median in [-1, 1] or NaN (not
// computed). A rounding slack of 1e-9 is allowed at each bound. InvalidArgument naming the field, the value
// and the range; InvalidArgument for another metric name. Complete checks it (after finiteness).
Status CheckResultScores(const ResultRow& result);

class Scheduler {
 public:
  // Rebuilds the state from `store` (which must outlive the scheduler) and starts the reaper and flusher
  // threads. The errors of CheckSchedulerOptions; Internal when the store cannot be read or holds a sweep
  // whose spec no longer parses.
  static StatusOr<std::unique_ptr<Scheduler>> Create(SweepStore* store, SchedulerOptions options);
  ~Scheduler();  // Shutdown()

  // Stops the threads, flushes metrics, wakes long-polls and closes every watcher. Idempotent.
  void Shutdown();

  // Sweeps (what the CLI calls). A sweep is named by its id or, for convenience, by its name (the latest
  // sweep of that name). NotFound naming the id otherwise.
  //
  // Submit parses, validates and expands the sweep, and (unless a dry run) stores it with its jobs in one
  // transaction. InvalidArgument for a bad sweep or request id, or a spec over max_spec_bytes (nothing
  // stored); ResourceExhausted over kMaxJobsPerSweep. With a request id that already created a sweep: that
  // sweep (already_submitted, nothing stored) when the resolved sweep is the same, AlreadyExists naming the
  // sweep when it differs.
  StatusOr<SubmitResult> Submit(const SubmitRequestData& request);
  StatusOr<SweepSummary> GetSweep(const std::string& sweep);
  std::vector<SweepSummary> ListSweeps();
  StatusOr<CancelResult> Cancel(const std::string& sweep);
  StatusOr<std::vector<JobView>> Jobs(const std::string& sweep);
  // At most max_jobs jobs of the sweep whose ids are above after_job_id (0: from the first), ascending.
  StatusOr<JobPage> JobsPage(const std::string& sweep, int64_t after_job_id, size_t max_jobs);
  StatusOr<std::vector<GroupDWarp>> DWarp(const std::string& sweep);
  StatusOr<std::vector<MetricRow>> Metrics(int64_t job_id);  // stored points (flushes first)
  std::vector<WorkerView> Workers() const;
  StatusOr<WatchSubscription> Watch(const std::string& sweep);
  void Unwatch(const std::shared_ptr<WatchQueue>& queue);

  // Workers (what worker daemons call).
  StatusOr<WorkerRow> Register(const std::string& name, const std::string& host,
                               const std::vector<std::string>& devices, const std::string& worker_id);
  StatusOr<AcquireResult> Acquire(const std::string& worker_id, const std::string& device, int64_t wait_ms);
  StatusOr<HeartbeatResult> Heartbeat(const std::string& worker_id, const std::vector<std::string>& lease_ids,
                                      bool draining);
  // Returns how many points were accepted (all or none: FailedPrecondition for a stale lease).
  Status RecordMetrics(const std::string& worker_id, const std::string& lease_id,
                       const std::vector<MetricPointData>& points);
  Status Complete(const std::string& worker_id, const std::string& lease_id, ResultRow result);
  // Returns whether the job was requeued.
  StatusOr<bool> Fail(const std::string& worker_id, const std::string& lease_id, const std::string& reason,
                      bool retryable);

  // One reaper pass now: expired leases requeued or failed. Returns how many leases expired.
  int ExpireLeases();
  // Writes buffered metric points now.
  Status FlushMetrics();

  const SchedulerOptions& options() const { return options_; }
  // True while the scheduler accepts work (false after Shutdown): the health service reports it.
  bool serving() const;

 private:
  struct SweepState_;
  struct WorkerState_;

  explicit Scheduler(SweepStore* store, SchedulerOptions options);
  Status LoadFromStore();
  int64_t Now() const;

  // All private helpers below run with mutex_ held.
  SweepState_* FindSweepLocked(const std::string& sweep);
  const SweepState_* FindSweepLocked(const std::string& sweep) const;
  SweepSummary SummaryLocked(const SweepState_& sweep) const;
  JobView ViewLocked(const JobRow& job) const;
  std::optional<int64_t> PickJobLocked();
  StatusOr<JobRow*> CheckLeaseLocked(const std::string& worker_id, const std::string& lease_id);
  void JobFinishedLocked(SweepState_& sweep, const JobRow& job);
  // Builds the event only when someone watches the sweep.
  void PublishLocked(const std::string& sweep_id, const std::function<WatchEventData()>& make_event);
  void RefreshLocked();  // recomputes d_warp of sweeps with new outcomes
  void MaybeFinishSweepLocked(SweepState_& sweep);
  // An adaptive search (adaptive_search.h): stores and queues the jobs its plan asks for now.
  void ExtendSearchLocked(SweepState_& sweep);
  void RecomputeDWarpLocked(SweepState_& sweep);
  std::string NewSweepIdLocked(const std::string& name) const;
  // The answer to a Submit whose request id already created a sweep: nullopt when none did; that sweep when
  // it has the same resolved spec; AlreadyExists otherwise.
  StatusOr<std::optional<SubmitResult>> ResubmittedLocked(const std::string& request_id,
                                                          const std::string& spec_json) const;
  std::string NewId(const char* prefix);

  void ReaperLoop();
  void FlusherLoop();

  SweepStore* const store_;
  const SchedulerOptions options_;

  mutable std::mutex mutex_;
  std::condition_variable work_cv_;   // a job became available (or shutdown)
  std::condition_variable stop_cv_;   // background threads' sleep
  bool shutdown_ = false;

  std::vector<std::unique_ptr<SweepState_>> sweeps_;         // creation order
  std::map<std::string, SweepState_*> sweeps_by_id_;
  std::map<std::string, SweepState_*> sweeps_by_request_id_;  // sweeps submitted with a request id
  std::map<int64_t, JobRow> jobs_;                           // every job by id
  std::map<int64_t, std::string> job_sweep_;                 // job id -> sweep id
  std::unordered_map<std::string, int64_t> lease_to_job_;    // current leases only
  std::map<int64_t, MetricRow> latest_metric_;               // job id -> last point of its current attempt
  std::map<std::string, std::unique_ptr<WorkerState_>> workers_;
  std::vector<MetricRow> pending_metrics_;
  std::multimap<std::string, std::shared_ptr<WatchQueue>> watchers_;  // sweep id -> queue
  std::mutex flush_mutex_;  // serialises metric writes (taken without mutex_ held)
  uint64_t id_counter_ = 0;

  std::thread reaper_;
  std::thread flusher_;
};

}  // namespace dwarp::coordinator
