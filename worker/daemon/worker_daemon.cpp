#include "worker/daemon/worker_daemon.h"

#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <deque>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <utility>

#include "common/job_spec.h"
#include "common/rpc/job_result_message.h"
#include "dwarp/v1/dwarp.grpc.pb.h"
#include "worker/daemon/data_roots.h"
#include "worker/daemon/held_results.h"
#include "worker/engine/device.h"

namespace dwarp::worker {
namespace {

namespace asio = boost::asio;
namespace pb = dwarp::v1;
using std::chrono::milliseconds;

int64_t NowUnixMs() {
  return std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Lease deadlines are kept on the steady clock: a wall-clock step must not end or prolong them.
int64_t SteadyNowMs() {
  return std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string HostName() {
  char buffer[256] = {};
  if (gethostname(buffer, sizeof(buffer) - 1) != 0) return "unknown-host";
  return buffer;
}

// Exponential backoff: initial, doubling up to max.
class Backoff {
 public:
  Backoff(milliseconds initial, milliseconds max) : initial_(initial), max_(max), next_(initial) {}
  milliseconds Next() {
    const milliseconds wait = next_;
    next_ = std::min(next_ * 2, max_);
    return wait;
  }
  void Reset() { next_ = initial_; }

 private:
  milliseconds initial_, max_, next_;
};

// Codes after which the same call may succeed later: the coordinator is down, restarting or slow.
bool IsTransient(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::UNAVAILABLE ||
         status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

// Codes after which a Register or a metric stream may succeed later: IsTransient's, and trouble on the
// coordinator's side that passes (storage, load: INTERNAL, RESOURCE_EXHAUSTED, UNKNOWN, ABORTED). The
// others (UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT, UNIMPLEMENTED, ...) answer the same on
// every try.
bool IsRetryableCallFailure(const grpc::Status& status) {
  if (IsTransient(status)) return true;
  switch (status.error_code()) {
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::ABORTED:
      return true;
    default:
      return false;
  }
}

// "INTERNAL", "UNAVAILABLE", ...: gRPC's name of a code, for logs.
std::string CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "code " + std::to_string(static_cast<int>(code));
  }
}

// Who this worker is to the coordinator: the id and credential Register handed out. Every call for the
// worker after Register carries the credential (AddCredential).
struct WorkerIdentity {
  std::string worker_id;
  std::string credential;
};

// The metadata key of worker credentials (coordinator/worker_credentials.h).
constexpr char kWorkerCredentialMetadata[] = "dwarp-worker-credential";

void AddCredential(grpc::ClientContext& context, const std::string& credential) {
  if (!credential.empty()) context.AddMetadata(kWorkerCredentialMetadata, credential);
}

// Why a running job was told to stop; decides what its slot reports once RunJob has returned.
enum class StopReason { kNone, kCancelled, kLeaseInvalid, kDraining };

// Shared between the loop (the only writer after the grant) and the job's slot thread (reads).
struct JobControl {
  std::atomic<bool> stop{false};
  std::atomic<StopReason> reason{StopReason::kNone};
  // Until when (steady clock, ms) the coordinator may still hold the lease valid: the moment its grant or
  // last extension reached this worker, plus the TTL. An upper bound: the coordinator started the TTL
  // when it answered, a little earlier. Set by the slot at the grant, then by the loop at each valid
  // heartbeat reply.
  std::atomic<int64_t> valid_until_ms{0};
  int64_t ttl_ms = 0;  // the lease's TTL, fixed at the grant

  // The coordinator has said, in a heartbeat reply, that this lease's outcome is no longer wanted.
  bool Dismissed() const {
    const StopReason why = reason.load();
    return why == StopReason::kCancelled || why == StopReason::kLeaseInvalid;
  }
  milliseconds ValidFor() const { return milliseconds(valid_until_ms.load() - SteadyNowMs()); }

  // A cancellation or a lost lease outranks a drain: the coordinator already knows, so nothing is reported.
  void Stop(StopReason why) {
    if (why == StopReason::kDraining && reason.load() != StopReason::kNone) return;
    reason.store(why);
    stop.store(true);
  }
};

const char* StopReasonName(StopReason reason) {
  switch (reason) {
    case StopReason::kNone: return "none";
    case StopReason::kCancelled: return "cancelled by the coordinator";
    case StopReason::kLeaseInvalid: return "lease no longer valid";
    case StopReason::kDraining: return "worker draining";
  }
  return "unknown";
}

// The metric stream of one job: Send queues one point per epoch and never waits for the network; a sender
// thread writes the points on a StreamMetrics client stream, opened at the first point.
//
// When the stream breaks (the coordinator restarted, or cannot be reached) the sender waits a backoff,
// opens a new stream, which waits (wait_for_ready) until the coordinator can be reached again, and sends
// first every point it holds: the coordinator answers a stream only when it ends, so a point written on a
// broken stream may or may not have been stored. The store keeps one point per (job, attempt, epoch), so
// the repeats cost nothing there. The sender holds the job's last `max_held` points; while the
// coordinator is unreachable longer than that many epochs, the oldest are dropped (and counted).
// A stream refused for good (UNAUTHENTICATED, UNIMPLEMENTED, ...) ends streaming for the job: curve points
// are lost, never the job, whose result goes by Complete.
//
// Close ends the stream: it lets the sender deliver what is held (reopening if need be) for up to
// `flush_timeout`, then cancels it. Used from the slot thread (Send, Close); the sender thread is internal.
class MetricStream {
 public:
  MetricStream(pb::WorkerService::Stub& stub, const rpc::ConnectionOptions& connection, WorkerIdentity identity,
               std::string lease_id, milliseconds initial_backoff, milliseconds max_backoff, size_t max_held)
      : stub_(stub),
        connection_(connection),
        identity_(std::move(identity)),
        lease_id_(std::move(lease_id)),
        initial_backoff_(initial_backoff),
        max_backoff_(max_backoff),
        max_held_(std::max<size_t>(max_held, 1)),
        sender_([this] { SenderMain(); }) {}

  ~MetricStream() { Close(/*abandon=*/true, milliseconds(0)); }
  MetricStream(const MetricStream&) = delete;
  MetricStream& operator=(const MetricStream&) = delete;

  void Send(const engine::EpochRecord& record) {
    pb::MetricPoint point;
    point.set_epoch(record.epoch);
    point.set_train_loss(record.train_loss);
    point.set_val_score(record.validation_score);
    point.set_time_unix_ms(NowUnixMs());
    std::lock_guard<std::mutex> lock(mu_);
    if (closing_) return;
    held_.push_back(std::move(point));
    if (held_.size() > max_held_) {
      held_.pop_front();
      ++first_seq_;
      if (next_seq_ < first_seq_) {  // never written on a stream: lost
        next_seq_ = first_seq_;
        if (dropped_++ == 0) {
          spdlog::warn("lease {}: more than {} metric points held while the coordinator cannot be reached; "
                       "dropping the oldest", lease_id_, max_held_);
        }
      }
    }
    cv_.notify_all();
  }

  // abandon: the job's outcome is dropped, so its stream is cancelled rather than finished.
  void Close(bool abandon, milliseconds flush_timeout) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (!sender_.joinable()) return;
      closing_ = true;
      cv_.notify_all();
      if (!abandon) cv_.wait_for(lock, flush_timeout, [this] { return sender_done_; });
      if (!sender_done_) {
        abandoned_ = true;
        if (context_ != nullptr) context_->TryCancel();
        cv_.notify_all();
        if (!abandon) {
          spdlog::warn("lease {}: {} metric point(s) not confirmed within {} ms of the job's end; giving them up",
                       lease_id_, first_seq_ + held_.size() - confirmed_seq_, flush_timeout.count());
        }
      }
    }
    sender_.join();
    if (!abandon && dropped_ > 0) {
      spdlog::warn("lease {}: {} metric point(s) dropped while the coordinator could not be reached", lease_id_,
                   dropped_);
    }
  }

