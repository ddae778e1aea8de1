// JobQueue (coordinator/job_queue.h): run order by typed d inside a sweep (0, then ascending d compared as
// numbers, full last; job id on a tie) and fair share across sweeps (fewest running first, oldest on a tie,
// closed sweeps never).
#include "coordinator/job_queue.h"

#include <gtest/gtest.h>

#include <vector>

namespace dwarp::coordinator {
namespace {

std::vector<int64_t> DrainOrder(JobQueue& queue) {
  std::vector<int64_t> order;
  while (auto job = queue.Pick()) {
    order.push_back(*job);
    queue.Start(*job);
  }
  return order;
}

TEST(JobQueueTest, SmallestDFirstComparedAsNumbersFullLast) {
  JobQueue queue;
  queue.AddSweep("s", /*open=*/true);
  // Ids in an order that differs from d's, and values whose text order ("1000" < "200") is not their order.
  queue.AddJob("s", 1, SubspaceDim::Full(), JobState::kQueued);
  queue.AddJob("s", 2, SubspaceDim::Subspace(1000), JobState::kQueued);
  queue.AddJob("s", 3, SubspaceDim::Subspace(200), JobState::kQueued);
  queue.AddJob("s", 4, SubspaceDim::Linear(), JobState::kQueued);
  queue.AddJob("s", 5, SubspaceDim::Subspace(200), JobState::kQueued);
  queue.AddJob("s", 6, SubspaceDim::Subspace(9), JobState::kSucceeded);  // known, never queued
  EXPECT_EQ(DrainOrder(queue), (std::vector<int64_t>{4, 3, 5, 2, 1}));
  EXPECT_EQ(queue.running("s"), 5);
  EXPECT_EQ(queue.DimOf(6), SubspaceDim::Subspace(9));
}

TEST(JobQueueTest, RequeuedJobTakesItsPlaceByDAgain) {
  JobQueue queue;
  queue.AddSweep("s", true);
  queue.AddJob("s", 1, SubspaceDim::Subspace(10), JobState::kQueued);
  queue.AddJob("s", 2, SubspaceDim::Subspace(100), JobState::kQueued);
  ASSERT_EQ(queue.Pick(), 1);
  queue.Start(1);
  EXPECT_EQ(queue.Pick(), 2);
  queue.Stop(1);
  queue.Requeue(1);
  EXPECT_EQ(queue.Pick(), 1);
  EXPECT_EQ(queue.running("s"), 0);
  queue.Remove(1);
  queue.Remove(2);
  EXPECT_EQ(queue.Pick(), std::nullopt);
  EXPECT_EQ(queue.queued("s"), 0u);
}

TEST(JobQueueTest, FairShareFewestRunningThenOldestAndNeverAClosedSweep) {
  JobQueue queue;
  queue.AddSweep("old", true);
  queue.AddSweep("new", true);
  queue.AddSweep("closed", false);
  queue.AddJob("closed", 1, SubspaceDim::Linear(), JobState::kQueued);
  for (int64_t id = 10; id < 13; ++id) queue.AddJob("old", id, SubspaceDim::Subspace(id), JobState::kQueued);
  for (int64_t id = 20; id < 23; ++id) queue.AddJob("new", id, SubspaceDim::Subspace(id), JobState::kQueued);
  // A tie goes to the older sweep; then the sweep with fewer running jobs.
  EXPECT_EQ(DrainOrder(queue), (std::vector<int64_t>{10, 20, 11, 21, 12, 22}));
  // A job loaded as running counts toward its sweep's share.
  queue.AddSweep("busy", true);
  queue.AddSweep("idle", true);
  queue.AddJob("busy", 30, SubspaceDim::Linear(), JobState::kRunning);
  queue.AddJob("busy", 31, SubspaceDim::Linear(), JobState::kQueued);
  queue.AddJob("idle", 40, SubspaceDim::Full(), JobState::kQueued);
  EXPECT_EQ(queue.Pick(), 40);
  queue.CloseSweep("idle");
  EXPECT_EQ(queue.Pick(), 31);
}

}  // namespace
}  // namespace dwarp::coordinator
