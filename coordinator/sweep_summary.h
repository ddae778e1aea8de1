// What the scheduler answers about a sweep and its jobs: a sweep's row, spec and job counts (SweepSummary),
// a job's row with its latest metric point (JobView), and the events a watcher receives (WatchEventData).
// Plain values, copied out of the scheduler's state; thread-safety: value types.
#pragma once

#include <cstdint>
#include <optional>
#include <variant>

#include "common/sweep_spec.h"
#include "coordinator/dwarp_estimate.h"
#include "coordinator/store.h"

namespace dwarp::coordinator {

struct JobCounts {
  int32_t total = 0, queued = 0, running = 0, succeeded = 0, failed = 0, cancelled = 0;
};

struct SweepSummary {
  SweepRow row;
  SweepSpec spec;   // parsed back from row.spec_json
  JobCounts counts;
};

struct JobView {
  JobRow job;
  std::optional<MetricRow> latest_metric;  // of the current attempt
};

// One event for watchers of a sweep.
using WatchEventData = std::variant<JobView, MetricRow, GroupDWarp, SweepSummary>;

}  // namespace dwarp::coordinator
