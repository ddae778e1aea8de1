#include "coordinator/dwarp_estimate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

namespace dwarp::coordinator {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

SubspaceDim D(int64_t d) { return d == 0 ? SubspaceDim::Linear() : SubspaceDim::Subspace(d); }
const SubspaceDim kFull = SubspaceDim::Full();

JobOutcome Job(const std::string& model, const std::string& dataset, SubspaceDim d, uint64_t seed, OutcomeState state,
               double score = 0.0, const std::string& layer = "default") {
  JobOutcome job;
  job.model = model;
  job.layer = layer;
  job.dataset = dataset;
  job.d = d;
  job.seed = seed;
  job.state = state;
  job.test_score = score;
  return job;
}
JobOutcome Done(const std::string& model, const std::string& dataset, SubspaceDim d, uint64_t seed, double score) {
  return Job(model, dataset, d, seed, OutcomeState::kSucceeded, score);
}
// A succeeded job on data that report a noise ceiling.
JobOutcome DoneWithCeiling(const std::string& model, const std::string& dataset, SubspaceDim d, uint64_t seed,
                           double score, double noise_ceiling) {
  JobOutcome job = Done(model, dataset, d, seed, score);
  job.noise_ceiling = noise_ceiling;
  return job;
}
JobOutcome Running(const std::string& model, const std::string& dataset, SubspaceDim d, uint64_t seed = 0) {
  return Job(model, dataset, d, seed, OutcomeState::kUnfinished);
}
JobOutcome Failed(const std::string& model, const std::string& dataset, SubspaceDim d, uint64_t seed = 0) {
  return Job(model, dataset, d, seed, OutcomeState::kFailed);
}

ThresholdSpec Threshold(ThresholdKind kind, double value) { return ThresholdSpec{kind, value}; }

// threshold_crossing.h's rule: linear in log d between (below, s_below) and (grid, s_grid).
double LogInterpolated(double below, double s_below, double grid, double s_grid, double threshold) {
  const double fraction = (threshold - s_below) / (s_grid - s_below);
  return std::exp(std::log(below) + fraction * (std::log(grid) - std::log(below)));
}

GroupDWarp Only(const std::vector<GroupDWarp>& records) {
  EXPECT_EQ(records.size(), 1u);
  return records.empty() ? GroupDWarp{} : records[0];
}

TEST(DWarpEstimateTest, StatusNames) {
  EXPECT_STREQ(DWarpStatusName(DWarpStatus::kPending), "pending");
  EXPECT_STREQ(DWarpStatusName(DWarpStatus::kProvisional), "provisional");
  EXPECT_STREQ(DWarpStatusName(DWarpStatus::kReached), "reached");
  EXPECT_STREQ(DWarpStatusName(DWarpStatus::kNotReached), "not_reached");
  EXPECT_EQ(static_cast<int>(DWarpStatus::kNotReached), 4);
}

TEST(DWarpEstimateTest, AbsoluteThresholdInterpolatesInLogD) {
  // Means: d 0 -> 0.1, d 10 -> 0.2, d 100 -> 0.6; threshold 0.4 lies between 10 and 100, 0.2 or about 30
  // seed spreads from either (a spread wide enough to leave the bracket open would make it provisional).
  const std::vector<JobOutcome> jobs = {Done("m", "it", D(0), 0, 0.1),     Done("m", "it", D(0), 1, 0.1),
                                        Done("m", "it", D(10), 0, 0.195),  Done("m", "it", D(10), 1, 0.205),
                                        Done("m", "it", D(100), 0, 0.595), Done("m", "it", D(100), 1, 0.605)};
  const GroupDWarp g = Only(ComputeDWarp(Threshold(ThresholdKind::kAbsolute, 0.4), jobs));
  EXPECT_EQ(g.status, DWarpStatus::kReached);
  EXPECT_DOUBLE_EQ(g.threshold, 0.4);
  EXPECT_EQ(g.grid_d, 100);
  EXPECT_EQ(g.below_d, 10);
  EXPECT_NEAR(g.d_warp, LogInterpolated(10, 0.2, 100, 0.6, 0.4), 1e-9);
  EXPECT_NEAR(g.d_warp, std::sqrt(1000.0), 1e-9);  // half way in log d
  EXPECT_NEAR(g.best_score, 0.6, 1e-12);
  EXPECT_EQ(g.best_d, D(100));
  EXPECT_FALSE(g.has_full);
  EXPECT_EQ(g.model, "m");
  EXPECT_EQ(g.dataset, "it");
  EXPECT_EQ(g.layer, "default");
}

TEST(DWarpEstimateTest, TheIntervalIsTheBracketWithOneSeedAndABootstrapWithMore) {
  const ThresholdSpec absolute = Threshold(ThresholdKind::kAbsolute, 0.5);
  const GroupDWarp one = Only(ComputeDWarp(absolute, {Done("m", "ds", SubspaceDim::Subspace(10), 0, 0.2),
                                                      Done("m", "ds", SubspaceDim::Subspace(1000), 0, 0.8)}));
  EXPECT_EQ(one.status, DWarpStatus::kReached);
  EXPECT_FALSE(one.interval_bootstrap);
  EXPECT_DOUBLE_EQ(one.d_warp_low, 10.0);
  EXPECT_DOUBLE_EQ(one.d_warp_high, 1000.0);

  std::vector<JobOutcome> jobs;
  for (uint64_t seed : {0, 1, 2}) {
    jobs.push_back(Done("m", "ds", SubspaceDim::Subspace(10), seed, 0.15 + 0.05 * static_cast<double>(seed)));
    jobs.push_back(Done("m", "ds", SubspaceDim::Subspace(1000), seed, 0.75 + 0.05 * static_cast<double>(seed)));
  }
  const GroupDWarp three = Only(ComputeDWarp(absolute, jobs));
  EXPECT_EQ(three.status, DWarpStatus::kReached) << three.note;
  EXPECT_TRUE(three.interval_bootstrap);
  EXPECT_LT(three.d_warp_low, three.d_warp);
  EXPECT_GT(three.d_warp_high, three.d_warp);
  EXPECT_GE(three.d_warp_low, 10.0);
  EXPECT_LE(three.d_warp_high, 1000.0);
}

TEST(DWarpEstimateTest, TheIntervalCarriesEachSeedAcrossItsDValues) {
  // The same scores twice: once each seed's runs at 100, 300 and 1000 (seed 0 low everywhere, seed 2
  // high: the seed moves its whole curve), once with a new seed for every run. A seed that moves its
  // whole curve moves the crossing with it, so the interval from the seeds is the wider one.
  const double offset[] = {-0.03, 0.0, 0.03};
  std::vector<JobOutcome> shared, apart;
  uint64_t fresh = 100;
  for (uint64_t seed : {0, 1, 2}) {
    for (int64_t d : {100, 300, 1000}) {
      const double score = 0.25 + 0.1 * std::log10(static_cast<double>(d)) + offset[seed] + 0.002 * (d % 7);
      shared.push_back(Done("m", "ds", SubspaceDim::Subspace(d), seed, score));
      apart.push_back(Done("m", "ds", SubspaceDim::Subspace(d), fresh++, score));
    }
  }
  const ThresholdSpec absolute = Threshold(ThresholdKind::kAbsolute, 0.5);
  const GroupDWarp together = Only(ComputeDWarp(absolute, shared));
  const GroupDWarp independent = Only(ComputeDWarp(absolute, apart));
  EXPECT_DOUBLE_EQ(together.d_warp, independent.d_warp);
  ASSERT_TRUE(together.interval_bootstrap && independent.interval_bootstrap);
  EXPECT_GT(std::log(together.d_warp_high / together.d_warp_low),
            1.1 * std::log(independent.d_warp_high / independent.d_warp_low))
      << "together [" << together.d_warp_low << ", " << together.d_warp_high << "], independent ["
      << independent.d_warp_low << ", " << independent.d_warp_high << "]";
}

TEST(DWarpEstimateTest, SeedsThatLeaveTheBracketOpenMakeAFinishedGroupProvisional) {
  // d = 100's seeds lie on both sides of 0.5: whether the crossing is below or above 100 is open.
  const std::vector<JobOutcome> jobs = {
      Done("m", "ds", SubspaceDim::Subspace(10), 0, 0.2),   Done("m", "ds", SubspaceDim::Subspace(10), 1, 0.2),
      Done("m", "ds", SubspaceDim::Subspace(100), 0, 0.3),  Done("m", "ds", SubspaceDim::Subspace(100), 1, 0.7),
      Done("m", "ds", SubspaceDim::Subspace(1000), 0, 0.9), Done("m", "ds", SubspaceDim::Subspace(1000), 1, 0.9)};
  const GroupDWarp group = Only(ComputeDWarp(Threshold(ThresholdKind::kAbsolute, 0.5), jobs));
  EXPECT_EQ(group.status, DWarpStatus::kProvisional);
  EXPECT_NE(group.note.find("the seeds leave open whether the crossing lies between d = 10 and 100 (interval "),
            std::string::npos)
      << group.note;
  EXPECT_LT(group.d_warp_low, 100.0);
  EXPECT_GT(group.d_warp_high, 100.0);
}

TEST(DWarpEstimateTest, SeedsThatLeaveOpenWhetherTheFirstDReachesSaySo) {
  // d = 0's mean reaches 0.5, but its seeds lie on both sides of it: the crossing is the first grid point, so
  // there is no grid point below it to name, and whether d = 0 itself reaches is what is open.
  const std::vector<JobOutcome> jobs = {
      Done("m", "ds", SubspaceDim::Linear(), 0, 0.45),     Done("m", "ds", SubspaceDim::Linear(), 1, 0.75),
      Done("m", "ds", SubspaceDim::Subspace(100), 0, 0.9), Done("m", "ds", SubspaceDim::Subspace(100), 1, 0.9)};
  const GroupDWarp group = Only(ComputeDWarp(Threshold(ThresholdKind::kAbsolute, 0.5), jobs));
  EXPECT_EQ(group.status, DWarpStatus::kProvisional);
  EXPECT_NE(group.note.find("the seeds leave open whether the smallest d run, d = 0, reaches the threshold "
                            "(interval 0.."),
            std::string::npos)
      << group.note;
  EXPECT_EQ(group.note.find("between d = 0 and 0"), std::string::npos) << group.note;
}

TEST(DWarpEstimateTest, CurveHasEveryGridDAscendingFullLastWithMeanAndSampleStd) {
  const std::vector<JobOutcome> jobs = {Running("m", "it", kFull),         Done("m", "it", D(100), 0, 0.5),
                                        Done("m", "it", D(10), 0, 0.4),    Failed("m", "it", D(10), 1),
                                        Done("m", "it", D(10), 2, 0.6),    Running("m", "it", D(0)),
                                        Done("m", "it", D(100), 1, 0.5)};
  const GroupDWarp g = Only(ComputeDWarp(Threshold(ThresholdKind::kAbsolute, 0.9), jobs));
  ASSERT_EQ(g.curve.size(), 4u);
  EXPECT_EQ(g.curve[0].d, D(0));
  EXPECT_EQ(g.curve[0].seeds_done, 0);
  EXPECT_EQ(g.curve[0].seeds_total, 1);
  EXPECT_EQ(g.curve[1].d, D(10));
  EXPECT_NEAR(g.curve[1].mean_score, 0.5, 1e-12);  // the failed seed is left out
  EXPECT_NEAR(g.curve[1].std_score, std::sqrt(0.02), 1e-12);  // sample std of {0.4, 0.6}
  EXPECT_EQ(g.curve[1].seeds_done, 2);
  EXPECT_EQ(g.curve[1].seeds_total, 3);
  EXPECT_EQ(g.curve[2].d, D(100));
  EXPECT_DOUBLE_EQ(g.curve[2].std_score, 0.0);
  EXPECT_EQ(g.curve[3].d, kFull);
  EXPECT_EQ(g.curve[3].seeds_done, 0);
}

TEST(DWarpEstimateTest, OneSeedHasZeroStd) {
  const GroupDWarp g = Only(ComputeDWarp(Threshold(ThresholdKind::kAbsolute, 0.1), {Done("m", "it", D(10), 0, 0.3)}));
  ASSERT_EQ(g.curve.size(), 1u);
  EXPECT_EQ(g.curve[0].std_score, 0.0);
  EXPECT_EQ(g.curve[0].seeds_done, 1);
}

TEST(DWarpEstimateTest, ProvisionalWhileASmallerDIsUnfinishedThenReached) {
  std::vector<JobOutcome> jobs = {Done("m", "it", D(0), 0, 0.1), Running("m", "it", D(10)),
                                  Done("m", "it", D(100), 0, 0.6), Running("m", "it", D(1000))};
  const ThresholdSpec absolute = Threshold(ThresholdKind::kAbsolute, 0.4);
  const GroupDWarp early = Only(ComputeDWarp(absolute, jobs));
  EXPECT_EQ(early.status, DWarpStatus::kProvisional);
  EXPECT_EQ(early.grid_d, 100);
  EXPECT_EQ(early.below_d, 0);
  EXPECT_DOUBLE_EQ(early.d_warp, 100.0);  // the point below is d = 0: nothing to interpolate
  EXPECT_THAT(early.note, HasSubstr("waiting for d = 10"));

  jobs[1] = Done("m", "it", D(10), 0, 0.2);  // d = 10 lands below the threshold: the crossing is final
  const GroupDWarp late = Only(ComputeDWarp(absolute, jobs));
  EXPECT_EQ(late.status, DWarpStatus::kReached);  // d = 1000 still running does not matter
  EXPECT_EQ(late.below_d, 10);
  EXPECT_NEAR(late.d_warp, LogInterpolated(10, 0.2, 100, 0.6, 0.4), 1e-9);

  jobs[1] = Done("m", "it", D(10), 0, 0.45);  // or above it: the crossing moves down to 10
  const GroupDWarp lower = Only(ComputeDWarp(absolute, jobs));
  EXPECT_EQ(lower.status, DWarpStatus::kReached);
  EXPECT_EQ(lower.grid_d, 10);
  EXPECT_DOUBLE_EQ(lower.d_warp, 10.0);
}

TEST(DWarpEstimateTest, CrossingAtLinearReadoutIsZero) {
  const std::vector<JobOutcome> jobs = {Done("m", "it", D(0), 0, 0.5), Running("m", "it", D(10))};
  const GroupDWarp g = Only(ComputeDWarp(Threshold(ThresholdKind::kAbsolute, 0.4), jobs));
  EXPECT_EQ(g.status, DWarpStatus::kReached);
  EXPECT_DOUBLE_EQ(g.d_warp, 0.0);
  EXPECT_EQ(g.grid_d, 0);
  EXPECT_EQ(g.below_d, -1);
}

TEST(DWarpEstimateTest, NotReachedOnlyOnceEveryGridJobFinished) {
  std::vector<JobOutcome> jobs = {Done("m", "it", D(0), 0, 0.1), Done("m", "it", D(10), 0, 0.2),
                                  Running("m", "it", D(100))};
  const ThresholdSpec absolute = Threshold(ThresholdKind::kAbsolute, 0.5);
  const GroupDWarp running = Only(ComputeDWarp(absolute, jobs));
  EXPECT_EQ(running.status, DWarpStatus::kPending);
  EXPECT_DOUBLE_EQ(running.threshold, 0.5);
  EXPECT_EQ(running.d_warp, -1.0);
  jobs[2] = Done("m", "it", D(100), 0, 0.3);
  const GroupDWarp done = Only(ComputeDWarp(absolute, jobs));
  EXPECT_EQ(done.status, DWarpStatus::kNotReached);
  EXPECT_EQ(done.d_warp, -1.0);
  EXPECT_EQ(done.grid_d, -1);
  jobs[2] = Job("m", "it", D(100), 0, OutcomeState::kCancelled);  // cancelled counts as finished
  EXPECT_EQ(Only(ComputeDWarp(absolute, jobs)).status, DWarpStatus::kNotReached);
}

TEST(DWarpEstimateTest, DWithEverySeedFailedIsSkippedWithANote) {
  const std::vector<JobOutcome> jobs = {Done("m", "it", D(0), 0, 0.1), Failed("m", "it", D(10), 0),
                                        Failed("m", "it", D(10), 1), Done("m", "it", D(100), 0, 0.6)};
  const GroupDWarp g = Only(ComputeDWarp(Threshold(ThresholdKind::kAbsolute, 0.4), jobs));
  EXPECT_EQ(g.status, DWarpStatus::kReached);
  EXPECT_EQ(g.below_d, 0);  // d = 10 is not on the curve
  EXPECT_DOUBLE_EQ(g.d_warp, 100.0);
  EXPECT_THAT(g.note, HasSubstr("d = 10: every seed failed"));
  ASSERT_EQ(g.curve.size(), 3u);
  EXPECT_EQ(g.curve[1].seeds_done, 0);
  EXPECT_EQ(g.curve[1].seeds_total, 2);
}

TEST(DWarpEstimateTest, FailedSeedsAreLeftOutOfTheMean) {
  // d 100 mean over the succeeded seeds = 0.6 >= 0.45; counting the failed one as 0 would give 0.4.
  const std::vector<JobOutcome> jobs = {Done("m", "it", D(10), 0, 0.1), Done("m", "it", D(100), 0, 0.595),
                                        Failed("m", "it", D(100), 1), Done("m", "it", D(100), 2, 0.605)};
  const GroupDWarp g = Only(ComputeDWarp(Threshold(ThresholdKind::kAbsolute, 0.45), jobs));
  EXPECT_EQ(g.status, DWarpStatus::kReached);
  EXPECT_EQ(g.grid_d, 100);
  EXPECT_NEAR(g.d_warp, LogInterpolated(10, 0.1, 100, 0.6, 0.45), 1e-9);
}

TEST(DWarpEstimateTest, FractionOfGroupBestIsFinalOnlyWhenTheGroupFinished) {
  std::vector<JobOutcome> jobs = {Done("m", "it", D(0), 0, 0.1), Done("m", "it", D(10), 0, 0.5),
                                  Done("m", "it", D(100), 0, 1.0), Running("m", "it", D(1000))};
  const ThresholdSpec group = Threshold(ThresholdKind::kFractionOfGroupBest, 0.9);
  const GroupDWarp running = Only(ComputeDWarp(group, jobs));
  EXPECT_EQ(running.status, DWarpStatus::kProvisional);  // d = 1000 may raise the best, and the threshold
  EXPECT_DOUBLE_EQ(running.threshold, 0.9);
  EXPECT_NEAR(running.d_warp, std::pow(10.0, 1.8), 1e-9);  // (0.9 - 0.5) / (1.0 - 0.5) of the way from 10 to 100
  EXPECT_THAT(running.note, HasSubstr("may still rise"));

  jobs[3] = Done("m", "it", D(1000), 0, 2.0);  // it does: threshold 1.8, crossing at 1000
  const GroupDWarp done = Only(ComputeDWarp(group, jobs));
  EXPECT_EQ(done.status, DWarpStatus::kReached);
  EXPECT_DOUBLE_EQ(done.threshold, 1.8);
  EXPECT_EQ(done.grid_d, 1000);
  EXPECT_NEAR(done.d_warp, LogInterpolated(100, 1.0, 1000, 2.0, 1.8), 1e-9);
  EXPECT_EQ(done.best_d, D(1000));
  EXPECT_DOUBLE_EQ(done.best_score, 2.0);
}

TEST(DWarpEstimateTest, ReferenceUnknownIsPendingWithNaNThreshold) {
  const std::vector<JobOutcome> jobs = {Running("m", "it", D(0)), Running("m", "it", D(10))};
  const GroupDWarp g = Only(ComputeDWarp(Threshold(ThresholdKind::kFractionOfGroupBest, 0.9), jobs));
  EXPECT_EQ(g.status, DWarpStatus::kPending);
  EXPECT_TRUE(std::isnan(g.threshold));
  EXPECT_EQ(g.d_warp, -1.0);
  EXPECT_THAT(g.note, HasSubstr("threshold unknown"));
}

TEST(DWarpEstimateTest, AReferenceThatNoJobLeftCanSetIsNotReachedNotPending) {
  // Every job that could set the reference failed: the threshold can never be known, so the group is final
  // (not_reached), and its note does not say the reference is still to come.
  const std::vector<JobOutcome> all_failed = {Failed("m", "it", D(0)), Failed("m", "it", D(10))};
  const GroupDWarp group = Only(ComputeDWarp(Threshold(ThresholdKind::kFractionOfGroupBest, 0.9), all_failed));
  EXPECT_EQ(group.status, DWarpStatus::kNotReached);
  EXPECT_THAT(group.note, HasSubstr("threshold unknown: no job of the group succeeded"));
  EXPECT_THAT(group.note, Not(HasSubstr("yet")));
  const GroupDWarp dataset = Only(ComputeDWarp(Threshold(ThresholdKind::kFractionOfDatasetBest, 0.9), all_failed));
  EXPECT_EQ(dataset.status, DWarpStatus::kNotReached);
  EXPECT_THAT(dataset.note, HasSubstr("threshold unknown: no job on dataset it succeeded"));
  EXPECT_THAT(dataset.note, Not(HasSubstr("yet")));
  const GroupDWarp full = Only(ComputeDWarp(Threshold(ThresholdKind::kFractionOfFull, 0.9),
                                            {Done("m", "it", D(0), 0, 0.5), Failed("m", "it", kFull)}));
  EXPECT_EQ(full.status, DWarpStatus::kNotReached);
  EXPECT_THAT(full.note, HasSubstr("threshold unknown: every d = full seed failed"));

  // While a job that could set it still runs, the group waits.
  const GroupDWarp waiting = Only(ComputeDWarp(Threshold(ThresholdKind::kFractionOfDatasetBest, 0.9),
                                               {Failed("m", "it", D(0)), Running("m", "it", D(10))}));
  EXPECT_EQ(waiting.status, DWarpStatus::kPending);
  EXPECT_THAT(waiting.note, HasSubstr("no result on dataset it yet"));
}

TEST(DWarpEstimateTest, DatasetBestComparesEveryModelAtTheStrongestModelsLevel) {
  // On "it" the strong model's best (0.8) sets the threshold 0.72 for both; the weak model (best 0.6)
  // never gets there. On "nsd" the weak model is alone, so its own best sets its threshold.
  const std::vector<JobOutcome> jobs = {
      Done("strong", "it", D(0), 0, 0.2), Done("strong", "it", D(10), 0, 0.5), Done("strong", "it", D(100), 0, 0.8),
      Done("weak", "it", D(0), 0, 0.1),   Done("weak", "it", D(10), 0, 0.3),   Done("weak", "it", D(100), 0, 0.6),
      Done("weak", "nsd", D(0), 0, 0.1),  Done("weak", "nsd", D(10), 0, 0.3),  Done("weak", "nsd", D(100), 0, 0.6)};
  const std::vector<GroupDWarp> records = ComputeDWarp(Threshold(ThresholdKind::kFractionOfDatasetBest, 0.9), jobs);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].model, "strong");
  EXPECT_EQ(records[0].status, DWarpStatus::kReached);
  EXPECT_NEAR(records[0].threshold, 0.72, 1e-12);
  EXPECT_NEAR(records[0].d_warp, LogInterpolated(10, 0.5, 100, 0.8, 0.72), 1e-9);
  EXPECT_EQ(records[1].model, "weak");
  EXPECT_EQ(records[1].dataset, "it");
  EXPECT_NEAR(records[1].threshold, 0.72, 1e-12);  // from the strong model, not its own 0.54
  EXPECT_EQ(records[1].status, DWarpStatus::kNotReached);
  EXPECT_EQ(records[2].dataset, "nsd");
  EXPECT_NEAR(records[2].threshold, 0.54, 1e-12);
  EXPECT_EQ(records[2].status, DWarpStatus::kReached);
  EXPECT_NEAR(records[2].d_warp, LogInterpolated(10, 0.3, 100, 0.6, 0.54), 1e-9);
}

