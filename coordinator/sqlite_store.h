// SqliteSweepStore: the SweepStore (store.h) that dwarp-coordinator uses, kept in one SQLite file.
//
// The file is opened in WAL mode (readers never block the one writer, a crash loses nothing committed),
// synchronous=NORMAL (a commit is durable once the WAL is checkpointed or the OS flushes it; a power cut
// may lose the last commits but never corrupts the file), a 5 s busy timeout (another process holding the
// file, e.g. `sqlite3` reading it, delays a write instead of failing it) and foreign keys on.
//
// Schema: the version is PRAGMA user_version. Open applies the missing migrations, in order, in one
// transaction; a file written by a newer dwarp (a higher version than kSchemaVersion) is refused rather
// than misread. Versions: 1 the first schema; 2 adds results.noise_ceiling (NULL = unknown, which is what
// every result of a version-1 file reads as); 3 makes (job_id, attempt, epoch) the metrics' unique key
// (repeats stored before are dropped, the first copy kept); 4 adds sweeps.request_id ('' = none, as for
// every older sweep; unique among the others); 5 adds worker_credentials (a hash of each worker's
// credential; workers registered before have none and must register again); 6 adds jobs.reason ('' for
// older jobs); 7 stores each job's d typed, jobs.d_kind (SubspaceDim::Kind) and jobs.d_value, instead of the
// text column jobs.d (the text is converted; DROP COLUMN needs SQLite 3.35 or later). Tables: sweeps, jobs (index on
// sweep_id), results (one row per job at most: the primary key is the job id), metrics (one row per job,
// attempt and epoch), workers (devices as a JSON array of strings), worker_credentials.
//
// Which files Open accepts, decided before it writes anything: a file that does not exist (created); an
// empty SQLite database (no tables, user_version 0); a dwarp database, known by PRAGMA application_id =
// kApplicationId (stamped on every open) or, for files written before dwarp stamped it, by dwarp's tables
// at a user_version >= 1. Refused, untouched and named in the error: a 0-byte file that existed before
// Open (SQLite would take it for a new database, and a history expected there is gone), another program's
// database (another application_id, or tables but not dwarp's), a file that is not a database, a newer
// schema, and a file SQLite can open only read-only or cannot write (every open ends with a write, the
// application_id stamp, so a read-only file or folder or a full disk is found before the coordinator serves).
//
// Every method is one transaction (BEGIN IMMEDIATE ... COMMIT; ROLLBACK on any error), so a failed call
// changes nothing. Statements are prepared once and re-bound; AppendMetrics writes its batch with one
// statement in one transaction.
//
// One server per file: Open takes an exclusive lock (flock) on `<path>.lock`, holding the owner's pid, for
// the store's lifetime; a second Open of the same file, from this or any other process on the machine, is
// refused (FailedPrecondition naming the process that holds it) before it touches the database. Other
// programs reading the file (`sqlite3`) do not take this lock and are not affected. The kernel
// drops the lock when its holder dies, so a crash never leaves the file locked.
//
// Thread-safety: one sqlite3 connection behind a mutex; every method may be called from any thread
// (calls are serialised).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "coordinator/store.h"

namespace dwarp::coordinator {

class SqliteConnection;  // the connection, its statement cache and the mutex (sqlite_store.cpp)

class SqliteSweepStore final : public SweepStore {
 public:
  // The schema version this build writes and reads (PRAGMA user_version).
  static constexpr int kSchemaVersion = 7;
  // PRAGMA application_id of every database dwarp writes: "dwrp" in ASCII.
  static constexpr int kApplicationId = 0x64777270;

  // Opens the database at `path`, creating the file if missing, and brings its schema up to
  // kSchemaVersion. Errors name the path and SQLite's reason: Internal for a file that cannot be opened
  // (e.g. its folder does not exist) or is not a SQLite database, or when WAL mode cannot be set;
  // FailedPrecondition for a database whose schema version is newer than kSchemaVersion, that another
  // open store holds (the message names the holder's pid and program), that is not dwarp's (what was found:
  // application_id, user_version, tables), a 0-byte file, or a file that cannot be written ("not writable").
  static StatusOr<std::unique_ptr<SqliteSweepStore>> Open(const std::string& path);

  ~SqliteSweepStore() override;
  SqliteSweepStore(const SqliteSweepStore&) = delete;
  SqliteSweepStore& operator=(const SqliteSweepStore&) = delete;

  Status CreateSweep(const SweepRow& sweep, std::vector<JobRow>& jobs) override;
  Status AddJobs(const std::string& sweep_id, std::vector<JobRow>& jobs) override;
  Status UpdateSweep(const SweepRow& sweep) override;
  Status UpdateJobs(const std::vector<JobRow>& jobs) override;
  Status RecordResult(const JobRow& job, const ResultRow& result) override;
  Status AppendMetrics(const std::vector<MetricRow>& points) override;
  Status UpsertWorker(const WorkerRow& worker) override;
  Status PutWorkerCredential(const WorkerCredentialRow& credential) override;

  StatusOr<std::vector<SweepRow>> LoadSweeps() override;
  StatusOr<std::vector<JobRow>> LoadJobs() override;
  StatusOr<std::vector<WorkerRow>> LoadWorkers() override;
  StatusOr<std::vector<WorkerCredentialRow>> LoadWorkerCredentials() override;
  StatusOr<std::vector<MetricRow>> LoadMetrics(int64_t job_id, int32_t attempt = -1) override;
  StatusOr<int64_t> CountResults(int64_t job_id) override;

  // PRAGMA integrity_check's report: "ok" when the file is sound, else SQLite's list of problems.
  StatusOr<std::string> IntegrityCheck();

  // The path given to Open.
  const std::string& path() const;

 private:
  explicit SqliteSweepStore(std::unique_ptr<SqliteConnection> db);

  std::unique_ptr<SqliteConnection> db_;
};

}  // namespace dwarp::coordinator
