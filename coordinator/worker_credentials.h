// WorkerCredentials: one secret per worker, so that a worker can act only as itself. The shared token
// (grpc_server.h) admits a caller to the service; a worker credential names which worker it is.
//
// Register issues a credential (128+ bits from the kernel's cryptographic generator, `getrandom`) for the
// worker id it hands out; every later WorkerService call about that id (Acquire, Heartbeat, StreamMetrics,
// Complete, Fail, and Register again with the id) must carry it as the `dwarp-worker-credential` metadata.
// Only a SHA-256 hash of each credential is kept, in memory and in the SweepStore (so that credentials
// survive a coordinator restart); a read of the database does not reveal a usable credential. Comparisons
// are of hashes, in constant time.
//
// Thread-safety: every method may be called from any thread (one mutex; the store serialises itself).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/status.h"
#include "coordinator/store.h"

namespace dwarp::coordinator {

// The metadata key a worker's calls carry its credential in.
inline constexpr char kWorkerCredentialMetadata[] = "dwarp-worker-credential";

// Lowercase hex SHA-256 of `text`.
std::string Sha256Hex(const std::string& text);

class WorkerCredentials {
 public:
  // Loads every stored hash. `store` must outlive the object. Internal when the store cannot be read.
  static StatusOr<std::unique_ptr<WorkerCredentials>> Load(SweepStore* store);

  // Issues a new credential for `worker_id`, replacing any earlier one, and stores its hash before it
  // returns the credential ("wc1." and 64 hex digits: 256 random bits). Internal when the random source
  // or the store fails (then nothing changes).
  StatusOr<std::string> Issue(const std::string& worker_id);

  // Whether `worker_id` has a credential (a worker registered before credentials existed has none).
  bool Has(const std::string& worker_id) const;

  // Whether `presented` is `worker_id`'s credential.
  enum class Check {
    kOk,
    kNoCredential,  // the worker id has no credential here (unknown, or registered before credentials)
    kMissing,       // the worker has one, but nothing was presented
    kMismatch,      // something was presented, but not this worker's credential
  };
  Check Verify(const std::string& worker_id, const std::string& presented) const;
  // What a failed Check means, naming the worker id (never a secret) and what to do.
  static std::string Describe(Check check, const std::string& worker_id);

 private:
  explicit WorkerCredentials(SweepStore* store) : store_(store) {}

  SweepStore* const store_;
  mutable std::mutex mu_;
  std::map<std::string, std::string> hashes_;  // worker id -> SHA-256 hex of its credential; guarded by mu_
};

}  // namespace dwarp::coordinator
