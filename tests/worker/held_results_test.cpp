// HeldResults (worker/daemon/held_results.h): outcomes written to the state folder survive their writer,
// are never taken from a live holder, come back whole, and are gone once released; a corrupt file is set
// aside and named.
#include "worker/daemon/held_results.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tests/support/test_dir.h"

namespace dwarp::worker {
namespace {

namespace fs = std::filesystem;

class HeldResultsTest : public dwarp::testing::FreshDirTest {
 protected:
  HeldResultsTest() : FreshDirTest("dwarp_held_results") {}

  static HeldOutcome Completed(const std::string& lease_id) {
    HeldOutcome outcome;
    outcome.coordinator = "127.0.0.1:5555";
    outcome.worker_id = "w0123";
    outcome.credential = "wc1.secret";
    outcome.lease_id = lease_id;
    outcome.job_id = 42;
    outcome.attempt = 2;
    outcome.valid_until_unix_ms = 1700000000123;
    dwarp::v1::CompleteRequest request;
    request.set_worker_id("w0123");
    request.set_lease_id(lease_id);
    request.mutable_result()->set_metric("r2");
    request.mutable_result()->set_test_score(0.625);
    request.mutable_result()->set_epochs_run(7);
    outcome.complete = request;
    return outcome;
  }

};

TEST_F(HeldResultsTest, AnOutcomeIsTakenOnlyOnceItsHolderLetsGoAndComesBackWhole) {
  auto writer = HeldResults::Open((dir_ / "state").string());
  ASSERT_TRUE(writer.ok()) << writer.status();
  EXPECT_EQ(fs::status(dir_ / "state").permissions() & fs::perms::all, fs::perms::owner_all);
  ASSERT_TRUE((*writer)->Hold(Completed("l00ab")).ok());
  const fs::path file = dir_ / "state" / "l00ab.held";
  ASSERT_TRUE(fs::exists(file));
  EXPECT_EQ(fs::status(file).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);

  auto reader = HeldResults::Open((dir_ / "state").string());
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::vector<std::string> problems;
  EXPECT_TRUE((*reader)->TakeOrphans(&problems).empty()) << "taken from a live holder";

  (*writer)->Leave("l00ab");  // as a process that stops (or dies) with the outcome undelivered
  EXPECT_TRUE(fs::exists(file));
  std::vector<HeldOutcome> orphans = (*reader)->TakeOrphans(&problems);
  EXPECT_TRUE(problems.empty());
  ASSERT_EQ(orphans.size(), 1u);
  const HeldOutcome& held = orphans[0];
  EXPECT_EQ(held.coordinator, "127.0.0.1:5555");
  EXPECT_EQ(held.worker_id, "w0123");
  EXPECT_EQ(held.credential, "wc1.secret");
  EXPECT_EQ(held.lease_id, "l00ab");
  EXPECT_EQ(held.job_id, 42);
  EXPECT_EQ(held.attempt, 2);
  EXPECT_EQ(held.valid_until_unix_ms, 1700000000123);
  ASSERT_TRUE(held.complete.has_value());
  EXPECT_FALSE(held.fail.has_value());
  EXPECT_EQ(held.complete->result().test_score(), 0.625);
  EXPECT_EQ(held.complete->result().epochs_run(), 7);
  // Now the reader holds it: the writer (or a third process) cannot take it again.
  EXPECT_TRUE((*writer)->TakeOrphans(&problems).empty());
  (*reader)->Release("l00ab");
  EXPECT_FALSE(fs::exists(file));
}

// The result's counts keep the JSON names they had before the fields were renamed (numbers_trained was
// trained_d, parameters_warped warped_params), so an outcome an older worker left behind is delivered whole.
TEST_F(HeldResultsTest, AnOutcomeAnOlderWorkerHeldReadsBackWithItsCounts) {
  auto held = HeldResults::Open((dir_ / "state").string());
  ASSERT_TRUE(held.ok()) << held.status();
  std::ofstream(dir_ / "state" / "l0old.held")
      << R"({"format": 1, "coordinator": "127.0.0.1:5555", "worker_id": "w0123", "credential": "wc1.secret",
             "lease_id": "l0old", "job_id": 42, "attempt": 1, "valid_until_unix_ms": 1700000000123,
             "complete": {"workerId": "w0123", "leaseId": "l0old",
                          "result": {"metric": "r2", "testScore": 0.5, "trainedD": "300", "warpedParams": "12560"}}})";
  std::vector<std::string> problems;
  std::vector<HeldOutcome> orphans = (*held)->TakeOrphans(&problems);
  EXPECT_TRUE(problems.empty()) << problems.front();
  ASSERT_EQ(orphans.size(), 1u);
  ASSERT_TRUE(orphans[0].complete.has_value());
  EXPECT_EQ(orphans[0].complete->result().numbers_trained(), 300);
  EXPECT_EQ(orphans[0].complete->result().parameters_warped(), 12560);

  // And a file written now uses the same names, so an older worker reads it too.
  HeldOutcome outcome = Completed("l0new");
  outcome.complete->mutable_result()->set_numbers_trained(20);
  outcome.complete->mutable_result()->set_parameters_warped(12560);
  ASSERT_TRUE((*held)->Hold(outcome).ok());
  std::ifstream in(dir_ / "state" / "l0new.held");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find(R"("trainedD":"20")"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("warpedParams":"12560")"), std::string::npos) << text;
  (*held)->Release("l0new");
  (*held)->Release("l0old");
}

TEST_F(HeldResultsTest, ACorruptFileIsSetAsideAndNamed) {
  auto held = HeldResults::Open((dir_ / "state").string());
  ASSERT_TRUE(held.ok()) << held.status();
  std::ofstream(dir_ / "state" / "l0bad.held") << "{not json";
  std::vector<std::string> problems;
  EXPECT_TRUE((*held)->TakeOrphans(&problems).empty());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("l0bad.held"), std::string::npos) << problems[0];
  EXPECT_TRUE(fs::exists(dir_ / "state" / "l0bad.held.bad"));
}

TEST_F(HeldResultsTest, ALeaseIdThatCannotNameAFileIsRefused) {
  auto held = HeldResults::Open((dir_ / "state").string());
  ASSERT_TRUE(held.ok()) << held.status();
  const Status status = (*held)->Hold(Completed("../escape"));
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("../escape"), std::string::npos) << status;
  EXPECT_FALSE(fs::exists(dir_ / "escape.held"));
}

TEST_F(HeldResultsTest, AStateFolderThatCannotBeCreatedIsNamed) {
  std::ofstream(dir_ / "file") << "x";
  auto held = HeldResults::Open((dir_ / "file" / "state").string());
  ASSERT_FALSE(held.ok());
  EXPECT_EQ(held.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(held.status().message().find((dir_ / "file" / "state").string()), std::string::npos) << held.status();
}

}  // namespace
}  // namespace dwarp::worker
