// SweepStore: where the coordinator keeps sweeps, jobs, results, metric points and workers (DESIGN.md
// "Leases": the coordinator is its only writer). Two implementations run one shared test suite
// (tests/coordinator/store_test.cpp):
//   SqliteSweepStore (sqlite_store.h)  a SQLite file in WAL mode with a busy timeout, a schema version
//                                      and migrations; what dwarp-coordinator uses
//   MemorySweepStore (memory_store.h)  plain maps; for tests and --db :memory:-like runs
//
// The scheduler (scheduler.h) keeps the live state in memory and writes every change through this
// interface before it answers the RPC that caused it; after a crash it rebuilds itself from Load*().
//
// Rows are plain values (no Protobuf, no gRPC). Times are milliseconds since the Unix epoch.
// Thread-safety: every method may be called from any thread; implementations serialise internally.
// Errors: Internal for an I/O or database failure (the message names the file and SQLite's reason),
// NotFound for an unknown id, AlreadyExists as documented per method. A failed call changes nothing
// (each call is one transaction).
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "common/job_result.h"
#include "common/status.h"
#include "common/subspace_dim.h"

namespace dwarp::coordinator {

// Numbering as dwarp.v1.JobState / SweepState, so conversions are casts.
enum class JobState { kQueued = 1, kRunning = 2, kSucceeded = 3, kFailed = 4, kCancelled = 5 };
enum class SweepState { kRunning = 1, kDone = 2, kCancelled = 3 };

inline bool IsTerminal(JobState s) { return s == JobState::kSucceeded || s == JobState::kFailed || s == JobState::kCancelled; }

struct SweepRow {
  std::string sweep_id;      // unique, chosen by the scheduler
  std::string name;
  SweepState state = SweepState::kRunning;
  int64_t created_ms = 0;
  int64_t finished_ms = 0;   // 0 while running
  std::string spec_json;     // the resolved sweep (common/sweep_spec.h ToJson)
  // The client's id of the Submit call that created the sweep ("" when it sent none); unique among sweeps
  // that have one, so that a retried Submit finds the sweep its first try created.
  std::string request_id;
};

// A job's one recorded result: the result as the worker reported it (common/job_result.h, the same type from
// the worker's job runner to here) plus when, by whom and for which attempt it was recorded.
struct ResultRow : JobResult {
  int32_t attempt = 0;       // the attempt whose result this is
  std::string worker_id;
  int64_t recorded_ms = 0;
};

struct JobRow {
  int64_t job_id = 0;        // assigned by CreateSweep (1, 2, ... across the store; never reused)
  std::string sweep_id;
  // The job's key inside its sweep.
  std::string model, layer, dataset, variant;
  SubspaceDim d;             // typed: 0, n or full (written as text only at the edges: proto, JSON, logs)
  uint64_t seed = 0;
  std::string spec_json;     // the job spec (common/job_spec.h ToJson)
  JobState state = JobState::kQueued;
  int32_t attempt = 0;       // 0 before the first lease
  std::string lease_id;      // the current lease ("" when none)
  std::string worker_id;
  int64_t lease_expires_ms = 0;
  std::string error;
  int64_t created_ms = 0;
  int64_t started_ms = 0;
  int64_t finished_ms = 0;
  bool cancel_requested = false;     // running job whose worker must be told to stop
  std::string reason;                // why the job was created: "grid", "coarse grid", "bisect log d ...";
                                     // fixed at CreateSweep / AddJobs ("" for jobs stored before it was kept)
  std::optional<ResultRow> result;   // set for kSucceeded (filled by Load*; ignored by UpdateJobs)
};

struct MetricRow {
  int64_t job_id = 0;
  int32_t attempt = 0;
  int64_t epoch = 0;
  double train_loss = 0.0;
  double val_score = 0.0;
  int64_t time_ms = 0;
};

struct WorkerRow {
  std::string worker_id;
  std::string name;
  std::string host;
  std::vector<std::string> devices;
  int64_t registered_ms = 0;
  int64_t last_seen_ms = 0;
  int32_t consecutive_failures = 0;
  bool blocked = false;
  bool draining = false;
  int64_t jobs_succeeded = 0;
  int64_t jobs_failed = 0;
};

// A worker's credential, as the coordinator keeps it: only a hash of the secret it issued at Register
// (coordinator/worker_credentials.h), never the secret itself.
struct WorkerCredentialRow {
  std::string worker_id;
  std::string secret_sha256;  // lowercase hex SHA-256 of the credential
  int64_t issued_ms = 0;
};

class SweepStore {
 public:
  virtual ~SweepStore() = default;

