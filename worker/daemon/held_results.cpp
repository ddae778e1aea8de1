#include "worker/daemon/held_results.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <google/protobuf/util/json_util.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace dwarp::worker {
namespace {

namespace fs = std::filesystem;
constexpr char kSuffix[] = ".held";
constexpr int kFormatVersion = 1;

std::string Errno() { return std::strerror(errno); }

// Writes all of `data` to `fd`; false on an error (errno set).
bool WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

StatusOr<std::string> ReadAll(int fd) {
  std::string out;
  char buffer[8192];
  if (::lseek(fd, 0, SEEK_SET) < 0) return InternalError(Errno());
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return InternalError(Errno());
    if (n == 0) return out;
    out.append(buffer, static_cast<size_t>(n));
  }
}

std::string ToJson(const HeldOutcome& outcome) {
  nlohmann::json doc;
  doc["format"] = kFormatVersion;
  doc["coordinator"] = outcome.coordinator;
  doc["worker_id"] = outcome.worker_id;
  doc["credential"] = outcome.credential;
  doc["lease_id"] = outcome.lease_id;
  doc["job_id"] = outcome.job_id;
  doc["attempt"] = outcome.attempt;
  doc["valid_until_unix_ms"] = outcome.valid_until_unix_ms;
  std::string request;
  if (outcome.complete) {
    (void)google::protobuf::util::MessageToJsonString(*outcome.complete, &request);
    doc["complete"] = nlohmann::json::parse(request);
  } else if (outcome.fail) {
    (void)google::protobuf::util::MessageToJsonString(*outcome.fail, &request);
    doc["fail"] = nlohmann::json::parse(request);
  }
  return doc.dump() + "\n";
}

StatusOr<HeldOutcome> FromJson(const std::string& text) {
  const nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return InvalidArgumentError("not a JSON object");
  if (doc.value("format", 0) != kFormatVersion)
    return InvalidArgumentError("format " + doc.value("format", nlohmann::json()).dump() + "; expected " +
                                std::to_string(kFormatVersion));
  HeldOutcome outcome;
  try {
    outcome.coordinator = doc.at("coordinator").get<std::string>();
    outcome.worker_id = doc.at("worker_id").get<std::string>();
    outcome.credential = doc.at("credential").get<std::string>();
    outcome.lease_id = doc.at("lease_id").get<std::string>();
    outcome.job_id = doc.at("job_id").get<int64_t>();
    outcome.attempt = doc.at("attempt").get<int32_t>();
    outcome.valid_until_unix_ms = doc.at("valid_until_unix_ms").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgumentError(std::string("a field is missing or of the wrong type: ") + e.what());
  }
  if (doc.contains("complete")) {
    dwarp::v1::CompleteRequest request;
    if (!google::protobuf::util::JsonStringToMessage(doc["complete"].dump(), &request).ok())
      return InvalidArgumentError("'complete' is not a CompleteRequest");
    outcome.complete = std::move(request);
  } else if (doc.contains("fail")) {
    dwarp::v1::FailRequest request;
    if (!google::protobuf::util::JsonStringToMessage(doc["fail"].dump(), &request).ok())
      return InvalidArgumentError("'fail' is not a FailRequest");
    outcome.fail = std::move(request);
  } else {
    return InvalidArgumentError("neither 'complete' nor 'fail'");
  }
  if (!IsSafeLeaseId(outcome.lease_id)) return InvalidArgumentError("lease_id is not a lease id");
  return outcome;
}

}  // namespace

bool IsSafeLeaseId(const std::string& lease_id) {
  if (lease_id.empty() || lease_id.size() > 128) return false;
  for (char c : lease_id) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
      return false;
  }
  return true;
}

std::string DefaultStateDir() {
  const auto env = [](const char* name) -> std::string {
    const char* value = std::getenv(name);
    return value != nullptr ? value : "";
  };
  // systemd's StateDirectory= may name several folders, separated by ':'; the first is this unit's.
  if (std::string dir = env("STATE_DIRECTORY"); !dir.empty()) return dir.substr(0, dir.find(':'));
  if (std::string dir = env("XDG_STATE_HOME"); !dir.empty()) return dir + "/dwarp/worker";
  if (std::string dir = env("HOME"); !dir.empty()) return dir + "/.local/state/dwarp/worker";
  return "dwarp-worker-state";
}