 private:
  static constexpr size_t kPointsPerBatch = 500;

  void SenderMain() {
    Backoff backoff(initial_backoff_, max_backoff_);
    bool broken = false;  // the last stream broke: the next one sends again what is held
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        // Open a stream only when there is something to send.
        cv_.wait(lock, [this] { return abandoned_ || closing_ || !held_.empty(); });
        if (abandoned_ || (closing_ && confirmed_seq_ == first_seq_ + held_.size())) break;
      }
      grpc::ClientContext context;
      rpc::PrepareContext(context, connection_);
      AddCredential(context, identity_.credential);
      // Waits for the coordinator rather than failing at once while the channel reconnects; Close cancels.
      context.set_wait_for_ready(true);
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (abandoned_) break;
        context_ = &context;
        next_seq_ = first_seq_;  // everything held goes (again) on this stream
      }
      pb::StreamMetricsResponse response;
      // Blocks until the call has started, i.e. until the coordinator can be reached (or Close cancels).
      std::unique_ptr<grpc::ClientWriter<pb::MetricBatch>> writer = stub_.StreamMetrics(&context, &response);
      uint64_t written_to = 0;
      const bool wrote_all = WriteUntilClosedOrBroken(*writer, &written_to, broken);
      if (wrote_all) writer->WritesDone();
      const grpc::Status status = writer->Finish();
      std::unique_lock<std::mutex> lock(mu_);
      context_ = nullptr;
      if (abandoned_) break;
      if (wrote_all && status.ok()) {
        confirmed_seq_ = std::max(confirmed_seq_, written_to);
        if (response.rejected() > 0) {
          spdlog::warn("lease {}: the coordinator rejected {} metric point(s) (stale lease)", lease_id_,
                       response.rejected());
        }
        break;  // Close was called and every point was written and answered for
      }
      if (!status.ok() && !IsRetryableCallFailure(status) && status.error_code() != grpc::StatusCode::CANCELLED) {
        spdlog::warn("lease {}: the metric stream was refused ({}); this job's curve points are no longer streamed",
                     lease_id_, rpc::DescribeCallFailure(status, connection_.address).ToString());
        break;
      }
      if (written_to > 0) {
        broken = false;  // this stream carried points: a new outage
        backoff.Reset();
      }
      if (!broken) {
        spdlog::warn("lease {}: the metric stream broke ({}); holding this job's points and streaming them again "
                     "once the coordinator answers", lease_id_,
                     status.ok() ? std::string("the coordinator ended it early")
                                 : rpc::DescribeCallFailure(status, connection_.address).ToString());
      }
      broken = true;
      cv_.wait_for(lock, backoff.Next(), [this] { return abandoned_; });
      if (abandoned_) break;
    }
    std::lock_guard<std::mutex> lock(mu_);
    sender_done_ = true;
    cv_.notify_all();
  }

  // Writes the held points, then new ones as Send queues them, until Close (true once everything is
  // written) or a write fails (false). *written_to: the number after the last point written (0: none).
  bool WriteUntilClosedOrBroken(grpc::ClientWriter<pb::MetricBatch>& writer, uint64_t* written_to, bool reopened) {
    while (true) {
      pb::MetricBatch batch;
      uint64_t end = 0;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return abandoned_ || closing_ || next_seq_ < first_seq_ + held_.size(); });
        if (abandoned_) return false;
        const uint64_t held_end = first_seq_ + held_.size();
        if (next_seq_ >= held_end) return true;  // closing, and nothing left to write
        batch.set_worker_id(identity_.worker_id);
        batch.set_lease_id(lease_id_);
        end = std::min<uint64_t>(held_end, next_seq_ + kPointsPerBatch);
        for (uint64_t seq = next_seq_; seq < end; ++seq) *batch.add_points() = held_[seq - first_seq_];
      }
      // Blocks while gRPC's flow control holds the stream back: on this thread, never the training loop's.
      if (!writer.Write(batch)) return false;
      std::lock_guard<std::mutex> lock(mu_);
      if (reopened && *written_to == 0) {
        spdlog::info("lease {}: the metric stream is open again; sending the {} held point(s) again", lease_id_,
                     held_.size());
      }
      next_seq_ = std::max(next_seq_, end);
      *written_to = end;
    }
  }

  pb::WorkerService::Stub& stub_;
  const rpc::ConnectionOptions& connection_;
  const WorkerIdentity identity_;
  const std::string lease_id_;
  const milliseconds initial_backoff_, max_backoff_;
  const size_t max_held_;

  std::mutex mu_;
  std::condition_variable cv_;
  // Points are numbered in the order Send queued them; held_ holds numbers first_seq_ and on.
  std::deque<pb::MetricPoint> held_;
  uint64_t first_seq_ = 0;
  uint64_t next_seq_ = 0;       // the next point to write on the current stream
  uint64_t confirmed_seq_ = 0;  // points before it were answered for by a stream that ended OK
  uint64_t dropped_ = 0;        // points dropped from held_ before any stream carried them
  bool closing_ = false;        // Close called: write what is held, then end the stream
  bool abandoned_ = false;      // stop now: cancel the stream, send nothing more
  bool sender_done_ = false;
  grpc::ClientContext* context_ = nullptr;  // the open stream's, for TryCancel; set under mu_

  std::thread sender_;  // last: starts once every other member is ready
};

