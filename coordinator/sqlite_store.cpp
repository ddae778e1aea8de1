#include "coordinator/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>

namespace dwarp::coordinator {
namespace {

// kMigrations[v] brings a database from schema version v to v + 1; Open applies the missing ones in order
// in one transaction. Append a migration (never edit a released one) and bump kSchemaVersion.
//
// Integers hold enums with dwarp.v1's numbering, booleans as 0/1, times as ms since the epoch; the job seed
// (uint64) is stored as the int64 with the same bits. Text columns are NOT NULL ("" for none), as in the rows;
// a REAL column that may be NULL holds a row's NaN ("unknown").
constexpr const char* kMigrations[] = {
    // 0 -> 1: the first schema.
    R"sql(
CREATE TABLE sweeps (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,  -- creation order (LoadSweeps)
  sweep_id     TEXT    NOT NULL UNIQUE,
  name         TEXT    NOT NULL,
  state        INTEGER NOT NULL,
  created_ms   INTEGER NOT NULL,
  finished_ms  INTEGER NOT NULL,
  spec_json    TEXT    NOT NULL
);
CREATE TABLE jobs (
  job_id            INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: ids are never reused
  sweep_id          TEXT    NOT NULL REFERENCES sweeps (sweep_id),
  model             TEXT    NOT NULL,
  layer             TEXT    NOT NULL,
  dataset           TEXT    NOT NULL,
  d                 TEXT    NOT NULL,
  variant           TEXT    NOT NULL,
  seed              INTEGER NOT NULL,
  spec_json         TEXT    NOT NULL,
  state             INTEGER NOT NULL,
  attempt           INTEGER NOT NULL,
  lease_id          TEXT    NOT NULL,
  worker_id         TEXT    NOT NULL,
  lease_expires_ms  INTEGER NOT NULL,
  error             TEXT    NOT NULL,
  created_ms        INTEGER NOT NULL,
  started_ms        INTEGER NOT NULL,
  finished_ms       INTEGER NOT NULL,
  cancel_requested  INTEGER NOT NULL
);
CREATE INDEX jobs_by_sweep ON jobs (sweep_id);
CREATE TABLE results (
  job_id               INTEGER PRIMARY KEY REFERENCES jobs (job_id),  -- exactly one result per job
  metric               TEXT    NOT NULL,
  train_score          REAL    NOT NULL,
  val_score            REAL    NOT NULL,
  test_score           REAL    NOT NULL,
  test_pearson_mean    REAL    NOT NULL,
  test_pearson_median  REAL    NOT NULL,
  epochs_run           INTEGER NOT NULL,
  best_epoch           INTEGER NOT NULL,
  seconds              REAL    NOT NULL,
  trained_d            INTEGER NOT NULL,
  warped_params        INTEGER NOT NULL,
  device               TEXT    NOT NULL,
  result_json          TEXT    NOT NULL,
  attempt              INTEGER NOT NULL,
  worker_id            TEXT    NOT NULL,
  recorded_ms          INTEGER NOT NULL
);
CREATE TABLE metrics (
  job_id      INTEGER NOT NULL REFERENCES jobs (job_id),
  attempt     INTEGER NOT NULL,
  epoch       INTEGER NOT NULL,
  train_loss  REAL    NOT NULL,
  val_score   REAL    NOT NULL,
  time_ms     INTEGER NOT NULL
);
-- Leads with job_id (LoadMetrics filters on it) and also yields LoadMetrics' order.
CREATE INDEX metrics_by_job ON metrics (job_id, attempt, epoch);
CREATE TABLE workers (
  worker_id             TEXT    PRIMARY KEY,
  name                  TEXT    NOT NULL,
  host                  TEXT    NOT NULL,
  devices               TEXT    NOT NULL,  -- JSON array of strings
  registered_ms         INTEGER NOT NULL,
  last_seen_ms          INTEGER NOT NULL,
  consecutive_failures  INTEGER NOT NULL,
  blocked               INTEGER NOT NULL,
  draining              INTEGER NOT NULL,
  jobs_succeeded        INTEGER NOT NULL,
  jobs_failed           INTEGER NOT NULL
);
)sql",
    // 1 -> 2: the data's noise ceiling of each result (NULL = unknown, as for every result recorded before).
    R"sql(
ALTER TABLE results ADD COLUMN noise_ceiling REAL;
)sql",
    // 2 -> 3: one point per (job, attempt, epoch). A worker whose metric stream broke sends the points it
    // cannot know were stored again; the unique key makes the repeat a no-op. Repeats already stored keep
    // their first copy.
    R"sql(
DELETE FROM metrics WHERE rowid NOT IN (SELECT MIN(rowid) FROM metrics GROUP BY job_id, attempt, epoch);
DROP INDEX metrics_by_job;
CREATE UNIQUE INDEX metrics_by_point ON metrics (job_id, attempt, epoch);
)sql",
    // 3 -> 4: the client's request id of the Submit that created each sweep ("" for none, as for every sweep
    // stored before), unique among the sweeps that have one.
    R"sql(
ALTER TABLE sweeps ADD COLUMN request_id TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX sweeps_by_request_id ON sweeps (request_id) WHERE request_id != '';
)sql",
    // 4 -> 5: each worker's credential, as a SHA-256 hash only (the secret itself is never stored). Workers
    // registered before have none: the coordinator has them register again under a new id.
    R"sql(
CREATE TABLE worker_credentials (
  worker_id      TEXT    PRIMARY KEY,
  secret_sha256  TEXT    NOT NULL,
  issued_ms      INTEGER NOT NULL
);
)sql",
    // 5 -> 6: why each job was created ("" for every job stored before: a grid's).
    R"sql(
ALTER TABLE jobs ADD COLUMN reason TEXT NOT NULL DEFAULT '';
)sql",
    // 6 -> 7: each job's d typed, in two integer columns instead of text: d_kind is SubspaceDim::Kind (0 linear,
    // 1 subspace, 2 full) and d_value the subspace's d (0 for the other kinds). The stored text was written by
    // SubspaceDim::ToString ("0", "300", "full"); a text that is not of that form becomes d_kind -1, which
    // LoadJobs reports naming the job rather than guessing a d. DROP COLUMN needs SQLite 3.35 or later.
    R"sql(
ALTER TABLE jobs ADD COLUMN d_kind INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN d_value INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET
  d_kind = CASE
    WHEN d = '0' THEN 0
    WHEN d = 'full' THEN 2
    WHEN d GLOB '[1-9]*' AND d NOT GLOB '*[^0-9]*' AND length(d) <= 18 THEN 1
    ELSE -1 END,
  d_value = CASE
    WHEN d GLOB '[1-9]*' AND d NOT GLOB '*[^0-9]*' AND length(d) <= 18 THEN CAST(d AS INTEGER)
    ELSE 0 END;
