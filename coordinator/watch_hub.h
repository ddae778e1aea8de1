// WatchHub: who watches which sweep, and the one place events are pushed to them (Scheduler::Watch).
//
// A watcher holds a WatchQueue: the hub pushes, the Watch RPC pops. A queue is closed when its sweep ends
// (after the sweep's final SweepSummary), when the hub closes every queue (shutdown), when it is
// unsubscribed, or when its reader fell max_queue events behind (overflowed(): it is dropped rather than
// let the coordinator's memory grow).
//
// Thread-safety: WatchQueue is thread-safe. WatchHub is not: its owner (the scheduler) calls it under its
// own lock, so that the events of one change reach every watcher in the order the changes were made.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "coordinator/sweep_summary.h"

namespace dwarp::coordinator {

class WatchQueue {
 public:
  // Waits up to timeout_ms for an event. nullopt on timeout or when closed and drained (closed() tells).
  std::optional<WatchEventData> Pop(int64_t timeout_ms);
  bool closed() const;
  bool overflowed() const;

 private:
  friend class WatchHub;
  void Push(WatchEventData event, size_t max_queue);
  void Close();

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<WatchEventData> events_;
  bool closed_ = false;
  bool overflowed_ = false;
};

class WatchHub {
 public:
  // max_queue: events buffered per watcher before it is dropped as too slow (>= 1).
  explicit WatchHub(size_t max_queue) : max_queue_(max_queue) {}

  // A new queue that receives the sweep's events from now on.
  std::shared_ptr<WatchQueue> Subscribe(const std::string& sweep_id);
  // A queue that is closed already: for a sweep that will not change (ended, or the scheduler stopping).
  static std::shared_ptr<WatchQueue> ClosedQueue();
  // Stops and closes the queue (a watcher that went away). Unknown queues are closed all the same.
  void Unsubscribe(const std::shared_ptr<WatchQueue>& queue);

  // Sends one event to the sweep's watchers; make_event runs only when someone watches.
  void Publish(const std::string& sweep_id, const std::function<WatchEventData()>& make_event);
  // A job of a running sweep changed: its view, then the sweep's summary (the counts moved with it).
  void PublishJob(const std::string& sweep_id, const std::function<JobView()>& job,
                  const std::function<SweepSummary()>& summary);
  // The sweep ended: its final summary, then every queue of the sweep is closed.
  void PublishEnd(const std::string& sweep_id, const std::function<SweepSummary()>& summary);
  // Closes every queue of every sweep (shutdown).
  void CloseAll();

 private:
  const size_t max_queue_;
  std::multimap<std::string, std::shared_ptr<WatchQueue>> watchers_;  // sweep id -> queue
};

}  // namespace dwarp::coordinator