TEST(DWarpEstimateTest, DatasetBestStaysProvisionalWhileAnotherGroupOfTheDatasetRuns) {
  const std::vector<JobOutcome> jobs = {Done("a", "it", D(0), 0, 0.2), Done("a", "it", D(10), 0, 0.8),
                                        Done("b", "it", D(0), 0, 0.1), Running("b", "it", D(10)),
                                        Done("c", "nsd", D(0), 0, 0.5)};
  const std::vector<GroupDWarp> records = ComputeDWarp(Threshold(ThresholdKind::kFractionOfDatasetBest, 0.9), jobs);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].status, DWarpStatus::kProvisional);  // b's d = 10 may beat 0.8
  EXPECT_THAT(records[0].note, HasSubstr("dataset it may still rise"));
  EXPECT_EQ(records[1].status, DWarpStatus::kPending);
  EXPECT_EQ(records[2].status, DWarpStatus::kReached);  // nsd is finished
  EXPECT_DOUBLE_EQ(records[2].d_warp, 0.0);
}

TEST(DWarpEstimateTest, FractionOfFullWaitsForTheFullJobs) {
  std::vector<JobOutcome> jobs = {Done("m", "it", D(0), 0, 0.1), Done("m", "it", D(10), 0, 0.5),
                                  Done("m", "it", D(100), 0, 0.9), Running("m", "it", kFull, 0),
                                  Running("m", "it", kFull, 1)};
  const ThresholdSpec full = Threshold(ThresholdKind::kFractionOfFull, 0.8);
  const GroupDWarp none = Only(ComputeDWarp(full, jobs));
  EXPECT_EQ(none.status, DWarpStatus::kPending);
  EXPECT_TRUE(std::isnan(none.threshold));
  EXPECT_THAT(none.note, HasSubstr("d = full"));
  EXPECT_FALSE(none.has_full);

  jobs[3] = Done("m", "it", kFull, 0, 1.0);
  const GroupDWarp one = Only(ComputeDWarp(full, jobs));
  EXPECT_EQ(one.status, DWarpStatus::kProvisional);  // the second full seed may move the reference
  EXPECT_TRUE(one.has_full);
  EXPECT_DOUBLE_EQ(one.full_score, 1.0);
  EXPECT_DOUBLE_EQ(one.threshold, 0.8);
  EXPECT_EQ(one.best_d, D(100));  // full is not a grid point
  EXPECT_DOUBLE_EQ(one.best_score, 0.9);

  jobs[4] = Done("m", "it", kFull, 1, 0.8);
  const GroupDWarp both = Only(ComputeDWarp(full, jobs));
  EXPECT_EQ(both.status, DWarpStatus::kReached);
  EXPECT_DOUBLE_EQ(both.full_score, 0.9);
  EXPECT_DOUBLE_EQ(both.threshold, 0.72);
  EXPECT_NEAR(both.d_warp, LogInterpolated(10, 0.5, 100, 0.9, 0.72), 1e-9);
}

