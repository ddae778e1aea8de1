// dwarp-coordinator as an attacker and a careless operator meet it: real processes on loopback, ports chosen
// by the OS, no worker and no data set needed.
//   - hostile Submits (strings of 30,000 bytes, JSON nested 100,000 deep, values just past each limit) are
//     refused with a message naming the field, what was found and the limit; values at each limit pass;
//     the coordinator stays up and answers the next request; `dwarp submit --dry-run` does the same
//   - a second coordinator on the same database (same or another port), or on the same port, is refused
//     with a message naming the process that holds the database or the address; the first keeps serving
//   - ports outside 1..65535 (gRPC would wrap 99999 to 34463) are refused naming the value, by the
//     coordinator's --listen and by the CLI's --coordinator
//   - a start that is refused (flags, a non-loopback address without a token) leaves no database file
//     behind; a database file that is empty, another program's, or not writable is refused naming the
//     file and what was found, and left as it was
//   - a sweep of 99,990 jobs (whose jobs together exceed one gRPC message) is submitted, and `dwarp status`,
//     `results` and `watch` read every job; submitted again with its request id, before and after a
//     restart, it answers the stored sweep and stores no other
// Limits: common/spec_document.h.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "common/child_process.h"
#include "common/rpc/connection.h"
#include "dwarp/v1/dwarp.grpc.pb.h"
#include "tests/integration/integration_helpers.h"
#include "tests/support/test_dir.h"

