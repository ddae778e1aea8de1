#include "coordinator/grpc_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/server_context.h>
#include <spdlog/spdlog.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <limits>

#include "common/rpc/connection.h"
#include "common/rpc/job_result_message.h"
#include "coordinator/memory_store.h"
#include "coordinator/worker_credentials.h"
#include "dwarp/v1/dwarp.grpc.pb.h"

namespace dwarp::coordinator {

namespace v1 = ::dwarp::v1;

namespace {

// ---------------------------------------------------------------------------------------------------
// Rows <-> messages (the only place they meet; a result converts with common/rpc/job_result_message.h,
// which the worker daemon uses too)

void FillMetric(const MetricRow& row, v1::MetricPoint* point) {
  point->set_epoch(row.epoch);
  point->set_train_loss(row.train_loss);
  point->set_val_score(row.val_score);
  point->set_time_unix_ms(row.time_ms);
}

// The job's key on the wire; d travels as its text ("0", "300", "full").
void FillJobKey(const JobRow& row, v1::JobKey* key) {
  key->set_model(row.model);
  key->set_layer(row.layer);
  key->set_dataset(row.dataset);
  key->set_d(row.d.ToString());
  key->set_seed(row.seed);
  key->set_variant(row.variant);
}

void FillJob(const JobView& view, v1::Job* job) {
  const JobRow& row = view.job;
  job->set_job_id(row.job_id);
  job->set_sweep_id(row.sweep_id);
  FillJobKey(row, job->mutable_key());
  job->set_state(static_cast<v1::JobState>(row.state));
  job->set_attempt(row.attempt);
  job->set_worker_id(row.worker_id);
  job->set_error(row.error);
  job->set_spec_json(row.spec_json);
  job->set_created_unix_ms(row.created_ms);
  job->set_started_unix_ms(row.started_ms);
  job->set_finished_unix_ms(row.finished_ms);
  job->set_reason(row.reason);
  if (view.latest_metric) FillMetric(*view.latest_metric, job->mutable_latest_metric());
  if (row.result) *job->mutable_result() = rpc::JobResultToProto(*row.result);
}

// Threshold kinds cross the wire as casts (common/sweep_spec.h).
static_assert(static_cast<int>(ThresholdKind::kAbsolute) == v1::Threshold::ABSOLUTE &&
                  static_cast<int>(ThresholdKind::kFractionOfGroupBest) == v1::Threshold::FRACTION_OF_GROUP_BEST &&
                  static_cast<int>(ThresholdKind::kFractionOfDatasetBest) == v1::Threshold::FRACTION_OF_DATASET_BEST &&
                  static_cast<int>(ThresholdKind::kFractionOfFull) == v1::Threshold::FRACTION_OF_FULL &&
                  static_cast<int>(ThresholdKind::kFractionOfNoiseCeiling) == v1::Threshold::FRACTION_OF_NOISE_CEILING,
              "ThresholdKind and dwarp.v1.Threshold.Kind number their kinds alike");

void FillSweep(const SweepSummary& summary, v1::Sweep* sweep) {
  sweep->set_sweep_id(summary.row.sweep_id);
  sweep->set_name(summary.row.name);
  sweep->set_state(static_cast<v1::SweepState>(summary.row.state));
  sweep->set_created_unix_ms(summary.row.created_ms);
  sweep->set_finished_unix_ms(summary.row.finished_ms);
  sweep->set_spec_json(summary.row.spec_json);
  sweep->mutable_threshold()->set_kind(static_cast<v1::Threshold::Kind>(summary.spec.threshold.kind));
  sweep->mutable_threshold()->set_value(summary.spec.threshold.value);
  sweep->set_early_stop(summary.spec.early_stop);
  sweep->set_max_attempts(summary.spec.max_attempts);
  v1::JobCounts* counts = sweep->mutable_counts();
  counts->set_total(summary.counts.total);
  counts->set_queued(summary.counts.queued);
  counts->set_running(summary.counts.running);
  counts->set_succeeded(summary.counts.succeeded);
  counts->set_failed(summary.counts.failed);
  counts->set_cancelled(summary.counts.cancelled);
}

void FillDWarp(const GroupDWarp& group, v1::DWarpRecord* record) {
  record->set_model(group.model);
  record->set_layer(group.layer);
  record->set_dataset(group.dataset);
  record->set_variant(group.variant);
  record->set_status(static_cast<v1::DWarpStatus>(group.status));
  record->set_d_warp(group.d_warp);
  record->set_threshold(group.threshold);
  record->set_grid_d(group.grid_d);
  record->set_below_d(group.below_d);
  record->set_best_score(group.best_score);
  record->set_best_d(group.best_d.ToString());
  record->set_has_full(group.has_full);
  record->set_full_score(group.full_score);
  if (std::isfinite(group.noise_ceiling)) record->set_noise_ceiling(group.noise_ceiling);
  if (!std::isnan(group.d_warp_low)) record->set_d_warp_low(group.d_warp_low);
  if (!std::isnan(group.d_warp_high)) record->set_d_warp_high(group.d_warp_high);
  record->set_interval_bootstrap(group.interval_bootstrap);
  record->set_note(group.note);
  for (const CurvePointSummary& point : group.curve) {
    v1::CurvePoint* out = record->add_curve();
    out->set_d(point.d.ToString());
    out->set_mean_score(point.mean_score);
    out->set_std_score(point.std_score);
    out->set_seeds_done(point.seeds_done);
    out->set_seeds_total(point.seeds_total);
  }
}

void FillWorker(const WorkerView& view, v1::WorkerInfo* info) {
  const WorkerRow& row = view.row;
  info->set_worker_id(row.worker_id);
  info->set_name(row.name);
  info->set_host(row.host);
  for (const std::string& device : row.devices) info->add_devices(device);
  info->set_registered_unix_ms(row.registered_ms);
  info->set_last_seen_unix_ms(row.last_seen_ms);
  info->set_running_jobs(view.running_jobs);
  info->set_consecutive_failures(row.consecutive_failures);
  info->set_blocked(row.blocked);
  info->set_draining(row.draining);
  info->set_jobs_succeeded(row.jobs_succeeded);
  info->set_jobs_failed(row.jobs_failed);
}

// ---------------------------------------------------------------------------------------------------
// Message size

// Room left for what a message may add beyond what was measured (a count field, a token).
constexpr size_t kSizeSlackBytes = 1024;

// What one element of a repeated message field adds to its parent: the element, its tag and its length.
size_t EncodedElementSize(const google::protobuf::Message& element) {
  const size_t body = element.ByteSizeLong();
  size_t length_bytes = 1;
  for (size_t rest = body >> 7; rest != 0; rest >>= 7) ++length_bytes;
  return 1 + length_bytes + body;  // every repeated field here has a field number below 16: a 1-byte tag
}

// How many bytes of elements fit into a message of which `base` bytes are already used.
size_t RoomFor(size_t max_message_bytes, size_t base) {
  return base + kSizeSlackBytes >= max_message_bytes ? 0 : max_message_bytes - base - kSizeSlackBytes;
}

// Results pages are named by the last job id they hold: "after:<job id>".
constexpr char kPageTokenPrefix[] = "after:";

std::string PageTokenAfter(int64_t job_id) { return kPageTokenPrefix + std::to_string(job_id); }

StatusOr<int64_t> JobIdOfPageToken(const std::string& token) {
  const std::string prefix = kPageTokenPrefix;
  const auto refused = [&] {
    return InvalidArgumentError("page_token '" + token.substr(0, 64) + (token.size() > 64 ? "...'" : "'") +
                                " is not one this coordinator gave; expected the next_page_token of the previous "
                                "page, or empty for the first page");
  };
  if (token.compare(0, prefix.size(), prefix) != 0 || token.size() == prefix.size() || token.size() > prefix.size() + 18)
    return refused();
  int64_t job_id = 0;
  for (size_t i = prefix.size(); i < token.size(); ++i) {
    if (token[i] < '0' || token[i] > '9') return refused();
    job_id = job_id * 10 + (token[i] - '0');
  }
  return job_id;
}

// List and DWarp pages are named by the position of their first element: "at:<index>". Sweeps are only
// ever appended (by creation order) and a sweep's groups are fixed by its spec, so a position stays valid.
constexpr char kPositionTokenPrefix[] = "at:";

std::string PositionToken(size_t index) { return kPositionTokenPrefix + std::to_string(index); }

// The first index of the page a request asks for: 0 without a token; InvalidArgument for a negative
// page_size, a token with page_size 0, or a token this coordinator did not give (or past `count`).
StatusOr<size_t> FirstOfPage(int32_t page_size, const std::string& token, size_t count) {
  if (page_size < 0)
    return InvalidArgumentError("page_size = " + std::to_string(page_size) +
                                "; expected 0 (everything at once) or a positive number per page");
  if (token.empty()) return size_t{0};
  if (page_size == 0)
    return InvalidArgumentError(
        "page_token given with page_size 0; expected page_size > 0 when asking for a later page");
  const std::string prefix = kPositionTokenPrefix;
  size_t index = 0;
  bool valid = token.compare(0, prefix.size(), prefix) == 0 && token.size() > prefix.size() &&
               token.size() <= prefix.size() + 18;
  for (size_t i = prefix.size(); valid && i < token.size(); ++i) {
    valid = token[i] >= '0' && token[i] <= '9';
    index = index * 10 + static_cast<size_t>(token[i] - '0');
  }
  if (!valid || index > count)
    return InvalidArgumentError("page_token '" + token.substr(0, 64) + (token.size() > 64 ? "...'" : "'") +
                                " is not one this coordinator gave; expected the next_page_token of the previous "
                                "page, or empty for the first page");
  return index;
}

// Fills one page of `count` elements, from `first`, into a response of which `base_bytes` are already
// used: `make(i)` builds element i, `add(element)` appends it to the response. At most page_size elements
// (0: all, or RESOURCE_EXHAUSTED from `all_too_large` when they do not fit), fewer when the message limit
// comes first; *next_token names the rest, if any. One element larger than a message: RESOURCE_EXHAUSTED
// from `one_too_large(i, bytes)`.
template <typename Element, typename Make, typename Add>
grpc::Status FillPage(size_t count, size_t first, int32_t page_size, size_t max_message_bytes, size_t base_bytes,
                      Make make, Add add, std::string* next_token, const std::function<std::string()>& all_too_large,
                      const std::function<std::string(size_t, size_t)>& one_too_large) {
  const auto exhausted = [&](const std::string& what) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        what + " (this coordinator's message limit is " + std::to_string(max_message_bytes) +
                            " bytes)");
  };
  const size_t end = page_size == 0 ? count : std::min(count, first + static_cast<size_t>(page_size));
  size_t room = RoomFor(max_message_bytes, base_bytes);
  size_t added = 0;
  size_t i = first;
  for (; i < end; ++i) {
    Element element = make(i);
    const size_t bytes = EncodedElementSize(element);
    if (bytes > room) {
      if (page_size == 0) return exhausted(all_too_large());
      if (added == 0) return exhausted(one_too_large(i, bytes));
      break;
    }
    room -= bytes;
    add(std::move(element));
    ++added;
  }
  next_token->clear();
  if (i < count) *next_token = PositionToken(i);
  return grpc::Status::OK;
}

