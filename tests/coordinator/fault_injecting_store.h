// FaultInjectingStore: a SweepStore that wraps a real one (MemorySweepStore or SqliteSweepStore) and makes
// chosen calls fail, as leveldb's fault-injection tests wrap its Env and Ray's wrap its store client: the
// scheduler under test runs against real storage, and a test picks which write or read breaks.
//
// Every call is passed to the wrapped store except the ones armed with FailCall: those return the armed
// status without reaching the wrapped store, so a failed call changes nothing, as SweepStore promises.
// BlockCall holds a chosen call inside the wrapper until Unblock, as a slow disk would: a test can then
// check what the scheduler does while a write is in progress.
// Thread-safety: as the wrapped store; the arming and counting are guarded by a mutex (the scheduler's
// flusher and reaper may call from their threads).
#pragma once

#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "coordinator/store.h"

namespace dwarp::coordinator {

class FaultInjectingStore : public SweepStore {
 public:
  enum class Method {
    kCreateSweep, kAddJobs, kUpdateSweep, kUpdateJobs, kRecordResult, kAppendMetrics, kUpsertWorker,
    kLoadSweeps, kLoadJobs, kLoadWorkers, kLoadMetrics, kCountResults, kPutWorkerCredential,
    kLoadWorkerCredentials,
  };

  // `real` must outlive this wrapper.
  explicit FaultInjectingStore(SweepStore* real) : real_(real) {}

  // The nth call of `method` from now (1: the next one), and the `times - 1` calls after it, fail with
  // `status`. Arming a method again replaces what was armed for it.
  void FailCall(Method method, int nth = 1, Status status = InternalError("injected store fault"), int times = 1) {
    std::lock_guard<std::mutex> lock(mutex_);
    armed_[method] = Armed{nth, times, std::move(status)};
  }
  // The nth call of `method` from now (1: the next one) waits, before it reaches the wrapped store, until
  // Unblock(). WaitUntilBlocked() returns once that call waits.
  void BlockCall(Method method, int nth = 1) {
    std::lock_guard<std::mutex> lock(mutex_);
    block_method_ = method;
    block_countdown_ = nth;
    blocked_ = false;
    unblocked_ = false;
  }
  void WaitUntilBlocked() {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] { return blocked_; });
  }
  void Unblock() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      unblocked_ = true;
    }
    cv_.notify_all();
  }

  // How many calls of `method` reached the wrapper (failed ones included), and how many it failed.
  int calls(Method method) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = calls_.find(method);
    return found == calls_.end() ? 0 : found->second;
  }
  int injected() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return injected_;
  }

  Status CreateSweep(const SweepRow& sweep, std::vector<JobRow>& jobs) override {
    if (Status fault = Fault(Method::kCreateSweep); !fault.ok()) return fault;
    return real_->CreateSweep(sweep, jobs);
  }
  Status AddJobs(const std::string& sweep_id, std::vector<JobRow>& jobs) override {
    if (Status fault = Fault(Method::kAddJobs); !fault.ok()) return fault;
    return real_->AddJobs(sweep_id, jobs);
  }
  Status UpdateSweep(const SweepRow& sweep) override {
    if (Status fault = Fault(Method::kUpdateSweep); !fault.ok()) return fault;
    return real_->UpdateSweep(sweep);
  }
  Status UpdateJobs(const std::vector<JobRow>& jobs) override {
    if (Status fault = Fault(Method::kUpdateJobs); !fault.ok()) return fault;
    return real_->UpdateJobs(jobs);
  }
  Status RecordResult(const JobRow& job, const ResultRow& result) override {
    if (Status fault = Fault(Method::kRecordResult); !fault.ok()) return fault;
    return real_->RecordResult(job, result);
  }
  Status AppendMetrics(const std::vector<MetricRow>& points) override {
    if (Status fault = Fault(Method::kAppendMetrics); !fault.ok()) return fault;
    return real_->AppendMetrics(points);
  }
  Status UpsertWorker(const WorkerRow& worker) override {
    if (Status fault = Fault(Method::kUpsertWorker); !fault.ok()) return fault;
    return real_->UpsertWorker(worker);
  }
  StatusOr<std::vector<SweepRow>> LoadSweeps() override {
    if (Status fault = Fault(Method::kLoadSweeps); !fault.ok()) return fault;
    return real_->LoadSweeps();
  }
  StatusOr<std::vector<JobRow>> LoadJobs() override {
    if (Status fault = Fault(Method::kLoadJobs); !fault.ok()) return fault;
    return real_->LoadJobs();
  }
  StatusOr<std::vector<WorkerRow>> LoadWorkers() override {
    if (Status fault = Fault(Method::kLoadWorkers); !fault.ok()) return fault;
    return real_->LoadWorkers();
  }
  StatusOr<std::vector<MetricRow>> LoadMetrics(int64_t job_id, int32_t attempt = -1) override {
    if (Status fault = Fault(Method::kLoadMetrics); !fault.ok()) return fault;
    return real_->LoadMetrics(job_id, attempt);
  }
  StatusOr<int64_t> CountResults(int64_t job_id) override {
    if (Status fault = Fault(Method::kCountResults); !fault.ok()) return fault;
    return real_->CountResults(job_id);
  }
  Status PutWorkerCredential(const WorkerCredentialRow& credential) override {
    if (Status fault = Fault(Method::kPutWorkerCredential); !fault.ok()) return fault;
    return real_->PutWorkerCredential(credential);
  }
  StatusOr<std::vector<WorkerCredentialRow>> LoadWorkerCredentials() override {
    if (Status fault = Fault(Method::kLoadWorkerCredentials); !fault.ok()) return fault;
    return real_->LoadWorkerCredentials();
  }

 private:
  struct Armed {
    int countdown = 0;  // calls until the first failure (1: this one)
    int times = 0;      // failures left once it fires
    Status status;
  };

  // The armed status when this call of `method` is to fail, OK otherwise.
  Status Fault(Method method) {
    std::unique_lock<std::mutex> lock(mutex_);
    ++calls_[method];
    if (block_countdown_ > 0 && method == block_method_ && --block_countdown_ == 0) {
      blocked_ = true;
      cv_.notify_all();
      cv_.wait(lock, [&] { return unblocked_; });
    }
    auto found = armed_.find(method);
    if (found == armed_.end()) return OkStatus();
    Armed& armed = found->second;
    if (armed.countdown > 1) {
      --armed.countdown;
      return OkStatus();
    }
    Status status = armed.status;
    if (--armed.times <= 0) armed_.erase(found);
    ++injected_;
    return status;
  }

  SweepStore* const real_;
  mutable std::mutex mutex_;
  std::map<Method, Armed> armed_;
  std::map<Method, int> calls_;
  int injected_ = 0;
  std::condition_variable cv_;
  Method block_method_ = Method::kCreateSweep;
  int block_countdown_ = 0;  // calls of block_method_ until the one that blocks; 0: none armed
  bool blocked_ = false;     // the armed call is waiting
  bool unblocked_ = false;   // Unblock() was called
};

}  // namespace dwarp::coordinator
