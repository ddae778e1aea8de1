// WorkerDaemon: the worker side of DESIGN.md "Leases". It registers with the coordinator's WorkerService
// (proto/dwarp/v1/dwarp.proto), then each slot (one per device x slots-per-device) pulls jobs with Acquire
// (long-poll), runs them with RunJob (worker/job_runner.h) while streaming one MetricPoint per epoch, and
// reports Complete or Fail; heartbeats extend the leases and bring back cancellations.
//
// Threads: a Boost.Asio io_context on the thread that calls Run() alone owns the daemon's state (worker
// id, running leases, draining). Slot threads do the blocking work (Acquire, RunJob, Complete/Fail) and
// post state changes to the loop; one RPC thread makes the loop's Register and Heartbeat calls and posts
// their replies back to it.
// Each running job has a stop flag that the loop sets and the job's training loop polls (should_stop).
//
// Outcomes of a job:
//   RunJob OK                          -> Complete (unless the lease was cancelled or became invalid) with
//                                         the report's JobResultOf (worker/job_runner.h), converted by
//                                         common/rpc/job_result_message.h; its result_json leaves the spec
//                                         out, since the coordinator keeps it with the job
//   heartbeat reply cancel / !valid    -> the job is stopped and its outcome dropped (no Complete, no Fail)
//   RunJob error                       -> Fail; retryable unless InvalidArgument or NotFound (a bad spec,
//                                         a missing file, a diverged loss fail the same way on any worker)
//   drain timeout / second signal      -> the job is stopped and failed back retryable ("worker draining")
// One failed heartbeat RPC never stops a job: only the coordinator's answer does (or lease expiry there).
//
// Identity: Register hands out a worker id and its credential; every later call for the worker (Acquire,
// Heartbeat, StreamMetrics, Complete, Fail, Register again) carries the credential as metadata
// (coordinator/worker_credentials.h). The process keeps both for its lifetime; a new process registers anew.
//
// Registering: an unreachable coordinator, or one that answers with trouble that passes (INTERNAL, e.g. its
// disk is full; RESOURCE_EXHAUSTED, UNKNOWN, ABORTED, DEADLINE_EXCEEDED), is asked again with backoff, for
// as long as it takes; a refusal that answers the same on every try (UNAUTHENTICATED, PERMISSION_DENIED,
// INVALID_ARGUMENT, ...) ends Run() with the coordinator's error.
//
// Curve points: one StreamMetrics stream per job, written by a thread of its own so that training never
// waits on the network. When the stream breaks (the coordinator restarted or is unreachable) it is opened
// again, with backoff, once the coordinator can be reached, and the job's held points (the last
// max_held_metric_points) are sent again first: the coordinator answers a stream only when it ends, so
// the worker cannot know which were stored, and the coordinator's store keeps one point per (job,
// attempt, epoch). At the job's end the held points are delivered before the outcome, for as long as the
// lease may be valid.
//
// Held outcomes: with a state folder (state_dir) the outcome is written to disk as soon as the job ends,
// before its last points are flushed and before it is sent, and deleted once the coordinator answers
// (worker/daemon/held_results.h). A worker killed meanwhile, or stopped while the coordinator cannot be
// reached, leaves it there, and the next process started with that folder delivers it at start, in the
// name of the worker the lease was granted to (the file keeps that worker's id and credential), while the
// lease could still be valid; an expired one is dropped with a log line, and the coordinator's fencing
// refuses a superseded one. A new process registers as a new worker: it does not take over the old id.
//
// Delivery: a Complete or Fail that cannot reach the coordinator is sent again, with backoff, until the
// coordinator answers or the lease can no longer be valid there: the last grant or extension seen by
// this worker plus the lease TTL the coordinator granted. Heartbeats go on meanwhile and extend the lease
// as soon as the coordinator is back, so an outage shorter than the TTL loses nothing. A heartbeat reply
// that dismisses the lease (cancel, !valid) ends the wait; so does a hard stop, after one more try.
// The channel retries connecting at least every second (max_reconnect_backoff) so that a restarted
// coordinator is found at once, not after gRPC's default backoff of up to two minutes.
//
// Drain (RequestDrain, or SIGTERM/SIGINT when handle_signals): stop acquiring (outstanding Acquire calls
// are cancelled), heartbeat with draining = true, let running jobs finish for up to drain_timeout, then stop
// and fail them back; Run() returns OK once every slot has finished. A second request stops at once.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/rpc/connection.h"
#include "common/status.h"
#include "dwarp/v1/dwarp.pb.h"
#include "worker/job_runner.h"

