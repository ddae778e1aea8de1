// HeldResults: a worker's finished outcomes (Complete or Fail) kept on disk, in its state folder, until the
// coordinator has answered for them, so that a result survives a worker that dies (or is stopped) while
// the coordinator cannot be reached. A later worker process with the same state folder delivers what an
// earlier one left (TakeOrphans), for as long as the lease could still be valid; the coordinator's
// fencing decides whether it is still wanted.
//
// One file per lease, `<lease id>.held`, JSON: the coordinator's address, the worker id and credential the
// lease was granted to (the credential is what lets a later process deliver in that worker's name, so
// files are 0600, and a folder created here 0700), the lease, job id, attempt, the wall-clock time after
// which the lease can no longer be valid, and the Complete or Fail request (protobuf JSON). Written atomically: a
// temporary file, fsync, rename, fsync of the folder. A process holds an flock on each file it wrote or
// took until it releases it (the lock ends with the process, even on SIGKILL), so that a process starting
// beside a live one never takes that one's outcomes.
//
// Thread-safety: every method may be called from any thread (one mutex).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "dwarp/v1/dwarp.pb.h"

namespace dwarp::worker {

struct HeldOutcome {
  std::string coordinator;    // the address the outcome is for
  std::string worker_id;      // the worker the lease was granted to
  std::string credential;     // that worker's credential
  std::string lease_id;
  int64_t job_id = 0;
  int32_t attempt = 0;
  int64_t valid_until_unix_ms = 0;  // after this the lease cannot be valid at the coordinator
  std::optional<dwarp::v1::CompleteRequest> complete;  // exactly one of complete and fail
  std::optional<dwarp::v1::FailRequest> fail;
};

class HeldResults {
 public:
  // Opens the state folder `dir`, creating it (mode 0700, with its parents) when missing. InvalidArgument
  // naming the folder when it cannot be created or written.
  static StatusOr<std::unique_ptr<HeldResults>> Open(const std::string& dir);
  ~HeldResults();

  const std::string& dir() const { return dir_; }

  // Writes the outcome's file (atomically, replacing one of the same lease) and keeps it locked by this
  // process. Internal naming the file when it cannot be written.
  Status Hold(const HeldOutcome& outcome);
  // Deletes the lease's file (the coordinator answered, or the outcome can no longer be wanted).
  void Release(const std::string& lease_id);
  // Unlocks the lease's file and leaves it for a later process (an outcome this process gives up on while
  // its lease may still be valid).
  void Leave(const std::string& lease_id);

  // The outcomes of files no live process holds, each now locked by this one. A file that cannot be read
  // or parsed is renamed to `<name>.bad` and named in `problems`.
  std::vector<HeldOutcome> TakeOrphans(std::vector<std::string>* problems);

 private:
  explicit HeldResults(std::string dir) : dir_(std::move(dir)) {}
  std::string PathOf(const std::string& lease_id) const;

  const std::string dir_;
  std::mutex mu_;
  std::map<std::string, int> locked_;  // lease id -> the open, flocked descriptor of its file; guarded by mu_
};

// A lease id as a file name: letters, digits, '-' and '_' only (coordinator ids are "l" and hex digits).
bool IsSafeLeaseId(const std::string& lease_id);

// Where dwarp-worker keeps its state when --state-dir is not given: $STATE_DIRECTORY (systemd's
// StateDirectory=), else $XDG_STATE_HOME/dwarp/worker, else $HOME/.local/state/dwarp/worker, else
// ./dwarp-worker-state.
std::string DefaultStateDir();

}  // namespace dwarp::worker