ALTER TABLE jobs DROP COLUMN d;
)sql",
};
static_assert(std::size(kMigrations) == SqliteSweepStore::kSchemaVersion,
              "one migration per schema version");

constexpr int kBusyTimeoutMs = 5000;

// A JSON array of strings, e.g. ["cuda:0","cuda:1"]. Read back with SQLite's json_each, which handles
// every escape JSON allows.
std::string EncodeJsonStringArray(const std::vector<std::string>& items) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ',';
    out += '"';
    for (unsigned char c : items[i]) {
      if (c == '"' || c == '\\') {
        out += '\\';
        out += static_cast<char>(c);
      } else if (c < 0x20) {
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xf];
      } else {
        out += static_cast<char>(c);  // UTF-8 bytes pass through: JSON text is UTF-8
      }
    }
    out += '"';
  }
  out += ']';
  return out;
}

}  // namespace

// The connection, the prepared-statement cache and the mutex that serialises every use of both.
namespace {

// The server lock (sqlite_store.h): flock on `<database>.lock`, which holds the owner's pid. A separate file,
// because SQLite's own POSIX locks on the database are dropped by any close of the file in the process and
// emulated flocks would collide with them on some file systems. The kernel releases the lock when the
// process dies, however it dies, so a stale file never blocks a restart.
class ServerLock {
 public:
  static StatusOr<ServerLock> Acquire(const std::string& database) {
    const std::string path = database + ".lock";
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      return InternalError("cannot open the lock file '" + path + "' of SQLite database '" + database +
                           "': " + std::strerror(errno));
    }
    ServerLock lock(fd);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK) {
        return InternalError("cannot lock '" + path + "' (the lock of SQLite database '" + database +
                             "'): " + std::strerror(errno));
      }
      return FailedPreconditionError("SQLite database '" + database + "' is in use by another dwarp coordinator (" +
                                     Holder(path) + ", which holds the lock " + path +
                                     "); stop it, or give this one another database");
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
      return InternalError("cannot write the lock file '" + path + "': " + std::strerror(errno));
    }
    return lock;
  }

  ServerLock(ServerLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  ServerLock& operator=(ServerLock&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  ~ServerLock() {
    if (fd_ >= 0) ::close(fd_);  // closing the only descriptor releases the flock
  }

 private:
  explicit ServerLock(int fd) : fd_(fd) {}

  // "process 1234 (dwarp-coordinator)" from the pid the holder wrote; what is known when it cannot be read.
  static std::string Holder(const std::string& path) {
    long pid = 0;
    std::ifstream(path) >> pid;
    if (pid <= 0) return "a process whose pid is not yet written";
    std::string name;
    std::getline(std::ifstream("/proc/" + std::to_string(pid) + "/cmdline"), name, '\0');
    return "process " + std::to_string(pid) + (name.empty() ? "" : " (" + name + ")");
  }

  int fd_ = -1;
};

}  // namespace

class SqliteConnection {
 public:
  SqliteConnection(std::string path, sqlite3* conn, std::optional<ServerLock> lock)
      : path_(std::move(path)), conn_(conn), lock_(std::move(lock)) {}
  ~SqliteConnection() {
    for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
    sqlite3_close(conn_);
  }
  SqliteConnection(const SqliteConnection&) = delete;
  SqliteConnection& operator=(const SqliteConnection&) = delete;

  std::mutex& mu() { return mu_; }
  const std::string& path() const { return path_; }
  sqlite3* conn() { return conn_; }

  // Internal error naming the file, what was being done and SQLite's reason.
  Status Error(const std::string& what) const {
    last_error_code_ = sqlite3_errcode(conn_);
    return InternalError("SQLite database '" + path_ + "': " + what + ": " + sqlite3_errmsg(conn_));
  }
  // SQLite's (extended) result code at the last error reported by Error or Exec; a later rollback does
  // not clear it.
  int last_error_code() const { return last_error_code_; }

  // The statement for `sql`, prepared on first use and kept for the connection's life.
  StatusOr<sqlite3_stmt*> Prepare(const std::string& sql) {
    auto it = cache_.find(sql);
    if (it != cache_.end()) return it->second;
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v3(conn_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK) {
      sqlite3_finalize(stmt);
      return Error("cannot prepare \"" + sql + "\"");
    }
    cache_.emplace(sql, stmt);
    return stmt;
  }

  // Runs `body` in one transaction (BEGIN IMMEDIATE for writes: the write lock is taken up front, so a
  // busy file is waited for at BEGIN rather than failing half-way), committing when it returns OK and
  // rolling back otherwise. Caller holds mu().
  Status InTransaction(bool write, const std::function<Status()>& body);

  // Runs a statement that returns no rows (or whose rows do not matter); not cached.
  Status Exec(const std::string& sql, const std::string& what) {
    char* message = nullptr;
    if (sqlite3_exec(conn_, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
      last_error_code_ = sqlite3_errcode(conn_);
      std::string reason = message != nullptr ? message : sqlite3_errmsg(conn_);
      sqlite3_free(message);
      return InternalError("SQLite database '" + path_ + "': " + what + ": " + reason);
    }
    return OkStatus();
  }

 private:
  std::mutex mu_;
  const std::string path_;
  sqlite3* const conn_;
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
  mutable int last_error_code_ = SQLITE_OK;
  std::optional<ServerLock> lock_;  // released after the connection is closed (members go in reverse order)
};

namespace {

// One use of a cached statement: binds parameters left to right, steps, reads columns, and resets the
// statement (keeping it prepared) when it goes out of scope.
class Query {
 public:
  Query(SqliteConnection& db, sqlite3_stmt* stmt, const char* what) : db_(db), stmt_(stmt), what_(what) {}
  ~Query() { Reset(); }
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  Query& Int(int64_t v) { return Check(sqlite3_bind_int64(stmt_, ++index_, v)); }
  Query& Real(double v) { return Check(sqlite3_bind_double(stmt_, ++index_, v)); }
  // NaN (unknown) as NULL, which ColumnRealOrNan reads back as NaN.
  Query& RealOrNull(double v) {
    return std::isnan(v) ? Check(sqlite3_bind_null(stmt_, ++index_)) : Real(v);
  }
  // SQLITE_TRANSIENT: SQLite copies the text, so temporaries may be bound.
  Query& Text(const std::string& v) {
    return Check(sqlite3_bind_text(stmt_, ++index_, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }

  // Steps once: true with a row to read, false when done.
  StatusOr<bool> Step() {
    if (bind_rc_ != SQLITE_OK) {
      return db_.Error(std::string(what_) + ": cannot bind parameter " + std::to_string(bad_index_));
    }
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return db_.Error(what_);
  }
  // Steps a statement that returns no rows.
  Status Run() {
    StatusOr<bool> row = Step();
    return row.ok() ? OkStatus() : row.status();
  }
  // Resets the statement for a fresh set of parameters (batches re-bind one statement per row).
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    index_ = 0;
    bind_rc_ = SQLITE_OK;
  }

  int64_t ColumnInt(int i) const { return sqlite3_column_int64(stmt_, i); }
  double ColumnReal(int i) const { return sqlite3_column_double(stmt_, i); }
  double ColumnRealOrNan(int i) const {
    return sqlite3_column_type(stmt_, i) == SQLITE_NULL ? std::numeric_limits<double>::quiet_NaN()
                                                        : sqlite3_column_double(stmt_, i);
  }
  std::string ColumnText(int i) const {
    const unsigned char* text = sqlite3_column_text(stmt_, i);
    if (text == nullptr) return std::string();
    return std::string(reinterpret_cast<const char*>(text), static_cast<size_t>(sqlite3_column_bytes(stmt_, i)));
  }

 private:
  Query& Check(int rc) {
    if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) {
      bind_rc_ = rc;
      bad_index_ = index_;
    }
    return *this;
  }