// ---------------------------------------------------------------------------------------------------
// Authentication

class TokenCheck {
 public:
  explicit TokenCheck(std::string token) : token_(std::move(token)) {}

  grpc::Status operator()(const grpc::ServerContext* context) const {
    if (token_.empty()) return grpc::Status::OK;
    const auto& metadata = context->client_metadata();
    auto found = metadata.find("authorization");
    if (found == metadata.end())
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "this coordinator requires a token: pass --token-file or set DWARP_TOKEN");
    const std::string header(found->second.data(), found->second.size());
    if (!rpc::TokensEqual(rpc::TokenFromAuthorizationHeader(header), token_))
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "the token sent does not match the coordinator's");
    return grpc::Status::OK;
  }

 private:
  std::string token_;
};

// The worker credential a call carries ("" when none).
std::string PresentedCredential(const grpc::ServerContext* context) {
  const auto& metadata = context->client_metadata();
  auto found = metadata.find(kWorkerCredentialMetadata);
  if (found == metadata.end()) return "";
  return std::string(found->second.data(), found->second.size());
}

grpc::Status CredentialRefusal(WorkerCredentials::Check check, const std::string& worker_id) {
  return grpc::Status(check == WorkerCredentials::Check::kMissing ? grpc::StatusCode::UNAUTHENTICATED
                                                                 : grpc::StatusCode::PERMISSION_DENIED,
                      WorkerCredentials::Describe(check, worker_id));
}

