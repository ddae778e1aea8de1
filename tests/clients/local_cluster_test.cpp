// clients/local/local_cluster.h with the real dwarp-coordinator and dwarp-worker programs: the coordinator
// serves on the port it wrote, both stop in order; a coordinator that cannot open its database and a worker
// that refuses its device are reported with the end of their logs.
#include "clients/local/local_cluster.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#ifndef DWARP_COORDINATOR_BIN
#error "DWARP_COORDINATOR_BIN must name the dwarp-coordinator program"
#endif
#ifndef DWARP_WORKER_BIN
#error "DWARP_WORKER_BIN must name the dwarp-worker program"
#endif

namespace dwarp::clients {
namespace {

namespace fs = std::filesystem;

// This process's folder under the temporary directory, removed when the tests end.
fs::path TestRoot() { return fs::temp_directory_path() / ("dwarp_local_cluster_test_" + std::to_string(::getpid())); }

class RemoveTestRoot : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code error;
    fs::remove_all(TestRoot(), error);
  }
};
const auto* const kRemoveTestRoot = ::testing::AddGlobalTestEnvironment(new RemoveTestRoot);

// A fresh folder for one test's run.
fs::path RunFolder(const std::string& name) {
  const fs::path dir = TestRoot() / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Whether something accepts TCP connections on 127.0.0.1:port.
bool Accepts(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool connected = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0;
  ::close(fd);
  return connected;
}

// Waits until nothing accepts connections on `port` any more, `limit` at most.
void WaitUntilClosed(int port, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (Accepts(port) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

TEST(LocalClusterTest, CoordinatorServesOnTheWrittenPortAndStopsInOrder) {
  const fs::path dir = RunFolder("serves");
  LocalCluster cluster(dir);
  ASSERT_TRUE(cluster.StartCoordinator(DWARP_COORDINATOR_BIN).ok());
  ASSERT_GT(cluster.coordinator_port(), 0);
  EXPECT_EQ(cluster.coordinator_address(), "127.0.0.1:" + std::to_string(cluster.coordinator_port()));
  int written = 0;
  std::ifstream(dir / "coordinator.port") >> written;
  EXPECT_EQ(written, cluster.coordinator_port());
  EXPECT_TRUE(Accepts(cluster.coordinator_port()));
  EXPECT_EQ(cluster.database_path(), (dir / "dwarp.db").string());

  ASSERT_TRUE(cluster.StartWorker({DWARP_WORKER_BIN, "cpu", 1, 1}).ok());
  EXPECT_EQ(cluster.worker_log_path(), (dir / "worker.log").string());
  // Nothing stops a worker that is left running while the caller follows.
  std::atomic<bool> interrupted{false};
  bool followed = false;
  EXPECT_TRUE(cluster.FollowWhileRunning([&] { followed = true; }, interrupted).ok());
  EXPECT_TRUE(followed);
  EXPECT_TRUE(Accepts(cluster.coordinator_port()));

  cluster.Stop();
  EXPECT_FALSE(Accepts(cluster.coordinator_port()));
  EXPECT_TRUE(fs::exists(dir / "dwarp.db"));
  EXPECT_TRUE(fs::exists(dir / "coordinator.log"));
}

TEST(LocalClusterTest, CoordinatorThatExitsBeforeServingIsReportedWithItsLog) {
  const fs::path dir = RunFolder("no_database");
  fs::create_directories(dir / "dwarp.db");  // a folder where the database file should be: SQLite cannot open it
  LocalCluster cluster(dir);
  const Status status = cluster.StartCoordinator(DWARP_COORDINATOR_BIN);
  ASSERT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
  EXPECT_NE(status.message().find("dwarp-coordinator exited with code 1 before serving"), std::string::npos)
      << status.message();
  EXPECT_NE(status.message().find("cannot open SQLite database"), std::string::npos) << status.message();
}

TEST(LocalClusterTest, ProgramThatCannotStartIsNotFound) {
  LocalCluster cluster(RunFolder("missing_program"));
  const Status status = cluster.StartCoordinator("/nonexistent/dwarp-coordinator");
  EXPECT_EQ(status.code(), StatusCode::kNotFound) << status.ToString();
}

TEST(LocalClusterTest, WorkerThatExitsStopsTheCoordinatorAndIsReportedWithItsLog) {
  const fs::path dir = RunFolder("worker_exits");
  LocalCluster cluster(dir);
  ASSERT_TRUE(cluster.StartCoordinator(DWARP_COORDINATOR_BIN).ok());
  ASSERT_TRUE(cluster.StartWorker({DWARP_WORKER_BIN, "bogus", 1, 1}).ok());
  // As the sweep watch does, follow until the coordinator goes away (30 s at most).
  std::atomic<bool> interrupted{false};
  const int port = cluster.coordinator_port();
  const Status status =
      cluster.FollowWhileRunning([&] { WaitUntilClosed(port, std::chrono::seconds(30)); }, interrupted);
  ASSERT_EQ(status.code(), StatusCode::kFailedPrecondition) << status.ToString();
  EXPECT_NE(status.message().find(std::string("the local worker (") + DWARP_WORKER_BIN + ") exited with code 2"),
            std::string::npos)
      << status.message();
  EXPECT_NE(status.message().find("bogus"), std::string::npos) << status.message();
  EXPECT_FALSE(Accepts(port));
}

TEST(LocalClusterTest, InterruptStopsTheWorkerThenTheCoordinator) {
  const fs::path dir = RunFolder("interrupted");
  LocalCluster cluster(dir);
  ASSERT_TRUE(cluster.StartCoordinator(DWARP_COORDINATOR_BIN).ok());
  ASSERT_TRUE(cluster.StartWorker({DWARP_WORKER_BIN, "cpu", 1, 1}).ok());
  std::atomic<bool> interrupted{false};
  const int port = cluster.coordinator_port();
  const Status status = cluster.FollowWhileRunning(
      [&] {
        interrupted = true;
        WaitUntilClosed(port, std::chrono::seconds(60));
      },
      interrupted);
  EXPECT_TRUE(status.ok()) << status.ToString();
  EXPECT_FALSE(Accepts(port));
}

}  // namespace
}  // namespace dwarp::clients
