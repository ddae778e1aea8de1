// A fresh folder for the running test: <temp>/<prefix>_<pid>_<test name>, emptied and created, so that
// tests of one binary and concurrent ctest runs never share files. Header-only.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace dwarp::testing {

inline std::filesystem::path FreshTestDir(const std::string& prefix) {
  const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    (prefix + "_" + std::to_string(::getpid()) + "_" + (test ? test->name() : "setup"));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace dwarp::testing
