// Test support for the neural dataset tests: EXPECT_ERROR_MENTIONS, and the fixtures, generated once per test
// process by fixtures/make_neural_fixtures.py (run with /usr/bin/python3, which writes netCDF through xarray
// exactly as researchers' files are written) into a fresh temporary directory, removed at exit.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

#include "common/status.h"

#ifndef DWARP_NEURAL_FIXTURES_SCRIPT
#error "DWARP_NEURAL_FIXTURES_SCRIPT must name fixtures/make_neural_fixtures.py"
#endif

namespace dwarp::engine::testing {

struct NeuralFixtures {
  bool ok = false;
  bool failed = false;    // the script ran and failed: a test failure, not a skip
  std::string dir;        // the fixtures root
  std::string why;        // why not ok

  ~NeuralFixtures() {
    if (!dir.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  }
};

// The fixtures, generated on first use. When /usr/bin/python3 cannot import xarray (or netCDF4, pandas,
// PIL), ok is false and `why` says so: tests skip (DWARP_REQUIRE_NEURAL_FIXTURES). When the script itself
// fails, `failed` is set and tests fail with its output.
inline const NeuralFixtures& GetNeuralFixtures() {
  static NeuralFixtures fixtures = [] {
    NeuralFixtures f;
    if (std::system("/usr/bin/python3 -c 'import xarray, netCDF4, pandas, PIL' >/dev/null 2>&1") != 0) {
      f.why = "/usr/bin/python3 cannot import xarray, netCDF4, pandas and PIL (Debian: python3-xarray "
                   "python3-netcdf4 python3-pil), so the xarray-written fixtures cannot be generated";
      return f;
    }
    const auto root = std::filesystem::temp_directory_path() /
                      ("dwarp_neural_fixtures_" + std::to_string(::getpid()));
    std::filesystem::remove_all(root);
    std::filesystem::create_directories(root);
    const std::string log = (root / "generate.log").string();
    const std::string command = "/usr/bin/python3 '" + std::string(DWARP_NEURAL_FIXTURES_SCRIPT) + "' '" +
                                (root / "data").string() + "' >'" + log + "' 2>&1";
    f.dir = root.string();
    if (std::system(command.c_str()) != 0) {
      std::ifstream in(log);
      f.failed = true;
      f.why = "fixture script failed: " + command + "\n" +
                   std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      return f;
    }
    f.ok = true;
    return f;
  }();
  return fixtures;
}

// The fixtures' data folder (fixtures.dir + "/data").
inline std::string FixturePath(const std::string& relative) {
  return GetNeuralFixtures().dir + "/data/" + relative;
}

// A scratch copy of a fixture folder that a test may change or damage; removed when the test ends.
class FixtureCopy {
 public:
  explicit FixtureCopy(const std::string& fixture) {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::path(GetNeuralFixtures().dir) / "copies" / (std::string(info->name()) + "_" + fixture);
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_.parent_path());
    std::filesystem::copy(FixturePath(fixture), dir_, std::filesystem::copy_options::recursive);
  }
  ~FixtureCopy() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  FixtureCopy(const FixtureCopy&) = delete;
  FixtureCopy& operator=(const FixtureCopy&) = delete;

  std::string path(const std::string& relative = "") const { return (dir_ / relative).string(); }
  void Write(const std::string& relative, const std::string& contents) const {
    std::ofstream(path(relative), std::ios::binary | std::ios::trunc) << contents;
  }
  std::string Read(const std::string& relative) const {
    std::ifstream in(path(relative), std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

 private:
  std::filesystem::path dir_;
};

}  // namespace dwarp::engine::testing

// Expects `status_expr` (a Status) to have code `expected_code` and a message containing each further
// argument (file names, bad values).
#define EXPECT_ERROR_MENTIONS(status_expr, expected_code, ...)                                     \
  do {                                                                                    \
    const ::dwarp::Status s_ = (status_expr);                                             \
    EXPECT_EQ(s_.code(), expected_code) << s_;                                                     \
    for (const std::string& part : std::vector<std::string>{__VA_ARGS__}) {               \
      EXPECT_NE(s_.message().find(part), std::string::npos) << "'" << part << "' not in: " << s_; \
    }                                                                                     \
  } while (0)

// Skips the test when python cannot generate the fixtures; fails it when generation failed.
#define DWARP_REQUIRE_NEURAL_FIXTURES()                                               \
  do {                                                                                \
    const auto& dwarp_fixtures_ = ::dwarp::engine::testing::GetNeuralFixtures();      \
    if (dwarp_fixtures_.failed) FAIL() << dwarp_fixtures_.why;                        \
    if (!dwarp_fixtures_.ok) GTEST_SKIP() << dwarp_fixtures_.why;                     \
  } while (0)