  SqliteConnection& db_;
  sqlite3_stmt* stmt_;
  const char* what_;
  int index_ = 0;
  int bind_rc_ = SQLITE_OK;  // the first failed bind's code, reported by Step
  int bad_index_ = 0;
};

// Declares `query` over the cached statement for `sql`, returning from the enclosing function if it
// cannot be prepared.
#define DWARP_QUERY(query, db, sql, what)                     \
  StatusOr<sqlite3_stmt*> query##_stmt = (db).Prepare(sql);   \
  if (!query##_stmt.ok()) return query##_stmt.status();       \
  Query query(db, *query##_stmt, what)

// Assigns the result of a StatusOr<bool> step to `lhs`, returning its error from the enclosing function.
#define DWARP_ASSIGN_STEP(lhs, expr)                 \
  StatusOr<bool> lhs##_or = (expr);                  \
  if (!lhs##_or.ok()) return lhs##_or.status();      \
  bool lhs = *lhs##_or

// Runs `sql` (parameters bound by `bind`) in a read transaction and returns one Row per result row, each
// read by `read_row`, whose error (a value the schema does not allow) ends the load.
template <typename Row, typename Bind, typename ReadRow>
StatusOr<std::vector<Row>> LoadRows(SqliteConnection& db, const char* sql, const char* what, Bind bind,
                                    ReadRow read_row) {
  std::vector<Row> out;
  Status status = db.InTransaction(/*write=*/false, [&]() -> Status {
    DWARP_QUERY(q, db, sql, what);
    bind(q);
    while (true) {
      DWARP_ASSIGN_STEP(row, q.Step());
      if (!row) return OkStatus();
      StatusOr<Row> read = read_row(q);
      if (!read.ok()) return read.status();
      out.push_back(std::move(*read));
    }
  });
  if (!status.ok()) return status;
  return out;
}

constexpr const char* kInsertSweep =
    "INSERT INTO sweeps (sweep_id, name, state, created_ms, finished_ms, spec_json, request_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)";
constexpr const char* kSweepExists = "SELECT 1 FROM sweeps WHERE sweep_id = ?";
constexpr const char* kSweepOfRequest = "SELECT sweep_id FROM sweeps WHERE request_id = ?";
constexpr const char* kUpdateSweep = "UPDATE sweeps SET state = ?, finished_ms = ? WHERE sweep_id = ?";
constexpr const char* kInsertJob =
    "INSERT INTO jobs (sweep_id, model, layer, dataset, d_kind, d_value, variant, seed, spec_json, state, attempt,"
    " lease_id, worker_id, lease_expires_ms, error, created_ms, started_ms, finished_ms, cancel_requested, reason)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
// The mutable fields of store.h's UpdateJobs; the key, spec and creation time are fixed at CreateSweep.
constexpr const char* kUpdateJob =
    "UPDATE jobs SET state = ?, attempt = ?, lease_id = ?, worker_id = ?, lease_expires_ms = ?, error = ?,"
    " started_ms = ?, finished_ms = ?, cancel_requested = ? WHERE job_id = ?";
constexpr const char* kJobExists = "SELECT 1 FROM jobs WHERE job_id = ?";
constexpr const char* kResultAttempt = "SELECT attempt FROM results WHERE job_id = ?";
// A ResultRow in one row; the columns trained_d and warped_params hold JobResult::numbers_trained and
// parameters_warped (named so since the first schema).
constexpr const char* kInsertResult =
    "INSERT INTO results (job_id, metric, train_score, val_score, test_score, test_pearson_mean,"
    " test_pearson_median, epochs_run, best_epoch, seconds, trained_d, warped_params, device, result_json,"
    " attempt, worker_id, recorded_ms, noise_ceiling) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
// A point already stored (same job, attempt and epoch) is kept; the repeat changes nothing.
constexpr const char* kInsertMetric =
    "INSERT INTO metrics (job_id, attempt, epoch, train_loss, val_score, time_ms) VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (job_id, attempt, epoch) DO NOTHING";
constexpr const char* kUpsertWorker =
    "INSERT OR REPLACE INTO workers (worker_id, name, host, devices, registered_ms, last_seen_ms,"
    " consecutive_failures, blocked, draining, jobs_succeeded, jobs_failed)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
constexpr const char* kPutWorkerCredential =
    "INSERT OR REPLACE INTO worker_credentials (worker_id, secret_sha256, issued_ms) VALUES (?, ?, ?)";
constexpr const char* kLoadWorkerCredentials =
    "SELECT worker_id, secret_sha256, issued_ms FROM worker_credentials ORDER BY worker_id";
constexpr const char* kLoadSweeps =
    "SELECT sweep_id, name, state, created_ms, finished_ms, spec_json, request_id FROM sweeps ORDER BY seq";
constexpr const char* kLoadJobs =
    "SELECT j.job_id, j.sweep_id, j.model, j.layer, j.dataset, j.d_kind, j.variant, j.seed, j.spec_json, j.state,"
    " j.attempt, j.lease_id, j.worker_id, j.lease_expires_ms, j.error, j.created_ms, j.started_ms,"
    " j.finished_ms, j.cancel_requested,"
    " r.job_id IS NOT NULL, r.metric, r.train_score, r.val_score, r.test_score, r.test_pearson_mean,"
    " r.test_pearson_median, r.epochs_run, r.best_epoch, r.seconds, r.trained_d, r.warped_params, r.device,"
    " r.result_json, r.attempt, r.worker_id, r.recorded_ms, r.noise_ceiling, j.reason, j.d_value"
    " FROM jobs AS j LEFT JOIN results AS r ON r.job_id = j.job_id ORDER BY j.job_id";
constexpr const char* kLoadWorkers =
    "SELECT worker_id, name, host, devices, registered_ms, last_seen_ms, consecutive_failures, blocked,"
    " draining, jobs_succeeded, jobs_failed FROM workers ORDER BY worker_id";
constexpr const char* kDecodeDevices = "SELECT type, value FROM json_each(?) ORDER BY key";
constexpr const char* kLoadMetrics =
    "SELECT job_id, attempt, epoch, train_loss, val_score, time_ms FROM metrics"
    " WHERE job_id = ?1 AND (?2 < 0 OR attempt = ?2) ORDER BY attempt, epoch";
constexpr const char* kCountResults = "SELECT COUNT(*) FROM results WHERE job_id = ?";

// Inserts the jobs of sweep `sweep_id` and appends their new ids to *ids (inside the caller's transaction).
Status InsertJobs(SqliteConnection& db, const std::string& sweep_id, const std::vector<JobRow>& jobs,
                  std::vector<int64_t>* ids) {
  DWARP_QUERY(insert, db, kInsertJob, "insert job");
  for (const JobRow& job : jobs) {
    insert.Reset();
    insert.Text(sweep_id)
        .Text(job.model)
        .Text(job.layer)
        .Text(job.dataset)
        .Int(static_cast<int64_t>(job.d.kind))
        .Int(job.d.value)
        .Text(job.variant)
        .Int(static_cast<int64_t>(job.seed))  // same bits; read back as uint64
        .Text(job.spec_json)
        .Int(static_cast<int64_t>(job.state))
        .Int(job.attempt)
        .Text(job.lease_id)
        .Text(job.worker_id)
        .Int(job.lease_expires_ms)
        .Text(job.error)
        .Int(job.created_ms)
        .Int(job.started_ms)
        .Int(job.finished_ms)
        .Int(job.cancel_requested ? 1 : 0)
        .Text(job.reason);
    DWARP_RETURN_IF_ERROR(insert.Run());
    ids->push_back(sqlite3_last_insert_rowid(db.conn()));
  }
  return OkStatus();
}

// Writes the job's mutable fields; NotFound when no row has its id.
Status UpdateJobRow(SqliteConnection& db, const JobRow& job) {
  DWARP_QUERY(q, db, kUpdateJob, "update job");
  q.Int(static_cast<int64_t>(job.state))
      .Int(job.attempt)
      .Text(job.lease_id)
      .Text(job.worker_id)
      .Int(job.lease_expires_ms)
      .Text(job.error)
      .Int(job.started_ms)
      .Int(job.finished_ms)
      .Int(job.cancel_requested ? 1 : 0)
      .Int(job.job_id);
  DWARP_RETURN_IF_ERROR(q.Run());
  if (sqlite3_changes(db.conn()) == 0) return NotFoundError("no job with id " + std::to_string(job.job_id));
  return OkStatus();
}

StatusOr<bool> JobExists(SqliteConnection& db, int64_t job_id) {
  DWARP_QUERY(q, db, kJobExists, "look up job");
  q.Int(job_id);
  return q.Step();
}

// A column holding an enum, checked against its valid range so that a damaged row is reported, not cast.
template <typename Enum>
StatusOr<Enum> ReadEnum(const SqliteConnection& db, int64_t value, int64_t lo, int64_t hi,
                        const std::string& column, const std::string& row) {
  if (value < lo || value > hi) {
    return InternalError("SQLite database '" + db.path() + "': " + column + " of " + row + " is " +
                         std::to_string(value) + "; expected " + std::to_string(lo) + ".." + std::to_string(hi));
  }
  return static_cast<Enum>(value);
}

// A job's d from its columns d_kind (SubspaceDim::Kind) and d_value, checked as ReadEnum checks an enum so that
// a damaged row (or a d the migration to version 7 could not read, d_kind -1) is reported, not cast.
StatusOr<SubspaceDim> ReadDim(const SqliteConnection& db, int64_t kind, int64_t value, const std::string& row) {
  const std::string where = "SQLite database '" + db.path() + "': the d of " + row + " (d_kind " +
                            std::to_string(kind) + ", d_value " + std::to_string(value) + ")";
  switch (kind) {
    case SubspaceDim::kLinear:
    case SubspaceDim::kFull:
      if (value == 0) return SubspaceDim{static_cast<SubspaceDim::Kind>(kind), 0};
      return InternalError(where + " has a d_value; expected 0 for d_kind 0 (linear) and 2 (full)");
    case SubspaceDim::kSubspace:
      if (value >= 1) return SubspaceDim::Subspace(value);
      return InternalError(where + " is not a subspace size; expected d_value >= 1 for d_kind 1 (subspace)");
    default:
      return InternalError(where + " has an unknown kind; expected d_kind 0 (linear), 1 (subspace) or 2 (full)");
  }
}

}  // namespace

Status SqliteConnection::InTransaction(bool write, const std::function<Status()>& body) {
  {
    DWARP_QUERY(begin, *this, write ? "BEGIN IMMEDIATE" : "BEGIN", "begin transaction");
    DWARP_RETURN_IF_ERROR(begin.Run());
  }
  Status status = body();
  if (status.ok()) {
    DWARP_QUERY(commit, *this, "COMMIT", "commit");
    status = commit.Run();
    if (status.ok()) return status;
  }
  // Some errors (e.g. a full disk) already rolled the transaction back; roll back only one still open.
  if (sqlite3_get_autocommit(conn_) == 0) {
    DWARP_QUERY(rollback, *this, "ROLLBACK", "roll back");
    (void)rollback.Run();  // the first error is the one to report
  }
  return status;
}

SqliteSweepStore::SqliteSweepStore(std::unique_ptr<SqliteConnection> db) : db_(std::move(db)) {}
SqliteSweepStore::~SqliteSweepStore() = default;

const std::string& SqliteSweepStore::path() const { return db_->path(); }

namespace {

// The first column of the first row of `sql` as text ("" when there is no row); not cached.
StatusOr<std::string> QueryText(SqliteConnection& db, const std::string& sql, const std::string& what) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db.conn(), sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return db.Error(what);
  }
  int rc = sqlite3_step(stmt);
  std::string out;
  if (rc == SQLITE_ROW && sqlite3_column_text(stmt, 0) != nullptr) {
    out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  }
  Status status = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? OkStatus() : db.Error(what);
  sqlite3_finalize(stmt);
  if (!status.ok()) return status;
  return out;
}

StatusOr<int64_t> QueryInt(SqliteConnection& db, const std::string& sql, const std::string& what) {
  StatusOr<std::string> text = QueryText(db, sql, what);
  if (!text.ok()) return text.status();
  return std::stoll(*text);
}

StatusOr<int> ReadSchemaVersion(SqliteConnection& db) {
  // The first read of the file: a file that is not a database fails here ("file is not a database").
  StatusOr<int64_t> version = QueryInt(db, "PRAGMA user_version", "cannot read the schema version");
  if (!version.ok()) return version.status();
  return static_cast<int>(*version);
}

Status RefuseNewer(const SqliteConnection& db, int version) {
  return FailedPreconditionError("SQLite database '" + db.path() + "' has schema version " +
                                 std::to_string(version) + ", newer than this build's version " +
                                 std::to_string(SqliteSweepStore::kSchemaVersion) +
                                 "; open it with the dwarp-coordinator that wrote it, or a newer one");
}

std::string Hex32(int64_t value) {
  char text[16];
  std::snprintf(text, sizeof(text), "0x%08llx", static_cast<unsigned long long>(static_cast<uint32_t>(value)));
  return text;
}

// The tables every dwarp schema version has (the first schema's); a file written before dwarp stamped its
// application_id is recognised by them.
constexpr const char* kDwarpTables[] = {"jobs", "metrics", "results", "sweeps", "workers"};

// Whether the file is a dwarp database (or an empty one dwarp may make its own), read before anything is
// written: a file with another program's application_id, or with tables but neither dwarp's id nor
// dwarp's tables, is refused naming what was found.
Status CheckIsDwarpDatabase(SqliteConnection& db, int version) {
  StatusOr<int64_t> application_id = QueryInt(db, "PRAGMA application_id", "cannot read the application_id");
  if (!application_id.ok()) return application_id.status();
  if (*application_id == SqliteSweepStore::kApplicationId) return OkStatus();
  const std::string refusal = "SQLite database '" + db.path() + "' is not a dwarp database: ";
  const std::string advice = "; refusing to add dwarp's tables to it. Pass --db a new file or a dwarp database";
  if (*application_id != 0) {
    return FailedPreconditionError(refusal + "its application_id is " + Hex32(*application_id) +
                                   " (another program's file; dwarp's is " +
                                   Hex32(SqliteSweepStore::kApplicationId) + ")" + advice);
  }
  std::vector<std::string> tables;
  {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db.conn(),
                           "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE "
                           "'sqlite\\_%' ESCAPE '\\' ORDER BY name",
                           -1, &stmt, nullptr) != SQLITE_OK) {
      sqlite3_finalize(stmt);
      return db.Error("cannot list the tables");
    }
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      tables.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)));
    }
    sqlite3_finalize(stmt);
    if (rc != SQLITE_DONE) return db.Error("cannot list the tables");
  }
  if (tables.empty() && version == 0) return OkStatus();  // an empty database: nothing in it to lose
  bool has_dwarp_tables = version >= 1;
  for (const char* table : kDwarpTables) {
    has_dwarp_tables = has_dwarp_tables && std::find(tables.begin(), tables.end(), table) != tables.end();
  }
  if (has_dwarp_tables) return OkStatus();  // written by a dwarp that did not stamp its application_id yet
  std::string found;
  const size_t shown = std::min<size_t>(tables.size(), 10);
  for (size_t i = 0; i < shown; ++i) found += (i > 0 ? ", " : "") + tables[i];
  if (tables.size() > shown) found += ", ... (" + std::to_string(tables.size()) + " in all)";
  return FailedPreconditionError(refusal + "it has user_version " + std::to_string(version) +
                                 ", application_id 0 and " +
                                 (tables.empty() ? std::string("no tables") : "the tables " + found) +
                                 "; expected dwarp's application_id " + Hex32(SqliteSweepStore::kApplicationId) +
                                 " or dwarp's tables (jobs, metrics, results, sweeps, workers) at a user_version "
                                 "from 1" + advice);
}