  // Stores the sweep and its jobs in one transaction and assigns jobs[i].job_id (and jobs[i].sweep_id, which
  // must be empty or the sweep's id: InvalidArgument otherwise). AlreadyExists if the sweep id is taken, or
  // if sweep.request_id is not empty and another sweep has it (nothing written, no id assigned).
  virtual Status CreateSweep(const SweepRow& sweep, std::vector<JobRow>& jobs) = 0;
  // Stores more jobs of an existing sweep in one transaction (an adaptive search's next jobs) and assigns
  // their ids as CreateSweep does (jobs[i].sweep_id must be empty or sweep_id: InvalidArgument otherwise).
  // NotFound (nothing written) for an unknown sweep id.
  virtual Status AddJobs(const std::string& sweep_id, std::vector<JobRow>& jobs) = 0;
  // Updates state and finished_ms of an existing sweep. NotFound for an unknown id.
  virtual Status UpdateSweep(const SweepRow& sweep) = 0;
  // Writes every mutable field of each job (state, attempt, lease, worker, expiry, error, started_ms,
  // finished_ms, cancel_requested) in one transaction; the key, spec_json, created_ms and `result` are fixed
  // at CreateSweep / RecordResult. NotFound (nothing written) if any id is unknown.
  virtual Status UpdateJobs(const std::vector<JobRow>& jobs) = 0;
  // Records the job's one result and writes the job's row, in one transaction. AlreadyExists (nothing
  // written) when the job already has a result: exactly one recorded result per job, whatever is retried.
  // NotFound for an unknown job id.
  virtual Status RecordResult(const JobRow& job, const ResultRow& result) = 0;
  // Appends metric points in one transaction (a batch). A point is keyed by (job_id, attempt, epoch): one
  // whose key is already stored (or comes earlier in the batch) is ignored, so a worker may send points
  // again after a broken stream without storing them twice. NotFound (nothing written) if a point names an
  // unknown job id.
  virtual Status AppendMetrics(const std::vector<MetricRow>& points) = 0;
  // Inserts or replaces the worker's row.
  virtual Status UpsertWorker(const WorkerRow& worker) = 0;
  // Inserts or replaces the worker's credential hash (one per worker id; a new one replaces the old).
  virtual Status PutWorkerCredential(const WorkerCredentialRow& credential) = 0;

  // Everything, for a restart: sweeps by creation order, jobs by id (with results), workers by id.
  virtual StatusOr<std::vector<SweepRow>> LoadSweeps() = 0;
  virtual StatusOr<std::vector<JobRow>> LoadJobs() = 0;
  virtual StatusOr<std::vector<WorkerRow>> LoadWorkers() = 0;
  // Every worker credential hash, by worker id.
  virtual StatusOr<std::vector<WorkerCredentialRow>> LoadWorkerCredentials() = 0;
  // A job's points, by attempt then epoch (attempt < 0: every attempt).
  virtual StatusOr<std::vector<MetricRow>> LoadMetrics(int64_t job_id, int32_t attempt = -1) = 0;
  // How many results are recorded for the job (0 or 1; tests check "exactly one").
  virtual StatusOr<int64_t> CountResults(int64_t job_id) = 0;
};

}  // namespace dwarp::coordinator