TEST(DWarpEstimateTest, FractionOfNoiseCeilingIsAFractionOfTheDatasetsMeanCeilingAndFinalOnceKnown) {
  const std::vector<JobOutcome> jobs = {
      DoneWithCeiling("m", "it", D(0), 0, 0.1, 0.79), DoneWithCeiling("m", "it", D(10), 0, 0.5, 0.81),
      Done("m", "it", D(100), 0, 0.9),  // a job that reports none adds nothing to the mean
      Running("p", "it", D(10)), Running("p", "it", D(100)),
      Done("m", "nsd", D(0), 0, 0.3)};
  const ThresholdSpec ceiling = Threshold(ThresholdKind::kFractionOfNoiseCeiling, 0.9);
  const std::vector<GroupDWarp> records = ComputeDWarp(ceiling, jobs);
  ASSERT_EQ(records.size(), 3u);
  const GroupDWarp& m = records[0];
  EXPECT_DOUBLE_EQ(m.noise_ceiling, 0.8);
  EXPECT_DOUBLE_EQ(m.threshold, 0.72);
  // Reached although p's jobs on the same dataset still run: they cannot change the data's ceiling (a
  // dataset-best threshold would stay provisional here).
  EXPECT_EQ(m.status, DWarpStatus::kReached) << m.note;
  EXPECT_EQ(m.grid_d, 100);
  EXPECT_NEAR(m.d_warp, LogInterpolated(10, 0.5, 100, 0.9, 0.72), 1e-9);
  EXPECT_EQ(ComputeDWarp(Threshold(ThresholdKind::kFractionOfDatasetBest, 0.8), jobs)[0].status,
            DWarpStatus::kProvisional);
  // The ceiling is the dataset's, shared by its groups whatever they ran.
  EXPECT_EQ(records[1].model, "p");
  EXPECT_DOUBLE_EQ(records[1].noise_ceiling, 0.8);
  EXPECT_DOUBLE_EQ(records[1].threshold, 0.72);
  EXPECT_EQ(records[1].status, DWarpStatus::kPending);
  // nsd reports none: no ceiling, and (every nsd job finished) a threshold that can never be set.
  EXPECT_EQ(records[2].dataset, "nsd");
  EXPECT_TRUE(std::isnan(records[2].noise_ceiling));
  EXPECT_EQ(records[2].status, DWarpStatus::kNotReached);
  // Every kind reports the ceiling it saw.
  EXPECT_DOUBLE_EQ(ComputeDWarp(Threshold(ThresholdKind::kAbsolute, 0.5), jobs)[0].noise_ceiling, 0.8);
}