// A unary call made for the loop on the RPC thread: everything the call needs, alive until its reply
// has been handled on the loop.
template <typename Request, typename Response>
struct LoopCall {
  grpc::ClientContext context;
  Request request;
  Response response;
};

}  // namespace

// ---------------------------------------------------------------------------------------------------

StatusOr<std::vector<std::string>> ParseDeviceList(const std::string& text) {
  std::vector<std::string> devices;
  size_t begin = 0;
  while (begin <= text.size()) {
    size_t end = text.find(',', begin);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(begin, end - begin);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!engine::IsDeviceName(item)) {
      return InvalidArgumentError("device '" + item + "' in '" + text +
                                  "'; expected a comma-separated list of cpu, cuda or cuda:N");
    }
    if (std::find(devices.begin(), devices.end(), item) != devices.end()) {
      return InvalidArgumentError("device '" + item + "' is listed twice in '" + text +
                                  "'; expected each device once (use --slots-per-device for more jobs per device)");
    }
    devices.push_back(item);
    begin = end + 1;
  }
  return devices;
}

Status CheckWorkerDaemonOptions(const WorkerDaemonOptions& o) {
  if (o.connection.address.empty()) return InvalidArgumentError("coordinator address is empty; expected host:port");
  if (o.devices.empty()) return InvalidArgumentError("devices is empty; expected at least one device");
  std::string joined;
  for (const auto& d : o.devices) joined += (joined.empty() ? "" : ",") + d;
  auto parsed = ParseDeviceList(joined);
  if (!parsed.ok()) return InvalidArgumentError("devices: " + parsed.status().message());
  if (o.slots_per_device < 1) {
    return InvalidArgumentError("slots_per_device = " + std::to_string(o.slots_per_device) + "; expected >= 1");
  }
  if (o.drain_timeout.count() < 0) {
    return InvalidArgumentError("drain_timeout = " + std::to_string(o.drain_timeout.count()) + " ms; expected >= 0");
  }
  if (o.acquire_wait.count() < 1) {
    return InvalidArgumentError("acquire_wait = " + std::to_string(o.acquire_wait.count()) + " ms; expected >= 1");
  }
  if (o.max_held_metric_points < 1) return InvalidArgumentError("max_held_metric_points = 0; expected >= 1");
  if (auto roots = CanonicalDataRoots(o.data_roots); !roots.ok()) return roots.status();
  if (o.initial_backoff.count() < 1 || o.max_backoff < o.initial_backoff) {
    return InvalidArgumentError("backoff " + std::to_string(o.initial_backoff.count()) + " ms to " +
                                std::to_string(o.max_backoff.count()) + " ms; expected 1 <= initial <= max");
  }
  return OkStatus();
}

bool IsRetryableJobFailure(const Status& status) {
  return status.code() != StatusCode::kInvalidArgument && status.code() != StatusCode::kNotFound;
}

// ---------------------------------------------------------------------------------------------------

class WorkerDaemon::Impl {
 public:
  explicit Impl(WorkerDaemonOptions options)
      : options_(std::move(options)),
        work_(asio::make_work_guard(ioc_)),
        rpc_work_(asio::make_work_guard(rpc_ioc_)),
        heartbeat_timer_(ioc_),
        register_timer_(ioc_),
        drain_timer_(ioc_),
        register_backoff_(options_.initial_backoff, options_.max_backoff) {
    if (options_.name.empty()) options_.name = HostName() + ":" + std::to_string(getpid());
  }