#define DWARP_CHECK_TOKEN(context)                          \
  do {                                                      \
    grpc::Status auth_status_ = token_check_(context);      \
    if (!auth_status_.ok()) return auth_status_;            \
  } while (0)

// ---------------------------------------------------------------------------------------------------
// SweepService

class SweepServiceImpl final : public v1::SweepService::Service {
 public:
  SweepServiceImpl(Scheduler* scheduler, TokenCheck token_check, size_t max_message_bytes)
      : scheduler_(scheduler), token_check_(std::move(token_check)), max_message_bytes_(max_message_bytes) {}

  grpc::Status Submit(grpc::ServerContext* context, const v1::SubmitRequest* request,
                      v1::SubmitResponse* response) override {
    DWARP_CHECK_TOKEN(context);
    SubmitRequestData data;
    data.text = request->sweep_text();
    if (request->format() == "yaml" || request->format() == "yml" || request->format().empty()) {
      data.format = SpecFormat::kYaml;
    } else if (request->format() == "json") {
      data.format = SpecFormat::kJson;
    } else {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "format = '" + request->format() + "'; expected yaml or json");
    }
    data.overrides.assign(request->overrides().begin(), request->overrides().end());
    data.base_dir = request->base_dir();
    data.source_name = request->source_name();
    data.dry_run = request->dry_run();
    data.request_id = request->request_id();
    auto result = scheduler_->Submit(data);
    if (!result.ok()) return rpc::ToGrpcStatus(result.status());
    FillSweep(result->sweep, response->mutable_sweep());
    response->set_already_submitted(result->already_submitted);
    // A stored sweep's jobs are read with Results, a page at a time; a dry run lists what fits.
    if (!request->dry_run()) return grpc::Status::OK;
    size_t room = RoomFor(max_message_bytes_, response->ByteSizeLong());
    for (const JobRow& row : result->jobs) {
      v1::Job job;
      FillJob(JobView{row, std::nullopt}, &job);
      const size_t bytes = EncodedElementSize(job);
      if (bytes > room) break;
      room -= bytes;
      *response->add_jobs() = std::move(job);
    }
    response->set_jobs_omitted(static_cast<int32_t>(result->jobs.size()) - response->jobs_size());
    return grpc::Status::OK;
  }

  grpc::Status Get(grpc::ServerContext* context, const v1::GetSweepRequest* request, v1::Sweep* response) override {
    DWARP_CHECK_TOKEN(context);
    auto sweep = scheduler_->GetSweep(request->sweep_id());
    if (!sweep.ok()) return rpc::ToGrpcStatus(sweep.status());
    FillSweep(*sweep, response);
    return grpc::Status::OK;
  }

  grpc::Status List(grpc::ServerContext* context, const v1::ListSweepsRequest* request,
                    v1::ListSweepsResponse* response) override {
    DWARP_CHECK_TOKEN(context);
    const std::vector<SweepSummary> sweeps = scheduler_->ListSweeps();
    auto first = FirstOfPage(request->page_size(), request->page_token(), sweeps.size());
    if (!first.ok()) return rpc::ToGrpcStatus(first.status());
    std::string next_token;
    grpc::Status status = FillPage<v1::Sweep>(
        sweeps.size(), *first, request->page_size(), max_message_bytes_, 0,
        [&](size_t i) {
          v1::Sweep sweep;
          FillSweep(sweeps[i], &sweep);
          return sweep;
        },
        [&](v1::Sweep&& sweep) { *response->add_sweeps() = std::move(sweep); }, &next_token,
        [&] {
          return "the " + std::to_string(sweeps.size()) +
                 " sweeps do not fit in one message: ask for them a page at a time (ListSweepsRequest.page_size, "
                 "as `dwarp list` does)";
        },
        [&](size_t i, size_t bytes) {
          return "sweep '" + sweeps[i].row.sweep_id + "' is " + std::to_string(bytes) +
                 " bytes: more than one message can hold";
        });
    if (!status.ok()) return status;
    response->set_next_page_token(next_token);
    return grpc::Status::OK;
  }

  grpc::Status Cancel(grpc::ServerContext* context, const v1::CancelSweepRequest* request,
                      v1::CancelSweepResponse* response) override {
    DWARP_CHECK_TOKEN(context);
    auto result = scheduler_->Cancel(request->sweep_id());
    if (!result.ok()) return rpc::ToGrpcStatus(result.status());
    FillSweep(result->sweep, response->mutable_sweep());
    response->set_cancelled_queued(result->cancelled_queued);
    response->set_cancelling_running(result->cancelling_running);
    return grpc::Status::OK;
  }

  grpc::Status Watch(grpc::ServerContext* context, const v1::WatchRequest* request,
                     grpc::ServerWriter<v1::WatchEvent>* writer) override {
    DWARP_CHECK_TOKEN(context);
    auto subscription = scheduler_->Watch(request->sweep_id());
    if (!subscription.ok()) return rpc::ToGrpcStatus(subscription.status());
    v1::WatchEvent first;
    v1::WatchSnapshot* snapshot = first.mutable_snapshot();
    FillSweep(subscription->sweep, snapshot->mutable_sweep());
    for (const GroupDWarp& group : subscription->dwarp) FillDWarp(group, snapshot->add_dwarp());
    std::shared_ptr<WatchQueue> queue = subscription->queue;
    // The snapshot's jobs: those that fit in the first event, the others in snapshot_jobs events right after
    // it (each with at least one job, so that the snapshot always ends).
    const std::vector<JobView>& jobs = subscription->jobs;
    size_t next = 0;
    size_t room = RoomFor(max_message_bytes_, first.ByteSizeLong());
    for (; next < jobs.size(); ++next) {
      v1::Job job;
      FillJob(jobs[next], &job);
      const size_t bytes = EncodedElementSize(job);
      if (bytes > room) break;
      room -= bytes;
      *snapshot->add_jobs() = std::move(job);
    }
    snapshot->set_jobs_to_follow(static_cast<int32_t>(jobs.size() - next));
    bool delivered = writer->Write(first);
    while (delivered && next < jobs.size()) {
      v1::WatchEvent more;
      v1::SnapshotJobs* part = more.mutable_snapshot_jobs();
      room = RoomFor(max_message_bytes_, 0);
      for (; next < jobs.size(); ++next) {
        v1::Job job;
        FillJob(jobs[next], &job);
        const size_t bytes = EncodedElementSize(job);
        if (bytes > room && part->jobs_size() > 0) break;
        room -= std::min(room, bytes);
        *part->add_jobs() = std::move(job);
      }
      delivered = writer->Write(more);
    }
    if (!delivered) {
      scheduler_->Unwatch(queue);
      return grpc::Status::OK;
    }
    while (!context->IsCancelled()) {
      std::optional<WatchEventData> event = queue->Pop(250);
      if (!event) {
        if (queue->closed()) break;
        continue;
      }
      v1::WatchEvent out;
      if (const auto* job = std::get_if<JobView>(&*event)) {
        FillJob(*job, out.mutable_job());
      } else if (const auto* metric = std::get_if<MetricRow>(&*event)) {
        out.mutable_metric()->set_job_id(metric->job_id);
        out.mutable_metric()->set_attempt(metric->attempt);
        FillMetric(*metric, out.mutable_metric()->mutable_point());
      } else if (const auto* group = std::get_if<GroupDWarp>(&*event)) {
        FillDWarp(*group, out.mutable_dwarp());
      } else if (const auto* sweep = std::get_if<SweepSummary>(&*event)) {
        FillSweep(*sweep, out.mutable_sweep());
      }
      if (!writer->Write(out)) break;
    }
    const bool overflowed = queue->overflowed();
    scheduler_->Unwatch(queue);
    if (overflowed)
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "this watcher fell too far behind the sweep's events; watch again for a fresh snapshot");
    return grpc::Status::OK;
  }

  grpc::Status Results(grpc::ServerContext* context, const v1::ResultsRequest* request,
                       v1::ResultsResponse* response) override {
    DWARP_CHECK_TOKEN(context);
    const int32_t page_size = request->page_size();
    if (page_size < 0)
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "page_size = " + std::to_string(page_size) +
                              "; expected 0 (every job at once) or a positive number of jobs per page");
    int64_t after_job_id = 0;
    if (!request->page_token().empty()) {
      if (page_size == 0)
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "page_token given with page_size 0; expected page_size > 0 when asking for a later page");
      auto after = JobIdOfPageToken(request->page_token());
      if (!after.ok()) return rpc::ToGrpcStatus(after.status());
      after_job_id = *after;
    }
    const bool every_job = page_size == 0;
    auto page = scheduler_->JobsPage(request->sweep_id(), after_job_id,
                                     every_job ? std::numeric_limits<size_t>::max() : static_cast<size_t>(page_size));
    if (!page.ok()) return rpc::ToGrpcStatus(page.status());
    FillSweep(page->sweep, response->mutable_sweep());
    const auto too_large = [&](const std::string& what) {
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          what + " (this coordinator's message limit is " + std::to_string(max_message_bytes_) +
                              " bytes)");
    };
    size_t room = RoomFor(max_message_bytes_, response->ByteSizeLong());
    bool cut_short = false;
    for (const JobView& view : page->jobs) {
      v1::Job job;
      FillJob(view, &job);
      size_t bytes = EncodedElementSize(job);
      std::vector<v1::JobMetrics> curves;
      if (request->include_metrics() && view.job.attempt > 0) {
        auto points = scheduler_->Metrics(view.job.job_id);
        if (!points.ok()) return rpc::ToGrpcStatus(points.status());
        for (const MetricRow& point : *points) {
          if (curves.empty() || curves.back().attempt() != point.attempt) {
            curves.emplace_back();
            curves.back().set_job_id(point.job_id);
            curves.back().set_attempt(point.attempt);
          }
          FillMetric(point, curves.back().add_points());
        }
        for (const v1::JobMetrics& curve : curves) bytes += EncodedElementSize(curve);
      }
      if (bytes > room) {
        if (every_job)
          return too_large("the " + std::to_string(page->sweep.counts.total) + " jobs of sweep '" +
                           page->sweep.row.sweep_id + "'" + (request->include_metrics() ? " with their curves" : "") +
                           " do not fit in one message: ask for them a page at a time (ResultsRequest.page_size, "
                           "as `dwarp results` does)");
        if (response->jobs_size() == 0)
          return too_large("job " + std::to_string(view.job.job_id) + " of sweep '" + page->sweep.row.sweep_id +
                           "' is " + std::to_string(bytes) + " bytes with its curves: more than one message can hold");
        cut_short = true;
        break;
      }
      room -= bytes;
      *response->add_jobs() = std::move(job);
      for (v1::JobMetrics& curve : curves) *response->add_metrics() = std::move(curve);
    }
    if ((cut_short || page->remaining > 0) && response->jobs_size() > 0)
      response->set_next_page_token(PageTokenAfter(response->jobs(response->jobs_size() - 1).job_id()));
    return grpc::Status::OK;
  }

  grpc::Status DWarp(grpc::ServerContext* context, const v1::DWarpRequest* request,
                     v1::DWarpResponse* response) override {
    DWARP_CHECK_TOKEN(context);
    auto sweep = scheduler_->GetSweep(request->sweep_id());
    if (!sweep.ok()) return rpc::ToGrpcStatus(sweep.status());
    auto records = scheduler_->DWarp(sweep->row.sweep_id);
    if (!records.ok()) return rpc::ToGrpcStatus(records.status());
    auto first = FirstOfPage(request->page_size(), request->page_token(), records->size());
    if (!first.ok()) return rpc::ToGrpcStatus(first.status());
    FillSweep(*sweep, response->mutable_sweep());
    std::string next_token;
    grpc::Status status = FillPage<v1::DWarpRecord>(
        records->size(), *first, request->page_size(), max_message_bytes_, response->ByteSizeLong(),
        [&](size_t i) {
          v1::DWarpRecord record;
          FillDWarp((*records)[i], &record);
          return record;
        },
        [&](v1::DWarpRecord&& record) { *response->add_records() = std::move(record); }, &next_token,
        [&] {
          return "the " + std::to_string(records->size()) + " d_warp records of sweep '" + sweep->row.sweep_id +
                 "' do not fit in one message: ask for them a page at a time (DWarpRequest.page_size, as `dwarp "
                 "dwarp` does)";
        },
        [&](size_t i, size_t bytes) {
          const GroupDWarp& group = (*records)[i];
          return "the d_warp record of group " + group.model + "/" + group.layer + "/" + group.dataset + " is " +
                 std::to_string(bytes) + " bytes: more than one message can hold";
        });
    if (!status.ok()) return status;
    response->set_next_page_token(next_token);
    return grpc::Status::OK;
  }

  grpc::Status ListWorkers(grpc::ServerContext* context, const v1::ListWorkersRequest*,
                           v1::ListWorkersResponse* response) override {
    DWARP_CHECK_TOKEN(context);
    for (const WorkerView& worker : scheduler_->Workers()) FillWorker(worker, response->add_workers());
    return grpc::Status::OK;
  }

 private:
  Scheduler* scheduler_;
  TokenCheck token_check_;
  const size_t max_message_bytes_;
};

