// LeaseTable: which lease is each running job's current one (DESIGN.md "Leases"), and the rules of a lease's
// life: granting (attempt + 1, a fresh unguessable id, expiry now + TTL), fencing (only the current,
// unexpired lease of the worker that holds it may report), extension, expiry, and the ONE rule for a lease
// that ends without a result (EndWithoutResult), used by both ways that happens:
//   expiry  no heartbeat or result within the TTL; this is also how a worker that is gone (dead, cut off,
//           SIGKILLed) is noticed: the coordinator sees a worker only through its calls
//   Fail    the worker reports the job failed (retryable or not)
// The job goes back to the queue while the failure may pass and attempts remain (attempt < max_attempts),
// else it fails for good. Cancelling a sweep ends no lease: a running job becomes cancelled with
// cancel_requested, keeps its lease so the worker's next heartbeat hears "cancel", and the heartbeat then
// releases the lease (Remove).
//
// The table maps lease ids to job ids; the jobs themselves (state, holder, expiry) are the scheduler's,
// read through the map given at construction. Functions returning a JobRow compute the job's next row and
// change nothing: the scheduler stores it, then applies it, so a failed store write leaves memory as it was.
//
// Thread-safety: none; its owner (the scheduler) calls it under its own lock.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "coordinator/store.h"

namespace dwarp::coordinator {

// What a heartbeat learns about one lease it names.
enum class LeaseStanding {
  kUnknown,    // not the current lease of a job held by this worker, or expired: the worker drops the job
  kLive,       // the job runs under it and it has not expired: extend it
  kCancelled,  // the job's sweep was cancelled: the worker stops the job, the lease is released
};

class LeaseTable {
 public:
  // `jobs` (every job by id) must outlive the table; ttl_ms >= 1.
  LeaseTable(const std::map<int64_t, JobRow>* jobs, int64_t ttl_ms) : jobs_(jobs), ttl_ms_(ttl_ms) {}

  int64_t ttl_ms() const { return ttl_ms_; }
  void Add(const std::string& lease_id, int64_t job_id) { lease_to_job_[lease_id] = job_id; }
  void Remove(const std::string& lease_id) { lease_to_job_.erase(lease_id); }
  size_t size() const { return lease_to_job_.size(); }

  // Fencing: the id of the job whose current lease is `lease_id`, when the job runs, worker_id holds it and
  // it has not expired at `now`. FailedPrecondition saying which of these fails ("stale lease ...").
  StatusOr<int64_t> Check(const std::string& worker_id, const std::string& lease_id, int64_t now) const;
  // What a heartbeat of worker_id at `now` learns about lease_id; *job_id is set unless kUnknown.
  LeaseStanding Standing(const std::string& worker_id, const std::string& lease_id, int64_t now,
                         int64_t* job_id) const;

  // The job's row once leased to worker_id at `now`: running, attempt + 1, a new lease id, expiry now + TTL.
  JobRow Grant(const JobRow& job, const std::string& worker_id, int64_t now) const;
  // The job's row with its lease extended to now + TTL.
  JobRow Extended(const JobRow& job, int64_t now) const;
  // The jobs whose lease has expired at `now` (running, now > expiry), by lease id.
  std::vector<int64_t> Expired(int64_t now) const;
  // How many running jobs each worker holds a lease of.
  std::map<std::string, int32_t> RunningJobsByWorker() const;

  enum class Ending { kExpired, kFailed };
  // The one requeue-or-fail rule (see the header comment). `reason` is the worker's for kFailed (ignored
  // for kExpired, whose message says what was seen); `retryable` is ignored for kExpired (silence may
  // pass). The row comes back with its lease cleared, queued or failed (finished at `now`), and an error
  // saying why.
  JobRow EndWithoutResult(const JobRow& job, Ending ending, bool retryable, const std::string& reason,
                          int32_t max_attempts, int64_t now) const;

 private:
  const std::map<int64_t, JobRow>* const jobs_;
  const int64_t ttl_ms_;
  std::unordered_map<std::string, int64_t> lease_to_job_;  // current leases only
};

}  // namespace dwarp::coordinator
