#include "clients/sweep/sweep_format.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <sstream>

namespace dwarp::clients {
namespace {

using Json = nlohmann::ordered_json;

// A double as JSON: null for NaN and infinities, which JSON cannot hold.
Json Number(double value) { return std::isfinite(value) ? Json(value) : Json(nullptr); }
Json TextOrNull(const std::string& text) { return text.empty() ? Json(nullptr) : Json(text); }

// Columns are aligned by characters as a terminal shows them, not bytes ("±" is two bytes, one column).
size_t DisplayWidth(std::string_view text) {
  return static_cast<size_t>(std::count_if(text.begin(), text.end(),
                                           [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// Table cells are one line: an error message with newlines would break the alignment.
std::string OneLine(std::string text) {
  std::replace_if(text.begin(), text.end(), [](char c) { return c == '\n' || c == '\r' || c == '\t'; }, ' ');
  return text;
}

std::string ShortestDouble(double value) {
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

std::string TableCell(const Json& cell) {
  if (cell.is_null()) return "-";
  if (cell.is_string()) return cell.get<std::string>().empty() ? "-" : OneLine(cell.get<std::string>());
  if (cell.is_boolean()) return cell.get<bool>() ? "yes" : "no";
  if (cell.is_number_float()) return FormatScore(cell.get<double>());
  return cell.dump();
}

std::string CsvCell(const Json& cell) {
  if (cell.is_null()) return "";
  if (cell.is_string()) return CsvField(cell.get<std::string>());
  if (cell.is_boolean()) return cell.get<bool>() ? "true" : "false";
  if (cell.is_number_float()) {
    const double value = cell.get<double>();
    return std::isfinite(value) ? ShortestDouble(value) : "";
  }
  return cell.dump();
}

std::string RenderTable(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(header.size(), 0);
  for (size_t c = 0; c < header.size(); ++c) widths[c] = DisplayWidth(header[c]);
  for (const auto& row : rows)
    for (size_t c = 0; c < row.size() && c < widths.size(); ++c) widths[c] = std::max(widths[c], DisplayWidth(row[c]));
  std::ostringstream out;
  auto line = [&](const std::vector<std::string>& cells) {
    std::string text;
    for (size_t c = 0; c < cells.size(); ++c) {
      text += cells[c];
      // The last column is not padded, so lines carry no trailing blanks.
      if (c + 1 < cells.size()) text += std::string(widths[c] - DisplayWidth(cells[c]) + 2, ' ');
    }
    out << text << '\n';
  };
  line(header);
  std::vector<std::string> rule;
  for (size_t width : widths) rule.push_back(std::string(width, '-'));
  line(rule);
  for (const auto& row : rows) line(row);
  return out.str();
}

std::vector<std::string> Keys(const Json& rows) {
  std::vector<std::string> keys;
  if (rows.empty()) return keys;
  for (const auto& item : rows.front().items()) keys.push_back(item.key());
  return keys;
}

Json JobKeyCells(const v1::JobKey& key) {
  Json row = Json::object();
  row["model"] = key.model();
  row["layer"] = key.layer();
  row["dataset"] = key.dataset();
  row["variant"] = key.variant();
  row["d"] = key.d();
  row["seed"] = key.seed();
  return row;
}

std::string LatestMetric(const v1::Job& job) {
  if (!job.has_latest_metric()) return "-";
  const v1::MetricPoint& point = job.latest_metric();
  return "ep " + std::to_string(point.epoch()) + " loss " + FormatScore(point.train_loss()) + " val " +
         FormatScore(point.val_score());
}

std::string DescribeSweep(const v1::Sweep& sweep) {
  std::string text = "sweep " + sweep.sweep_id();
  if (!sweep.name().empty()) text += " (" + sweep.name() + ")";
  return text + ": " + SweepStateName(sweep.state()) + ", " + FormatCounts(sweep.counts());
}

std::string DescribeGroup(const v1::DWarpRecord& record) {
  std::string text = record.dataset() + "/" + record.model() + "/" + record.layer();
  if (!record.variant().empty()) text += "/" + record.variant();
  return text;
}

// A group's threshold as a number, and for a noise-ceiling threshold how it was made: "0.8911 = 0.9 x noise
// ceiling 0.9901" ("-" while unknown).
std::string DescribeThreshold(const v1::Threshold& spec, const v1::DWarpRecord& record) {
  std::string text = FormatScore(record.threshold());
  if (spec.kind() == v1::Threshold::FRACTION_OF_NOISE_CEILING && record.has_noise_ceiling() &&
      std::isfinite(record.threshold())) {
    text += " = " + FormatScore(spec.value()) + " x noise ceiling " + FormatScore(record.noise_ceiling());
  }
  return text;
}

// A group's best score means something only once some d has a finished seed (the coordinator fills
// best_d with the first grid d before that).
bool HasBestScore(const v1::DWarpRecord& record) {
  if (record.best_d().empty()) return false;
  if (record.curve_size() == 0) return true;
  return std::any_of(record.curve().begin(), record.curve().end(),
                     [](const v1::CurvePoint& point) { return point.seeds_done() > 0; });
}

// The d_warp rows as a person reads them: d_warp with its status mark, "best @ d" in one cell.
std::string DWarpTable(const v1::DWarpResponse& response, bool with_note) {
  std::vector<std::string> header = {"dataset", "model",     "layer",    "variant", "status",
                                     "d_warp",  "interval", "threshold", "best @ d", "full"};
  if (with_note) header.push_back("note");
  std::vector<std::vector<std::string>> rows;
  for (const v1::DWarpRecord& record : response.records()) {
    std::vector<std::string> row = {record.dataset(), record.model(), record.layer(),
                                    record.variant().empty() ? "-" : record.variant(),
                                    DWarpStatusName(record.status()), FormatDWarpValue(record),
                                    FormatDWarpInterval(record), FormatScore(record.threshold()),
                                    !HasBestScore(record) ? "-" : FormatScore(record.best_score()) + " @ " + record.best_d(),
                                    record.has_full() ? FormatScore(record.full_score()) : "-"};
    if (with_note) row.push_back(record.note().empty() ? "-" : OneLine(record.note()));
    rows.push_back(std::move(row));
  }
  return RenderTable(header, rows);
}

}  // namespace

StatusOr<OutputFormat> ParseOutputFormat(std::string_view name) {
  if (name == "table") return OutputFormat::kTable;
  if (name == "csv") return OutputFormat::kCsv;
  if (name == "json") return OutputFormat::kJson;
  return InvalidArgumentError("--format = '" + std::string(name) + "'; expected table, csv or json");
}

const char* JobStateName(v1::JobState state) {
  switch (state) {
    case v1::JOB_QUEUED: return "queued";
    case v1::JOB_RUNNING: return "running";
    case v1::JOB_SUCCEEDED: return "succeeded";
    case v1::JOB_FAILED: return "failed";
    case v1::JOB_CANCELLED: return "cancelled";
    default: return "unspecified";
  }
}

const char* SweepStateName(v1::SweepState state) {
  switch (state) {
    case v1::SWEEP_RUNNING: return "running";
    case v1::SWEEP_DONE: return "done";
    case v1::SWEEP_CANCELLED: return "cancelled";
    default: return "unspecified";
  }
}

const char* DWarpStatusName(v1::DWarpStatus status) {
  switch (status) {
    case v1::DWARP_PENDING: return "pending";
    case v1::DWARP_PROVISIONAL: return "provisional";
    case v1::DWARP_REACHED: return "reached";
    case v1::DWARP_NOT_REACHED: return "not_reached";
    default: return "unspecified";
  }
}

std::string FormatUnixMs(int64_t unix_ms) {
  if (unix_ms <= 0) return "-";
  const std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof(buffer), "%Y-%m-%d %H:%M:%S", &tm);
  return buffer;
}

std::string FormatScore(double value) {
  if (std::isnan(value)) return "-";
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.4g", value);
  return buffer;
}

std::string CsvField(std::string_view text) {
  if (text.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(text);
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + "\"";
}

std::string DescribeJobKey(const v1::JobKey& key) {
  std::string text = key.model() + "/" + key.layer() + "/" + key.dataset();
  if (!key.variant().empty()) text += "/" + key.variant();
  return text + " d=" + key.d() + " seed=" + std::to_string(key.seed());
}

std::string FormatCounts(const v1::JobCounts& counts) {
  const int done = counts.succeeded() + counts.failed() + counts.cancelled();
  return std::to_string(done) + "/" + std::to_string(counts.total()) + " done (" + std::to_string(counts.succeeded()) +
         " succeeded, " + std::to_string(counts.failed()) + " failed, " + std::to_string(counts.cancelled()) +
         " cancelled), " + std::to_string(counts.running()) + " running, " + std::to_string(counts.queued()) +
         " queued";
}

std::string FormatDWarpValue(const v1::DWarpRecord& record) {
  char buffer[48];
  switch (record.status()) {
    case v1::DWARP_PROVISIONAL:
      std::snprintf(buffer, sizeof(buffer), "~%.1f", record.d_warp());
      return buffer;
    case v1::DWARP_REACHED:
      std::snprintf(buffer, sizeof(buffer), "%.1f", record.d_warp());
      return buffer;
    case v1::DWARP_NOT_REACHED: {
      // Above every numeric d tried: "full" is the reference, not a subspace size.
      int64_t largest = -1;
      for (const v1::CurvePoint& point : record.curve()) {
        const std::string& d = point.d();
        if (d.empty() || !std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
        largest = std::max<int64_t>(largest, std::stoll(d));
      }
      return largest >= 0 ? "> " + std::to_string(largest) : "-";
    }
    default:
      return "-";
  }
}

std::string FormatDWarpInterval(const v1::DWarpRecord& record) {
  if (!record.has_d_warp_low() || !record.has_d_warp_high()) return "-";
  auto number = [](double d) {
    if (std::isinf(d)) return std::string("inf");
    char buffer[32];
    std::snprintf(buffer, sizeof(buffer), "%.0f", d);
    return std::string(buffer);
  };
  return number(record.d_warp_low()) + ".." + number(record.d_warp_high()) +
         (record.interval_bootstrap() ? "" : " (bracket)");
}

std::string RenderRows(const nlohmann::ordered_json& rows, OutputFormat format) {
  if (format == OutputFormat::kJson) return rows.dump(2) + "\n";
  const std::vector<std::string> keys = Keys(rows);
  if (format == OutputFormat::kCsv) {
    std::ostringstream out;
    for (size_t c = 0; c < keys.size(); ++c) out << (c ? "," : "") << CsvField(keys[c]);
    if (!keys.empty()) out << '\n';
    for (const auto& row : rows) {
      for (size_t c = 0; c < keys.size(); ++c) out << (c ? "," : "") << CsvCell(row.at(keys[c]));
      out << '\n';
    }
    return out.str();
  }
  if (keys.empty()) return "(none)\n";
  std::vector<std::vector<std::string>> cells;
  for (const auto& row : rows) {
    std::vector<std::string> line;
    for (const std::string& key : keys) line.push_back(TableCell(row.at(key)));
    cells.push_back(std::move(line));
  }
  return RenderTable(keys, cells);
}

std::string FormatSubmit(const v1::SubmitResponse& response, bool list_jobs) {
  std::ostringstream out;
  const v1::Sweep& sweep = response.sweep();
  // Older coordinators listed every job; newer ones count them in the sweep and list none.
  const int64_t total = std::max<int64_t>(sweep.counts().total(), response.jobs_size());
  if (sweep.sweep_id().empty())
    out << "dry run: sweep " << sweep.name() << " would run " << total << " jobs\n";
  else if (response.already_submitted())
    out << "sweep " << sweep.sweep_id() << " (" << sweep.name() << "): " << total
        << " jobs, stored by an earlier try of this submission (nothing new was stored)\n";
  else
    out << "submitted sweep " << sweep.sweep_id() << " (" << sweep.name() << "): " << total << " jobs\n";
  if (list_jobs) {
    Json rows = Json::array();
    for (const v1::Job& job : response.jobs()) {
      Json row = Json::object();
      if (!sweep.sweep_id().empty()) row["job"] = job.job_id();  // a dry run stores no job: no id to show
      const Json key = JobKeyCells(job.key());  // named: a temporary would die before the loop body
      for (const auto& item : key.items()) row[item.key()] = item.value();
      rows.push_back(std::move(row));
    }
    out << RenderRows(rows, OutputFormat::kTable);
    if (response.jobs_omitted() > 0)
      out << "... and " << response.jobs_omitted() << " more jobs, not listed (more than one message holds)\n";
  }
  return out.str();
}

std::string FormatSweepList(const v1::ListSweepsResponse& response) {
  std::vector<std::vector<std::string>> rows;
  for (const v1::Sweep& sweep : response.sweeps()) {
    const v1::JobCounts& counts = sweep.counts();
    const int done = counts.succeeded() + counts.failed() + counts.cancelled();
    rows.push_back({sweep.sweep_id(), sweep.name(), SweepStateName(sweep.state()),
                    std::to_string(done) + "/" + std::to_string(counts.total()), std::to_string(counts.failed()),
                    FormatUnixMs(sweep.created_unix_ms())});
  }
  if (rows.empty()) return "no sweeps\n";
  return RenderTable({"id", "name", "state", "done/total", "failed", "created"}, rows);
}

std::string FormatSweepStatus(const v1::Sweep& sweep, const std::vector<v1::Job>& jobs) {
  std::ostringstream out;
  out << DescribeSweep(sweep) << "\n";
  out << "created " << FormatUnixMs(sweep.created_unix_ms());
  if (sweep.finished_unix_ms() > 0) out << ", finished " << FormatUnixMs(sweep.finished_unix_ms());
  out << "\n\n";
  std::vector<std::vector<std::string>> rows;
  for (const v1::Job& job : jobs) {
    const std::string test = job.has_result() ? FormatScore(job.result().test_score()) : "-";
    rows.push_back({std::to_string(job.job_id()), DescribeJobKey(job.key()), JobStateName(job.state()),
                    std::to_string(job.attempt()), job.worker_id().empty() ? "-" : job.worker_id(), LatestMetric(job),
                    test, job.reason().empty() ? "-" : OneLine(job.reason())});
  }
  out << RenderTable({"id", "job", "state", "attempt", "worker", "latest metric", "test", "why"}, rows);
  return out.str();
}

nlohmann::ordered_json ResultRows(const v1::ResultsResponse& response) {
  Json rows = Json::array();
  for (const v1::Job& job : response.jobs()) {
    Json row = Json::object();
    row["sweep"] = job.sweep_id().empty() ? response.sweep().sweep_id() : job.sweep_id();
    const Json key = JobKeyCells(job.key());  // named: a temporary would die before the loop body
    for (const auto& item : key.items()) row[item.key()] = item.value();
    row["state"] = JobStateName(job.state());
    row["attempt"] = job.attempt();
    const bool has = job.has_result();
    const v1::JobResult& r = job.result();
    row["metric"] = has ? TextOrNull(r.metric()) : Json(nullptr);
    row["train"] = has ? Number(r.train_score()) : Json(nullptr);
    row["val"] = has ? Number(r.val_score()) : Json(nullptr);
    row["test"] = has ? Number(r.test_score()) : Json(nullptr);
    row["pearson_mean"] = has ? Number(r.test_pearson_mean()) : Json(nullptr);
    row["pearson_median"] = has ? Number(r.test_pearson_median()) : Json(nullptr);
    row["noise_ceiling"] = has && r.has_noise_ceiling() ? Number(r.noise_ceiling()) : Json(nullptr);
    row["epochs"] = has ? Json(r.epochs_run()) : Json(nullptr);
    row["seconds"] = has ? Number(r.seconds()) : Json(nullptr);
    row["trained_d"] = has ? Json(r.numbers_trained()) : Json(nullptr);
    row["D"] = has ? Json(r.parameters_warped()) : Json(nullptr);
    row["device"] = has ? TextOrNull(r.device()) : Json(nullptr);
    row["error"] = TextOrNull(job.error());
    row["reason"] = TextOrNull(job.reason());
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string FormatResults(const v1::ResultsResponse& response, OutputFormat format) {
  const Json rows = ResultRows(response);
  if (rows.empty() && format == OutputFormat::kTable) return "no jobs\n";
  return RenderRows(rows, format);
}

nlohmann::ordered_json DWarpRows(const v1::DWarpResponse& response, bool with_curve) {
  Json rows = Json::array();
  for (const v1::DWarpRecord& record : response.records()) {
    Json row = Json::object();
    row["dataset"] = record.dataset();
    row["model"] = record.model();
    row["layer"] = record.layer();
    row["variant"] = record.variant();
    row["status"] = DWarpStatusName(record.status());
    const bool has_value = record.status() == v1::DWARP_PROVISIONAL || record.status() == v1::DWARP_REACHED;
    row["d_warp"] = has_value ? Number(record.d_warp()) : Json(nullptr);
    // An interval open above (+infinity) has no JSON number: "inf", as the table writes it.
    auto end = [](bool has, double d) { return !has ? Json(nullptr) : std::isinf(d) ? Json("inf") : Number(d); };
    row["d_warp_low"] = end(record.has_d_warp_low(), record.d_warp_low());
    row["d_warp_high"] = end(record.has_d_warp_high(), record.d_warp_high());
    row["interval"] = !record.has_d_warp_low() ? Json(nullptr) : Json(record.interval_bootstrap() ? "bootstrap" : "bracket");
    row["threshold"] = Number(record.threshold());
    const bool has_best = HasBestScore(record);
    row["best_score"] = has_best ? Number(record.best_score()) : Json(nullptr);
    row["best_d"] = has_best ? TextOrNull(record.best_d()) : Json(nullptr);
    row["full_score"] = record.has_full() ? Number(record.full_score()) : Json(nullptr);
    row["noise_ceiling"] = record.has_noise_ceiling() ? Number(record.noise_ceiling()) : Json(nullptr);
    row["note"] = record.note();
    if (with_curve) {
      Json curve = Json::array();
      for (const v1::CurvePoint& point : record.curve()) {
        const bool measured = point.seeds_done() > 0;
        curve.push_back(Json{{"d", point.d()},
                             {"mean", measured ? Number(point.mean_score()) : Json(nullptr)},
                             {"std", measured ? Number(point.std_score()) : Json(nullptr)},
                             {"seeds_done", point.seeds_done()},
                             {"seeds_total", point.seeds_total()}});
      }
      row["curve"] = std::move(curve);
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string FormatDWarp(const v1::DWarpResponse& response, OutputFormat format) {
  if (format != OutputFormat::kTable) return RenderRows(DWarpRows(response, format == OutputFormat::kJson), format);
  std::ostringstream out;
  out << "sweep " << response.sweep().sweep_id();
  if (response.sweep().has_threshold()) {
    const v1::Threshold& threshold = response.sweep().threshold();
    out << ", threshold " << v1::Threshold::Kind_Name(threshold.kind()) << " " << FormatScore(threshold.value());
  }
  out << "\n";
  if (response.records_size() == 0) return out.str() + "no d_warp groups yet\n";
  out << DWarpTable(response, /*with_note=*/true);
  // Each group's curve, the points at or above its threshold marked, so the crossing can be seen.
  for (const v1::DWarpRecord& record : response.records()) {
    out << "\n" << DescribeGroup(record) << ": " << DWarpStatusName(record.status()) << " " << FormatDWarpValue(record);
    if (record.has_d_warp_low()) out << ", interval " << FormatDWarpInterval(record);
    out << " (threshold " << DescribeThreshold(response.sweep().threshold(), record) << ")\n";
    if (record.curve_size() == 0) out << "  (no finished d yet)\n";
    size_t width = 1;
    for (const v1::CurvePoint& point : record.curve()) width = std::max(width, point.d().size());
    for (const v1::CurvePoint& point : record.curve()) {
      out << "  " << point.d() << std::string(width - point.d().size(), ' ') << "  ";
      if (point.seeds_done() == 0) {
        out << "-  (0/" << point.seeds_total() << ")\n";
        continue;
      }
      const bool above = std::isfinite(record.threshold()) && point.mean_score() >= record.threshold();
      out << FormatScore(point.mean_score()) << " ± " << FormatScore(point.std_score()) << "  (" << point.seeds_done()
          << "/" << point.seeds_total() << ")" << (above ? "  *" : "") << "\n";
    }
  }
  return out.str();
}

std::string FormatCancel(const v1::CancelSweepResponse& response) {
  return "cancelled sweep " + response.sweep().sweep_id() + ": " + std::to_string(response.cancelled_queued()) +
         " queued jobs cancelled, " + std::to_string(response.cancelling_running()) +
         " running jobs stop at their next heartbeat\n";
}

std::string FormatWorkers(const v1::ListWorkersResponse& response, int64_t now_unix_ms) {
  std::vector<std::vector<std::string>> rows;
  for (const v1::WorkerInfo& worker : response.workers()) {
    std::string devices;
    for (const std::string& device : worker.devices()) devices += (devices.empty() ? "" : ",") + device;
    std::string seen = "-";
    if (worker.last_seen_unix_ms() > 0)
      seen = std::to_string(std::max<int64_t>(0, now_unix_ms - worker.last_seen_unix_ms()) / 1000) + "s ago";
    rows.push_back({worker.worker_id(), worker.name(), worker.host(), devices.empty() ? "-" : devices,
                    std::to_string(worker.running_jobs()), worker.blocked() ? "yes" : "no",
                    worker.draining() ? "yes" : "no", seen});
  }
  if (rows.empty()) return "no workers\n";
  return RenderTable({"id", "name", "host", "devices", "running", "blocked", "draining", "last seen"}, rows);
}

void WatchView::Apply(const v1::WatchEvent& event) {
  switch (event.event_case()) {
    case v1::WatchEvent::kSnapshot: {
      has_snapshot_ = true;
      snapshot_jobs_to_follow_ = std::max(0, event.snapshot().jobs_to_follow());
      sweep_ = event.snapshot().sweep();
      jobs_.clear();
      for (const v1::Job& job : event.snapshot().jobs()) jobs_[job.job_id()] = job;
      dwarp_.clear();
      for (const v1::DWarpRecord& record : event.snapshot().dwarp())
        dwarp_[{record.dataset(), record.model(), record.layer(), record.variant()}] = record;
      break;
    }
    case v1::WatchEvent::kSnapshotJobs: {
      for (const v1::Job& job : event.snapshot_jobs().jobs()) jobs_[job.job_id()] = job;
      snapshot_jobs_to_follow_ = std::max<int64_t>(0, snapshot_jobs_to_follow_ - event.snapshot_jobs().jobs_size());
      break;
    }
    case v1::WatchEvent::kJob: {
      v1::Job& job = jobs_[event.job().job_id()];
      // A state change does not carry the metric of the attempt still running; keep ours when the
      // event has none for the same attempt.
      const bool keep_metric = !event.job().has_latest_metric() && job.attempt() == event.job().attempt() &&
                               job.has_latest_metric();
      v1::MetricPoint kept = job.latest_metric();
      job = event.job();
      if (keep_metric) *job.mutable_latest_metric() = kept;
      break;
    }
    case v1::WatchEvent::kMetric: {
      auto it = jobs_.find(event.metric().job_id());
      if (it == jobs_.end()) break;
      if (event.metric().attempt() < it->second.attempt()) break;  // a late point of an earlier attempt
      *it->second.mutable_latest_metric() = event.metric().point();
      break;
    }
    case v1::WatchEvent::kDwarp: {
      const v1::DWarpRecord& record = event.dwarp();
      dwarp_[{record.dataset(), record.model(), record.layer(), record.variant()}] = record;
      break;
    }
    case v1::WatchEvent::kSweep:
      sweep_ = event.sweep();
      break;
    default:
      break;
  }
}

bool WatchView::finished() const {
  return sweep_.state() == v1::SWEEP_DONE || sweep_.state() == v1::SWEEP_CANCELLED;
}

std::string WatchView::Render(size_t max_running) const {
  std::ostringstream out;
  out << DescribeSweep(sweep_) << "\n\n";
  std::vector<std::vector<std::string>> running;
  size_t running_total = 0;
  for (const auto& [id, job] : jobs_) {
    if (job.state() != v1::JOB_RUNNING) continue;
    ++running_total;
    if (running.size() >= max_running) continue;
    const bool has = job.has_latest_metric();
    running.push_back({std::to_string(id), DescribeJobKey(job.key()), std::to_string(job.attempt()),
                       job.worker_id().empty() ? "-" : job.worker_id(),
                       has ? std::to_string(job.latest_metric().epoch()) : "-",
                       has ? FormatScore(job.latest_metric().train_loss()) : "-",
                       has ? FormatScore(job.latest_metric().val_score()) : "-",
                       job.reason().empty() ? "-" : OneLine(job.reason())});
  }
  if (running.empty()) {
    out << "no running jobs\n";
  } else {
    out << "running jobs:\n" << RenderTable({"id", "job", "attempt", "worker", "epoch", "loss", "val", "why"}, running);
    if (running_total > running.size()) out << "... and " << running_total - running.size() << " more\n";
  }
  out << "\n";
  if (dwarp_.empty()) {
    out << "no d_warp groups yet\n";
  } else {
    v1::DWarpResponse response;
    for (const auto& [key, record] : dwarp_) *response.add_records() = record;
    out << "d_warp:\n" << DWarpTable(response, /*with_note=*/false);
  }
  return out.str();
}

std::string WatchView::PlainLine(const v1::WatchEvent& event) const {
  switch (event.event_case()) {
    case v1::WatchEvent::kSnapshot:
      return DescribeSweep(event.snapshot().sweep()) + "; " +
             std::to_string(event.snapshot().jobs_size() + event.snapshot().jobs_to_follow()) + " jobs, " +
             std::to_string(event.snapshot().dwarp_size()) + " d_warp groups";
    case v1::WatchEvent::kJob: {
      const v1::Job& job = event.job();
      std::string line = "job " + std::to_string(job.job_id()) + " " + DescribeJobKey(job.key()) + ": " +
                         JobStateName(job.state()) + " (attempt " + std::to_string(job.attempt());
      if (!job.worker_id().empty()) line += ", worker " + job.worker_id();
      line += ")";
      if (job.state() == v1::JOB_SUCCEEDED && job.has_result())
        line += " test " + FormatScore(job.result().test_score()) + " (" + job.result().metric() + ")";
      if (!job.error().empty()) line += ": " + OneLine(job.error());
      // A job the search just created says why it exists.
      if (job.state() == v1::JOB_QUEUED && job.attempt() == 0 && !job.reason().empty())
        line += ": " + OneLine(job.reason());
      return line;
    }
    case v1::WatchEvent::kMetric: {
      const v1::MetricEvent& metric = event.metric();
      std::string line = "job " + std::to_string(metric.job_id());
      if (auto it = jobs_.find(metric.job_id()); it != jobs_.end()) line += " " + DescribeJobKey(it->second.key());
      return line + ": epoch " + std::to_string(metric.point().epoch()) + " loss " +
             FormatScore(metric.point().train_loss()) + " val " + FormatScore(metric.point().val_score());
    }
    case v1::WatchEvent::kDwarp: {
      const v1::DWarpRecord& record = event.dwarp();
      return "d_warp " + DescribeGroup(record) + ": " + DWarpStatusName(record.status()) + " " +
             FormatDWarpValue(record) +
             (record.has_d_warp_low() ? ", interval " + FormatDWarpInterval(record) : std::string()) +
             " (threshold " + DescribeThreshold(sweep_.threshold(), record) + ")";
    }
    case v1::WatchEvent::kSweep:
      return DescribeSweep(event.sweep());
    case v1::WatchEvent::kSnapshotJobs:
      return "";
    default:
      return "unknown event";
  }
}

}  // namespace dwarp::clients
