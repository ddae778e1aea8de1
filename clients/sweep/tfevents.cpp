#include "clients/sweep/tfevents.h"

#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <system_error>
#include <vector>

#include <nlohmann/json.hpp>

namespace dwarp::clients {
namespace {

namespace fs = std::filesystem;

// The byte-at-a-time table for the reflected Castagnoli polynomial. Built once; the data this writes is
// small (a few KB per job), so a slicing-by-8 table would not pay for itself.
std::array<uint32_t, 256> MakeCrc32cTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1u) ? 0x82F63B78u : 0u);
    table[i] = crc;
  }
  return table;
}

// --- The few protobuf wire-format pieces an Event with a scalar needs. ---

void PutVarint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

void PutFixed32(std::string& out, uint32_t value) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

void PutFixed64(std::string& out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

// Wire types: 0 varint, 1 64-bit, 2 length-delimited, 5 32-bit.
void PutTag(std::string& out, int field, int wire_type) {
  PutVarint(out, (static_cast<uint64_t>(field) << 3) | static_cast<uint64_t>(wire_type));
}

void PutBytes(std::string& out, int field, std::string_view bytes) {
  PutTag(out, field, 2);
  PutVarint(out, bytes.size());
  out.append(bytes.data(), bytes.size());
}

// Event fields (TensorBoard's event.proto): wall_time = 1 (double), step = 2 (int64),
// file_version = 3 (string), summary = 5 (Summary). Summary: value = 1 (repeated Value).
// Summary.Value: tag = 1 (string), simple_value = 2 (float).
std::string EventPrefix(double wall_time_s, int64_t step) {
  std::string event;
  uint64_t bits;
  std::memcpy(&bits, &wall_time_s, sizeof bits);
  PutTag(event, 1, 1);
  PutFixed64(event, bits);
  if (step != 0) {  // proto3 leaves default values out
    PutTag(event, 2, 0);
    PutVarint(event, static_cast<uint64_t>(step));  // negative int64s take ten bytes, as protobuf writes them
  }
  return event;
}

std::string HeaderEvent(double wall_time_s) {
  std::string event = EventPrefix(wall_time_s, 0);
  PutBytes(event, 3, kTfEventsFileVersion);
  return event;
}

std::string ScalarEvent(const std::string& tag, float value, int64_t step, double wall_time_s) {
  std::string summary_value;
  PutBytes(summary_value, 1, tag);
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  PutTag(summary_value, 2, 5);
  PutFixed32(summary_value, bits);
  std::string summary;
  PutBytes(summary, 1, summary_value);
  std::string event = EventPrefix(wall_time_s, step);
  PutBytes(event, 5, summary);
  return event;
}

std::string HostName() {
  char buffer[256] = {};
  if (gethostname(buffer, sizeof buffer - 1) != 0 || buffer[0] == '\0') return "localhost";
  std::string name(buffer);
  for (char& c : name) {
    if (c == '/' || c == '\\' || static_cast<unsigned char>(c) < 0x20) c = '_';
  }
  return name;
}

double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A folder name from a free-form label (model, layer and dataset names come from the sweep file).
std::string FolderName(const std::string& label) {
  if (label.empty() || label == "." || label == "..") return "_";
  std::string name = label;
  for (char& c : name) {
    if (c == '/' || c == '\\' || static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = '_';
  }
  return name;
}

// Creates `folder` and its parents. A file where a folder should be is the user's input (InvalidArgument,
// naming it); anything else the filesystem refuses is Unavailable.
Status CreateFolder(const fs::path& folder) {
  std::error_code error;
  if (fs::is_directory(folder, error)) return OkStatus();
  // Walk down from the root so that the message names the first component that is in the way.
  fs::path prefix;
  for (const fs::path& part : folder) {
    prefix /= part;
    std::error_code stat_error;
    fs::file_status status = fs::status(prefix, stat_error);
    if (fs::exists(status) && !fs::is_directory(status)) {
      return InvalidArgumentError("'" + prefix.string() + "' is a file, not a folder; expected a folder (or no "
                                  "entry) there to create '" + folder.string() + "'");
    }
  }
  fs::create_directories(folder, error);
  if (error) return UnavailableError("cannot create folder '" + folder.string() + "': " + error.message());
  return OkStatus();
}

// Removes the event files directly in `folder` (not below it): what an earlier export left there.
Status RemoveEventFiles(const fs::path& folder) {
  std::error_code error;
  if (!fs::is_directory(folder, error)) return OkStatus();
  std::vector<fs::path> stale;
  for (fs::directory_iterator it(folder, error), end; !error && it != end; it.increment(error)) {
    const std::string name = it->path().filename().string();
    if (name.rfind("events.out.tfevents.", 0) == 0 && it->is_regular_file()) stale.push_back(it->path());
  }
  if (error) return UnavailableError("cannot list folder '" + folder.string() + "': " + error.message());
  for (const fs::path& path : stale) {
    if (!fs::remove(path, error) && error) {
      return UnavailableError("cannot remove the old event file '" + path.string() + "': " + error.message());
    }
  }
  return OkStatus();
}

// The job's metric name: from its result when it has one, else from its spec's objective.
std::string MetricName(const v1::Job& job) {
  if (job.has_result() && !job.result().metric().empty()) return job.result().metric();
  nlohmann::json spec = nlohmann::json::parse(job.spec_json(), nullptr, /*allow_exceptions=*/false);
  if (spec.is_object() && spec.contains("objective") && spec["objective"].is_string()) {
    const std::string objective = spec["objective"].get<std::string>();
    return objective == "classification" ? "accuracy" : objective == "rsa" ? "rsa" : "r2";
  }
  return "score";
}

fs::path JobFolder(const fs::path& logdir, const v1::JobKey& key) {
  fs::path folder = logdir / FolderName(key.model()) / FolderName(key.layer()) / FolderName(key.dataset());
  if (!key.variant().empty()) folder /= "variant=" + FolderName(key.variant());
  return folder / ("d=" + FolderName(key.d())) / ("seed=" + std::to_string(key.seed()));
}

}  // namespace

uint32_t Crc32c(std::string_view data) {
  static const std::array<uint32_t, 256> kTable = MakeCrc32cTable();
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char byte : data) crc = kTable[(crc ^ byte) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

uint32_t MaskedCrc32c(std::string_view data) {
  const uint32_t crc = Crc32c(data);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

StatusOr<EventFileWriter> EventFileWriter::Open(const std::string& folder, double start_wall_time_s) {
  DWARP_RETURN_IF_ERROR(CreateFolder(folder));
  // <pid>.<n>: two writers in one second, in one or in two processes, still get distinct names.
  static std::atomic<uint64_t> counter{0};
  const long long seconds = std::isfinite(start_wall_time_s) ? static_cast<long long>(start_wall_time_s) : 0;
  const std::string name = "events.out.tfevents." + std::to_string(seconds) + "." + HostName() + "." +
                           std::to_string(getpid()) + "." + std::to_string(counter.fetch_add(1));
  const std::string path = (fs::path(folder) / name).string();
  std::FILE* file = std::fopen(path.c_str(), "wbx");  // x: never overwrite an existing file
  if (file == nullptr) {
    return UnavailableError("cannot create event file '" + path + "': " + std::strerror(errno));
  }
  EventFileWriter writer(file, path);
  Status header = writer.WriteRecord(HeaderEvent(start_wall_time_s));
  if (!header.ok()) {
    (void)writer.Close();
    std::remove(path.c_str());
    return header;
  }
  return writer;
}

EventFileWriter::EventFileWriter(EventFileWriter&& other) noexcept
    : file_(other.file_), path_(std::move(other.path_)) {
  other.file_ = nullptr;
}

EventFileWriter& EventFileWriter::operator=(EventFileWriter&& other) noexcept {
  if (this != &other) {
    (void)Close();
    file_ = other.file_;
    path_ = std::move(other.path_);
    other.file_ = nullptr;
  }
  return *this;
}

EventFileWriter::~EventFileWriter() { (void)Close(); }

Status EventFileWriter::AddScalar(const std::string& tag, double value, int64_t step, double wall_time_s) {
  if (file_ == nullptr) return FailedPreconditionError("event file '" + path_ + "' is closed; cannot add '" + tag + "'");
  return WriteRecord(ScalarEvent(tag, static_cast<float>(value), step, wall_time_s));
}

Status EventFileWriter::WriteRecord(const std::string& data) {
  std::string record;
  record.reserve(data.size() + 16);
  PutFixed64(record, data.size());
  const uint32_t length_crc = MaskedCrc32c(std::string_view(record.data(), 8));
  PutFixed32(record, length_crc);
  record += data;
  PutFixed32(record, MaskedCrc32c(data));
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size()) {
    return UnavailableError("cannot write event file '" + path_ + "': " + std::strerror(errno));
  }
  return OkStatus();
}

Status EventFileWriter::Close() {
  if (file_ == nullptr) return OkStatus();
  const bool flushed = std::fflush(file_) == 0 && !std::ferror(file_);
  const int flush_errno = errno;
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  if (!flushed || !closed) {
    return UnavailableError("cannot write event file '" + path_ + "': " + std::strerror(flushed ? errno : flush_errno));
  }
  return OkStatus();
}

Status CheckLogdir(const std::string& logdir) {
  if (logdir.empty()) return InvalidArgumentError("--logdir is empty; expected a folder to write event files under");
  std::error_code error;
  fs::file_status status = fs::status(logdir, error);
  if (fs::exists(status) && !fs::is_directory(status)) {
    return InvalidArgumentError("--logdir '" + logdir + "' is a file, not a folder; expected a folder (or a "
                                "path that does not exist yet) to write event files under");
  }
  return OkStatus();
}

StatusOr<int> WriteSweepEvents(const v1::ResultsResponse& results, const std::string& logdir) {
  DWARP_RETURN_IF_ERROR(CheckLogdir(logdir));
  DWARP_RETURN_IF_ERROR(CreateFolder(logdir));

  // job id -> attempt -> its points, in epoch order as streamed.
  std::map<int64_t, std::map<int32_t, std::vector<const v1::MetricPoint*>>> curves;
  for (const v1::JobMetrics& metrics : results.metrics()) {
    auto& points = curves[metrics.job_id()][metrics.attempt()];
    for (const v1::MetricPoint& point : metrics.points()) points.push_back(&point);
  }

  int files = 0;
  std::set<fs::path> job_folders;  // written in this call
  for (const v1::Job& job : results.jobs()) {
    std::map<int32_t, std::vector<const v1::MetricPoint*>> attempts;
    if (auto found = curves.find(job.job_id()); found != curves.end()) attempts = found->second;
    const bool succeeded = job.state() == v1::JOB_SUCCEEDED && job.has_result();
    // The attempt that succeeded gets the test score even when it streamed no curve.
    if (succeeded) attempts[job.attempt()];
    if (attempts.empty()) continue;

    const std::string metric = MetricName(job);
    fs::path job_folder = JobFolder(logdir, job.key());
    // Two labels that differ only in characters replaced by '_' would share a folder (and the second job
    // would remove the first one's file): keep them apart with the job id.
    if (job_folders.count(job_folder) > 0) job_folder += ".job" + std::to_string(job.job_id());
    job_folders.insert(job_folder);
    const bool per_attempt = attempts.size() > 1;
    // Curves of an earlier export of this job would show twice: replace them.
    DWARP_RETURN_IF_ERROR(RemoveEventFiles(job_folder));

    for (const auto& [attempt, points] : attempts) {
      const fs::path folder = per_attempt ? job_folder / ("attempt=" + std::to_string(attempt)) : job_folder;
      if (per_attempt) DWARP_RETURN_IF_ERROR(RemoveEventFiles(folder));
      const bool has_test = succeeded && attempt == job.attempt();

      double end_time_s = NowSeconds();
      if (has_test && job.finished_unix_ms() > 0) {
        end_time_s = job.finished_unix_ms() / 1000.0;
      } else if (!points.empty()) {
        end_time_s = points.back()->time_unix_ms() / 1000.0;
      }
      // The header's time: TensorBoard's "relative" axis starts at a run's first event.
      double start_time_s = end_time_s;
      if (!points.empty()) {
        start_time_s = points.front()->time_unix_ms() / 1000.0;
      } else if (job.started_unix_ms() > 0) {
        start_time_s = job.started_unix_ms() / 1000.0;
      }

      StatusOr<EventFileWriter> writer = EventFileWriter::Open(folder.string(), start_time_s);
      if (!writer.ok()) return writer.status();
      for (const v1::MetricPoint* point : points) {
        const double time_s = point->time_unix_ms() / 1000.0;
        DWARP_RETURN_IF_ERROR(writer->AddScalar("train/loss", point->train_loss(), point->epoch(), time_s));
        DWARP_RETURN_IF_ERROR(writer->AddScalar("val/" + metric, point->val_score(), point->epoch(), time_s));
      }
      if (has_test) {
        int64_t last_epoch = points.empty() ? job.result().epochs_run() : points.back()->epoch();
        DWARP_RETURN_IF_ERROR(writer->AddScalar("test/" + metric, job.result().test_score(), last_epoch, end_time_s));
      }
      DWARP_RETURN_IF_ERROR(writer->Close());
      ++files;
    }
  }
  return files;
}

}  // namespace dwarp::clients
