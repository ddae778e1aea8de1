#include "coordinator/worker_credentials.h"

#include <fcntl.h>
#include <openssl/sha.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "common/rpc/connection.h"

namespace dwarp::coordinator {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";
constexpr size_t kSecretBytes = 32;

std::string Hex(const unsigned char* bytes, size_t size) {
  std::string out;
  out.reserve(2 * size);
  for (size_t i = 0; i < size; ++i) {
    out.push_back(kHexDigits[bytes[i] >> 4]);
    out.push_back(kHexDigits[bytes[i] & 0xf]);
  }
  return out;
}

// Fills `bytes` from getrandom(2), or /dev/urandom where getrandom is unavailable (old kernel, seccomp).
Status RandomBytes(unsigned char* bytes, size_t size) {
  size_t filled = 0;
  while (filled < size) {
    const ssize_t got = ::getrandom(bytes + filled, size - filled, 0);
    if (got > 0) {
      filled += static_cast<size_t>(got);
      continue;
    }
    if (got < 0 && errno == EINTR) continue;
    const int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      return InternalError("no cryptographic random source (getrandom, /dev/urandom): cannot issue a worker credential");
    while (filled < size) {
      const ssize_t read_now = ::read(fd, bytes + filled, size - filled);
      if (read_now <= 0 && errno != EINTR) {
        ::close(fd);
        return InternalError("cannot read /dev/urandom: cannot issue a worker credential");
      }
      if (read_now > 0) filled += static_cast<size_t>(read_now);
    }
    ::close(fd);
  }
  return OkStatus();
}

}  // namespace

std::string Sha256Hex(const std::string& text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  return Hex(digest, sizeof(digest));
}

StatusOr<std::unique_ptr<WorkerCredentials>> WorkerCredentials::Load(SweepStore* store) {
  auto rows = store->LoadWorkerCredentials();
  if (!rows.ok()) return rows.status();
  std::unique_ptr<WorkerCredentials> credentials(new WorkerCredentials(store));
  for (const WorkerCredentialRow& row : *rows) credentials->hashes_[row.worker_id] = row.secret_sha256;
  return credentials;
}

StatusOr<std::string> WorkerCredentials::Issue(const std::string& worker_id) {
  unsigned char secret[kSecretBytes];
  DWARP_RETURN_IF_ERROR(RandomBytes(secret, sizeof(secret)));
  const std::string credential = "wc1." + Hex(secret, sizeof(secret));
  WorkerCredentialRow row;
  row.worker_id = worker_id;
  row.secret_sha256 = Sha256Hex(credential);
  row.issued_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  // Stored first: a credential the coordinator would forget at a restart would lock its worker out.
  DWARP_RETURN_IF_ERROR(store_->PutWorkerCredential(row));
  std::lock_guard<std::mutex> lock(mu_);
  hashes_[worker_id] = row.secret_sha256;
  return credential;
}

bool WorkerCredentials::Has(const std::string& worker_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return hashes_.count(worker_id) > 0;
}

WorkerCredentials::Check WorkerCredentials::Verify(const std::string& worker_id, const std::string& presented) const {
  std::string expected;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto found = hashes_.find(worker_id);
    if (found != hashes_.end()) expected = found->second;
  }
  if (expected.empty()) return Check::kNoCredential;
  if (presented.empty()) return Check::kMissing;
  // Hashing first makes the comparison independent of the presented length; TokensEqual is constant-time.
  const std::string presented_hash = Sha256Hex(presented);
  return rpc::TokensEqual(presented_hash, expected) ? Check::kOk : Check::kMismatch;
}

std::string WorkerCredentials::Describe(Check check, const std::string& worker_id) {
  const std::string worker = "worker '" + worker_id.substr(0, 64) + (worker_id.size() > 64 ? "...'" : "'");
  switch (check) {
    case Check::kOk:
      return "";
    case Check::kMissing:
      return "a call for " + worker + " must carry that worker's credential (metadata '" +
             kWorkerCredentialMetadata + "', issued by Register); none was sent";
    case Check::kNoCredential:
      return worker + " has no credential at this coordinator (unknown, or registered before worker credentials "
             "existed); register again without a worker id";
    case Check::kMismatch:
      return "the worker credential sent is not " + worker + "'s: a worker may act only as itself";
  }
  return "";
}

}  // namespace dwarp::coordinator