// ---------------------------------------------------------------------------------------------------
// WorkerService

class WorkerServiceImpl final : public v1::WorkerService::Service {
 public:
  WorkerServiceImpl(Scheduler* scheduler, TokenCheck token_check, WorkerCredentials* credentials)
      : scheduler_(scheduler), token_check_(std::move(token_check)), credentials_(credentials) {}

  // Register with no worker id: a new worker, with a new credential. With an id: that worker's credential
  // must come with it (it keeps its id and credential); an id with no credential here (unknown, or from
  // before credentials) is not taken over: the caller gets a new id and credential instead.
  grpc::Status Register(grpc::ServerContext* context, const v1::RegisterRequest* request,
                        v1::RegisterResponse* response) override {
    DWARP_CHECK_TOKEN(context);
    std::string worker_id = request->worker_id();
    if (!worker_id.empty()) {
      const WorkerCredentials::Check check = credentials_->Verify(worker_id, PresentedCredential(context));
      if (check == WorkerCredentials::Check::kNoCredential) {
        spdlog::info("worker '{}' asked to register again but has no credential here; registering it under a new id",
                     worker_id.substr(0, 64));
        worker_id.clear();
      } else if (check != WorkerCredentials::Check::kOk) {
        return CredentialRefusal(check, worker_id);
      }
    }
    std::vector<std::string> devices(request->devices().begin(), request->devices().end());
    auto worker = scheduler_->Register(request->name(), request->host(), devices, worker_id);
    if (!worker.ok()) return rpc::ToGrpcStatus(worker.status());
    if (worker_id.empty()) {
      auto credential = credentials_->Issue(worker->worker_id);
      if (!credential.ok()) return rpc::ToGrpcStatus(credential.status());
      response->set_worker_credential(*credential);
    }
    response->set_worker_id(worker->worker_id);
    response->set_lease_ttl_ms(scheduler_->options().lease_ttl_ms);
    response->set_heartbeat_interval_ms(scheduler_->options().heartbeat_interval_ms);
    return grpc::Status::OK;
  }

