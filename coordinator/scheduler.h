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
// d_warp (dwarp_estimate.h) is recomputed after jobs of the sweep finish: on the next query, reaper pass
// (every reap_interval_ms) or at the sweep's end, whichever comes first; changed groups go to watchers;
// with early_stop, queued jobs the estimate calls unnecessary are cancelled.
// Adaptive search (adaptive_search.h): Submit stores the coarse grid; after each job that finishes for good,
// and at a restart, the plan is asked again and the jobs it names are stored and queued, each with its
// reason (JobRow::reason); a sweep is done when its queue is empty, nothing runs and the plan adds nothing.
// Jobs the plan asked for that could not be stored are asked for again on the next refresh (a query or
// reaper pass), and the sweep does not end before they are.
// Metric points are validated and kept as the job's latest point at once, and written to the store in
// batches by a background flusher (every metric_flush_ms); a crash loses at most that window of points.
//
// Parts (each its own files; none locks: all are used under this class's mutex):
//   JobQueue        (job_queue.h)        queued jobs in run order by typed d; fair-share picking
//   LeaseTable      (lease_table.h)      fencing, grant, extension, expiry; the one requeue-or-fail rule
//   WorkerRegistry  (worker_registry.h)  worker rows, outcomes, the circuit breaker
//   WatchHub        (watch_hub.h)        watchers of each sweep and the events pushed to them
// This class keeps the sweeps and jobs, writes through the store, and runs the reaper and the flusher.
// Every change is computed first, written to the store, and only then applied in memory, so a failed store
// write leaves memory as it was and the caller gets Internal naming what was not stored (Submit, Register,
// Acquire, Complete, Fail, Cancel; Cancel also puts back the job rows it wrote when the sweep's row then
// fails). Background writes that fail are retried: expiry on the next reaper pass, a sweep's end and early
// stop on the next refresh, Internal metric batches on the next flush. A worker's counters follow an
// outcome that is stored even when the worker's row is not (worker_registry.h). Every branch is driven by
// tests/coordinator/scheduler_store_faults_test.cpp.
//
// Threads: one state thread changes the state. The public methods that change it (Submit once the sweep is
// expanded, Cancel, Register, Acquire, Heartbeat, Complete, Fail, ExpireLeases, FlushMetrics, Metrics) hand
// their work to it and wait for the answer. It holds mutex_ while it computes and applies a change and
// releases it around every store call, so the queries (GetSweep, ListSweeps, Jobs, JobsPage, DWarp, Workers,
// Watch), RecordMetrics and waiting long-polls, which take mutex_ alone, never wait on a SQLite write; being
// the only thread that changes the state, it finds the state as it left it when the store call returns. A
// query that finds a refresh due (a d_warp to recompute, a sweep to end) hands that to the state thread
// first. Before Create starts the thread and after Shutdown stops it, calls run on the caller's thread with
// mutex_ held throughout.
//
// Thread-safety: every public method is thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "common/sweep_spec.h"
#include "coordinator/dwarp_estimate.h"
#include "coordinator/job_queue.h"
#include "coordinator/lease_table.h"
#include "coordinator/store.h"
#include "coordinator/sweep_summary.h"
#include "coordinator/watch_hub.h"
#include "coordinator/worker_registry.h"

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
// train/val/test <= 1; "accuracy" with each in [0, 1]; "rsa" (a correlation of RDMs) with each in [-1, 1];
// test_pearson_mean/median in [-1, 1] or NaN (not computed). A rounding slack of 1e-9 is allowed at each
// bound. InvalidArgument naming the field, the value and the range; InvalidArgument for another metric
// name. Complete checks it (after finiteness).
Status CheckResultScores(const JobResult& result);

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
  // Keeps the points (all or none: FailedPrecondition for a stale lease); points at or before the job's
  // latest epoch of this attempt are skipped (a worker resends them after a broken stream).
  Status RecordMetrics(const std::string& worker_id, const std::string& lease_id,
                       const std::vector<MetricPointData>& points);
  // Records the lease's job's result (stored as a ResultRow with the lease's attempt, the worker and the time).
  Status Complete(const std::string& worker_id, const std::string& lease_id, JobResult result);
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
  struct SweepRecord;
  class StoreOutsideLock;

  explicit Scheduler(SweepStore* store, SchedulerOptions options);
  Status LoadFromStore();
  int64_t Now() const;

  // Runs `task` on the state thread, holding mutex_ there, and returns its result; runs it at once when
  // called on the state thread, and on the caller's thread under mutex_ when there is no state thread
  // (before Create starts it, after Shutdown stops it).
  template <typename Result>
  Result OnStateThread(const std::function<Result()>& task);
  void StateLoop();
  // The state thread's hold on mutex_ while it runs a task, when called on the state thread; else nullptr.
  std::unique_lock<std::mutex>* StateLockToRelease() const;

  // The bodies of the public methods that change state; they run on the state thread.
  StatusOr<SubmitResult> StoreSweepLocked(SweepRow row, SweepSpec spec, std::vector<JobRow> jobs);
  StatusOr<CancelResult> CancelLocked(const std::string& sweep_name);
  // nullopt: nothing to lease now (the caller waits for work).
  StatusOr<std::optional<AcquireResult>> TryAcquireLocked(const std::string& worker_id, const std::string& device);
  StatusOr<HeartbeatResult> HeartbeatLocked(const std::string& worker_id, const std::vector<std::string>& lease_ids,
                                            bool draining);
  Status CompleteLocked(const std::string& worker_id, const std::string& lease_id, JobResult result);
  StatusOr<bool> FailLocked(const std::string& worker_id, const std::string& lease_id, const std::string& reason,
                            bool retryable);
  int ExpireLeasesLocked();
  Status FlushMetricsLocked();

  // All private helpers below run with mutex_ held.
  SweepRecord* FindSweepLocked(const std::string& sweep);
  const SweepRecord* FindSweepLocked(const std::string& sweep) const;
  // The sweep named by id or name; NotFound otherwise.
  StatusOr<const SweepRecord*> FoundSweepLocked(const std::string& sweep) const;
  // Whether a sweep's d_warp is stale or a running sweep has nothing left to run (RefreshLocked has work).
  bool RefreshDueLocked() const;
  // Runs RefreshLocked on the state thread when it has work; called by queries before they read (without
  // mutex_ held).
  void RefreshIfDue();
  SweepSummary SummaryLocked(const SweepRecord& sweep) const;
  JobView ViewLocked(const JobRow& job) const;
  StatusOr<JobRow*> CheckLeaseLocked(const std::string& worker_id, const std::string& lease_id);
  void JobFinishedLocked(SweepRecord& sweep, const JobRow& job);
  // Applies a lease's end without a result (LeaseTable::EndWithoutResult's row, already stored) to `current`:
  // the lease is released and the job requeued or finished. Returns whether it was requeued.
  bool LeaseEndedLocked(JobRow& current, const JobRow& next);
  // The job changed and its sweep still runs: its view and the sweep's summary go to watchers.
  void PublishJobLocked(const SweepRecord& sweep, const JobRow& job);
  void RefreshLocked();  // recomputes d_warp of sweeps with new outcomes
  void MaybeFinishSweepLocked(SweepRecord& sweep);
  // An adaptive search (adaptive_search.h): stores and queues the jobs its plan asks for now.
  void ExtendSearchLocked(SweepRecord& sweep);
  void RecomputeDWarpLocked(SweepRecord& sweep);
  std::string NewSweepIdLocked(const std::string& name) const;
  // The answer to a Submit whose request id already created a sweep: nullopt when none did; that sweep when
  // it has the same resolved spec; AlreadyExists otherwise.
  StatusOr<std::optional<SubmitResult>> ResubmittedLocked(const std::string& request_id,
                                                          const std::string& spec_json) const;

  void ReaperLoop();
  void FlusherLoop();

  // Every store call goes through store_outside_lock_, which releases mutex_ on the state thread.
  const std::unique_ptr<StoreOutsideLock> store_outside_lock_;
  SweepStore* const store_;
  const SchedulerOptions options_;

  mutable std::mutex mutex_;
  std::condition_variable work_cv_;   // a job became available (or shutdown)
  std::condition_variable stop_cv_;   // background threads' sleep
  bool shutdown_ = false;

  std::vector<std::unique_ptr<SweepRecord>> sweeps_;         // creation order
  std::map<std::string, SweepRecord*> sweeps_by_id_;
  std::map<std::string, SweepRecord*> sweeps_by_request_id_;  // sweeps submitted with a request id
  std::map<int64_t, JobRow> jobs_;                           // every job by id
  JobQueue queue_;                                           // queued jobs, running counts, typed d
  LeaseTable leases_;                                        // current leases only (reads jobs_)
  std::map<int64_t, MetricRow> latest_metric_;               // job id -> last point of its current attempt
  WorkerRegistry workers_;
  std::vector<MetricRow> pending_metrics_;
  WatchHub watch_hub_;
  // The state thread: the one thread that changes the state (see the header comment).
  std::mutex tasks_mutex_;
  std::condition_variable tasks_cv_;
  std::deque<std::function<void()>> tasks_;  // guarded by tasks_mutex_
  bool tasks_stopped_ = true;                // guarded by tasks_mutex_; false while the state thread runs
  std::unique_lock<std::mutex>* state_lock_ = nullptr;  // touched by the state thread only
  std::thread state_thread_;

  std::thread reaper_;
  std::thread flusher_;
};

}  // namespace dwarp::coordinator