namespace {

namespace fs = std::filesystem;
namespace v1 = dwarp::v1;
using namespace std::chrono_literals;

constexpr size_t kMaxString = 4096;  // common/spec_document.h (this test does not link the spec library)
constexpr size_t kMaxName = 128;
constexpr size_t kMaxDepth = 32;

// A small valid sweep; `name`, `lr` and `file` are written unquoted.
std::string SweepYaml(const std::string& name = "s", const std::string& lr = "1.0e-2",
                      const std::string& file = "/data/x.gz") {
  return "name: " + name + "\n" +
         "models:\n"
         "  - {name: small, arch: mlp, hidden: [16], layers: [fc1], layer_groups: []}\n"
         "datasets:\n"
         "  - {name: syn, kind: synthetic, images: " + file + ", synthetic: {targets: 4, warp_dim: 3}}\n"
         "dims: [0, 10]\n"
         "seeds: 1\n"
         "train: {lr: " + lr + ", max_epochs: 1}\n";
}

// The same sweep as JSON, with a list nested `levels` deep (the document is level 1) as the value of
// `train.lr`.
std::string SweepJsonNested(size_t levels) {
  const size_t lists = levels - 2;  // the document and train are the first two levels
  return R"({"name": "s", "models": [{"name": "small", "arch": "mlp"}], "datasets": [{"name": "syn", )"
         R"("kind": "synthetic", "images": "/data/x.gz"}], "dims": [0], "train": {"lr": )" +
         std::string(lists, '[') + std::string(lists, ']') + "}}";
}

class CoordinatorHardeningTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = dwarp::testing::FreshTestDir("dwarp-hardening");
  }
  void TearDown() override {
    if (coordinator_.running()) {
      coordinator_.Signal(SIGKILL);
      coordinator_.Wait();
    }
    if (!HasFailure()) fs::remove_all(dir_);
  }

  // Starts dwarp-coordinator on a port the OS picks and connects a stub to it.
  void StartCoordinator() {
    const fs::path port_file = dir_ / "port";
    fs::remove(port_file);
    auto child = dwarp::ChildProcess::Start({DWARP_COORDINATOR_BIN, "--db", (dir_ / "dwarp.db").string(), "--listen",
                                             "127.0.0.1:0", "--port-file", port_file.string()},
                                            (dir_ / "coordinator.log").string());
    ASSERT_TRUE(child.ok()) << child.status();
    coordinator_ = std::move(*child);
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (!fs::exists(port_file) && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(20ms);
    ASSERT_TRUE(fs::exists(port_file)) << coordinator_.Log();
    int port = 0;
    std::ifstream(port_file) >> port;
    connection_.address = "127.0.0.1:" + std::to_string(port);
    auto channel = dwarp::rpc::MakeChannel(connection_);
    ASSERT_TRUE(channel.ok()) << channel.status();
    sweeps_ = v1::SweepService::NewStub(*channel);
  }

  grpc::Status Submit(const std::string& text, const std::string& format, v1::SubmitResponse* response,
                      const std::vector<std::string>& overrides = {}) {
    v1::SubmitRequest request;
    request.set_sweep_text(text);
    request.set_format(format);
    request.set_dry_run(true);
    for (const std::string& o : overrides) request.add_overrides(o);
    grpc::ClientContext context;
    dwarp::rpc::PrepareContext(context, connection_, 30s);
    return sweeps_->Submit(&context, request, response);
  }

  // A Submit that must be refused as INVALID_ARGUMENT with a message containing each of `parts`; the
  // coordinator must then still be running and accept a good dry run.
  void ExpectRefusedAndStillServing(const std::string& text, const std::string& format,
                                    const std::vector<std::string>& parts,
                                    const std::vector<std::string>& overrides = {}) {
    v1::SubmitResponse response;
    const grpc::Status status = Submit(text, format, &response, overrides);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    for (const std::string& part : parts) EXPECT_NE(status.error_message().find(part), std::string::npos)
        << "missing \"" << part << "\" in: " << status.error_message();
    EXPECT_FALSE(coordinator_.Poll()) << "the coordinator exited with " << coordinator_.exit_code() << ":\n"
                                      << coordinator_.Log();
    ExpectAccepted(SweepYaml(), "yaml");
  }

  void ExpectAccepted(const std::string& text, const std::string& format) {
    v1::SubmitResponse response;
    const grpc::Status status = Submit(text, format, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.jobs_size(), 2) << text.substr(0, 200);
  }

  // Runs `dwarp submit --dry-run FILE` against the coordinator; its exit code, output in *output.
  int DryRunCli(const std::string& file_name, const std::string& text, std::string* output) {
    const fs::path file = dir_ / file_name;
    std::ofstream(file) << text;
    const fs::path log = dir_ / (file_name + ".log");
    auto child = dwarp::ChildProcess::Start(
        {DWARP_CLI_BIN, "submit", "--dry-run", "--coordinator", connection_.address, file.string()}, log.string());
    EXPECT_TRUE(child.ok()) << child.status();
    if (!child.ok()) return -1;
    const int code = child->Wait(30s);
    *output = child->Log();
    return code;
  }

  // Runs `dwarp ARGS --coordinator ADDRESS` until it exits; its exit code, output in *output.
  int RunCli(std::vector<std::string> args, const std::string& name, std::string* output,
             std::chrono::milliseconds timeout = 120s) {
    args.insert(args.begin(), DWARP_CLI_BIN);
    args.insert(args.end(), {"--coordinator", connection_.address});
    auto child = dwarp::ChildProcess::Start(args, (dir_ / (name + ".log")).string());
    EXPECT_TRUE(child.ok()) << child.status();
    if (!child.ok()) return -1;
    const int code = child->Wait(timeout);
    *output = child->Log();
    return code;
  }

  // Runs another dwarp-coordinator with `args` (after the binary) until it exits; its exit code, log in *log.
  int RunSecondCoordinator(const std::vector<std::string>& args, const std::string& name, std::string* log) {
    std::vector<std::string> command = {DWARP_COORDINATOR_BIN};
    command.insert(command.end(), args.begin(), args.end());
    auto child = dwarp::ChildProcess::Start(command, (dir_ / (name + ".log")).string());
    EXPECT_TRUE(child.ok()) << child.status();
    if (!child.ok()) return -1;
    const int code = child->Wait(10s);  // one that starts serving never exits by itself: killed, 137
    *log = child->Log();
    return code;
  }

  // The first column of the first row of `sql` on the database `file`, read through a read-only
  // connection ("" when there is none).
  static std::string ReadValue(const fs::path& file, const std::string& sql) {
    return dwarp::integration::QueryDatabase(file.string(), sql);
  }

  fs::path dir_;
  dwarp::ChildProcess coordinator_;
  dwarp::rpc::ConnectionOptions connection_;
  std::unique_ptr<v1::SweepService::Stub> sweeps_;
};