  Status Run() {
    DWARP_RETURN_IF_ERROR(CheckWorkerDaemonOptions(options_));
    auto roots = CanonicalDataRoots(options_.data_roots);
    if (!roots.ok()) return roots.status();
    data_roots_ = std::move(*roots);
    rpc::ConnectionOptions channel_options = options_.connection;
    if (channel_options.max_reconnect_backoff.count() == 0) {
      // gRPC's default backoff (up to 120 s) can keep a channel down for many seconds after the coordinator
      // is back, long enough for leases to expire there; a loopback or LAN connect attempt costs little.
      channel_options.max_reconnect_backoff = std::min(options_.max_backoff, milliseconds(1000));
    }
    auto channel = rpc::MakeChannel(channel_options);
    if (!channel.ok()) return channel.status();
    stub_ = pb::WorkerService::NewStub(*channel);
    std::vector<HeldOutcome> orphans;
    if (!options_.state_dir.empty()) {
      auto held = HeldResults::Open(options_.state_dir);
      if (!held.ok()) return held.status();
      held_ = std::move(*held);
      std::vector<std::string> problems;
      orphans = held_->TakeOrphans(&problems);
      for (const std::string& problem : problems) spdlog::warn("{}", problem);
      spdlog::info("worker {}: state folder {} ({} outcome(s) left by an earlier run)", options_.name, held_->dir(),
                   orphans.size());
    }
    if (!orphans.empty()) {
      orphans_thread_ =
          std::thread([this, orphans = std::move(orphans)]() mutable { DeliverOrphans(std::move(orphans)); });
    }
    for (const auto& device : options_.devices) {
      for (int i = 0; i < options_.slots_per_device; ++i) slot_devices_.push_back(device);
    }
    if (options_.handle_signals) {
      signals_.emplace(ioc_, SIGINT, SIGTERM);
      WaitForSignal();
    }
    spdlog::info("worker {}: coordinator {}, {} slot(s) on {}", options_.name, options_.connection.address,
                 slot_devices_.size(), JoinDevices());
    // Register and Heartbeat run as blocking calls on one RPC thread that Run joins: every call has fully
    // returned before the daemon goes away. (With gRPC's callback API the last reference to a call could be
    // dropped on a gRPC thread while the process exits, which aborts inside gRPC.)
    rpc_thread_ = std::thread([this] { rpc_ioc_.run(); });
    asio::post(ioc_, [this] { Register(); });
    ioc_.run();
    rpc_work_.reset();
    rpc_thread_.join();
    for (auto& slot : slots_) slot.join();
    if (orphans_thread_.joinable()) {
      // Outcomes still waiting for the coordinator get one more try, then stay on disk for the next start.
      stop_now_.store(true);
      orphans_thread_.join();
    }
    if (run_status_.ok()) spdlog::info("worker {}: drained, exiting", options_.name);
    return run_status_;
  }

  void RequestDrain() {
    asio::post(ioc_, [this] { OnDrainRequest("drain requested"); });
  }

 private:
  // ---- loop thread -------------------------------------------------------------------------------

  void WaitForSignal() {
    signals_->async_wait([this](const boost::system::error_code& error, int signal) {
      if (error) return;
      OnDrainRequest(signal == SIGINT ? "SIGINT" : "SIGTERM");
      if (!shutting_down_) WaitForSignal();
    });
  }

  void OnDrainRequest(const std::string& why) {
    if (shutting_down_) return;
    if (!draining_) {
      BeginDrain(why);
    } else {
      spdlog::warn("{} while draining: stopping {} running job(s) now", why, running_.size());
      StopRunningJobs();
    }
  }

  void BeginDrain(const std::string& why) {
    draining_ = true;
    acquiring_stopped_.store(true);
    spdlog::info("{}: draining ({} running job(s), up to {} ms)", why, running_.size(), options_.drain_timeout.count());
    for (grpc::ClientContext* acquire : acquires_) acquire->TryCancel();
    register_timer_.cancel();
    if (!slots_started_) {
      // Not registered yet: nothing runs, so stop registering and leave.
      for (grpc::ClientContext* call : loop_calls_) call->TryCancel();
      MaybeFinish();
      return;
    }
    SendHeartbeat();  // tells the coordinator at once that this worker takes no more jobs
    drain_timer_.expires_after(options_.drain_timeout);
    drain_timer_.async_wait([this](const boost::system::error_code& error) {
      if (error) return;
      if (!running_.empty()) {
        spdlog::warn("drain timeout ({} ms): stopping {} running job(s) and failing them back",
                     options_.drain_timeout.count(), running_.size());
      }
      StopRunningJobs();
    });
    MaybeFinish();
  }

  // Stops every running job (and any leased later) so that its slot fails it back as retryable.
  void StopRunningJobs() {
    hard_stop_ = true;
    stop_now_.store(true);
    for (auto& [lease_id, control] : running_) control->Stop(StopReason::kDraining);
  }

  void Fatal(Status status) {
    spdlog::error("{}", status.ToString());
    if (run_status_.ok()) run_status_ = std::move(status);
    if (!draining_) BeginDrain("stopping after the error");
    StopRunningJobs();
    MaybeFinish();
  }

  // Ends the loop once draining, every slot has left and no loop call is in flight (their callbacks post
  // to the loop, so it must outlive them).
  void MaybeFinish() {
    if (shutting_down_ || !draining_ || live_slots_ > 0 || !loop_calls_.empty()) return;
    shutting_down_ = true;
    heartbeat_timer_.cancel();
    register_timer_.cancel();
    drain_timer_.cancel();
    if (signals_) signals_->cancel();
    work_.reset();
  }

  void Register() {
    if (draining_ || register_in_flight_) return;
    register_in_flight_ = true;
    auto call = std::make_shared<LoopCall<pb::RegisterRequest, pb::RegisterResponse>>();
    rpc::PrepareContext(call->context, options_.connection, milliseconds(10000));
    call->request.set_name(options_.name);
    call->request.set_host(HostName());
    for (const auto& device : slot_devices_) call->request.add_devices(device);
    call->request.set_worker_id(worker_id_);  // empty the first time; the old id when registering again
    AddCredential(call->context, credential_);  // proves the old id is this worker's
    SendForLoop(call, &pb::WorkerService::Stub::Register, &Impl::OnRegisterReply);
  }