  grpc::Status Acquire(grpc::ServerContext* context, const v1::AcquireRequest* request,
                       v1::AcquireResponse* response) override {
    DWARP_CHECK_TOKEN(context);
    if (const auto check = credentials_->Verify(request->worker_id(), PresentedCredential(context));
        check != WorkerCredentials::Check::kOk) {
      if (check != WorkerCredentials::Check::kNoCredential) return CredentialRefusal(check, request->worker_id());
      // As for a worker the scheduler does not know: stop, and a heartbeat will have it register again.
      response->set_stop(true);
      response->set_reason(WorkerCredentials::Describe(check, request->worker_id()));
      return grpc::Status::OK;
    }
    // A long-poll must not outlive the client's deadline: it would hand out a lease nobody receives.
    int64_t wait_ms = request->wait_ms();
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(context->deadline() -
                                                                             std::chrono::system_clock::now());
    if (left.count() > 0) wait_ms = std::min<int64_t>(wait_ms, left.count() - 200);
    auto result = scheduler_->Acquire(request->worker_id(), request->device(), std::max<int64_t>(wait_ms, 0));
    if (!result.ok()) return rpc::ToGrpcStatus(result.status());
    response->set_stop(result->stop);
    response->set_reason(result->reason);
    if (result->lease) {
      const Lease& lease = *result->lease;
      v1::Lease* out = response->mutable_lease();
      out->set_lease_id(lease.lease_id);
      out->set_job_id(lease.job.job_id);
      out->set_sweep_id(lease.job.sweep_id);
      out->set_attempt(lease.job.attempt);
      FillJobKey(lease.job, out->mutable_key());
      out->set_spec_json(lease.job.spec_json);
      out->set_ttl_ms(lease.ttl_ms);
      out->set_expires_unix_ms(lease.expires_ms);
    }
    return grpc::Status::OK;
  }

  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override {
    DWARP_CHECK_TOKEN(context);
    if (const auto check = credentials_->Verify(request->worker_id(), PresentedCredential(context));
        check != WorkerCredentials::Check::kOk) {
      if (check != WorkerCredentials::Check::kNoCredential) return CredentialRefusal(check, request->worker_id());
      response->set_unknown_worker(true);  // the worker registers again, and gets a credential
      return grpc::Status::OK;
    }
    std::vector<std::string> leases(request->lease_ids().begin(), request->lease_ids().end());
    auto result = scheduler_->Heartbeat(request->worker_id(), leases, request->draining());
    if (!result.ok()) return rpc::ToGrpcStatus(result.status());
    response->set_unknown_worker(result->unknown_worker);
    for (const LeaseCheck& check : result->leases) {
      v1::LeaseStatus* status = response->add_leases();
      status->set_lease_id(check.lease_id);
      status->set_valid(check.valid);
      status->set_cancel(check.cancel);
      status->set_expires_unix_ms(check.expires_ms);
    }
    return grpc::Status::OK;
  }