// A write the file cannot take (read-only file or folder, full disk, I/O error) said plainly: the
// coordinator would otherwise serve and fail every call that writes.
Status NotWritable(SqliteConnection& db, const Status& status) {
  const int code = db.last_error_code();
  const int primary = code & 0xff;
  if (primary != SQLITE_READONLY && primary != SQLITE_CANTOPEN && primary != SQLITE_FULL &&
      primary != SQLITE_IOERR && primary != SQLITE_PERM) {
    return status;
  }
  return FailedPreconditionError("SQLite database '" + db.path() + "' is not writable (" + sqlite3_errstr(code) +
                                 "); the coordinator must write it: check the permissions and owner of the file "
                                 "and of its folder (WAL mode creates '" + db.path() + "-wal' and '" + db.path() +
                                 "-shm' next to it) and the free space there. (" + status.message() + ")");
}

// Brings the schema to kSchemaVersion and stamps dwarp's application_id. The version is read again inside
// the write transaction, so two processes opening a new file at once cannot both migrate it. The stamp is
// written on every open, even when it is already there: it is the write probe that proves the file can be
// written before the coordinator says it is serving.
Status Migrate(SqliteConnection& db) {
  return db.InTransaction(/*write=*/true, [&]() -> Status {
    StatusOr<int> version = ReadSchemaVersion(db);
    if (!version.ok()) return version.status();
    if (*version > SqliteSweepStore::kSchemaVersion) return RefuseNewer(db, *version);
    for (int v = *version; v < SqliteSweepStore::kSchemaVersion; ++v) {
      DWARP_RETURN_IF_ERROR(db.Exec(kMigrations[v], "migration from schema version " + std::to_string(v) +
                                                        " to " + std::to_string(v + 1)));
    }
    if (*version != SqliteSweepStore::kSchemaVersion) {
      // PRAGMA takes no bound parameters; the value is our own integer.
      DWARP_RETURN_IF_ERROR(db.Exec("PRAGMA user_version = " + std::to_string(SqliteSweepStore::kSchemaVersion),
                                    "set the schema version"));
    }
    return db.Exec("PRAGMA application_id = " + std::to_string(SqliteSweepStore::kApplicationId),
                   "write the application_id");
  });
}

}  // namespace

