// A fresh folder for the running test: <temp>/<prefix>_<pid>_<test name>, emptied and created, so that
// tests of one binary and concurrent ctest runs never share files; FreshDirTest, a fixture that makes one
// for each test and removes it afterwards. Header-only.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>

namespace dwarp::testing {

inline std::filesystem::path FreshTestDir(const std::string& prefix) {
  const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    (prefix + "_" + std::to_string(::getpid()) + "_" + (test ? test->name() : "setup"));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// A fixture whose tests each work in a fresh folder of their own, dir_ (FreshTestDir(prefix)), removed after
// the test once the derived fixture's TearDown has run.
class FreshDirTest : public ::testing::Test {
 protected:
  explicit FreshDirTest(const std::string& prefix) : dir_(FreshTestDir(prefix)) {}
  ~FreshDirTest() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  const std::filesystem::path dir_;
};

}  // namespace dwarp::testing