  // Makes `call` with `method` on the RPC thread and hands its reply to `on_reply` back on the loop; the
  // call is in loop_calls_ until then.
  template <typename Request, typename Response>
  void SendForLoop(std::shared_ptr<LoopCall<Request, Response>> call,
                   grpc::Status (pb::WorkerService::Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                   void (Impl::*on_reply)(LoopCall<Request, Response>&, const grpc::Status&)) {
    loop_calls_.insert(&call->context);
    asio::post(rpc_ioc_, [this, call, method, on_reply] {
      const grpc::Status status = ((*stub_).*method)(&call->context, call->request, &call->response);
      asio::post(ioc_, [this, call, on_reply, status] { (this->*on_reply)(*call, status); });
    });
  }

  void OnRegisterReply(LoopCall<pb::RegisterRequest, pb::RegisterResponse>& call, const grpc::Status& status) {
    loop_calls_.erase(&call.context);
    register_in_flight_ = false;
    if (status.ok()) {
      register_backoff_.Reset();
      register_failures_ = 0;
      const std::string previous = worker_id_;
      worker_id_ = call.response.worker_id();
      // A new id comes with its credential; registering again with ours keeps the one we have.
      if (!call.response.worker_credential().empty() || worker_id_ != previous)
        credential_ = call.response.worker_credential();
      const int64_t interval = call.response.heartbeat_interval_ms();
      heartbeat_interval_ = milliseconds(interval > 0 ? std::max<int64_t>(interval, 10) : 1000);
      if (call.response.lease_ttl_ms() > 0) lease_ttl_ms_.store(call.response.lease_ttl_ms());
      if (previous.empty()) {
        spdlog::info("registered as worker {} (heartbeat every {} ms, lease ttl {} ms)", worker_id_,
                     heartbeat_interval_.count(), call.response.lease_ttl_ms());
      } else {
        spdlog::info("registered again as worker {} (was {})", worker_id_, previous);
      }
      if (draining_ && !slots_started_) return MaybeFinish();
      if (!slots_started_) StartSlots();
      SendHeartbeat();
      return;
    }
    if (draining_) return MaybeFinish();  // cancelled by the drain, or no longer wanted
    if (IsRetryableCallFailure(status)) {
      // Unreachable, or trouble that passes on the coordinator's side (its storage, its load): a worker
      // that gave up here would take itself out over a brief problem while the coordinator (re)starts.
      const milliseconds wait = register_backoff_.Next();
      ++register_failures_;
      spdlog::warn("register with the coordinator at {} failed ({}, try {}): {}; registering again in {} ms",
                   options_.connection.address, CodeName(status.error_code()), register_failures_,
                   rpc::DescribeCallFailure(status, options_.connection.address).message(), wait.count());
      register_timer_.expires_after(wait);
      register_timer_.async_wait([this](const boost::system::error_code& error) {
        if (!error) Register();
      });
      return;
    }
    // Refused for a reason that answers the same on every try (a bad token, a bad request).
    const Status failure = rpc::DescribeCallFailure(status, options_.connection.address);
    Fatal(Status(failure.code(), "register with the coordinator at " + options_.connection.address +
                                     " refused (" + CodeName(status.error_code()) + ", not retried): " +
                                     failure.message()));
  }

  void ScheduleHeartbeat() {
    if (shutting_down_ || (draining_ && live_slots_ == 0)) return;
    heartbeat_timer_.expires_after(heartbeat_interval_);
    heartbeat_timer_.async_wait([this](const boost::system::error_code& error) {
      if (!error) SendHeartbeat();
    });
  }

  void SendHeartbeat() {
    if (shutting_down_ || worker_id_.empty()) return;
    if (heartbeat_in_flight_) {
      heartbeat_again_ = true;  // its reply sends the next at once
      return;
    }
    heartbeat_in_flight_ = true;
    auto call = std::make_shared<LoopCall<pb::HeartbeatRequest, pb::HeartbeatResponse>>();
    // A heartbeat outliving its interval is useless: the next one carries the same news.
    rpc::PrepareContext(call->context, options_.connection, std::max(heartbeat_interval_, milliseconds(1000)));
    // Waits for the channel to connect (within the deadline) rather than failing at once while it is down:
    // only a call in flight drives a new connection's handshake in this process, so fail-fast calls
    // alone can leave a worker unable to reach a coordinator that has long been back.
    call->context.set_wait_for_ready(true);
    call->request.set_worker_id(worker_id_);
    AddCredential(call->context, credential_);
    for (const auto& [lease_id, control] : running_) call->request.add_lease_ids(lease_id);
    call->request.set_draining(draining_);
    SendForLoop(call, &pb::WorkerService::Stub::Heartbeat, &Impl::OnHeartbeatReply);
  }

  void OnHeartbeatReply(LoopCall<pb::HeartbeatRequest, pb::HeartbeatResponse>& call, const grpc::Status& status) {
    loop_calls_.erase(&call.context);
    heartbeat_in_flight_ = false;
    if (status.ok()) {
      const int64_t received_ms = SteadyNowMs();
      if (call.response.unknown_worker()) {
        spdlog::warn("the coordinator does not know worker {}; registering again", worker_id_);
        Register();
      }
      for (const pb::LeaseStatus& lease : call.response.leases()) {
        auto it = running_.find(lease.lease_id());
        if (it == running_.end()) continue;
        if (lease.valid()) it->second->valid_until_ms.store(received_ms + it->second->ttl_ms);
        if (it->second->stop.load()) continue;
        if (lease.cancel()) {
          spdlog::info("lease {}: cancelled by the coordinator; stopping the job", lease.lease_id());
          it->second->Stop(StopReason::kCancelled);
        } else if (!lease.valid()) {
          spdlog::warn("lease {}: no longer valid (expired or superseded); stopping the job, dropping its result",
                       lease.lease_id());
          it->second->Stop(StopReason::kLeaseInvalid);
        }
      }
    } else if (!shutting_down_) {
      // Only the coordinator's answer stops a job; a lost heartbeat is retried at the next interval.
      spdlog::warn("heartbeat failed: {}",
                   rpc::DescribeCallFailure(status, options_.connection.address).ToString());
    }
    // A heartbeat asked for while this one was in flight goes out now; the drain's own (this one was sent
    // before the drain) even when every slot has left meanwhile, so that the coordinator hears before this
    // worker exits that it takes no more jobs.
    const bool drain_unannounced = draining_ && !call.request.draining();
    if (heartbeat_again_ && (drain_unannounced || !(draining_ && live_slots_ == 0))) {
      heartbeat_again_ = false;
      SendHeartbeat();
    } else {
      ScheduleHeartbeat();
    }
    MaybeFinish();
  }

  void StartSlots() {
    slots_started_ = true;
    live_slots_ = static_cast<int>(slot_devices_.size());
    for (size_t i = 0; i < slot_devices_.size(); ++i) {
      slots_.emplace_back([this, i] { SlotMain(static_cast<int>(i), slot_devices_[i]); });
    }
  }

  // ---- slot threads --------------------------------------------------------------------------------

  // Runs `task` on the loop and waits for its value: how slot threads read and change the loop's state.
  // Only valid while the loop runs, which it does until every slot has left.
  template <typename F>
  auto OnLoop(F task) -> decltype(task()) {
    // Shared, so that the task outlives its run on the loop even after this thread has its value.
    auto packaged = std::make_shared<std::packaged_task<decltype(task())()>>(std::move(task));
    auto result = packaged->get_future();
    asio::post(ioc_, [packaged] { (*packaged)(); });
    return result.get();
  }

  // Sleeps `wait`, waking early when the worker starts draining.
  void SleepUnlessDraining(milliseconds wait) {
    const auto until = std::chrono::steady_clock::now() + wait;
    while (!acquiring_stopped_.load() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::min<milliseconds>(milliseconds(20), wait));
    }
  }