namespace dwarp::worker {

struct WorkerDaemonOptions {
  rpc::ConnectionOptions connection;    // coordinator address, token, TLS
  std::vector<std::string> devices = {"cpu"};  // distinct devices; each gets slots_per_device slots
  int slots_per_device = 1;             // >= 1
  std::string name;                     // shown by ListWorkers; empty: hostname:pid
  std::chrono::milliseconds drain_timeout{60000};  // >= 0
  std::chrono::milliseconds acquire_wait{10000};   // long-poll limit asked of Acquire, >= 1
  // Register retries and UNAVAILABLE calls wait initial_backoff, doubling up to max_backoff. The channel's
  // reconnect backoff is capped at min(max_backoff, 1 s) unless connection.max_reconnect_backoff is set.
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{5000};
  // Curve points a job's metric stream holds so that it can send them again after a reconnect (the
  // newest; older ones are dropped while the coordinator cannot be reached for longer). >= 1.
  size_t max_held_metric_points = 10000;
  // Folders this worker's jobs may read (worker/daemon/data_roots.h): when any is given, a job whose spec
  // names a path outside all of them fails, not retryably, before anything is opened. Empty: any path.
  // Each must be an existing directory.
  std::vector<std::string> data_roots;
  // The state folder (worker/daemon/held_results.h): each finished job's outcome is written there before
  // it is sent and deleted once the coordinator has answered, and at start the outcomes an earlier process
  // left there are delivered while their leases could still be valid. Created (0700) if missing. Empty:
  // outcomes are kept in memory only.
  std::string state_dir;
  // Install SIGTERM/SIGINT handlers (drain, then stop at once on the second) for the duration of Run().
  // Off in tests that run the daemon inside a test process.
  bool handle_signals = true;
};

// InvalidArgument naming the field and value when the options cannot work (no devices, slots < 1, ...).
Status CheckWorkerDaemonOptions(const WorkerDaemonOptions& options);

// Parses a --devices list: comma-separated "cpu", "cuda" or "cuda:N", no repeats. InvalidArgument naming
// the bad entry and what was expected.
StatusOr<std::vector<std::string>> ParseDeviceList(const std::string& text);

// Whether a failed job may succeed on another attempt: false for InvalidArgument and NotFound (bad spec,
// missing data, non-finite loss), true otherwise (LibTorch errors, resource trouble, cancellation).
bool IsRetryableJobFailure(const Status& status);

class WorkerDaemon {
 public:
  explicit WorkerDaemon(WorkerDaemonOptions options);
  ~WorkerDaemon();
  WorkerDaemon(const WorkerDaemon&) = delete;
  WorkerDaemon& operator=(const WorkerDaemon&) = delete;

  // Serves until drained or stopped: OK after a drain (or a stop), InvalidArgument for bad options or
  // channel settings, and the coordinator's error when it refuses Register (e.g. UNAUTHENTICATED). Call
  // once, from the thread that should run the event loop; blocks.
  Status Run();

  // Begins a drain (as SIGTERM); a second call stops at once (as a second signal). Thread-safe; may be
  // called before Run() (Run then returns as soon as it has started) or after it returned (no effect).
  void RequestDrain();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dwarp::worker