StatusOr<std::unique_ptr<SqliteSweepStore>> SqliteSweepStore::Open(const std::string& path) {
  const bool in_memory = path == ":memory:" || path.empty();
  // The lock first: a second server is refused before it reads or writes anything of the file.
  std::optional<ServerLock> lock;
  if (!in_memory) {
    StatusOr<ServerLock> acquired = ServerLock::Acquire(path);
    if (!acquired.ok()) return acquired.status();
    lock.emplace(std::move(*acquired));
    // SQLite takes an empty file for a new database. One that exists before the coordinator starts is
    // not one it made (a new file has its first page before Open returns): truncated, or a placeholder at
    // the wrong path. Taking it as new would start over silently where a history was expected.
    struct stat info {};
    if (::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) && info.st_size == 0) {
      return FailedPreconditionError("SQLite database '" + path +
                                     "' exists but is empty (0 bytes): not a database this coordinator made, and "
                                     "any history it held is gone. Remove the file to start a new database there, "
                                     "or pass --db the right file");
    }
  }
  sqlite3* conn = nullptr;
  // NOMUTEX: SqliteConnection's mutex already serialises every use of the connection.
  int rc = sqlite3_open_v2(path.c_str(), &conn, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string reason = conn != nullptr ? sqlite3_errmsg(conn) : sqlite3_errstr(rc);
    sqlite3_close(conn);
    return InternalError("cannot open SQLite database '" + path + "': " + reason);
  }
  auto db = std::make_unique<SqliteConnection>(path, conn, std::move(lock));
  sqlite3_extended_result_codes(conn, 1);
  sqlite3_busy_timeout(conn, kBusyTimeoutMs);
  // SQLite falls back to read-only, silently, when it may not write the file.
  if (sqlite3_db_readonly(conn, "main") == 1) {
    return FailedPreconditionError("SQLite database '" + path +
                                   "' is not writable (SQLite could open it only read-only); the coordinator "
                                   "must write it: check the permissions and owner of the file and its folder");
  }

  // The version and the owner first, before anything writes to the file: a newer schema, a non-database
  // file or another program's database is refused untouched.
  StatusOr<int> version = ReadSchemaVersion(*db);
  if (!version.ok()) return NotWritable(*db, version.status());  // a WAL file's -shm may not be creatable
  DWARP_RETURN_IF_ERROR(CheckIsDwarpDatabase(*db, *version));
  if (*version > kSchemaVersion) return RefuseNewer(*db, *version);

  StatusOr<std::string> mode = QueryText(*db, "PRAGMA journal_mode = WAL", "cannot set journal_mode = WAL");
  if (!mode.ok()) return NotWritable(*db, mode.status());
  if (*mode != "wal") {
    return InternalError("SQLite database '" + path + "': journal_mode = WAL did not take (the mode is '" + *mode +
                         "'); expected 'wal', which needs a file on a local file system");
  }
  DWARP_RETURN_IF_ERROR(db->Exec("PRAGMA synchronous = NORMAL", "cannot set synchronous = NORMAL"));
  DWARP_RETURN_IF_ERROR(db->Exec("PRAGMA foreign_keys = ON", "cannot set foreign_keys = ON"));
  StatusOr<std::string> foreign_keys = QueryText(*db, "PRAGMA foreign_keys", "cannot read foreign_keys");
  if (!foreign_keys.ok()) return foreign_keys.status();
  if (*foreign_keys != "1") {
    return InternalError("SQLite database '" + path + "': foreign_keys = ON did not take (SQLite built without "
                         "foreign key support?); expected 1, got '" + *foreign_keys + "'");
  }
  if (Status migrated = Migrate(*db); !migrated.ok()) return NotWritable(*db, migrated);
  return std::unique_ptr<SqliteSweepStore>(new SqliteSweepStore(std::move(db)));
}