  void SlotMain(int slot, const std::string& device) {
    Backoff backoff(options_.initial_backoff, options_.max_backoff);
    while (true) {
      grpc::ClientContext context;
      WorkerIdentity identity;
      const bool acquire = OnLoop([&] {
        if (draining_) return false;
        acquires_.insert(&context);
        identity = {worker_id_, credential_};
        return true;
      });
      if (!acquire) break;
      // The coordinator caps the long-poll; the deadline leaves it room to answer.
      rpc::PrepareContext(context, options_.connection, options_.acquire_wait + milliseconds(10000));
      AddCredential(context, identity.credential);
      pb::AcquireRequest request;
      request.set_worker_id(identity.worker_id);
      request.set_device(device);
      request.set_wait_ms(options_.acquire_wait.count());
      pb::AcquireResponse response;
      const grpc::Status status = stub_->Acquire(&context, request, &response);
      OnLoop([&] { acquires_.erase(&context); });
      if (!status.ok()) {
        if (acquiring_stopped_.load()) break;
        const milliseconds wait = IsTransient(status) ? backoff.Next() : options_.max_backoff;
        spdlog::warn("slot {} ({}): acquire failed: {}; trying again in {} ms", slot, device,
                     rpc::DescribeCallFailure(status, options_.connection.address).ToString(), wait.count());
        SleepUnlessDraining(wait);
        continue;
      }
      backoff.Reset();
      if (response.stop()) {
        // Blocked by the circuit breaker, or unknown (a heartbeat will register again): wait and retry.
        spdlog::warn("slot {} ({}): the coordinator says stop acquiring: {}", slot, device, response.reason());
        asio::post(ioc_, [this] { SendHeartbeat(); });
        SleepUnlessDraining(options_.max_backoff);
        continue;
      }
      if (!response.has_lease()) continue;
      RunLease(slot, device, identity, response.lease());
    }
    asio::post(ioc_, [this] {
      --live_slots_;
      MaybeFinish();
    });
  }

  void RunLease(int slot, const std::string& device, const WorkerIdentity& identity, const pb::Lease& lease) {
    const pb::JobKey& key = lease.key();
    spdlog::info("slot {} ({}): lease {} job {} (sweep {}, model {}, layer {}, dataset {}, d {}, seed {}) attempt {}",
                 slot, device, lease.lease_id(), lease.job_id(), lease.sweep_id(), key.model(), key.layer(),
                 key.dataset(), key.d(), key.seed(), lease.attempt());
    auto control = std::make_shared<JobControl>();
    control->ttl_ms = lease.ttl_ms() > 0 ? lease.ttl_ms() : lease_ttl_ms_.load();
    control->valid_until_ms.store(SteadyNowMs() + control->ttl_ms);
    OnLoop([&] {
      running_[lease.lease_id()] = control;
      if (hard_stop_) control->Stop(StopReason::kDraining);
    });
    // The outcome is decided, and kept in the state folder, as soon as the job has ended: before its last
    // curve points are flushed, which may wait for a coordinator that cannot be reached.
    std::optional<HeldOutcome> outcome;
    bool decided = false;
    const auto decide = [&](const StatusOr<JobReport>& result) {
      decided = true;
      outcome = OutcomeOf(identity, lease, *control, result);
      if (outcome && held_ != nullptr) {
        if (Status held = held_->Hold(*outcome); !held.ok())
          spdlog::warn("job {}: its outcome is not kept on disk ({}); it is sent all the same", lease.job_id(),
                       held.ToString());
      }
    };
    StatusOr<JobReport> result = RunLeaseJob(device, identity, lease, *control, decide);
    if (!decided) decide(result);
    const StopReason reason = control->reason.load();
    if (reason == StopReason::kCancelled || reason == StopReason::kLeaseInvalid || !outcome) {
      spdlog::info("job {}: stopped ({}); nothing reported", lease.job_id(), StopReasonName(reason));
      if (held_ != nullptr) held_->Release(lease.lease_id());
    } else {
      Deliver(*outcome, lease, *control);
    }
    OnLoop([&] { running_.erase(lease.lease_id()); });
  }

  // What a slot reports for a job that ended with `result`: a Complete, a Fail, or nothing (the coordinator
  // cancelled the job or took the lease back).
  std::optional<HeldOutcome> OutcomeOf(const WorkerIdentity& identity, const pb::Lease& lease,
                                       const JobControl& control, const StatusOr<JobReport>& result) {
    const StopReason reason = control.reason.load();
    if (reason == StopReason::kCancelled || reason == StopReason::kLeaseInvalid) return std::nullopt;
    HeldOutcome outcome;
    outcome.coordinator = options_.connection.address;
    outcome.worker_id = identity.worker_id;
    outcome.credential = identity.credential;
    outcome.lease_id = lease.lease_id();
    outcome.job_id = lease.job_id();
    outcome.attempt = lease.attempt();
    outcome.valid_until_unix_ms = NowUnixMs() + std::max<int64_t>(control.ValidFor().count(), 0);
    if (result.ok()) {
      pb::CompleteRequest request;
      request.set_worker_id(identity.worker_id);
      request.set_lease_id(lease.lease_id());
      *request.mutable_result() = rpc::JobResultToProto(JobResultOf(*result));
      outcome.complete = std::move(request);
      return outcome;
    }
    pb::FailRequest request;
    request.set_worker_id(identity.worker_id);
    request.set_lease_id(lease.lease_id());
    if (reason == StopReason::kDraining && result.status().code() == StatusCode::kCancelled) {
      request.set_reason("worker draining: the job was stopped before it finished");
      request.set_retryable(true);
    } else {
      request.set_reason(result.status().ToString());
      request.set_retryable(IsRetryableJobFailure(result.status()));
    }
    outcome.fail = std::move(request);
    return outcome;
  }

