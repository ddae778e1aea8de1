// JobQueue: which job runs next (DESIGN.md "Leases": workers pull). Each sweep's queued jobs wait in run
// order: the smallest d first (d = 0, then ascending d, full last; the job id on a tie), so that d_warp
// firms up early. Across sweeps the share is fair: the next job comes from the open sweep with the fewest
// running jobs, the oldest sweep on a tie.
//
// Each job's d is typed (SubspaceDim, as the store keeps it in JobRow::d); ordering uses the typed value,
// never text.
//
// Thread-safety: none; its owner (the scheduler) calls it under its own lock. Calls naming a job or sweep
// that was never added are programmer errors (std::out_of_range).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "common/subspace_dim.h"
#include "coordinator/store.h"

namespace dwarp::coordinator {

class JobQueue {
 public:
  // A sweep, in creation order; a closed sweep (done or cancelled) is never picked from.
  void AddSweep(const std::string& sweep_id, bool open);
  // A job of an added sweep with its typed d: a queued job waits in the queue, a running one counts toward
  // its sweep's share, others are only known (DimOf).
  void AddJob(const std::string& sweep_id, int64_t job_id, SubspaceDim d, JobState state);

  // The job to lease next, if any (see the header comment). Changes nothing.
  std::optional<int64_t> Pick() const;
  // A queued job was leased: it leaves the queue and counts as running.
  void Start(int64_t job_id);
  // A running job stopped running (result, failure, expiry or cancel).
  void Stop(int64_t job_id);
  // A job waits again (requeued after a failure or an expiry).
  void Requeue(int64_t job_id);
  // A queued job will not run (cancelled).
  void Remove(int64_t job_id);
  // The sweep ended: none of its jobs are picked any more.
  void CloseSweep(const std::string& sweep_id);

  size_t queued(const std::string& sweep_id) const { return sweeps_.at(index_.at(sweep_id)).queued.size(); }
  int32_t running(const std::string& sweep_id) const { return sweeps_.at(index_.at(sweep_id)).running; }
  SubspaceDim DimOf(int64_t job_id) const { return jobs_.at(job_id).d; }

 private:
  // Run order inside a sweep: (kind of d, its value, job id); kinds are ordered linear < subspace < full.
  using RunOrder = std::tuple<int, int64_t, int64_t>;
  struct SweepQueue {
    bool open = true;
    std::set<RunOrder> queued;
    int32_t running = 0;
  };
  struct QueuedJob {
    size_t sweep;  // index into sweeps_
    SubspaceDim d;
  };
  RunOrder OrderOf(int64_t job_id, const QueuedJob& job) const {
    return {static_cast<int>(job.d.kind), job.d.value, job_id};
  }

  std::vector<SweepQueue> sweeps_;        // creation order (the fair-share tie-break)
  std::map<std::string, size_t> index_;   // sweep id -> index into sweeps_
  std::map<int64_t, QueuedJob> jobs_;     // every job added, by id
};

}  // namespace dwarp::coordinator
