// The coordinator's and clients' connection hardening: token comparison, token file permissions,
// loopback decided by address, and the warning for a token sent in cleartext off loopback.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/rpc/connection.h"
#include "coordinator/grpc_server.h"

namespace dwarp {
namespace {

namespace fs = std::filesystem;

TEST(TokensEqualTest, EqualOnlyWhenBytesAndLengthsMatch) {
  EXPECT_TRUE(rpc::TokensEqual("s3cret", "s3cret"));
  EXPECT_TRUE(rpc::TokensEqual("", ""));
  EXPECT_FALSE(rpc::TokensEqual("s3cret", "s3creT"));
  EXPECT_FALSE(rpc::TokensEqual("s3cre", "s3cret"));   // a prefix
  EXPECT_FALSE(rpc::TokensEqual("s3cret", "s3cre"));
  EXPECT_FALSE(rpc::TokensEqual("", "s3cret"));
  EXPECT_FALSE(rpc::TokensEqual("s3cret", ""));
  // Padding with NUL bytes must not make a shorter token equal a longer one.
  EXPECT_FALSE(rpc::TokensEqual(std::string("s3cret\0", 7), "s3cret"));
  EXPECT_FALSE(rpc::TokensEqual("s3cret", std::string("s3cret\0\0", 8)));
}

class TokenFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("dwarp_token_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    path_ = (dir_ / "token").string();
    std::ofstream(path_) << "s3cret-token\n";
    ::unsetenv("DWARP_TOKEN");
    ::unsetenv("DWARP_TOKEN_FILE");
  }
  void TearDown() override { fs::remove_all(dir_); }

  Status Resolve() {
    rpc::ConnectionOptions options;
    Status status = rpc::ResolveToken(options, path_);
    if (status.ok()) EXPECT_EQ(options.token, "s3cret-token");
    return status;
  }

  fs::path dir_;
  std::string path_;
};

TEST_F(TokenFileTest, ReadableByOthersIsRefusedNamingFileModeAndFix) {
  ASSERT_EQ(::chmod(path_.c_str(), 0644), 0);
  Status status = Resolve();
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find(path_), std::string::npos) << status;
  EXPECT_NE(status.message().find("0644"), std::string::npos) << status;
  EXPECT_NE(status.message().find("chmod 600"), std::string::npos) << status;
  ASSERT_EQ(::chmod(path_.c_str(), 0604), 0);
  EXPECT_EQ(Resolve().code(), StatusCode::kFailedPrecondition);
  ASSERT_EQ(::chmod(path_.c_str(), 0660), 0);  // group write
  EXPECT_EQ(Resolve().code(), StatusCode::kFailedPrecondition);
}

TEST_F(TokenFileTest, OwnerOnlyAndServiceGroupReadAreAccepted) {
  for (mode_t mode : {0600, 0400, 0640, 0440}) {
    ASSERT_EQ(::chmod(path_.c_str(), mode), 0);
    EXPECT_TRUE(Resolve().ok()) << std::oct << mode << ": " << Resolve();
  }
}

TEST_F(TokenFileTest, TheEnvironmentsFileIsCheckedToo) {
  ASSERT_EQ(::chmod(path_.c_str(), 0644), 0);
  ::setenv("DWARP_TOKEN_FILE", path_.c_str(), 1);
  rpc::ConnectionOptions options;
  Status status = rpc::ResolveToken(options, "");
  ::unsetenv("DWARP_TOKEN_FILE");
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("DWARP_TOKEN_FILE"), std::string::npos) << status;
}

TEST(IsLoopbackAddressTest, DecidedByTheParsedAddress) {
  for (const char* loopback : {"127.0.0.1:50051", "127.0.0.1:0", "127.5.6.7:1", "127.255.255.254:9", "localhost:50051",
                               "[::1]:50051", "::1", "ipv4:127.0.0.1:5", "ipv6:[::1]:5", "[::ffff:127.0.0.1]:5",
                               "dns:///localhost:5", "127.0.0.1"})
    EXPECT_TRUE(coordinator::IsLoopbackAddress(loopback)) << loopback;
  for (const char* remote : {"127.evil.example.com:50051", "127.0.0.1.nip.io:5", "localhost.evil.example.com:5",
                             "0.0.0.0:50051", "[::]:50051", "10.0.0.1:5", "128.0.0.1:5", "[::2]:5",
                             "[::ffff:10.0.0.1]:5", "example.com:5", "", ":50051", "127:5", "1270.0.0.1:5"})
    EXPECT_FALSE(coordinator::IsLoopbackAddress(remote)) << remote;
}

TEST(CheckServerOptionsTest, ANameThatLooksLikeLoopbackNeedsAToken) {
  coordinator::ServerOptions options;
  options.listen = "127.evil.example.com:50051";
  Status status = coordinator::CheckServerOptions(options);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("non-loopback"), std::string::npos) << status;
  options.listen = "127.0.0.1:50051";
  EXPECT_TRUE(coordinator::CheckServerOptions(options).ok());
}

TEST(CleartextTokenWarningTest, WarnsOnlyForATokenWithoutTlsOffLoopback) {
  coordinator::ServerOptions options;
  options.listen = "0.0.0.0:50051";
  options.token = "s3cret";
  const std::string warning = coordinator::CleartextTokenWarning(options);
  EXPECT_NE(warning.find("cleartext"), std::string::npos) << warning;
  EXPECT_NE(warning.find("0.0.0.0:50051"), std::string::npos) << warning;
  EXPECT_NE(warning.find("--tls-cert"), std::string::npos) << warning;
  options.tls_cert = "cert.pem";
  options.tls_key = "key.pem";
  EXPECT_EQ(coordinator::CleartextTokenWarning(options), "");  // TLS
  options.tls_cert.clear();
  options.tls_key.clear();
  options.listen = "127.0.0.1:50051";
  EXPECT_EQ(coordinator::CleartextTokenWarning(options), "");  // loopback
  options.listen = "0.0.0.0:50051";
  options.token.clear();
  options.insecure = true;
  EXPECT_EQ(coordinator::CleartextTokenWarning(options), "");  // no token to leak (--insecure is its own choice)
}

}  // namespace
}  // namespace dwarp