  // Runs the lease's job; `ended` is called with its result before its last curve points are flushed
  // (not called when the spec is refused before the job starts).
  StatusOr<JobReport> RunLeaseJob(const std::string& device, const WorkerIdentity& identity, const pb::Lease& lease,
                                  JobControl& control,
                                  const std::function<void(const StatusOr<JobReport>&)>& ended) {
    const nlohmann::json document = nlohmann::json::parse(lease.spec_json(), nullptr, /*allow_exceptions=*/false);
    if (document.is_discarded() || !document.is_object()) {
      return InvalidArgumentError("lease " + lease.lease_id() + ": spec_json is not a JSON object: '" +
                                  lease.spec_json().substr(0, 200) + "'");
    }
    // The coordinator validated the spec at submit and wrote it with its version; DecodeJobSpec reads it
    // without validating it again (and validates in full a spec stored before specs had a version). A version
    // this worker does not read is InvalidArgument: the job fails, not retried.
    auto spec = DecodeJobSpec(document);
    if (!spec.ok()) return Status(spec.status().code(), "spec_json: " + spec.status().message());
    DWARP_RETURN_IF_ERROR(CheckJobPathsUnderDataRoots(*spec, data_roots_));
    spec->train.device = device;
    MetricStream metrics(*stub_, options_.connection, identity, lease.lease_id(), options_.initial_backoff,
                         options_.max_backoff, options_.max_held_metric_points);
    JobRunOptions run;
    run.on_epoch = [&metrics](const engine::EpochRecord& record, int64_t) { metrics.Send(record); };
    run.on_phase = [&lease](const std::string& phase) { spdlog::debug("job {}: {}", lease.job_id(), phase); };
    run.should_stop = [&control] { return control.stop.load(); };
    StatusOr<JobReport> result = RunJob(*spec, run);
    ended(result);
    const StopReason reason = control.reason.load();
    // The points go before the outcome (the coordinator takes them only while the lease is the job's), for
    // as long as the lease may be valid there; one second when the worker must stop now.
    metrics.Close(/*abandon=*/reason == StopReason::kCancelled || reason == StopReason::kLeaseInvalid,
                  stop_now_.load() ? milliseconds(1000) : std::clamp(control.ValidFor(), milliseconds(1000), kLongestCall));
    return result;
  }