TEST(DWarpEstimateTest, FractionOfNoiseCeilingIsPendingUntilTheDataReportOneAndNotReachedWhenTheyNeverDo) {
  const ThresholdSpec ceiling = Threshold(ThresholdKind::kFractionOfNoiseCeiling, 0.9);
  std::vector<JobOutcome> jobs = {Running("m", "it", D(0)), Running("m", "it", D(10)), Running("m", "it", kFull)};
  const GroupDWarp nothing = Only(ComputeDWarp(ceiling, jobs));
  EXPECT_EQ(nothing.status, DWarpStatus::kPending);
  EXPECT_TRUE(std::isnan(nothing.threshold));
  EXPECT_TRUE(std::isnan(nothing.noise_ceiling));
  EXPECT_THAT(nothing.note, HasSubstr("no result on dataset it yet"));

  // A result without a ceiling: the data has none, but jobs remain, so the group waits and says why.
  jobs[0] = Done("m", "it", D(0), 0, 0.9);
  const GroupDWarp waiting = Only(ComputeDWarp(ceiling, jobs));
  EXPECT_EQ(waiting.status, DWarpStatus::kPending);
  EXPECT_TRUE(std::isnan(waiting.threshold));
  EXPECT_THAT(waiting.note, HasSubstr("dataset it reports no noise ceiling"));
  EXPECT_THAT(waiting.note, HasSubstr("fraction_of_noise_ceiling"));

  // The d >= 0 jobs done, the full job still running: it could still report a ceiling.
  jobs[1] = Done("m", "it", D(10), 0, 0.95);
  EXPECT_EQ(Only(ComputeDWarp(ceiling, jobs)).status, DWarpStatus::kPending);

  // Every job finished without one: no threshold can ever be set.
  jobs[2] = Failed("m", "it", kFull);
  const GroupDWarp never = Only(ComputeDWarp(ceiling, jobs));
  EXPECT_EQ(never.status, DWarpStatus::kNotReached);
  EXPECT_TRUE(std::isnan(never.threshold));
  EXPECT_EQ(never.d_warp, -1.0);
  EXPECT_THAT(never.note, HasSubstr("dataset it reports no noise ceiling"));

  // Every job failed: not reached either, and the note says so.
  const GroupDWarp failed = Only(ComputeDWarp(ceiling, {Failed("m", "it", D(0)), Failed("m", "it", D(10))}));
  EXPECT_EQ(failed.status, DWarpStatus::kNotReached);
  EXPECT_THAT(failed.note, HasSubstr("no job on dataset it succeeded"));

  // Once a job reports a ceiling the threshold is known (here from the full job: any d counts).
  jobs[2] = DoneWithCeiling("m", "it", kFull, 0, 0.99, 0.5);
  const GroupDWarp known = Only(ComputeDWarp(ceiling, jobs));
  EXPECT_DOUBLE_EQ(known.threshold, 0.45);
  EXPECT_EQ(known.status, DWarpStatus::kReached);
  EXPECT_EQ(known.grid_d, 0);
}

