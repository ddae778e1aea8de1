// WorkerRegistry: the worker daemons the coordinator knows (DESIGN.md "Leases"): registration, when each was
// last seen, whether it drains, its job counters and the circuit breaker. Each row lives in memory and in
// the store; every change of a known worker's row goes through one update (Save).
//
// Breaker: a worker whose retryable failures reach `breaker_failures` in a row is blocked (Acquire answers
// stop). Failures of bad jobs (not retryable) and jobs a draining worker hands back do not count; a success
// resets the count.
//
// Store failures:
//   Register  the row is written first: on failure nothing changes in memory and the error goes back to
//             the worker (which retries with backoff).
//   others    (an outcome, a drain) the change follows a job outcome that is already stored, or a heartbeat
//             the worker repeats: it is kept in memory and logged, and the row's next write stores it (each
//             write carries the whole row). Refusing it would undo the breaker's count.
//
// Thread-safety: none; its owner (the scheduler) calls it under its own lock.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "coordinator/store.h"

namespace dwarp::coordinator {

class WorkerRegistry {
 public:
  // `store` must outlive the registry; breaker_failures >= 1.
  WorkerRegistry(SweepStore* store, int32_t breaker_failures) : store_(store), breaker_failures_(breaker_failures) {}

  // The rows read back from the store at a restart.
  void Load(std::vector<WorkerRow> rows);

  // A worker (re)registers at `now`. An empty or unknown worker_id gets a new id; a known one keeps its id,
  // counters and breaker state and stops draining. The row is stored before it is kept: the store's error
  // otherwise (nothing changed). `returning` tells whether the worker was known.
  StatusOr<WorkerRow> Register(const std::string& name, const std::string& host,
                               const std::vector<std::string>& devices, const std::string& worker_id, int64_t now,
                               bool* returning);

  // nullptr for an unknown worker. The pointer lives until the next call that adds a worker.
  const WorkerRow* Find(const std::string& worker_id) const;
  // Marks the worker seen at `now` (memory only: last_seen is written with the row's next change).
  void Seen(const std::string& worker_id, int64_t now);
  // A heartbeat: seen at `now`, draining as the worker says; the row is written when draining changed.
  void Heartbeat(const std::string& worker_id, bool draining, int64_t now);
  // The one place a job outcome counts for its worker: a success resets the breaker's count; a failure
  // counts (when retryable and the worker does not drain) and may block the worker. Unknown workers are
  // ignored (a lease outlives a worker row only across a lost store).
  void RecordOutcome(const std::string& worker_id, bool succeeded, bool retryable, const std::string& reason,
                     int64_t now);

  std::vector<WorkerRow> Rows() const;  // by worker id
  size_t size() const { return workers_.size(); }

 private:
  // Writes the row and keeps it in memory; a failed write is logged (see "Store failures").
  void Save(const WorkerRow& row);

  SweepStore* const store_;
  const int32_t breaker_failures_;
  std::map<std::string, WorkerRow> workers_;  // by worker id
};

}  // namespace dwarp::coordinator