  // Sleeps `wait`, waking early when `done()` turns true.
  template <typename Predicate>
  static void SleepUnless(milliseconds wait, Predicate done) {
    const auto until = std::chrono::steady_clock::now() + wait;
    while (!done() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::min<milliseconds>(milliseconds(20), wait));
    }
  }

  static constexpr milliseconds kLongestCall{30000};

  // Calls `call` (a unary RPC, on a fresh context each time) until the coordinator answers, with anything
  // but "unreachable", for as long as it may still hold the lease valid (JobControl::valid_until_ms, which
  // heartbeats keep extending once it is back): an outage shorter than the lease TTL loses no outcome,
  // and one that outlasts the lease gives up, since the coordinator has then requeued or failed the job.
  // Stops early when a heartbeat reply dismissed the lease, or the worker must stop now (after one try).
  template <typename Call>
  grpc::Status UntilAnswered(const pb::Lease& lease, const JobControl& control, const std::string& credential,
                             const char* what, Call call) {
    Backoff backoff(options_.initial_backoff, options_.max_backoff);
    bool warned = false;
    while (true) {
      grpc::ClientContext context;
      // A call that cannot be answered before the lease ends is not worth a longer wait; one second at least,
      // so that a last try can still be answered, and no more when the worker must stop now.
      const milliseconds wait = stop_now_.load() ? milliseconds(1000)
                                                 : std::clamp(control.ValidFor(), milliseconds(1000), kLongestCall);
      rpc::PrepareContext(context, options_.connection, wait);
      AddCredential(context, credential);
      context.set_wait_for_ready(true);  // as heartbeats: the call itself waits for the coordinator
      const grpc::Status status = call(context);
      if (status.ok() || !IsTransient(status)) return status;
      const auto gone = [&] { return control.Dismissed() || stop_now_.load(); };
      const milliseconds left = control.ValidFor();
      if (gone() || left.count() <= 0) return status;
      if (!warned) {
        warned = true;
        spdlog::warn("job {}: {}; the {} is kept and sent again until the coordinator answers, for up to {} ms "
                     "(while lease {} may be valid)", lease.job_id(),
                     rpc::DescribeCallFailure(status, options_.connection.address).ToString(), what, left.count(),
                     lease.lease_id());
      }
      SleepUnless(std::min(backoff.Next(), left), gone);
    }
  }

  // Sends a job's outcome until the coordinator answers (UntilAnswered), then drops its file from the
  // state folder; leaves the file for the next worker process when this one must stop while the lease may
  // still be valid and the coordinator cannot be reached.
  void Deliver(const HeldOutcome& outcome, const pb::Lease& lease, const JobControl& control) {
    grpc::Status status;
    if (outcome.complete) {
      pb::CompleteResponse response;
      status = UntilAnswered(lease, control, outcome.credential, "result", [&](grpc::ClientContext& context) {
        return stub_->Complete(&context, *outcome.complete, &response);
      });
      if (!status.ok()) {
        spdlog::error("job {}: result not delivered: {}{}", lease.job_id(),
                      rpc::DescribeCallFailure(status, options_.connection.address).ToString(),
                      IsTransient(status) && control.ValidFor().count() <= 0
                          ? " (lease " + lease.lease_id() + " can no longer be valid there)"
                          : "");
      } else if (!response.recorded()) {
        spdlog::warn("job {}: the coordinator did not record the result (stale lease {})", lease.job_id(),
                     lease.lease_id());
      } else {
        const pb::JobResult& result = outcome.complete->result();
        spdlog::info("job {}: completed, test {} = {:.4f}, {} epoch(s), {:.1f} s", lease.job_id(), result.metric(),
                     result.test_score(), result.epochs_run(), result.seconds());
      }
    } else {
      const pb::FailRequest& request = *outcome.fail;
      spdlog::warn("job {}: failed ({}): {}", lease.job_id(), request.retryable() ? "retryable" : "not retryable",
                   request.reason());
      pb::FailResponse response;
      status = UntilAnswered(lease, control, outcome.credential, "failure", [&](grpc::ClientContext& context) {
        return stub_->Fail(&context, request, &response);
      });
      if (!status.ok()) {
        spdlog::error("job {}: could not report its failure: {}", lease.job_id(),
                      rpc::DescribeCallFailure(status, options_.connection.address).ToString());
      }
    }
    if (held_ == nullptr) return;
    if (IsTransient(status) && !control.Dismissed() && control.ValidFor().count() > 0) {
      spdlog::warn("job {}: its {} stays in {} for the next worker started with that state folder (lease {} may "
                   "be valid for {} ms more)", lease.job_id(), outcome.complete ? "result" : "failure", held_->dir(),
                   lease.lease_id(), control.ValidFor().count());
      held_->Leave(lease.lease_id());
    } else {
      held_->Release(lease.lease_id());
    }
  }

  // Delivers the outcomes an earlier process left in the state folder (HeldResults::TakeOrphans), each in
  // the name of the worker its lease was granted to, while its lease could still be valid; the
  // coordinator's fencing decides whether it is still wanted. Runs on a thread of its own at start.
  void DeliverOrphans(std::vector<HeldOutcome> orphans) {
    for (const HeldOutcome& held : orphans) {
      const char* what = held.complete ? "result" : "failure";
      const int64_t left_ms = held.valid_until_unix_ms - NowUnixMs();
      if (left_ms <= 0) {
        spdlog::warn("job {}: dropping the {} an earlier run left in {} (lease {}, attempt {}): its lease expired "
                     "{} ms ago at the latest", held.job_id, what, held_->dir(), held.lease_id, held.attempt, -left_ms);
        held_->Release(held.lease_id);
        continue;
      }
      if (held.coordinator != options_.connection.address) {
        spdlog::info("job {}: the {} in {} (lease {}) is for coordinator {}, not {}; left there", held.job_id, what,
                     held_->dir(), held.lease_id, held.coordinator, options_.connection.address);
        held_->Leave(held.lease_id);
        continue;
      }
      spdlog::info("job {}: delivering the {} an earlier run left in {} (lease {}, attempt {}, worker {}; the lease "
                   "may be valid for {} ms more)", held.job_id, what, held_->dir(), held.lease_id, held.attempt,
                   held.worker_id, left_ms);
      JobControl control;
      control.valid_until_ms.store(SteadyNowMs() + left_ms);
      pb::Lease lease;
      lease.set_lease_id(held.lease_id);
      lease.set_job_id(held.job_id);
      lease.set_attempt(held.attempt);
      Deliver(held, lease, control);
    }
  }

  std::string JoinDevices() const {
    std::string out;
    for (const auto& d : slot_devices_) out += (out.empty() ? "" : ",") + d;
    return out;
  }

  WorkerDaemonOptions options_;
  std::vector<std::string> slot_devices_;  // one entry per slot; fixed before the loop starts
  std::unique_ptr<pb::WorkerService::Stub> stub_;  // thread-safe (gRPC's)
  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  // The RPC thread: runs the loop's Register and Heartbeat calls one at a time (blocking calls).
  asio::io_context rpc_ioc_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> rpc_work_;
  std::thread rpc_thread_;

  // Owned by the loop thread.
  asio::steady_timer heartbeat_timer_, register_timer_, drain_timer_;
  std::optional<asio::signal_set> signals_;
  Backoff register_backoff_;
  int register_failures_ = 0;  // retryable Register failures in a row
  std::vector<std::filesystem::path> data_roots_;  // canonical; set by Run() before any slot starts
  std::unique_ptr<HeldResults> held_;  // outcomes kept on disk; null without a state folder
  std::thread orphans_thread_;         // delivers what an earlier process left (DeliverOrphans)
  std::string worker_id_;
  std::string credential_;  // worker_id_'s credential (never logged)
  milliseconds heartbeat_interval_{1000};
  bool register_in_flight_ = false;
  bool heartbeat_in_flight_ = false;
  bool heartbeat_again_ = false;
  bool slots_started_ = false;
  bool draining_ = false;
  bool hard_stop_ = false;
  bool shutting_down_ = false;
  int live_slots_ = 0;
  std::map<std::string, std::shared_ptr<JobControl>> running_;  // by lease id
  std::set<grpc::ClientContext*> acquires_;                     // Acquire calls in flight (slot-owned)
  std::set<grpc::ClientContext*> loop_calls_;                   // Register/Heartbeat calls in flight
  Status run_status_;
  std::vector<std::thread> slots_;  // started on the loop, joined by Run() after the loop ends

  // Written by the loop, read by slot threads so that their sleeps end early when draining starts.
  std::atomic<bool> acquiring_stopped_{false};
  // Set by the loop on a hard stop (drain timeout, second signal, fatal error): outcomes still waiting
  // for the coordinator are given up after one more try.
  std::atomic<bool> stop_now_{false};
  // The lease TTL the coordinator announced at Register (for leases that do not carry their own).
  std::atomic<int64_t> lease_ttl_ms_{30000};
};

WorkerDaemon::WorkerDaemon(WorkerDaemonOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
WorkerDaemon::~WorkerDaemon() = default;
Status WorkerDaemon::Run() { return impl_->Run(); }
void WorkerDaemon::RequestDrain() { impl_->RequestDrain(); }

}  // namespace dwarp::worker