Status SqliteSweepStore::CreateSweep(const SweepRow& sweep, std::vector<JobRow>& jobs) {
  for (const JobRow& job : jobs) {
    if (!job.sweep_id.empty() && job.sweep_id != sweep.sweep_id) {
      return InvalidArgumentError("job of sweep '" + job.sweep_id + "' given to CreateSweep of sweep '" +
                                  sweep.sweep_id + "'; expected '" + sweep.sweep_id + "' or empty");
    }
  }
  std::lock_guard<std::mutex> lock(db_->mu());
  SqliteConnection& db = *db_;
  std::vector<int64_t> ids;
  ids.reserve(jobs.size());
  Status status = db.InTransaction(/*write=*/true, [&]() -> Status {
    {
      DWARP_QUERY(exists, db, kSweepExists, "look up sweep");
      exists.Text(sweep.sweep_id);
      DWARP_ASSIGN_STEP(taken, exists.Step());
      if (taken) return AlreadyExistsError("sweep id '" + sweep.sweep_id + "' is already taken");
    }
    if (!sweep.request_id.empty()) {
      DWARP_QUERY(owner, db, kSweepOfRequest, "look up request id");
      owner.Text(sweep.request_id);
      DWARP_ASSIGN_STEP(found, owner.Step());
      if (found)
        return AlreadyExistsError("request id '" + sweep.request_id + "' already created sweep '" +
                                  owner.ColumnText(0) + "'");
    }
    {
      DWARP_QUERY(insert, db, kInsertSweep, "insert sweep");
      insert.Text(sweep.sweep_id)
          .Text(sweep.name)
          .Int(static_cast<int64_t>(sweep.state))
          .Int(sweep.created_ms)
          .Int(sweep.finished_ms)
          .Text(sweep.spec_json)
          .Text(sweep.request_id);
      DWARP_RETURN_IF_ERROR(insert.Run());
    }
    return InsertJobs(db, sweep.sweep_id, jobs, &ids);
  });
  if (!status.ok()) return status;
  // Only after the commit: a failed call leaves the caller's rows as they were too.
  for (size_t i = 0; i < jobs.size(); ++i) {
    jobs[i].job_id = ids[i];
    jobs[i].sweep_id = sweep.sweep_id;
  }
  return OkStatus();
}

Status SqliteSweepStore::AddJobs(const std::string& sweep_id, std::vector<JobRow>& jobs) {
  for (const JobRow& job : jobs) {
    if (!job.sweep_id.empty() && job.sweep_id != sweep_id) {
      return InvalidArgumentError("job of sweep '" + job.sweep_id + "' given to AddJobs of sweep '" + sweep_id +
                                  "'; expected '" + sweep_id + "' or empty");
    }
  }
  std::lock_guard<std::mutex> lock(db_->mu());
  SqliteConnection& db = *db_;
  std::vector<int64_t> ids;
  ids.reserve(jobs.size());
  Status status = db.InTransaction(/*write=*/true, [&]() -> Status {
    DWARP_QUERY(exists, db, kSweepExists, "look up sweep");
    exists.Text(sweep_id);
    DWARP_ASSIGN_STEP(found, exists.Step());
    if (!found) return NotFoundError("no sweep with id '" + sweep_id + "'");
    return InsertJobs(db, sweep_id, jobs, &ids);
  });
  if (!status.ok()) return status;
  for (size_t i = 0; i < jobs.size(); ++i) {
    jobs[i].job_id = ids[i];
    jobs[i].sweep_id = sweep_id;
  }
  return OkStatus();
}

