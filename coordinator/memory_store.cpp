#include "coordinator/memory_store.h"

#include <algorithm>
#include <utility>

namespace dwarp::coordinator {
namespace {

// The fields UpdateJobs and RecordResult write (store.h); the job's key, spec and creation time are
// fixed at CreateSweep.
void CopyMutableFields(const JobRow& from, JobRow& to) {
  to.state = from.state;
  to.attempt = from.attempt;
  to.lease_id = from.lease_id;
  to.worker_id = from.worker_id;
  to.lease_expires_ms = from.lease_expires_ms;
  to.error = from.error;
  to.started_ms = from.started_ms;
  to.finished_ms = from.finished_ms;
  to.cancel_requested = from.cancel_requested;
}

// The rows of an id-keyed map, in id order.
template <typename Map>
std::vector<typename Map::mapped_type> RowsOf(const Map& rows) {
  std::vector<typename Map::mapped_type> out;
  out.reserve(rows.size());
  for (const auto& [id, row] : rows) out.push_back(row);
  return out;
}

}  // namespace

Status MemorySweepStore::CreateSweep(const SweepRow& sweep, std::vector<JobRow>& jobs) {
  std::lock_guard<std::mutex> lock(mu_);
  if (sweep_index_.count(sweep.sweep_id) > 0) {
    return AlreadyExistsError("sweep id '" + sweep.sweep_id + "' is already taken");
  }
  if (!sweep.request_id.empty()) {
    for (const SweepRow& other : sweeps_) {
      if (other.request_id == sweep.request_id)
        return AlreadyExistsError("request id '" + sweep.request_id + "' already created sweep '" +
                                  other.sweep_id + "'");
    }
  }
  for (const JobRow& job : jobs) {
    if (!job.sweep_id.empty() && job.sweep_id != sweep.sweep_id) {
      return InvalidArgumentError("job of sweep '" + job.sweep_id + "' given to CreateSweep of sweep '" +
                                  sweep.sweep_id + "'; expected '" + sweep.sweep_id + "' or empty");
    }
  }
  sweep_index_[sweep.sweep_id] = sweeps_.size();
  sweeps_.push_back(sweep);
  for (JobRow& job : jobs) {
    job.job_id = next_job_id_++;
    job.sweep_id = sweep.sweep_id;
    JobRow stored = job;
    stored.result.reset();  // a result is only ever recorded by RecordResult
    jobs_.emplace(stored.job_id, std::move(stored));
  }
  return OkStatus();
}

Status MemorySweepStore::AddJobs(const std::string& sweep_id, std::vector<JobRow>& jobs) {
  std::lock_guard<std::mutex> lock(mu_);
  if (sweep_index_.count(sweep_id) == 0) return NotFoundError("no sweep with id '" + sweep_id + "'");
  for (const JobRow& job : jobs) {
    if (!job.sweep_id.empty() && job.sweep_id != sweep_id) {
      return InvalidArgumentError("job of sweep '" + job.sweep_id + "' given to AddJobs of sweep '" + sweep_id +
                                  "'; expected '" + sweep_id + "' or empty");
    }
  }
  for (JobRow& job : jobs) {
    job.job_id = next_job_id_++;
    job.sweep_id = sweep_id;
    JobRow stored = job;
    stored.result.reset();  // a result is only ever recorded by RecordResult
    jobs_.emplace(stored.job_id, std::move(stored));
  }
  return OkStatus();
}

Status MemorySweepStore::UpdateSweep(const SweepRow& sweep) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sweep_index_.find(sweep.sweep_id);
  if (it == sweep_index_.end()) return NotFoundError("no sweep with id '" + sweep.sweep_id + "'");
  SweepRow& stored = sweeps_[it->second];
  stored.state = sweep.state;
  stored.finished_ms = sweep.finished_ms;
  return OkStatus();
}

Status MemorySweepStore::UpdateJobs(const std::vector<JobRow>& jobs) {
  std::lock_guard<std::mutex> lock(mu_);
  // Check every id before writing any, so an unknown id leaves the store as it was.
  for (const JobRow& job : jobs) {
    if (jobs_.count(job.job_id) == 0) return NotFoundError("no job with id " + std::to_string(job.job_id));
  }
  for (const JobRow& job : jobs) CopyMutableFields(job, jobs_.at(job.job_id));
  return OkStatus();
}

Status MemorySweepStore::RecordResult(const JobRow& job, const ResultRow& result) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(job.job_id);
  if (it == jobs_.end()) return NotFoundError("no job with id " + std::to_string(job.job_id));
  if (it->second.result.has_value()) {
    return AlreadyExistsError("job " + std::to_string(job.job_id) + " already has a result (attempt " +
                              std::to_string(it->second.result->attempt) + ")");
  }
  CopyMutableFields(job, it->second);
  it->second.result = result;
  return OkStatus();
}

Status MemorySweepStore::AppendMetrics(const std::vector<MetricRow>& points) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const MetricRow& point : points) {
    if (jobs_.count(point.job_id) == 0) {
      return NotFoundError("metric point for unknown job id " + std::to_string(point.job_id));
    }
  }
  for (const MetricRow& point : points) {
    if (metric_keys_.emplace(point.job_id, point.attempt, point.epoch).second) metrics_[point.job_id].push_back(point);
  }
  return OkStatus();
}

Status MemorySweepStore::UpsertWorker(const WorkerRow& worker) {
  std::lock_guard<std::mutex> lock(mu_);
  workers_[worker.worker_id] = worker;
  return OkStatus();
}

Status MemorySweepStore::PutWorkerCredential(const WorkerCredentialRow& credential) {
  std::lock_guard<std::mutex> lock(mu_);
  credentials_[credential.worker_id] = credential;
  return OkStatus();
}

StatusOr<std::vector<WorkerCredentialRow>> MemorySweepStore::LoadWorkerCredentials() {
  std::lock_guard<std::mutex> lock(mu_);
  return RowsOf(credentials_);
}

StatusOr<std::vector<SweepRow>> MemorySweepStore::LoadSweeps() {
  std::lock_guard<std::mutex> lock(mu_);
  return sweeps_;
}

StatusOr<std::vector<JobRow>> MemorySweepStore::LoadJobs() {
  std::lock_guard<std::mutex> lock(mu_);
  return RowsOf(jobs_);
}

StatusOr<std::vector<WorkerRow>> MemorySweepStore::LoadWorkers() {
  std::lock_guard<std::mutex> lock(mu_);
  return RowsOf(workers_);
}

StatusOr<std::vector<MetricRow>> MemorySweepStore::LoadMetrics(int64_t job_id, int32_t attempt) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<MetricRow> out;
  auto it = metrics_.find(job_id);
  if (it == metrics_.end()) return out;
  for (const MetricRow& point : it->second) {
    if (attempt < 0 || point.attempt == attempt) out.push_back(point);
  }
  std::sort(out.begin(), out.end(), [](const MetricRow& a, const MetricRow& b) {
    return std::pair(a.attempt, a.epoch) < std::pair(b.attempt, b.epoch);
  });
  return out;
}

StatusOr<int64_t> MemorySweepStore::CountResults(int64_t job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(job_id);
  return static_cast<int64_t>(it != jobs_.end() && it->second.result.has_value() ? 1 : 0);
}

}  // namespace dwarp::coordinator