  grpc::Status StreamMetrics(grpc::ServerContext* context, grpc::ServerReader<v1::MetricBatch>* reader,
                             v1::StreamMetricsResponse* response) override {
    DWARP_CHECK_TOKEN(context);
    v1::MetricBatch batch;
    int64_t accepted = 0, rejected = 0;
    std::vector<MetricPointData> points;
    const std::string presented = PresentedCredential(context);
    std::string verified_worker;  // the worker id the stream's credential was checked for
    while (reader->Read(&batch)) {
      if (verified_worker.empty() || batch.worker_id() != verified_worker) {
        const auto check = credentials_->Verify(batch.worker_id(), presented);
        if (check != WorkerCredentials::Check::kOk) return CredentialRefusal(check, batch.worker_id());
        verified_worker = batch.worker_id();
      }
      points.clear();
      for (const v1::MetricPoint& point : batch.points())
        points.push_back({point.epoch(), point.train_loss(), point.val_score(), point.time_unix_ms()});
      if (scheduler_->RecordMetrics(batch.worker_id(), batch.lease_id(), points).ok()) {
        accepted += batch.points_size();
      } else {
        rejected += batch.points_size();
      }
    }
    response->set_accepted(accepted);
    response->set_rejected(rejected);
    return grpc::Status::OK;
  }