Status SqliteSweepStore::UpdateSweep(const SweepRow& sweep) {
  std::lock_guard<std::mutex> lock(db_->mu());
  SqliteConnection& db = *db_;
  return db.InTransaction(/*write=*/true, [&]() -> Status {
    DWARP_QUERY(q, db, kUpdateSweep, "update sweep");
    q.Int(static_cast<int64_t>(sweep.state)).Int(sweep.finished_ms).Text(sweep.sweep_id);
    DWARP_RETURN_IF_ERROR(q.Run());
    if (sqlite3_changes(db.conn()) == 0) return NotFoundError("no sweep with id '" + sweep.sweep_id + "'");
    return OkStatus();
  });
}

Status SqliteSweepStore::UpdateJobs(const std::vector<JobRow>& jobs) {
  std::lock_guard<std::mutex> lock(db_->mu());
  SqliteConnection& db = *db_;
  return db.InTransaction(/*write=*/true, [&]() -> Status {
    for (const JobRow& job : jobs) DWARP_RETURN_IF_ERROR(UpdateJobRow(db, job));
    return OkStatus();
  });
}

Status SqliteSweepStore::RecordResult(const JobRow& job, const ResultRow& result) {
  std::lock_guard<std::mutex> lock(db_->mu());
  SqliteConnection& db = *db_;
  return db.InTransaction(/*write=*/true, [&]() -> Status {
    {
      DWARP_QUERY(existing, db, kResultAttempt, "look up result");
      existing.Int(job.job_id);
      DWARP_ASSIGN_STEP(found, existing.Step());
      if (found) {
        return AlreadyExistsError("job " + std::to_string(job.job_id) + " already has a result (attempt " +
                                  std::to_string(existing.ColumnInt(0)) + ")");
      }
    }
    // Before the insert, so an unknown job is NotFound rather than a foreign-key failure.
    DWARP_RETURN_IF_ERROR(UpdateJobRow(db, job));
    DWARP_QUERY(insert, db, kInsertResult, "insert result");
    insert.Int(job.job_id)
        .Text(result.metric)
        .Real(result.train_score)
        .Real(result.val_score)
        .Real(result.test_score)
        .Real(result.test_pearson_mean)
        .Real(result.test_pearson_median)
        .Int(result.epochs_run)
        .Int(result.best_epoch)
        .Real(result.seconds)
        .Int(result.numbers_trained)
        .Int(result.parameters_warped)
        .Text(result.device)
        .Text(result.result_json)
        .Int(result.attempt)
        .Text(result.worker_id)
        .Int(result.recorded_ms)
        .RealOrNull(result.noise_ceiling);
    return insert.Run();
  });
}

Status SqliteSweepStore::AppendMetrics(const std::vector<MetricRow>& points) {
  if (points.empty()) return OkStatus();
  std::lock_guard<std::mutex> lock(db_->mu());
  SqliteConnection& db = *db_;
  return db.InTransaction(/*write=*/true, [&]() -> Status {
    DWARP_QUERY(insert, db, kInsertMetric, "insert metric point");
    int64_t checked_job = 0;  // ids start at 1; a batch usually holds long runs of one job's points
    for (const MetricRow& point : points) {
      if (point.job_id != checked_job) {
        DWARP_ASSIGN_STEP(known, JobExists(db, point.job_id));
        if (!known) return NotFoundError("metric point for unknown job id " + std::to_string(point.job_id));
        checked_job = point.job_id;
      }
      insert.Reset();
      insert.Int(point.job_id)
          .Int(point.attempt)
          .Int(point.epoch)
          .Real(point.train_loss)
          .Real(point.val_score)
          .Int(point.time_ms);
      DWARP_RETURN_IF_ERROR(insert.Run());
    }
    return OkStatus();
  });
}

Status SqliteSweepStore::UpsertWorker(const WorkerRow& worker) {
  std::lock_guard<std::mutex> lock(db_->mu());
  SqliteConnection& db = *db_;
  return db.InTransaction(/*write=*/true, [&]() -> Status {
    DWARP_QUERY(q, db, kUpsertWorker, "upsert worker");
    q.Text(worker.worker_id)
        .Text(worker.name)
        .Text(worker.host)
        .Text(EncodeJsonStringArray(worker.devices))
        .Int(worker.registered_ms)
        .Int(worker.last_seen_ms)
        .Int(worker.consecutive_failures)
        .Int(worker.blocked ? 1 : 0)
        .Int(worker.draining ? 1 : 0)
        .Int(worker.jobs_succeeded)
        .Int(worker.jobs_failed);
    return q.Run();
  });
}

Status SqliteSweepStore::PutWorkerCredential(const WorkerCredentialRow& credential) {
  std::lock_guard<std::mutex> lock(db_->mu());
  SqliteConnection& db = *db_;
  return db.InTransaction(/*write=*/true, [&]() -> Status {
    DWARP_QUERY(q, db, kPutWorkerCredential, "store worker credential");
    q.Text(credential.worker_id).Text(credential.secret_sha256).Int(credential.issued_ms);
    return q.Run();
  });
}

StatusOr<std::vector<WorkerCredentialRow>> SqliteSweepStore::LoadWorkerCredentials() {
  std::lock_guard<std::mutex> lock(db_->mu());
  SqliteConnection& db = *db_;
  return LoadRows<WorkerCredentialRow>(
      db, kLoadWorkerCredentials, "load worker credentials", [](Query&) {},
      [&](Query& q) -> StatusOr<WorkerCredentialRow> {
        WorkerCredentialRow credential;
        credential.worker_id = q.ColumnText(0);
        credential.secret_sha256 = q.ColumnText(1);
        credential.issued_ms = q.ColumnInt(2);
        return credential;
      });
}

StatusOr<std::vector<SweepRow>> SqliteSweepStore::LoadSweeps() {
  std::lock_guard<std::mutex> lock(db_->mu());
  SqliteConnection& db = *db_;
  return LoadRows<SweepRow>(
      db, kLoadSweeps, "load sweeps", [](Query&) {},
      [&](Query& q) -> StatusOr<SweepRow> {
        SweepRow sweep;
        sweep.sweep_id = q.ColumnText(0);
        sweep.name = q.ColumnText(1);
        StatusOr<SweepState> state =
            ReadEnum<SweepState>(db, q.ColumnInt(2), 1, 3, "sweeps.state", "sweep '" + sweep.sweep_id + "'");
        if (!state.ok()) return state.status();
        sweep.state = *state;
        sweep.created_ms = q.ColumnInt(3);
        sweep.finished_ms = q.ColumnInt(4);
        sweep.spec_json = q.ColumnText(5);
        sweep.request_id = q.ColumnText(6);
        return sweep;
      });
}

