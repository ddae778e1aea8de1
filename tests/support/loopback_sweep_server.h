// For tests of gRPC clients: a service double served in-process on 127.0.0.1 at a port the OS chooses,
// a SweepClient (clients/sweep/sweep_commands.h) that talks to it, and a fixture with both. Header-only.
#pragma once

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>

#include "clients/sweep/sweep_commands.h"
#include "tests/support/test_dir.h"

namespace dwarp::testing {

class LoopbackServer {
 public:
  // Serves `service` (owned by the caller, outliving this) until Shutdown or destruction.
  explicit LoopbackServer(grpc::Service* service) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(service);
    server_ = builder.BuildAndStart();
  }
  ~LoopbackServer() { Shutdown(); }

  bool ok() const { return server_ != nullptr && port_ > 0; }
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  // Stops serving; calls in flight get a second to finish.
  void Shutdown() {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  }

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// A client of the coordinator address `address` with `timeout_seconds` per call.
inline clients::SweepClient LoopbackClient(const std::string& address, double timeout_seconds = 10) {
  clients::ConnectionFlags flags;
  flags.coordinator = address;
  flags.timeout_seconds = timeout_seconds;
  auto client = clients::ConnectSweepClient(flags);
  EXPECT_TRUE(client.ok()) << client.status();
  return std::move(client).value();
}

// A fixture for a command run against a `Service` double on loopback, in a fresh folder dir_, with no token
// in the environment (a developer's own must not reach the double).
template <typename Service>
class LoopbackCommandTest : public FreshDirTest {
 protected:
  explicit LoopbackCommandTest(const std::string& prefix) : FreshDirTest(prefix) {}

  void SetUp() override {
    unsetenv("DWARP_TOKEN");
    unsetenv("DWARP_TOKEN_FILE");
    server_ = std::make_unique<LoopbackServer>(&service_);
    ASSERT_TRUE(server_->ok());
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
  }
  clients::SweepClient Client() { return LoopbackClient(server_->address()); }

  Service service_;
  std::unique_ptr<LoopbackServer> server_;
};

}  // namespace dwarp::testing
