// WatchHub and WatchQueue (watch_hub.h): watcher pub/sub for the scheduler.
#include "coordinator/watch_hub.h"

#include <spdlog/spdlog.h>

#include <chrono>

namespace dwarp::coordinator {

std::optional<WatchEventData> WatchQueue::Pop(int64_t timeout_ms) {
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return !events_.empty() || closed_; });
  if (events_.empty()) return std::nullopt;
  WatchEventData event = std::move(events_.front());
  events_.pop_front();
  return event;
}

bool WatchQueue::closed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return closed_ && events_.empty();
}

bool WatchQueue::overflowed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return overflowed_;
}

void WatchQueue::Push(WatchEventData event, size_t max_queue) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return;
    if (events_.size() >= max_queue) {
      overflowed_ = true;
      closed_ = true;
    } else {
      events_.push_back(std::move(event));
    }
  }
  cv_.notify_all();
}

void WatchQueue::Close() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }
  cv_.notify_all();
}

std::shared_ptr<WatchQueue> WatchHub::Subscribe(const std::string& sweep_id) {
  auto queue = std::make_shared<WatchQueue>();
  watchers_.emplace(sweep_id, queue);
  return queue;
}

std::shared_ptr<WatchQueue> WatchHub::ClosedQueue() {
  auto queue = std::make_shared<WatchQueue>();
  queue->Close();
  return queue;
}

void WatchHub::Unsubscribe(const std::shared_ptr<WatchQueue>& queue) {
  for (auto it = watchers_.begin(); it != watchers_.end(); ++it) {
    if (it->second == queue) {
      watchers_.erase(it);
      break;
    }
  }
  queue->Close();
}

void WatchHub::Publish(const std::string& sweep_id, const std::function<WatchEventData()>& make_event) {
  auto range = watchers_.equal_range(sweep_id);
  if (range.first == range.second) return;  // nobody watches: build nothing
  const WatchEventData event = make_event();
  for (auto it = range.first; it != range.second;) {
    it->second->Push(event, max_queue_);
    if (it->second->overflowed()) {
      spdlog::warn("a watcher of sweep {} fell {} events behind and was dropped", sweep_id, max_queue_);
      it = watchers_.erase(it);
    } else {
      ++it;
    }
  }
}

void WatchHub::PublishJob(const std::string& sweep_id, const std::function<JobView()>& job,
                          const std::function<SweepSummary()>& summary) {
  Publish(sweep_id, [&] { return WatchEventData(job()); });
  Publish(sweep_id, [&] { return WatchEventData(summary()); });
}

void WatchHub::PublishEnd(const std::string& sweep_id, const std::function<SweepSummary()>& summary) {
  Publish(sweep_id, [&] { return WatchEventData(summary()); });
  auto range = watchers_.equal_range(sweep_id);
  for (auto it = range.first; it != range.second; ++it) it->second->Close();
  watchers_.erase(sweep_id);
}

void WatchHub::CloseAll() {
  for (auto& [sweep_id, queue] : watchers_) queue->Close();
  watchers_.clear();
}

}  // namespace dwarp::coordinator