TEST_F(CoordinatorHardeningTest, HostileSubmitsAreRefusedAndTheCoordinatorKeepsServing) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  ExpectAccepted(SweepYaml(), "yaml");
  // What used to take the process down (SIGSEGV in a recursive matcher or printer).
  ExpectRefusedAndStillServing(SweepYaml(std::string(30000, 'a')), "yaml", {"name: a string of 30000 bytes", "4096"});
  ExpectRefusedAndStillServing(SweepYaml("s", std::string(30000, '1')), "yaml", {"train.lr: a string of 30000 bytes"});
  ExpectRefusedAndStillServing(SweepJsonNested(100000), "json", {"train.lr[0]", "nested 100000 levels deep", "32"});
  ExpectRefusedAndStillServing(SweepYaml(), "yaml", {"a key of 30000 bytes"}, {std::string(30000, 'k') + "=1"});
  ExpectRefusedAndStillServing(SweepYaml(), "yaml", {"train.lr: a string of 30000 bytes"},
                               {"train.lr=" + std::string(30000, '1')});
  // Each limit: at it passes, one past it is refused naming the field, what was found and the limit.
  ExpectAccepted(SweepYaml(std::string(kMaxName, 'n')), "yaml");
  ExpectRefusedAndStillServing(SweepYaml(std::string(kMaxName + 1, 'n')), "yaml",
                               {"name: a name of 129 bytes", "at most 128 bytes"});
  const std::string path_at_limit = "/" + std::string(kMaxString - 1, 'p');
  ExpectAccepted(SweepYaml("s", "1.0e-2", path_at_limit), "yaml");
  ExpectRefusedAndStillServing(SweepYaml("s", "1.0e-2", path_at_limit + "p"), "yaml",
                               {"datasets[0].images: a string of 4097 bytes", "at most 4096 bytes"});
  v1::SubmitResponse response;
  const grpc::Status at_depth = Submit(SweepJsonNested(kMaxDepth), "json", &response);
  EXPECT_EQ(at_depth.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(at_depth.error_message().find("train.lr ="), std::string::npos)  // refused as a bad lr, not as deep
      << at_depth.error_message();
  ExpectRefusedAndStillServing(SweepJsonNested(kMaxDepth + 1), "json",
                               {"nested 33 levels deep; at most 32 levels are allowed"});
}

TEST_F(CoordinatorHardeningTest, CliDryRunRefusesPastTheLimitsAndPassesAtThem) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  std::string output;
  EXPECT_EQ(DryRunCli("long_name.yaml", SweepYaml(std::string(30000, 'a')), &output), 2) << output;
  EXPECT_NE(output.find("name: a string of 30000 bytes"), std::string::npos) << output;
  EXPECT_EQ(DryRunCli("long_lr.yaml", SweepYaml("s", std::string(30000, '1')), &output), 2) << output;
  EXPECT_NE(output.find("train.lr: a string of 30000 bytes"), std::string::npos) << output;
  EXPECT_EQ(DryRunCli("deep.json", SweepJsonNested(100000), &output), 2) << output;
  EXPECT_NE(output.find("nested 100000 levels deep"), std::string::npos) << output;

  EXPECT_EQ(DryRunCli("name_at_limit.yaml", SweepYaml(std::string(kMaxName, 'n')), &output), 0) << output;
  EXPECT_NE(output.find("would run 2 jobs"), std::string::npos) << output;
  EXPECT_EQ(DryRunCli("name_past_limit.yaml", SweepYaml(std::string(kMaxName + 1, 'n')), &output), 2) << output;
  EXPECT_NE(output.find("name: a name of 129 bytes"), std::string::npos) << output;
  const std::string path_at_limit = "/" + std::string(kMaxString - 1, 'p');
  EXPECT_EQ(DryRunCli("path_at_limit.yaml", SweepYaml("s", "1.0e-2", path_at_limit), &output), 0) << output;
  EXPECT_EQ(DryRunCli("path_past_limit.yaml", SweepYaml("s", "1.0e-2", path_at_limit + "p"), &output), 2) << output;
  EXPECT_NE(output.find("a string of 4097 bytes"), std::string::npos) << output;
  EXPECT_EQ(DryRunCli("deep_past_limit.json", SweepJsonNested(kMaxDepth + 1), &output), 2) << output;
  EXPECT_NE(output.find("nested 33 levels deep"), std::string::npos) << output;
  EXPECT_FALSE(coordinator_.Poll()) << coordinator_.Log();
}

