// MemorySweepStore: the SweepStore (store.h) kept in plain maps, for tests and runs that need no file.
// Same contract as SqliteSweepStore, checked by the same suite (tests/coordinator/store_test.cpp): job ids
// 1, 2, ... never reused, a failed call changes nothing, at most one result per job. Nothing survives the
// object.
//
// Thread-safety: one mutex; every method may be called from any thread (calls are serialised).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "common/status.h"
#include "coordinator/store.h"

namespace dwarp::coordinator {

class MemorySweepStore final : public SweepStore {
 public:
  MemorySweepStore() = default;
  MemorySweepStore(const MemorySweepStore&) = delete;
  MemorySweepStore& operator=(const MemorySweepStore&) = delete;

  Status CreateSweep(const SweepRow& sweep, std::vector<JobRow>& jobs) override;
  Status AddJobs(const std::string& sweep_id, std::vector<JobRow>& jobs) override;
  Status UpdateSweep(const SweepRow& sweep) override;
  Status UpdateJobs(const std::vector<JobRow>& jobs) override;
  Status RecordResult(const JobRow& job, const ResultRow& result) override;
  Status AppendMetrics(const std::vector<MetricRow>& points) override;
  Status UpsertWorker(const WorkerRow& worker) override;
  Status PutWorkerCredential(const WorkerCredentialRow& credential) override;

  StatusOr<std::vector<SweepRow>> LoadSweeps() override;
  StatusOr<std::vector<JobRow>> LoadJobs() override;
  StatusOr<std::vector<WorkerRow>> LoadWorkers() override;
  StatusOr<std::vector<WorkerCredentialRow>> LoadWorkerCredentials() override;
  StatusOr<std::vector<MetricRow>> LoadMetrics(int64_t job_id, int32_t attempt = -1) override;
  StatusOr<int64_t> CountResults(int64_t job_id) override;

 private:
  std::mutex mu_;
  // Everything below is guarded by mu_.
  std::vector<SweepRow> sweeps_;                          // creation order
  std::map<std::string, size_t> sweep_index_;             // sweep id -> position in sweeps_
  std::map<int64_t, JobRow> jobs_;                        // by job id; JobRow::result holds the result
  std::map<int64_t, std::vector<MetricRow>> metrics_;     // by job id, in arrival order
  std::set<std::tuple<int64_t, int32_t, int64_t>> metric_keys_;  // (job id, attempt, epoch) of every stored point
  std::map<std::string, WorkerRow> workers_;              // by worker id
  std::map<std::string, WorkerCredentialRow> credentials_;  // by worker id
  int64_t next_job_id_ = 1;                               // only grows: ids are never reused
};

}  // namespace dwarp::coordinator