TEST(DWarpEstimateTest, RecordsAreOrderedByDatasetModelLayerVariantAsTheyFirstAppear) {
  std::vector<JobOutcome> jobs = {
      Job("b", "it", D(0), 0, OutcomeState::kUnfinished, 0, "fc2"),
      Job("a", "nsd", D(0), 0, OutcomeState::kUnfinished, 0, "fc1"),
      Job("a", "it", D(0), 0, OutcomeState::kUnfinished, 0, "fc1"),
      Job("b", "it", D(0), 0, OutcomeState::kUnfinished, 0, "fc1"),
      Job("b", "nsd", D(0), 0, OutcomeState::kUnfinished, 0, "fc2"),
      Job("a", "it", D(10), 0, OutcomeState::kUnfinished, 0, "fc1"),  // same group as the third
  };
  jobs.push_back(jobs[2]);
  jobs.back().variant = "v2";
  const std::vector<GroupDWarp> records = ComputeDWarp(Threshold(ThresholdKind::kAbsolute, 0.5), jobs);
  std::vector<std::string> order;
  for (const GroupDWarp& r : records) order.push_back(r.dataset + "/" + r.model + "/" + r.layer + "/" + r.variant);
  // datasets: it, nsd; models: b, a; layers: fc2, fc1; variants: "", v2.
  EXPECT_THAT(order, ElementsAre("it/b/fc2/", "it/b/fc1/", "it/a/fc1/", "it/a/fc1/v2", "nsd/b/fc2/", "nsd/a/fc1/"));
  EXPECT_EQ(records[2].curve.size(), 2u);
}

