// LeaseTable (coordinator/lease_table.h): fencing (current lease, its holder, not expired), granting and
// extension, expiry, and the one requeue-or-fail rule for a lease that ends without a result.
#include "coordinator/lease_table.h"

#include <gtest/gtest.h>

#include <map>

namespace dwarp::coordinator {
namespace {

class LeaseTableTest : public ::testing::Test {
 protected:
  // Job 7, leased to worker "w" at t = 1000 (TTL 100) and entered in the table.
  void SetUp() override {
    JobRow queued;
    queued.job_id = 7;
    queued.sweep_id = "s-1";
    jobs_[7] = queued;
    jobs_[7] = table_.Grant(queued, "w", 1000);
    table_.Add(jobs_[7].lease_id, 7);
  }
  const JobRow& job() { return jobs_.at(7); }

  std::map<int64_t, JobRow> jobs_;
  LeaseTable table_{&jobs_, 100};
};

TEST_F(LeaseTableTest, GrantStartsTheNextAttemptWithAnUnguessableLease) {
  EXPECT_EQ(job().state, JobState::kRunning);
  EXPECT_EQ(job().attempt, 1);
  EXPECT_EQ(job().worker_id, "w");
  EXPECT_EQ(job().lease_expires_ms, 1100);
  EXPECT_EQ(job().lease_id.size(), 33u);  // "l" and 128 bits in hex
  EXPECT_NE(table_.Grant(job(), "w", 1000).lease_id, job().lease_id);
  EXPECT_EQ(table_.Extended(job(), 1050).lease_expires_ms, 1150);
}

TEST_F(LeaseTableTest, OnlyTheHolderOfTheCurrentUnexpiredLeaseMayReport) {
  auto ok = table_.Check("w", job().lease_id, 1100);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(*ok, 7);
  auto other = table_.Check("x", job().lease_id, 1000);
  EXPECT_EQ(other.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(other.status().message().find("belongs to worker w, not x"), std::string::npos) << other.status();
  auto late = table_.Check("w", job().lease_id, 1101);
  EXPECT_NE(late.status().message().find("expired 1 ms ago"), std::string::npos) << late.status();
  auto unknown = table_.Check("w", "l-none", 1000);
  EXPECT_NE(unknown.status().message().find("not the current lease of any job"), std::string::npos) << unknown.status();
  EXPECT_TRUE(table_.Expired(1100).empty());
  EXPECT_EQ(table_.Expired(1101), std::vector<int64_t>{7});
  EXPECT_EQ(table_.RunningJobsByWorker(), (std::map<std::string, int32_t>{{"w", 1}}));
}

TEST_F(LeaseTableTest, HeartbeatStandingOfALease) {
  int64_t job_id = 0;
  EXPECT_EQ(table_.Standing("w", job().lease_id, 1100, &job_id), LeaseStanding::kLive);
  EXPECT_EQ(job_id, 7);
  EXPECT_EQ(table_.Standing("x", job().lease_id, 1100, &job_id), LeaseStanding::kUnknown);
  EXPECT_EQ(table_.Standing("w", job().lease_id, 1101, &job_id), LeaseStanding::kUnknown);
  jobs_[7].state = JobState::kCancelled;
  jobs_[7].cancel_requested = true;
  EXPECT_EQ(table_.Standing("w", job().lease_id, 2000, &job_id), LeaseStanding::kCancelled);
}

TEST_F(LeaseTableTest, OneRuleRequeuesWhileAttemptsRemainAndTheFailureMayPass) {
  using Ending = LeaseTable::Ending;
  // Attempt 1 of 2: expiry and a retryable failure requeue; a failure that will not pass fails for good.
  JobRow expired = table_.EndWithoutResult(job(), Ending::kExpired, false, "ignored", 2, 1200);
  EXPECT_EQ(expired.state, JobState::kQueued);
  EXPECT_TRUE(expired.lease_id.empty());
  EXPECT_EQ(expired.lease_expires_ms, 0);
  EXPECT_NE(expired.error.find("lease of attempt 1 expired: no heartbeat or result from worker w"), std::string::npos)
      << expired.error;
  JobRow retry = table_.EndWithoutResult(job(), Ending::kFailed, true, "CUDA error", 2, 1200);
  EXPECT_EQ(retry.state, JobState::kQueued);
  EXPECT_EQ(retry.error, "CUDA error");
  JobRow bad = table_.EndWithoutResult(job(), Ending::kFailed, false, "", 2, 1200);
  EXPECT_EQ(bad.state, JobState::kFailed);
  EXPECT_EQ(bad.finished_ms, 1200);
  EXPECT_EQ(bad.error, "failed without a reason");
  // Attempt 2 of 2: nothing requeues; the message says the attempts are used up.
  JobRow last = job();
  last.attempt = 2;
  JobRow expired_last = table_.EndWithoutResult(last, Ending::kExpired, true, "", 2, 1300);
  EXPECT_EQ(expired_last.state, JobState::kFailed);
  EXPECT_EQ(expired_last.finished_ms, 1300);
  EXPECT_NE(expired_last.error.find("; all 2 attempts used"), std::string::npos) << expired_last.error;
  JobRow retry_last = table_.EndWithoutResult(last, Ending::kFailed, true, "CUDA error", 2, 1300);
  EXPECT_EQ(retry_last.state, JobState::kFailed);
  EXPECT_EQ(retry_last.error, "CUDA error (attempt 2 of 2)");
}

}  // namespace
}  // namespace dwarp::coordinator