StatusOr<std::unique_ptr<HeldResults>> HeldResults::Open(const std::string& dir) {
  if (dir.empty()) return InvalidArgumentError("state folder is empty; expected a folder path");
  std::error_code error;
  const bool created = fs::create_directories(dir, error);
  if (error)
    return InvalidArgumentError("state folder '" + dir + "' cannot be created: " + error.message() +
                                "; expected a folder this worker can write (--state-dir)");
  if (!fs::is_directory(dir, error))
    return InvalidArgumentError("state folder '" + dir + "' is not a folder; expected a folder (--state-dir)");
  // It holds worker credentials: a folder made here is the owner's only. An existing one keeps its mode
  // (it may be shared, e.g. systemd's StateDirectory=); the files in it are 0600 whatever the folder's.
  if (created) ::chmod(dir.c_str(), 0700);
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    return InvalidArgumentError("state folder '" + dir + "' is not writable: " + Errno() +
                                "; expected a folder this worker can write (--state-dir)");
  return std::unique_ptr<HeldResults>(new HeldResults(dir));
}

HeldResults::~HeldResults() {
  for (const auto& [lease_id, fd] : locked_) ::close(fd);
}

std::string HeldResults::PathOf(const std::string& lease_id) const { return dir_ + "/" + lease_id + kSuffix; }

Status HeldResults::Hold(const HeldOutcome& outcome) {
  if (!IsSafeLeaseId(outcome.lease_id))
    return InvalidArgumentError("lease id '" + outcome.lease_id.substr(0, 64) +
                                "' cannot name a file; expected letters, digits, '-' and '_'");
  const std::string path = PathOf(outcome.lease_id);
  const std::string temporary = path + ".tmp." + std::to_string(::getpid());
  const auto failed = [&](const std::string& what) {
    const std::string reason = Errno();
    ::unlink(temporary.c_str());
    return InternalError("cannot " + what + " held result file '" + path + "': " + reason);
  };
  const int fd = ::open(temporary.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return failed("create");
  // Locked before it appears under its name: no other process can take it between rename and lock.
  if (::flock(fd, LOCK_EX) != 0 || !WriteAll(fd, ToJson(outcome)) || ::fsync(fd) != 0 ||
      ::rename(temporary.c_str(), path.c_str()) != 0) {
    Status status = failed("write");
    ::close(fd);
    return status;
  }
  // The rename reaches the disk with the folder's entry.
  if (const int dir_fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (auto old = locked_.find(outcome.lease_id); old != locked_.end()) ::close(old->second);
  locked_[outcome.lease_id] = fd;
  return OkStatus();
}

void HeldResults::Release(const std::string& lease_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto found = locked_.find(lease_id);
  if (found == locked_.end()) return;
  // Unlinked while still locked: no other process can take it in between.
  ::unlink(PathOf(lease_id).c_str());
  ::close(found->second);
  locked_.erase(found);
}

void HeldResults::Leave(const std::string& lease_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto found = locked_.find(lease_id);
  if (found == locked_.end()) return;
  ::close(found->second);
  locked_.erase(found);
}

std::vector<HeldOutcome> HeldResults::TakeOrphans(std::vector<std::string>* problems) {
  std::vector<HeldOutcome> out;
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir_, error)) {
    const std::string name = entry.path().filename().string();
    const std::string suffix = kSuffix;
    if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string lease_id = name.substr(0, name.size() - suffix.size());
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (locked_.count(lease_id) > 0) continue;  // this process's own
    }
    const std::string path = entry.path().string();
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) continue;  // released by its owner meanwhile
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {  // a live process holds it
      ::close(fd);
      continue;
    }
    struct stat status {};
    if (::fstat(fd, &status) != 0 || status.st_nlink == 0) {  // unlinked by its owner before we locked it
      ::close(fd);
      continue;
    }
    auto text = ReadAll(fd);
    StatusOr<HeldOutcome> outcome = text.ok() ? FromJson(*text) : StatusOr<HeldOutcome>(text.status());
    if (outcome.ok() && outcome->lease_id != lease_id)
      outcome = InvalidArgumentError("it names lease '" + outcome->lease_id + "'");
    if (!outcome.ok()) {
      if (problems != nullptr)
        problems->push_back("held result file '" + path + "' cannot be read (" + outcome.status().message() +
                            "); renamed to '" + path + ".bad'");
      ::rename(path.c_str(), (path + ".bad").c_str());
      ::close(fd);
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    locked_[lease_id] = fd;
    out.push_back(std::move(*outcome));
  }
  return out;
}

}  // namespace dwarp::worker