TEST(DWarpEstimateTest, ThresholdsAloneAreTheRecordsThresholdsInRecordOrder) {
  // Two datasets, three groups: one with a noise ceiling and a full point, one still running, one whose
  // dataset reports no ceiling. Every threshold kind: each group's threshold, known or NaN, as ComputeDWarp's.
  std::vector<JobOutcome> jobs = {
      DoneWithCeiling("a", "it", D(0), 0, 0.10, 0.8), DoneWithCeiling("a", "it", D(10), 0, 0.30, 0.8),
      DoneWithCeiling("a", "it", D(10), 1, 0.34, 0.8), DoneWithCeiling("a", "it", D(100), 0, 0.52, 0.8),
      DoneWithCeiling("a", "it", kFull, 0, 0.70, 0.8), Done("b", "it", D(0), 0, 0.20),
      Running("b", "it", D(100)),                      Done("a", "nsd", D(0), 0, 0.05),
      Done("a", "nsd", D(100), 0, 0.15),               Running("a", "nsd", kFull),
  };
  jobs.push_back(jobs[1]);
  jobs.back().variant = "v2";
  for (ThresholdKind kind : {ThresholdKind::kAbsolute, ThresholdKind::kFractionOfGroupBest,
                             ThresholdKind::kFractionOfDatasetBest, ThresholdKind::kFractionOfFull,
                             ThresholdKind::kFractionOfNoiseCeiling}) {
    SCOPED_TRACE(static_cast<int>(kind));
    const ThresholdSpec spec = Threshold(kind, kind == ThresholdKind::kAbsolute ? 0.4 : 0.6);
    const std::vector<GroupDWarp> records = ComputeDWarp(spec, jobs);
    const std::vector<GroupThreshold> thresholds = ComputeThresholds(spec, jobs);
    ASSERT_EQ(thresholds.size(), records.size());
    ASSERT_EQ(records.size(), 4u);
    int known = 0;
    for (size_t i = 0; i < records.size(); ++i) {
      EXPECT_EQ(thresholds[i].model, records[i].model);
      EXPECT_EQ(thresholds[i].layer, records[i].layer);
      EXPECT_EQ(thresholds[i].dataset, records[i].dataset);
      EXPECT_EQ(thresholds[i].variant, records[i].variant);
      if (std::isnan(records[i].threshold)) {
        EXPECT_TRUE(std::isnan(thresholds[i].threshold)) << i;
      } else {
        EXPECT_DOUBLE_EQ(thresholds[i].threshold, records[i].threshold) << i;
        ++known;
      }
    }
    EXPECT_GT(known, 0);
    if (kind == ThresholdKind::kFractionOfNoiseCeiling) {
      EXPECT_DOUBLE_EQ(thresholds[0].threshold, 0.6 * 0.8);     // it/a: the dataset's ceiling
      EXPECT_TRUE(std::isnan(thresholds[3].threshold));         // nsd/a: none reported, a job still runs
    }
    if (kind == ThresholdKind::kFractionOfFull) EXPECT_DOUBLE_EQ(thresholds[0].threshold, 0.6 * 0.70);
  }
  EXPECT_THAT(ComputeThresholds(ThresholdSpec{}, {}), IsEmpty());
}

