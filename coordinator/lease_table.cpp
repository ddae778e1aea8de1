// LeaseTable (lease_table.h): fencing, granting, extension, expiry and the requeue-or-fail rule.
#include "coordinator/lease_table.h"

#include "coordinator/random_id.h"

namespace dwarp::coordinator {
namespace {

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

}  // namespace

StatusOr<int64_t> LeaseTable::Check(const std::string& worker_id, const std::string& lease_id, int64_t now) const {
  auto found = lease_to_job_.find(lease_id);
  if (found == lease_to_job_.end())
    return FailedPreconditionError("stale lease '" + lease_id +
                                   "': it is not the current lease of any job (expired, superseded or finished)");
  const JobRow& job = jobs_->at(found->second);
  if (job.lease_id != lease_id || job.state != JobState::kRunning)
    return FailedPreconditionError("stale lease '" + lease_id + "': job " + std::to_string(job.job_id) + " is " +
                                   JobStateName(job.state));
  if (job.worker_id != worker_id)
    return FailedPreconditionError("lease '" + lease_id + "' belongs to worker " + job.worker_id + ", not " + worker_id);
  if (now > job.lease_expires_ms)
    return FailedPreconditionError("stale lease '" + lease_id + "': it expired " +
                                   std::to_string(now - job.lease_expires_ms) + " ms ago");
  return job.job_id;
}

LeaseStanding LeaseTable::Standing(const std::string& worker_id, const std::string& lease_id, int64_t now,
                                   int64_t* job_id) const {
  auto found = lease_to_job_.find(lease_id);
  if (found == lease_to_job_.end()) return LeaseStanding::kUnknown;
  const JobRow& job = jobs_->at(found->second);
  if (job.lease_id != lease_id || job.worker_id != worker_id) return LeaseStanding::kUnknown;
  *job_id = job.job_id;
  if (job.state == JobState::kRunning && now <= job.lease_expires_ms) return LeaseStanding::kLive;
  if (job.state == JobState::kCancelled && job.cancel_requested) return LeaseStanding::kCancelled;
  return LeaseStanding::kUnknown;
}

JobRow LeaseTable::Grant(const JobRow& job, const std::string& worker_id, int64_t now) const {
  JobRow next = job;
  next.state = JobState::kRunning;
  next.attempt += 1;
  next.lease_id = NewRandomId("l");
  next.worker_id = worker_id;
  next.lease_expires_ms = now + ttl_ms_;
  next.started_ms = now;
  next.cancel_requested = false;
  return next;
}

JobRow LeaseTable::Extended(const JobRow& job, int64_t now) const {
  JobRow next = job;
  next.lease_expires_ms = now + ttl_ms_;
  return next;
}

std::vector<int64_t> LeaseTable::Expired(int64_t now) const {
  std::vector<int64_t> expired;
  for (const auto& [lease_id, job_id] : lease_to_job_) {
    const JobRow& job = jobs_->at(job_id);
    if (job.state == JobState::kRunning && now > job.lease_expires_ms) expired.push_back(job_id);
  }
  return expired;
}

std::map<std::string, int32_t> LeaseTable::RunningJobsByWorker() const {
  std::map<std::string, int32_t> running;
  for (const auto& [lease_id, job_id] : lease_to_job_) {
    const JobRow& job = jobs_->at(job_id);
    if (job.state == JobState::kRunning) ++running[job.worker_id];
  }
  return running;
}

JobRow LeaseTable::EndWithoutResult(const JobRow& job, Ending ending, bool retryable, const std::string& reason,
                                    int32_t max_attempts, int64_t now) const {
  JobRow next = job;
  next.lease_id.clear();
  next.lease_expires_ms = 0;
  const bool expired = ending == Ending::kExpired;
  if (expired) {
    // Silence has more than one cause: a dead or cut-off worker, or this coordinator being down while the
    // worker waited to report; the message says what was seen, not who is to blame.
    next.error = "lease of attempt " + std::to_string(job.attempt) + " expired: no heartbeat or result from worker " +
                 job.worker_id + " reached the coordinator within the lease TTL (" + std::to_string(ttl_ms_) + " ms)";
    retryable = true;
  } else {
    next.error = reason.empty() ? "failed without a reason" : reason;
  }
  if (retryable && job.attempt < max_attempts) {
    next.state = JobState::kQueued;
    return next;
  }
  next.state = JobState::kFailed;
  next.finished_ms = now;
  if (expired) {
    next.error += "; all " + std::to_string(max_attempts) + " attempts used";
  } else if (retryable) {
    next.error += " (attempt " + std::to_string(job.attempt) + " of " + std::to_string(max_attempts) + ")";
  }
  return next;
}

}  // namespace dwarp::coordinator