  grpc::Status Complete(grpc::ServerContext* context, const v1::CompleteRequest* request,
                        v1::CompleteResponse* response) override {
    DWARP_CHECK_TOKEN(context);
    if (const auto check = credentials_->Verify(request->worker_id(), PresentedCredential(context));
        check != WorkerCredentials::Check::kOk)
      return CredentialRefusal(check, request->worker_id());
    Status status = scheduler_->Complete(request->worker_id(), request->lease_id(), rpc::JobResultFromProto(request->result()));
    if (!status.ok()) return rpc::ToGrpcStatus(status);
    response->set_recorded(true);
    return grpc::Status::OK;
  }

  grpc::Status Fail(grpc::ServerContext* context, const v1::FailRequest* request, v1::FailResponse* response) override {
    DWARP_CHECK_TOKEN(context);
    if (const auto check = credentials_->Verify(request->worker_id(), PresentedCredential(context));
        check != WorkerCredentials::Check::kOk)
      return CredentialRefusal(check, request->worker_id());
    auto requeued = scheduler_->Fail(request->worker_id(), request->lease_id(), request->reason(), request->retryable());
    if (!requeued.ok()) return rpc::ToGrpcStatus(requeued.status());
    response->set_requeued(*requeued);
    return grpc::Status::OK;
  }

 private:
  Scheduler* scheduler_;
  TokenCheck token_check_;
  WorkerCredentials* const credentials_;
};

// The host part of a gRPC listen address: host:port, [v6]:port, a bare IPv6 address, with an optional
// ipv4:, ipv6: or dns:/// scheme.
std::string HostOf(std::string listen) {
  for (const char* scheme : {"dns:///", "ipv4:", "ipv6:"}) {
    if (listen.rfind(scheme, 0) == 0) {
      listen = listen.substr(std::string(scheme).size());
      break;
    }
  }
  if (!listen.empty() && listen.front() == '[') {
    auto close = listen.find(']');
    return close == std::string::npos ? listen : listen.substr(1, close - 1);
  }
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) return listen;
  if (listen.find(':') != colon) return listen;  // a bare IPv6 address without a port
  return listen.substr(0, colon);
}

}  // namespace

bool IsLoopbackAddress(const std::string& listen) {
  const std::string host = HostOf(listen);
  // The one name every resolver maps to loopback only (RFC 6761); any other name could resolve anywhere.
  if (host == "localhost") return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;  // 127.0.0.0/8
  in6_addr v6{};
  if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;  // ::1
    if (IN6_IS_ADDR_V4MAPPED(&v6)) return v6.s6_addr[12] == 127;  // ::ffff:127.x.x.x
  }
  return false;
}

std::string CleartextTokenWarning(const ServerOptions& options) {
  if (options.token.empty() || !options.tls_cert.empty() || IsLoopbackAddress(options.listen)) return "";
  return "serving on non-loopback address '" + options.listen +
         "' with a token but without TLS: the token and every sweep, spec and result cross the network in "
         "cleartext, so anyone who can watch that network can read the token and act as any worker or user; "
         "add --tls-cert and --tls-key (clients: --tls-ca), or keep the network private";
}

struct CoordinatorServer::Services {
  Services(Scheduler* scheduler, const std::string& token, size_t max_message_bytes,
           std::unique_ptr<MemorySweepStore> own_store, std::unique_ptr<WorkerCredentials> worker_credentials)
      : credential_store(std::move(own_store)),
        credentials(std::move(worker_credentials)),
        sweeps(scheduler, TokenCheck(token), max_message_bytes),
        workers(scheduler, TokenCheck(token), credentials.get()) {}
  std::unique_ptr<MemorySweepStore> credential_store;  // when the caller gave no store
  std::unique_ptr<WorkerCredentials> credentials;
  SweepServiceImpl sweeps;
  WorkerServiceImpl workers;
};