TEST(DWarpEstimateTest, NoJobsNoRecords) {
  EXPECT_THAT(ComputeDWarp(ThresholdSpec{}, {}), IsEmpty());
  EXPECT_THAT(JobsMadeUnnecessary(Threshold(ThresholdKind::kAbsolute, 0.5), {}), IsEmpty());
}

// ----------------------------------------------------------------------------------------------- early stop

TEST(JobsMadeUnnecessaryTest, AbsoluteCancelsTheUnfinishedJobsAboveAReachedCrossing) {
  const std::vector<JobOutcome> jobs = {
      Done("m", "it", D(0), 0, 0.1),  Done("m", "it", D(10), 0, 0.5), Running("m", "it", D(100), 0),  // 2
      Running("m", "it", D(100), 1),  Running("m", "it", kFull),                                       // 3, 4
      Done("p", "it", D(10), 0, 0.6), Running("p", "it", D(0)),       Running("p", "it", D(100)),     // provisional
      Done("m", "it", D(1000), 0, 0.9)};
  const ThresholdSpec absolute = Threshold(ThresholdKind::kAbsolute, 0.4);
  const std::vector<GroupDWarp> records = ComputeDWarp(absolute, jobs);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].status, DWarpStatus::kReached);
  EXPECT_EQ(records[0].grid_d, 10);
  EXPECT_EQ(records[1].status, DWarpStatus::kProvisional);
  // m's d = 100 seeds and its full job (unused by an absolute threshold); nothing of p, whose d = 0 may
  // still move the crossing.
  EXPECT_THAT(JobsMadeUnnecessary(absolute, jobs), ElementsAre(2u, 3u, 4u));
}

