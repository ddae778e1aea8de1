// Scheduler options for tests that drive time themselves: a 1 s lease (heartbeats every 300 ms), no reaper or
// flusher thread (the test calls ExpireLeases and FlushMetrics), a breaker of 3 failures, and the clock
// `now_ms` (ms since the epoch) that the test moves.
#pragma once

#include <functional>
#include <utility>

#include "coordinator/scheduler.h"

namespace dwarp::coordinator {

inline SchedulerOptions ManualClockOptions(std::function<int64_t()> now_ms) {
  SchedulerOptions options;
  options.lease_ttl_ms = 1000;
  options.heartbeat_interval_ms = 300;
  options.circuit_breaker_failures = 3;
  options.reap_interval_ms = 0;
  options.metric_flush_ms = 0;
  options.now_ms = std::move(now_ms);
  return options;
}

}  // namespace dwarp::coordinator