TEST_F(CoordinatorHardeningTest, ASecondCoordinatorOnTheSameDatabaseOrPortIsRefused) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  ExpectAccepted(SweepYaml(), "yaml");
  const std::string port = connection_.address.substr(connection_.address.rfind(':') + 1);
  const std::string pid = std::to_string(coordinator_.pid());
  const std::string db = (dir_ / "dwarp.db").string();

  std::string log;
  // The same database and address, as an operator restarting "the" coordinator twice would.
  EXPECT_EQ(RunSecondCoordinator({"--db", db, "--listen", "127.0.0.1:" + port}, "same", &log), 1) << log;
  EXPECT_NE(log.find("is in use by another dwarp coordinator (process " + pid), std::string::npos) << log;
  EXPECT_NE(log.find(db + ".lock"), std::string::npos) << log;
  // The same database on another port.
  EXPECT_EQ(RunSecondCoordinator({"--db", db, "--listen", "127.0.0.1:0"}, "other_port", &log), 1) << log;
  EXPECT_NE(log.find("process " + pid), std::string::npos) << log;
  // Another database on the same port: the address is taken (no port sharing).
  EXPECT_EQ(RunSecondCoordinator({"--db", (dir_ / "other.db").string(), "--listen", "127.0.0.1:" + port},
                                 "other_db", &log), 2) << log;
  EXPECT_NE(log.find("cannot listen on '127.0.0.1:" + port + "'"), std::string::npos) << log;
  // The database that refused start created is gone again, lock included; one that existed stays.
  EXPECT_FALSE(fs::exists(dir_ / "other.db"));
  EXPECT_FALSE(fs::exists(dir_ / "other.db.lock"));
  // A database stamped as dwarp's (application_id "dwrp") with a row of its own: it existed, so it stays.
  const std::string kept = (dir_ / "kept.db").string();
  sqlite3* conn = nullptr;
  ASSERT_EQ(sqlite3_open(kept.c_str(), &conn), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(conn, "PRAGMA application_id = 1685549680; CREATE TABLE notes (text TEXT);"
                               "INSERT INTO notes VALUES ('kept');", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(conn);
  EXPECT_EQ(RunSecondCoordinator({"--db", kept, "--listen", "127.0.0.1:" + port}, "kept_db", &log), 2) << log;
  EXPECT_NE(log.find("cannot listen on '127.0.0.1:" + port + "'"), std::string::npos) << log;
  EXPECT_EQ(ReadValue(kept, "SELECT text FROM notes"), "kept");

  // The first coordinator kept its database and still answers.
  EXPECT_FALSE(coordinator_.Poll()) << coordinator_.Log();
  ExpectAccepted(SweepYaml(), "yaml");
  // Once it is gone the lock goes with it, however it died: a restart on the same file works.
  coordinator_.Signal(SIGKILL);
  coordinator_.Wait();
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  ExpectAccepted(SweepYaml(), "yaml");
}

TEST_F(CoordinatorHardeningTest, PortsOutsideTheirRangeAreRefusedNamingTheValue) {
  std::string log;
  for (const std::string port : {"99999", "65536", "-1", "5x"}) {
    EXPECT_EQ(RunSecondCoordinator({"--db", (dir_ / "wrap.db").string(), "--listen", "127.0.0.1:" + port},
                                   "listen_" + port, &log), 2) << log;
    EXPECT_NE(log.find("--listen '127.0.0.1:" + port + "': port"), std::string::npos) << log;
  }
  EXPECT_NE(log.find("expected 0..65535"), std::string::npos) << log;

  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  const std::string port = connection_.address.substr(connection_.address.rfind(':') + 1);
  // The CLI: a port past 65535 is refused before any connection (99999 would have reached port 34463),
  // a port in range reaches the coordinator.
  for (const std::string wrapped : {"99999", "0", "65536"}) {
    auto child = dwarp::ChildProcess::Start({DWARP_CLI_BIN, "list", "--coordinator", "127.0.0.1:" + wrapped},
                                            (dir_ / ("cli_" + wrapped + ".log")).string());
    ASSERT_TRUE(child.ok()) << child.status();
    EXPECT_EQ(child->Wait(30s), 2) << child->Log();
    EXPECT_NE(child->Log().find("port " + wrapped + " is out of range; expected 1..65535"), std::string::npos)
        << child->Log();
  }
  auto good = dwarp::ChildProcess::Start({DWARP_CLI_BIN, "list", "--coordinator", "127.0.0.1:" + port},
                                         (dir_ / "cli_good.log").string());
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(good->Wait(30s), 0) << good->Log();
}

TEST_F(CoordinatorHardeningTest, ARefusedStartLeavesNoDatabaseBehind) {
  const fs::path db = dir_ / "never.db";
  struct Case {
    std::vector<std::string> args;
    std::string expected;
  } cases[] = {
      {{"--listen", "0.0.0.0:0"}, "refusing to listen on non-loopback address '0.0.0.0:0' without a token"},
      {{"--listen", "127.0.0.1:99999"}, "--listen '127.0.0.1:99999': port"},
      {{"--lease-ttl", "10", "--heartbeat-interval", "6"}, "at most half the lease TTL"},
      {{"--tls-cert", (dir_ / "cert.pem").string()}, "--tls-cert and --tls-key go together"},
      {{"--tls-cert", (dir_ / "cert.pem").string(), "--tls-key", (dir_ / "key.pem").string()}, "--tls-cert"},
      {{"--lease-ttl", "0"}, "--lease-ttl"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"--db", db.string()};
    args.insert(args.end(), c.args.begin(), c.args.end());
    std::string log;
    EXPECT_EQ(RunSecondCoordinator(args, "refused", &log), 2) << log;
    EXPECT_NE(log.find(c.expected), std::string::npos) << log;
    EXPECT_FALSE(fs::exists(db)) << c.args[0] << " " << c.args[1] << " created the database";
    EXPECT_FALSE(fs::exists(db.string() + ".lock")) << c.args[0];
  }
}

TEST_F(CoordinatorHardeningTest, AnEmptyDatabaseFileThatExistedIsRefusedNamingIt) {
  const fs::path db = dir_ / "truncated.db";
  std::ofstream(db).close();
  std::string log;
  EXPECT_EQ(RunSecondCoordinator({"--db", db.string(), "--listen", "127.0.0.1:0"}, "empty", &log), 1) << log;
  EXPECT_NE(log.find("'" + db.string() + "' exists but is empty (0 bytes)"), std::string::npos) << log;
  EXPECT_EQ(log.find("serving on port"), std::string::npos) << log;
  EXPECT_EQ(fs::file_size(db), 0u);
}

TEST_F(CoordinatorHardeningTest, AnotherProgramsDatabaseIsRefusedAndLeftAsItWas) {
  const fs::path db = dir_ / "photos.db";
  sqlite3* conn = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &conn), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(conn, "CREATE TABLE albums (name TEXT); INSERT INTO albums VALUES ('summer');"
                               "PRAGMA user_version = 7;", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(conn);
  const auto size_before = fs::file_size(db);
  std::string log;
  EXPECT_EQ(RunSecondCoordinator({"--db", db.string(), "--listen", "127.0.0.1:0"}, "foreign", &log), 1) << log;
  EXPECT_NE(log.find("'" + db.string() + "' is not a dwarp database"), std::string::npos) << log;
  EXPECT_NE(log.find("user_version 7"), std::string::npos) << log;
  EXPECT_NE(log.find("the tables albums"), std::string::npos) << log;
  EXPECT_EQ(ReadValue(db, "PRAGMA user_version"), "7");
  EXPECT_EQ(ReadValue(db, "PRAGMA journal_mode"), "delete");
  EXPECT_EQ(ReadValue(db, "SELECT group_concat(name) FROM sqlite_master"), "albums");
  EXPECT_EQ(fs::file_size(db), size_before);
}

TEST_F(CoordinatorHardeningTest, AReadOnlyDatabaseIsRefusedBeforeServing) {
  // A dwarp database made by a coordinator that then stopped.
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  ExpectAccepted(SweepYaml(), "yaml");
  coordinator_.Signal(SIGTERM);
  ASSERT_EQ(coordinator_.Wait(), 0) << coordinator_.Log();
  const fs::path db = dir_ / "dwarp.db";
  ASSERT_TRUE(fs::exists(db));
  // Read-only for the user the coordinator runs as; as root (who may write any file) it runs as nobody.
  fs::permissions(dir_, fs::perms::all);
  fs::permissions(db.string() + ".lock", fs::perms::all);
  fs::permissions(db, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  std::vector<std::string> command;
  if (::geteuid() == 0) command = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
  if (!command.empty() && !fs::exists(command[0])) GTEST_SKIP() << "running as root without setpriv";
  for (const std::string arg : {std::string(DWARP_COORDINATOR_BIN), std::string("--db"), db.string(),
                                std::string("--listen"), std::string("127.0.0.1:0")})
    command.push_back(arg);
  auto child = dwarp::ChildProcess::Start(command, (dir_ / "read_only.log").string());
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_EQ(child->Wait(10s), 1) << child->Log();
  EXPECT_NE(child->Log().find("'" + db.string() + "' is not writable"), std::string::npos) << child->Log();
  EXPECT_EQ(child->Log().find("serving on port"), std::string::npos) << child->Log();
}

TEST_F(CoordinatorHardeningTest, ASweepOfNearlyTheJobLimitIsReadableAndARetriedSubmitStoresItOnce) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  // 2 d x 49,995 seeds = 99,990 jobs: their messages come to about 70 MB, over the 64 MiB message limit.
  const fs::path file = dir_ / "big.yaml";
  std::ofstream(file) << "name: big\n"
                         "models: [{name: m, arch: mlp, hidden: [16]}]\n"
                         "datasets: [{name: syn, kind: synthetic, images: /nonexistent/x.gz}]\n"
                         "dims: [0, 10]\n"
                         "seeds: 49995\n";
  std::string output;
  ASSERT_EQ(RunCli({"submit", file.string(), "--request-id", "operator-1"}, "submit", &output), 0) << output;
  EXPECT_NE(output.find("submitted sweep big-1 (big): 99990 jobs"), std::string::npos) << output;

  ASSERT_EQ(RunCli({"status", "big-1"}, "status", &output), 0) << output.substr(0, 2000);
  EXPECT_NE(output.find("\n99990  m/default/syn d=10 seed=49994  queued"), std::string::npos)
      << output.substr(output.size() > 2000 ? output.size() - 2000 : 0);
  const fs::path csv = dir_ / "results.csv";
  ASSERT_EQ(RunCli({"results", "big-1", "-o", csv.string()}, "results", &output), 0) << output;
  EXPECT_NE(output.find("wrote 99990 rows"), std::string::npos) << output;
  std::ifstream rows(csv);
  int lines = 0;
  for (std::string line; std::getline(rows, line);) ++lines;
  EXPECT_EQ(lines, 99991);
  // A cancelled sweep's watch is its snapshot and its end.
  ASSERT_EQ(RunCli({"cancel", "big-1"}, "cancel", &output), 0) << output;
  ASSERT_EQ(RunCli({"watch", "big-1"}, "watch", &output), 0) << output.substr(0, 2000);
  EXPECT_NE(output.find("99990 jobs"), std::string::npos) << output.substr(0, 2000);

  // The same submission again, as a client that lost the answer would send it: before and after a restart.
  ASSERT_EQ(RunCli({"submit", file.string(), "--request-id", "operator-1"}, "again", &output), 0) << output;
  EXPECT_NE(output.find("sweep big-1 (big): 99990 jobs, stored by an earlier try"), std::string::npos) << output;
  coordinator_.Signal(SIGKILL);
  coordinator_.Wait();
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  ASSERT_EQ(RunCli({"submit", file.string(), "--request-id", "operator-1"}, "restarted", &output), 0) << output;
  EXPECT_NE(output.find("sweep big-1 (big): 99990 jobs, stored by an earlier try"), std::string::npos) << output;
  // The request id of another sweep is refused.
  EXPECT_EQ(RunCli({"submit", file.string(), "seeds=3", "--request-id", "operator-1"}, "other", &output), 1) << output;
  EXPECT_NE(output.find("request id 'operator-1' already submitted sweep 'big-1'"), std::string::npos) << output;

  v1::ListSweepsResponse listed;
  grpc::ClientContext context;
  dwarp::rpc::PrepareContext(context, connection_, 30s);
  ASSERT_TRUE(sweeps_->List(&context, v1::ListSweepsRequest(), &listed).ok());
  ASSERT_EQ(listed.sweeps_size(), 1);
  EXPECT_EQ(listed.sweeps(0).sweep_id(), "big-1");
  EXPECT_EQ(listed.sweeps(0).counts().total(), 99990);
}

}  // namespace