TEST(JobsMadeUnnecessaryTest, FractionOfFullKeepsNothingAboveTheCrossing) {
  const std::vector<JobOutcome> jobs = {Done("m", "it", D(0), 0, 0.1), Done("m", "it", D(10), 0, 0.9),
                                        Running("m", "it", D(100)), Running("m", "it", D(1000)),
                                        Done("m", "it", kFull, 0, 1.0)};
  const ThresholdSpec full = Threshold(ThresholdKind::kFractionOfFull, 0.8);
  EXPECT_EQ(Only(ComputeDWarp(full, jobs)).status, DWarpStatus::kReached);
  EXPECT_THAT(JobsMadeUnnecessary(full, jobs), ElementsAre(2u, 3u));
}

TEST(JobsMadeUnnecessaryTest, FractionOfNoiseCeilingCancelsAboveAReachedCrossingOnceTheCeilingIsKnown) {
  std::vector<JobOutcome> jobs = {DoneWithCeiling("m", "it", D(0), 0, 0.1, 0.8),
                                  DoneWithCeiling("m", "it", D(10), 0, 0.9, 0.8), Running("m", "it", D(100)),
                                  Running("m", "it", D(1000)), Running("m", "it", kFull)};
  const ThresholdSpec ceiling = Threshold(ThresholdKind::kFractionOfNoiseCeiling, 0.9);
  EXPECT_EQ(Only(ComputeDWarp(ceiling, jobs)).status, DWarpStatus::kReached);
  // The full job is no reference here: above every grid d, it is as unnecessary as d = 100 and 1000.
  EXPECT_THAT(JobsMadeUnnecessary(ceiling, jobs), ElementsAre(2u, 3u, 4u));

  // Without a known ceiling nothing is reached, so nothing is cancelled.
  jobs[0] = Done("m", "it", D(0), 0, 0.1);
  jobs[1] = Done("m", "it", D(10), 0, 0.9);
  EXPECT_EQ(Only(ComputeDWarp(ceiling, jobs)).status, DWarpStatus::kPending);
  EXPECT_THAT(JobsMadeUnnecessary(ceiling, jobs), IsEmpty());
}

TEST(JobsMadeUnnecessaryTest, BestScoreThresholdsNeverCancel) {
  // Reached (every job of the group and dataset finished, so nothing is left anyway) or not, a larger d
  // could raise a best-score reference: nothing is unnecessary while anything runs.
  const std::vector<JobOutcome> jobs = {Done("m", "it", D(0), 0, 0.1), Done("m", "it", D(10), 0, 0.9),
                                        Running("m", "it", D(100))};
  for (ThresholdKind kind : {ThresholdKind::kFractionOfGroupBest, ThresholdKind::kFractionOfDatasetBest}) {
    EXPECT_THAT(JobsMadeUnnecessary(Threshold(kind, 0.5), jobs), IsEmpty()) << ThresholdKindName(kind);
  }
  // The same jobs under an absolute threshold: d = 100 is unnecessary.
  EXPECT_THAT(JobsMadeUnnecessary(Threshold(ThresholdKind::kAbsolute, 0.5), jobs), ElementsAre(2u));
}

TEST(JobsMadeUnnecessaryTest, NothingForAGroupThatIsOnlyProvisionalOrNotReached) {
  const std::vector<JobOutcome> jobs = {Running("m", "it", D(0)), Done("m", "it", D(10), 0, 0.9),
                                        Running("m", "it", D(100))};
  EXPECT_THAT(JobsMadeUnnecessary(Threshold(ThresholdKind::kAbsolute, 0.5), jobs), IsEmpty());
}

}  // namespace
}  // namespace dwarp::coordinator