Status CheckServerOptions(const ServerOptions& options) {
  DWARP_RETURN_IF_ERROR(rpc::CheckAddressPort(options.listen, "--listen", /*allow_any_port=*/true));
  if (!IsLoopbackAddress(options.listen) && options.token.empty() && !options.insecure)
    return InvalidArgumentError("refusing to listen on non-loopback address '" + options.listen +
                                "' without a token: pass --token-file (or set DWARP_TOKEN), or --insecure to "
                                "accept unauthenticated calls from the network");
  if (options.tls_cert.empty() != options.tls_key.empty())
    return InvalidArgumentError("--tls-cert and --tls-key go together; got only one of them");
  if (!options.tls_client_ca.empty() && options.tls_cert.empty())
    return InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key");
  if (options.max_message_bytes != 0 && (options.max_message_bytes < ServerOptions::kMinMessageBytes ||
                                         options.max_message_bytes > rpc::kMaxMessageBytes))
    return InvalidArgumentError("max_message_bytes = " + std::to_string(options.max_message_bytes) + "; expected 0 or " +
                                std::to_string(ServerOptions::kMinMessageBytes) + ".." +
                                std::to_string(rpc::kMaxMessageBytes));
  for (const auto& [flag, file] : {std::pair<const char*, const std::string&>("--tls-cert", options.tls_cert),
                                   {"--tls-key", options.tls_key}, {"--tls-client-ca", options.tls_client_ca}}) {
    if (file.empty()) continue;
    if (auto text = rpc::ReadTextFile(file); !text.ok()) return NotFoundError(std::string(flag) + ": " + text.status().message());
  }
  return OkStatus();
}

StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(Scheduler* scheduler,
                                                                      const ServerOptions& options,
                                                                      SweepStore* credential_store) {
  DWARP_RETURN_IF_ERROR(CheckServerOptions(options));
  std::unique_ptr<MemorySweepStore> own_store;
  if (credential_store == nullptr) {
    own_store = std::make_unique<MemorySweepStore>();
    credential_store = own_store.get();
  }
  auto worker_credentials = WorkerCredentials::Load(credential_store);
  if (!worker_credentials.ok()) return worker_credentials.status();
  if (std::string warning = CleartextTokenWarning(options); !warning.empty()) spdlog::warn("{}", warning);
  const int max_message_bytes = options.max_message_bytes == 0 ? rpc::kMaxMessageBytes : options.max_message_bytes;

  std::shared_ptr<grpc::ServerCredentials> credentials;
  if (options.tls_cert.empty()) {
    credentials = grpc::InsecureServerCredentials();
  } else {
    auto cert = rpc::ReadTextFile(options.tls_cert);
    if (!cert.ok()) return NotFoundError("--tls-cert: " + cert.status().message());
    auto key = rpc::ReadTextFile(options.tls_key);
    if (!key.ok()) return NotFoundError("--tls-key: " + key.status().message());
    grpc::SslServerCredentialsOptions ssl(options.tls_client_ca.empty()
                                              ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                              : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    ssl.pem_key_cert_pairs.push_back({*key, *cert});
    if (!options.tls_client_ca.empty()) {
      auto ca = rpc::ReadTextFile(options.tls_client_ca);
      if (!ca.ok()) return NotFoundError("--tls-client-ca: " + ca.status().message());
      ssl.pem_root_certs = *ca;
    }
    credentials = grpc::SslServerCredentials(ssl);
  }

  std::unique_ptr<CoordinatorServer> server(new CoordinatorServer());
  server->services_ = std::make_unique<Services>(scheduler, options.token, static_cast<size_t>(max_message_bytes),
                                                 std::move(own_store), std::move(*worker_credentials));
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default, which lets a second coordinator bind the same port and share its
  // connections with the first: one address, one server.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(options.listen, credentials, &server->port_);
  builder.SetMaxReceiveMessageSize(max_message_bytes);
  builder.SetMaxSendMessageSize(max_message_bytes);
  builder.RegisterService(&server->services_->sweeps);
  builder.RegisterService(&server->services_->workers);
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0)
    return UnavailableError("cannot listen on '" + options.listen + "' (address in use, or not an address of this host?)");
  if (auto* health = server->server_->GetHealthCheckService()) {
    health->SetServingStatus(true);
    health->SetServingStatus("dwarp.v1.SweepService", true);
    health->SetServingStatus("dwarp.v1.WorkerService", true);
  }
  return server;
}

CoordinatorServer::~CoordinatorServer() { Shutdown(); }

void CoordinatorServer::Drain() {
  if (server_ == nullptr) return;
  if (auto* health = server_->GetHealthCheckService()) health->SetServingStatus(false);
}

void CoordinatorServer::Shutdown(int64_t deadline_ms) {
  if (shut_down_ || server_ == nullptr) return;
  shut_down_ = true;
  Drain();
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(deadline_ms));
}

void CoordinatorServer::Wait() {
  if (server_ != nullptr) server_->Wait();
}

}  // namespace dwarp::coordinator
