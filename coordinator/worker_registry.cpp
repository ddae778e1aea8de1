// WorkerRegistry (worker_registry.h): worker rows, outcomes and the circuit breaker.
#include "coordinator/worker_registry.h"

#include <spdlog/spdlog.h>

#include "coordinator/random_id.h"

namespace dwarp::coordinator {

void WorkerRegistry::Load(std::vector<WorkerRow> rows) {
  for (WorkerRow& row : rows) {
    const std::string id = row.worker_id;
    workers_[id] = std::move(row);
  }
}

StatusOr<WorkerRow> WorkerRegistry::Register(const std::string& name, const std::string& host,
                                             const std::vector<std::string>& devices, const std::string& worker_id,
                                             int64_t now, bool* returning) {
  WorkerRow row;
  auto found = worker_id.empty() ? workers_.end() : workers_.find(worker_id);
  *returning = found != workers_.end();
  if (*returning) {
    row = found->second;  // a worker coming back keeps its id, counters and breaker state
  } else {
    row.worker_id = NewRandomId("w");
    row.registered_ms = now;
  }
  row.name = name;
  row.host = host;
  row.devices = devices;
  row.last_seen_ms = now;
  row.draining = false;
  Status stored = store_->UpsertWorker(row);
  if (!stored.ok()) return InternalError("cannot store worker " + row.worker_id + ": " + stored.message());
  workers_[row.worker_id] = row;
  return row;
}

const WorkerRow* WorkerRegistry::Find(const std::string& worker_id) const {
  auto found = workers_.find(worker_id);
  return found == workers_.end() ? nullptr : &found->second;
}

void WorkerRegistry::Seen(const std::string& worker_id, int64_t now) {
  auto found = workers_.find(worker_id);
  if (found != workers_.end()) found->second.last_seen_ms = now;
}

void WorkerRegistry::Heartbeat(const std::string& worker_id, bool draining, int64_t now) {
  auto found = workers_.find(worker_id);
  if (found == workers_.end()) return;
  WorkerRow row = found->second;
  row.last_seen_ms = now;
  row.draining = draining;
  if (draining != found->second.draining) {
    Save(row);
  } else {
    found->second = row;
  }
}

void WorkerRegistry::RecordOutcome(const std::string& worker_id, bool succeeded, bool retryable,
                                   const std::string& reason, int64_t now) {
  auto found = workers_.find(worker_id);
  if (found == workers_.end()) return;
  WorkerRow row = found->second;
  row.last_seen_ms = now;
  if (succeeded) {
    ++row.jobs_succeeded;
    row.consecutive_failures = 0;
  } else {
    ++row.jobs_failed;
    // The breaker counts what looks like the worker's fault (retryable failures), not bad jobs, and not the
    // jobs a draining worker hands back.
    if (retryable && !row.draining) ++row.consecutive_failures;
    if (row.consecutive_failures >= breaker_failures_ && !row.blocked) {
      row.blocked = true;
      spdlog::warn("worker {} blocked: {} failures in a row, the last: {}", worker_id, row.consecutive_failures, reason);
    }
  }
  Save(row);
}

std::vector<WorkerRow> WorkerRegistry::Rows() const {
  std::vector<WorkerRow> rows;
  rows.reserve(workers_.size());
  for (const auto& [id, row] : workers_) rows.push_back(row);
  return rows;
}

void WorkerRegistry::Save(const WorkerRow& row) {
  Status stored = store_->UpsertWorker(row);
  if (!stored.ok()) spdlog::error("worker {} not stored (kept in memory; its next write stores it): {}", row.worker_id, stored.ToString());
  workers_[row.worker_id] = row;
}

}  // namespace dwarp::coordinator