StatusOr<std::vector<JobRow>> SqliteSweepStore::LoadJobs() {
  std::lock_guard<std::mutex> lock(db_->mu());
  SqliteConnection& db = *db_;
  return LoadRows<JobRow>(
      db, kLoadJobs, "load jobs", [](Query&) {},
      [&](Query& q) -> StatusOr<JobRow> {
        JobRow job;
        job.job_id = q.ColumnInt(0);
        job.sweep_id = q.ColumnText(1);
        job.model = q.ColumnText(2);
        job.layer = q.ColumnText(3);
        job.dataset = q.ColumnText(4);
        StatusOr<SubspaceDim> d = ReadDim(db, q.ColumnInt(5), q.ColumnInt(38), "job " + std::to_string(job.job_id));
        if (!d.ok()) return d.status();
        job.d = *d;
        job.variant = q.ColumnText(6);
        job.seed = static_cast<uint64_t>(q.ColumnInt(7));
        job.spec_json = q.ColumnText(8);
        StatusOr<JobState> state =
            ReadEnum<JobState>(db, q.ColumnInt(9), 1, 5, "jobs.state", "job " + std::to_string(job.job_id));
        if (!state.ok()) return state.status();
        job.state = *state;
        job.attempt = static_cast<int32_t>(q.ColumnInt(10));
        job.lease_id = q.ColumnText(11);
        job.worker_id = q.ColumnText(12);
        job.lease_expires_ms = q.ColumnInt(13);
        job.error = q.ColumnText(14);
        job.created_ms = q.ColumnInt(15);
        job.started_ms = q.ColumnInt(16);
        job.finished_ms = q.ColumnInt(17);
        job.cancel_requested = q.ColumnInt(18) != 0;
        job.reason = q.ColumnText(37);
        if (q.ColumnInt(19) != 0) {
          ResultRow r;
          r.metric = q.ColumnText(20);
          r.train_score = q.ColumnReal(21);
          r.val_score = q.ColumnReal(22);
          r.test_score = q.ColumnReal(23);
          r.test_pearson_mean = q.ColumnReal(24);
          r.test_pearson_median = q.ColumnReal(25);
          r.epochs_run = q.ColumnInt(26);
          r.best_epoch = q.ColumnInt(27);
          r.seconds = q.ColumnReal(28);
          r.numbers_trained = q.ColumnInt(29);
          r.parameters_warped = q.ColumnInt(30);
          r.device = q.ColumnText(31);
          r.result_json = q.ColumnText(32);
          r.attempt = static_cast<int32_t>(q.ColumnInt(33));
          r.worker_id = q.ColumnText(34);
          r.recorded_ms = q.ColumnInt(35);
          r.noise_ceiling = q.ColumnRealOrNan(36);
          job.result = std::move(r);
        }
        return job;
      });
}

StatusOr<std::vector<WorkerRow>> SqliteSweepStore::LoadWorkers() {
  std::lock_guard<std::mutex> lock(db_->mu());
  SqliteConnection& db = *db_;
  return LoadRows<WorkerRow>(
      db, kLoadWorkers, "load workers", [](Query&) {},
      [&](Query& q) -> StatusOr<WorkerRow> {
        WorkerRow w;
        w.worker_id = q.ColumnText(0);
        w.name = q.ColumnText(1);
        w.host = q.ColumnText(2);
        {
          std::string devices_json = q.ColumnText(3);
          const std::string what = "read workers.devices of worker '" + w.worker_id + "' (" + devices_json + ")";
          DWARP_QUERY(devices, db, kDecodeDevices, what.c_str());
          devices.Text(devices_json);
          while (true) {
            DWARP_ASSIGN_STEP(item, devices.Step());
            if (!item) break;
            if (devices.ColumnText(0) != "text") {
              return InternalError("SQLite database '" + db.path() + "': workers.devices of worker '" + w.worker_id +
                                   "' is " + devices_json + "; expected a JSON array of strings");
            }
            w.devices.push_back(devices.ColumnText(1));
          }
        }
        w.registered_ms = q.ColumnInt(4);
        w.last_seen_ms = q.ColumnInt(5);
        w.consecutive_failures = static_cast<int32_t>(q.ColumnInt(6));
        w.blocked = q.ColumnInt(7) != 0;
        w.draining = q.ColumnInt(8) != 0;
        w.jobs_succeeded = q.ColumnInt(9);
        w.jobs_failed = q.ColumnInt(10);
        return w;
      });
}

StatusOr<std::vector<MetricRow>> SqliteSweepStore::LoadMetrics(int64_t job_id, int32_t attempt) {
  std::lock_guard<std::mutex> lock(db_->mu());
  SqliteConnection& db = *db_;
  return LoadRows<MetricRow>(
      db, kLoadMetrics, "load metric points", [&](Query& q) { q.Int(job_id).Int(attempt); },
      [&](Query& q) -> StatusOr<MetricRow> {
        MetricRow m;
        m.job_id = q.ColumnInt(0);
        m.attempt = static_cast<int32_t>(q.ColumnInt(1));
        m.epoch = q.ColumnInt(2);
        m.train_loss = q.ColumnReal(3);
        m.val_score = q.ColumnReal(4);
        m.time_ms = q.ColumnInt(5);
        return m;
      });
}

StatusOr<int64_t> SqliteSweepStore::CountResults(int64_t job_id) {
  std::lock_guard<std::mutex> lock(db_->mu());
  SqliteConnection& db = *db_;
  int64_t count = 0;
  Status status = db.InTransaction(/*write=*/false, [&]() -> Status {
    DWARP_QUERY(q, db, kCountResults, "count results");
    q.Int(job_id);
    DWARP_ASSIGN_STEP(row, q.Step());
    if (row) count = q.ColumnInt(0);
    return OkStatus();
  });
  if (!status.ok()) return status;
  return count;
}

StatusOr<std::string> SqliteSweepStore::IntegrityCheck() {
  std::lock_guard<std::mutex> lock(db_->mu());
  SqliteConnection& db = *db_;
  std::string report;
  // Not cached: run rarely. One line per problem; a single "ok" when there are none.
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db.conn(), "PRAGMA integrity_check", -1, &stmt, nullptr) != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return db.Error("integrity check");
  }
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    if (!report.empty()) report += '\n';
    const unsigned char* line = sqlite3_column_text(stmt, 0);
    if (line != nullptr) report += reinterpret_cast<const char*>(line);
  }
  Status status = rc == SQLITE_DONE ? OkStatus() : db.Error("integrity check");
  sqlite3_finalize(stmt);
  if (!status.ok()) return status;
  return report;
}

}  // namespace dwarp::coordinator
