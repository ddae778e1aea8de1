// JobQueue (job_queue.h): run order by typed d inside a sweep, fair share across sweeps.
#include "coordinator/job_queue.h"

namespace dwarp::coordinator {

static_assert(SubspaceDim::kLinear < SubspaceDim::kSubspace && SubspaceDim::kSubspace < SubspaceDim::kFull,
              "the run order relies on d's kinds being ordered linear < subspace < full");

void JobQueue::AddSweep(const std::string& sweep_id, bool open) {
  index_[sweep_id] = sweeps_.size();
  sweeps_.push_back(SweepQueue{open, {}, 0});
}

void JobQueue::AddJob(const std::string& sweep_id, int64_t job_id, SubspaceDim d, JobState state) {
  const size_t sweep = index_.at(sweep_id);
  const QueuedJob& job = jobs_[job_id] = QueuedJob{sweep, d};
  if (state == JobState::kQueued) sweeps_[sweep].queued.insert(OrderOf(job_id, job));
  if (state == JobState::kRunning) ++sweeps_[sweep].running;
}

std::optional<int64_t> JobQueue::Pick() const {
  const SweepQueue* best = nullptr;
  for (const SweepQueue& sweep : sweeps_) {
    if (!sweep.open || sweep.queued.empty()) continue;
    if (best == nullptr || sweep.running < best->running) best = &sweep;
  }
  if (best == nullptr) return std::nullopt;
  return std::get<2>(*best->queued.begin());
}

void JobQueue::Start(int64_t job_id) {
  const QueuedJob& job = jobs_.at(job_id);
  sweeps_[job.sweep].queued.erase(OrderOf(job_id, job));
  ++sweeps_[job.sweep].running;
}

void JobQueue::Stop(int64_t job_id) { --sweeps_[jobs_.at(job_id).sweep].running; }

void JobQueue::Requeue(int64_t job_id) {
  const QueuedJob& job = jobs_.at(job_id);
  sweeps_[job.sweep].queued.insert(OrderOf(job_id, job));
}

void JobQueue::Remove(int64_t job_id) {
  const QueuedJob& job = jobs_.at(job_id);
  sweeps_[job.sweep].queued.erase(OrderOf(job_id, job));
}

void JobQueue::CloseSweep(const std::string& sweep_id) { sweeps_.at(index_.at(sweep_id)).open = false; }

}  // namespace dwarp::coordinator
