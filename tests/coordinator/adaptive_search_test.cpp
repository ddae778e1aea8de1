// The adaptive search's decisions (coordinator/adaptive_search.h) given fixed results: which jobs it asks
// for, when it stops, what it spends, and that asking again never duplicates a job.
#include "coordinator/adaptive_search.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace dwarp::coordinator {
namespace {

using ::testing::HasSubstr;

SearchSpec Adaptive(double rel_width = 0.25, int64_t max_seeds = 1, int64_t max_jobs = 0) {
  SearchSpec search;
  search.mode = SearchMode::kAdaptive;
  search.rel_width = rel_width;
  search.max_seeds = max_seeds;
  search.max_jobs = max_jobs;
  return search;
}

SubspaceDim Dim(int64_t d) { return d == 0 ? SubspaceDim::Linear() : SubspaceDim::Subspace(d); }

SearchJob Done(int64_t d, uint64_t seed, double score) { return {Dim(d), seed, OutcomeState::kSucceeded, score}; }

// A score curve rising with log d, crossing 0.5 at d = `crossing`; each seed shifts it by `seed_shift` * seed.
std::function<double(int64_t, uint64_t)> Curve(double crossing, double seed_shift = 0.0) {
  return [=](int64_t d, uint64_t seed) {
    const double x = d == 0 ? -10.0 : std::log(static_cast<double>(d) / crossing);
    return 1.0 / (1.0 + std::exp(-2.0 * x)) + seed_shift * static_cast<double>(seed);
  };
}

struct SearchRun {
  std::vector<SearchJob> jobs;
  GroupSearchPlan last;
  int rounds = 0;
};

// Runs the search to its end: every job it asks for "runs" at once and scores score(d, seed).
SearchRun RunSearch(const SearchSpec& search, const std::vector<uint64_t>& seeds, const std::vector<int64_t>& grid,
                    double threshold, const std::function<double(int64_t, uint64_t)>& score) {
  SearchRun run;
  for (int64_t d : grid)
    for (uint64_t seed : seeds) run.jobs.push_back(Done(d, seed, score(d, seed)));
  while (run.rounds < 100) {
    run.last = PlanGroupSearch(search, seeds, threshold, run.jobs);
    ++run.rounds;
    if (run.last.next.empty()) break;
    for (const SearchStep& step : run.last.next)
      run.jobs.push_back(Done(step.d.value, step.seed, score(step.d.value, step.seed)));
  }
  return run;
}

std::set<std::pair<int64_t, uint64_t>> Keys(const std::vector<SearchJob>& jobs) {
  std::set<std::pair<int64_t, uint64_t>> keys;
  for (const SearchJob& job : jobs) keys.insert({job.d.is_full() ? -1 : job.d.value, job.seed});
  return keys;
}

TEST(AdaptiveSearchTest, AGridSearchIsSettledAndAsksForNothing) {
  SearchSpec grid;  // mode grid
  GroupSearchPlan plan = PlanGroupSearch(grid, {0}, 0.5, {Done(0, 0, 0.1), Done(300, 0, 0.3), Done(3000, 0, 0.9)});
  EXPECT_TRUE(plan.settled);
  EXPECT_TRUE(plan.next.empty());
}

TEST(AdaptiveSearchTest, WaitsWhileAJobOfTheGroupIsUnfinished) {
  std::vector<SearchJob> jobs = {Done(0, 0, 0.1), Done(300, 0, 0.3), {Dim(3000), 0, OutcomeState::kUnfinished, 0.0}};
  GroupSearchPlan plan = PlanGroupSearch(Adaptive(), {0}, 0.5, jobs);
  EXPECT_FALSE(plan.settled);
  EXPECT_TRUE(plan.next.empty());
  EXPECT_THAT(plan.note, HasSubstr("waiting for 1"));
}

TEST(AdaptiveSearchTest, BisectsTheBracketInLogDWithTheSweepsSeeds) {
  std::vector<SearchJob> jobs = {Done(0, 0, 0.1), Done(0, 1, 0.1),   Done(300, 0, 0.3),
                                 Done(300, 1, 0.3), Done(3000, 0, 0.8), Done(3000, 1, 0.8)};
  GroupSearchPlan plan = PlanGroupSearch(Adaptive(), {0, 1}, 0.5, jobs);
  ASSERT_EQ(plan.next.size(), 2u);
  EXPECT_FALSE(plan.settled);
  EXPECT_EQ(plan.next[0].d, SubspaceDim::Subspace(949));  // round(sqrt(300 * 3000)) = round(948.7)
  EXPECT_EQ(plan.next[0].seed, 0u);
  EXPECT_EQ(plan.next[1].d, SubspaceDim::Subspace(949));
  EXPECT_EQ(plan.next[1].seed, 1u);
  EXPECT_EQ(plan.next[0].reason, "bisect log d between d = 300 and 3000");
}

TEST(AdaptiveSearchTest, ABracketFromDZeroIsBisectedFromDOne) {
  GroupSearchPlan plan = PlanGroupSearch(Adaptive(), {0}, 0.5, {Done(0, 0, 0.1), Done(100, 0, 0.9)});
  ASSERT_EQ(plan.next.size(), 1u);
  EXPECT_EQ(plan.next[0].d, SubspaceDim::Subspace(10));  // sqrt(1 * 100)
}

TEST(AdaptiveSearchTest, RunToItsEndTheBracketHoldsTheCrossingWithinTheWidthAndNoJobRepeats) {
  const SearchRun run = RunSearch(Adaptive(0.25), {0}, {0, 300, 3000}, 0.5, Curve(600.0));
  EXPECT_TRUE(run.last.settled) << run.last.note;
  EXPECT_EQ(Keys(run.jobs).size(), run.jobs.size()) << "a (d, seed) was created twice";
  // The last bracket: the two largest d below / smallest at-or-above the crossing among the jobs.
  int64_t lo = 0, hi = std::numeric_limits<int64_t>::max();
  for (const SearchJob& job : run.jobs) {
    if (job.d.value < 600) lo = std::max(lo, job.d.value);
    if (job.d.value >= 600) hi = std::min(hi, job.d.value);
  }
  EXPECT_LE(static_cast<double>(hi), 1.25 * static_cast<double>(lo)) << lo << " .. " << hi;
  EXPECT_THAT(run.last.note, HasSubstr("between d = " + std::to_string(lo) + " and " + std::to_string(hi)));
  // 300 .. 3000 is a factor 10: four bisections bring it under 1.25 (10^(1/16) = 1.155), one job each.
  EXPECT_EQ(run.jobs.size(), 3u + 4u);
  // Asked again with everything it asked for done, it asks for nothing more: the plan is the jobs.
  GroupSearchPlan again = PlanGroupSearch(Adaptive(0.25), {0}, 0.5, run.jobs);
  EXPECT_TRUE(again.settled);
  EXPECT_TRUE(again.next.empty());
}

TEST(AdaptiveSearchTest, AskingAgainBeforeTheJobsFinishCreatesNothingTwice) {
  std::vector<SearchJob> jobs = {Done(0, 0, 0.1), Done(300, 0, 0.3), Done(3000, 0, 0.8)};
  GroupSearchPlan first = PlanGroupSearch(Adaptive(), {0}, 0.5, jobs);
  ASSERT_EQ(first.next.size(), 1u);
  // The coordinator stores the job (queued), then restarts and asks again: it waits for that job.
  jobs.push_back({first.next[0].d, first.next[0].seed, OutcomeState::kUnfinished, 0.0});
  GroupSearchPlan second = PlanGroupSearch(Adaptive(), {0}, 0.5, jobs);
  EXPECT_TRUE(second.next.empty());
  EXPECT_FALSE(second.settled);
}

TEST(AdaptiveSearchTest, WithoutASeedSpreadTheBracketsEndsGetASecondSeedBeforeAnyBisection) {
  std::vector<SearchJob> jobs = {Done(0, 0, 0.1), Done(300, 0, 0.3), Done(3000, 0, 0.8)};
  GroupSearchPlan plan = PlanGroupSearch(Adaptive(0.25, /*max_seeds=*/3), {0}, 0.5, jobs);
  ASSERT_EQ(plan.next.size(), 2u);  // not d = 0: only the bracket's ends while no spread is known
  EXPECT_FALSE(plan.settled);
  EXPECT_EQ(plan.next[0].d, SubspaceDim::Subspace(300));
  EXPECT_EQ(plan.next[0].seed, 1u);
  EXPECT_EQ(plan.next[1].d, SubspaceDim::Subspace(3000));
  EXPECT_EQ(plan.next[1].seed, 1u);
  EXPECT_THAT(plan.next[0].reason, HasSubstr("seed 1 at d = 300: no d has 2 seeds yet"));
  // With both seeds far from the threshold (pooled spread 0.0141), the bracket is bisected.
  jobs.push_back(Done(300, 1, 0.32));
  jobs.push_back(Done(3000, 1, 0.82));
  plan = PlanGroupSearch(Adaptive(0.25, 3), {0}, 0.5, jobs);
  ASSERT_EQ(plan.next.size(), 1u);
  EXPECT_EQ(plan.next[0].d, SubspaceDim::Subspace(949));
  EXPECT_EQ(plan.next[0].reason, "bisect log d between d = 300 and 3000");
}

// A group whose d = 300 and 3000 have two seeds each, 0.02 apart: pooled seed spread 0.01414 on 2 degrees
// of freedom (t = 4.303), so one seed decides its side only at more than 4.303 x 0.01414 = 0.0609 from the
// threshold.
std::vector<SearchJob> TwoSeededEnds() {
  return {Done(300, 0, 0.30), Done(300, 1, 0.32), Done(3000, 0, 0.80), Done(3000, 1, 0.82)};
}

TEST(AdaptiveSearchTest, ABisectionPointNearTheThresholdGetsSeedsBeforeTheBracketMoves) {
  std::vector<SearchJob> jobs = TwoSeededEnds();
  jobs.push_back(Done(949, 0, 0.51));  // 0.01 above 0.5: undecided
  GroupSearchPlan plan = PlanGroupSearch(Adaptive(0.25, 3), {0}, 0.5, jobs);
  ASSERT_EQ(plan.next.size(), 1u);
  EXPECT_EQ(plan.next[0].d, SubspaceDim::Subspace(949));
  EXPECT_EQ(plan.next[0].seed, 1u);
  EXPECT_THAT(plan.next[0].reason, HasSubstr("seed 1 at d = 949: the mean 0.51 of its 1 seed lies within t = 4.303 "
                                             "x the seed spread near it 0.01414"));
  EXPECT_THAT(plan.next[0].reason, HasSubstr("of the threshold 0.5"));
  // A second seed leaves the mean on the threshold (and adds a degree of freedom): a third.
  jobs.push_back(Done(949, 1, 0.49));
  plan = PlanGroupSearch(Adaptive(0.25, 3), {0}, 0.5, jobs);
  ASSERT_EQ(plan.next.size(), 1u);
  EXPECT_EQ(plan.next[0].d, SubspaceDim::Subspace(949));
  EXPECT_EQ(plan.next[0].seed, 2u);
  // The third brings the mean to 0.49, below: the bracket moves up to 949 .. 3000 and, at max_seeds, the
  // side of 949 is its mean's.
  jobs.push_back(Done(949, 2, 0.47));
  plan = PlanGroupSearch(Adaptive(0.25, 3), {0}, 0.5, jobs);
  ASSERT_EQ(plan.next.size(), 1u);
  EXPECT_EQ(plan.next[0].d, SubspaceDim::Subspace(1687));  // round(sqrt(949 * 3000)) = round(1687.3)
  EXPECT_EQ(plan.next[0].reason, "bisect log d between d = 949 and 3000");
  EXPECT_EQ(Keys(jobs).size(), jobs.size());
}

TEST(AdaptiveSearchTest, APointIsTestedAgainstTheSpreadNearItNotAWideSpreadFarAway) {
  // d = 10's seeds spread 0.1414 (a classifier's tiny d), d = 300's and 3000's 0.01414: the pooled spread
  // is 0.0825 on 3 degrees of freedom, the spread near 949 (300 and 3000) 0.01414 on 2, floored at half
  // the pooled, 0.0412. 949's one seed 0.2 above the threshold is decided by it (4.303 x 0.0412 = 0.177),
  // where the pooled spread would have asked for a seed (3.182 x 0.0825 = 0.262).
  std::vector<SearchJob> jobs = TwoSeededEnds();
  jobs.push_back(Done(10, 0, 0.0));
  jobs.push_back(Done(10, 1, 0.2));
  jobs.push_back(Done(949, 0, 0.70));
  GroupSearchPlan plan = PlanGroupSearch(Adaptive(0.25, 3), {0}, 0.5, jobs);
  ASSERT_EQ(plan.next.size(), 1u);
  EXPECT_EQ(plan.next[0].d, SubspaceDim::Subspace(534));
  EXPECT_EQ(plan.next[0].reason, "bisect log d between d = 300 and 949");
  // 0.15 above is within 0.177: a second seed, whose reason names the spread near 949.
  jobs.back().score = 0.65;
  plan = PlanGroupSearch(Adaptive(0.25, 3), {0}, 0.5, jobs);
  ASSERT_EQ(plan.next.size(), 1u);
  EXPECT_EQ(plan.next[0].d, SubspaceDim::Subspace(949));
  EXPECT_THAT(plan.next[0].reason, HasSubstr("t = 4.303 x the seed spread near it 0.04123"));
}

TEST(AdaptiveSearchTest, APointFarFromTheThresholdDecidesItsSideWithOneSeed) {
  std::vector<SearchJob> jobs = TwoSeededEnds();
  jobs.push_back(Done(949, 0, 0.60));  // 0.1 above: decided
  GroupSearchPlan plan = PlanGroupSearch(Adaptive(0.25, 3), {0}, 0.5, jobs);
  ASSERT_EQ(plan.next.size(), 1u);
  EXPECT_EQ(plan.next[0].d, SubspaceDim::Subspace(534));  // round(sqrt(300 * 949)) = round(533.6)
  EXPECT_EQ(plan.next[0].seed, 0u);
}

TEST(AdaptiveSearchTest, AddedSeedsContinueTheSweepsSeeds) {
  // Seeds [7]: the ends' second seeds are 8, not 0, so that sweeps with far-apart seeds share none.
  std::vector<SearchJob> jobs = {Done(0, 7, 0.1), Done(300, 7, 0.45), Done(3000, 7, 0.8)};
  GroupSearchPlan plan = PlanGroupSearch(Adaptive(0.25, 3), {7}, 0.5, jobs);
  ASSERT_EQ(plan.next.size(), 2u);
  EXPECT_EQ(plan.next[0].seed, 8u);
  EXPECT_EQ(plan.next[1].seed, 8u);
  EXPECT_THAT(plan.next[0].reason, HasSubstr("seed 8 at d = 300"));
  // A seed already used at the point (8, say by a job of an earlier plan) is skipped.
  jobs.push_back(Done(300, 8, 0.47));
  jobs.push_back(Done(3000, 9, 0.79));
  plan = PlanGroupSearch(Adaptive(0.25, 3), {7}, 0.5, jobs);
  ASSERT_FALSE(plan.next.empty());
  for (const SearchStep& step : plan.next) {
    if (step.d == SubspaceDim::Subspace(300)) EXPECT_EQ(step.seed, 9u);
    if (step.d == SubspaceDim::Subspace(3000)) EXPECT_EQ(step.seed, 8u);
  }
  // The largest seed there is: the added seeds start from 0.
  const uint64_t top = std::numeric_limits<uint64_t>::max();
  plan = PlanGroupSearch(Adaptive(0.25, 3), {top}, 0.5, {Done(0, top, 0.1), Done(300, top, 0.45), Done(3000, top, 0.8)});
  ASSERT_EQ(plan.next.size(), 2u);
  EXPECT_EQ(plan.next[0].seed, 0u);
}

TEST(AdaptiveSearchTest, APointThatBreaksTheCurvesRiseGetsASeedEvenFarFromTheThreshold) {
  // 949's one seed 0.42 and 1687's 0.30, both far under the threshold 0.5 (decided by the spread 0.014
  // alone: 4.303 x 0.014 = 0.061), but 1687 lies 0.12 under 949 (more than 4.303 x 0.014 x sqrt(2) =
  // 0.086): a curve that rises with d says one of them is off, and the larger d, with as few seeds, gets
  // a second before the bracket 1687 .. 3000 is trusted.
  std::vector<SearchJob> jobs = TwoSeededEnds();
  jobs.push_back(Done(949, 0, 0.42));
  jobs.push_back(Done(1687, 0, 0.30));
  GroupSearchPlan plan = PlanGroupSearch(Adaptive(0.25, 3), {0}, 0.5, jobs);
  ASSERT_EQ(plan.next.size(), 1u);
  EXPECT_EQ(plan.next[0].d, SubspaceDim::Subspace(1687));
  EXPECT_EQ(plan.next[0].seed, 1u);
  EXPECT_THAT(plan.next[0].reason, HasSubstr("seed 1 at d = 1687: the mean 0.3 at d = 1687 lies 0.12 under the mean "
                                             "0.42 at d = 949, more than t = 4.303 x the seed spread near it"));
  // With more seeds at 949 than at 1687 the drop is charged to 1687 as well; with more at 1687, to 949.
  jobs.push_back(Done(1687, 1, 0.31));
  jobs.push_back(Done(1687, 2, 0.29));
  plan = PlanGroupSearch(Adaptive(0.25, 3), {0}, 0.5, jobs);
  ASSERT_FALSE(plan.next.empty());
  EXPECT_EQ(plan.next[0].d, SubspaceDim::Subspace(949));
  EXPECT_THAT(plan.next[0].reason, HasSubstr("under the mean 0.42 at d = 949"));
  // Without the drop the same point is decided by its one seed: the bracket is bisected at once.
  std::vector<SearchJob> rising = TwoSeededEnds();
  rising.push_back(Done(949, 0, 0.25));
  rising.push_back(Done(1687, 0, 0.30));
  plan = PlanGroupSearch(Adaptive(0.25, 3), {0}, 0.5, rising);
  ASSERT_EQ(plan.next.size(), 1u);
  EXPECT_EQ(plan.next[0].d, SubspaceDim::Subspace(2250));  // round(sqrt(1687 * 3000))
}

TEST(AdaptiveSearchTest, AnUndecidedPointBelowTheBracketGetsASeedToo) {
  // The first crossing is at 600; 400's one seed lies 0.01 under the threshold and may be the real one.
  std::vector<SearchJob> jobs = TwoSeededEnds();
  jobs.push_back(Done(400, 0, 0.49));
  jobs.push_back(Done(500, 0, 0.42));  // 0.08 under: decided
  jobs.push_back(Done(600, 0, 0.60));
  GroupSearchPlan plan = PlanGroupSearch(Adaptive(0.25, 3), {0}, 0.5, jobs);
  ASSERT_EQ(plan.next.size(), 1u);
  EXPECT_EQ(plan.next[0].d, SubspaceDim::Subspace(400));
  EXPECT_EQ(plan.next[0].seed, 1u);
  // Its second seed lands above: the mean (0.5) crosses, the crossing moves down to 300 .. 400, within
  // 0.35, and 400's two seeds are still undecided: a third.
  jobs.push_back(Done(400, 1, 0.51));
  plan = PlanGroupSearch(Adaptive(0.35, 3), {0}, 0.5, jobs);
  ASSERT_EQ(plan.next.size(), 1u);
  EXPECT_EQ(plan.next[0].d, SubspaceDim::Subspace(400));
  EXPECT_EQ(plan.next[0].seed, 2u);
  jobs.push_back(Done(400, 2, 0.53));
  plan = PlanGroupSearch(Adaptive(0.35, 3), {0}, 0.5, jobs);
  EXPECT_TRUE(plan.settled) << plan.note;
  EXPECT_TRUE(plan.next.empty());
  EXPECT_THAT(plan.note, HasSubstr("between d = 300 and 400, within the relative width 0.35"));
}

TEST(AdaptiveSearchTest, WithNoCrossingAnUndecidedLargestDGetsSeedsBeforeTheGroupSettles) {
  std::vector<SearchJob> jobs = {Done(300, 0, 0.30), Done(300, 1, 0.32), Done(1000, 0, 0.40),
                                 Done(1000, 1, 0.42), Done(3000, 0, 0.46)};
  // 3000's one seed lies 0.04 under 0.5, within 4.303 x 0.01414 = 0.0609: it may reach the threshold.
  GroupSearchPlan plan = PlanGroupSearch(Adaptive(0.25, 3), {0}, 0.5, jobs);
  ASSERT_EQ(plan.next.size(), 1u);
  EXPECT_FALSE(plan.settled);
  EXPECT_EQ(plan.next[0].d, SubspaceDim::Subspace(3000));
  EXPECT_EQ(plan.next[0].seed, 1u);
  // Its second seed (mean 0.455, 3 degrees of freedom: 3.182 x 0.01225 / sqrt(2) = 0.0276) decides.
  jobs.push_back(Done(3000, 1, 0.45));
  plan = PlanGroupSearch(Adaptive(0.25, 3), {0}, 0.5, jobs);
  EXPECT_TRUE(plan.settled);
  EXPECT_TRUE(plan.next.empty());
  EXPECT_THAT(plan.note, HasSubstr("no d up to 3000 reaches the threshold 0.5"));
}

TEST(AdaptiveSearchTest, RunToItsEndWithSeedNoiseEverySeedStaysWithinMaxSeedsAndAskingAgainAddsNothing) {
  // Seeds shift the curve by 0.01 each: near the crossing the points need more than one seed.
  const SearchRun run = RunSearch(Adaptive(0.25, 3), {0}, {0, 300, 3000}, 0.5, Curve(600.0, 0.01));
  EXPECT_TRUE(run.last.settled) << run.last.note;
  EXPECT_EQ(Keys(run.jobs).size(), run.jobs.size()) << "a (d, seed) was created twice";
  std::map<int64_t, int> seeds_at;
  for (const SearchJob& job : run.jobs) ++seeds_at[job.d.value];
  int seeded = 0;
  for (const auto& [d, count] : seeds_at) {
    EXPECT_LE(count, 3) << "d = " << d;
    if (count > 1) ++seeded;
  }
  EXPECT_GE(seeded, 2);  // the bracket's first ends, and points near the crossing
  EXPECT_EQ(seeds_at[0], 1);  // d = 0 lies far below: never a second seed
  GroupSearchPlan again = PlanGroupSearch(Adaptive(0.25, 3), {0}, 0.5, run.jobs);
  EXPECT_TRUE(again.settled);
  EXPECT_TRUE(again.next.empty());
}

TEST(AdaptiveSearchTest, WithMaxSeedsOneNoSeedIsAdded) {
  std::vector<SearchJob> jobs = {Done(300, 0, 0.3), Done(500, 0, 0.48), Done(600, 0, 0.52)};
  GroupSearchPlan plan = PlanGroupSearch(Adaptive(0.25, 1), {0}, 0.5, jobs);
  EXPECT_TRUE(plan.settled);
  EXPECT_TRUE(plan.next.empty());
  EXPECT_THAT(plan.note, HasSubstr("between d = 500 and 600, within the relative width 0.25"));
}

TEST(AdaptiveSearchTest, TheJobBudgetIsNeverExceededAndSettlesTheGroup) {
  const SearchRun run = RunSearch(Adaptive(0.01, 3, /*max_jobs=*/8), {0, 1}, {0, 300, 3000}, 0.5,
                                  Curve(600.0, 0.01));
  EXPECT_EQ(run.jobs.size(), 8u);
  EXPECT_TRUE(run.last.settled);
  EXPECT_THAT(run.last.note, HasSubstr("budget of 8 jobs"));
}

TEST(AdaptiveSearchTest, NoCrossingOrACrossingAtTheFirstDSettlesAtOnce) {
  GroupSearchPlan none = PlanGroupSearch(Adaptive(), {0}, 0.95, {Done(0, 0, 0.1), Done(300, 0, 0.3), Done(3000, 0, 0.8)});
  EXPECT_TRUE(none.settled);
  EXPECT_TRUE(none.next.empty());
  EXPECT_THAT(none.note, HasSubstr("no d up to 3000 reaches the threshold 0.95"));
  GroupSearchPlan first = PlanGroupSearch(Adaptive(), {0}, 0.05, {Done(0, 0, 0.1), Done(300, 0, 0.3)});
  EXPECT_TRUE(first.settled);
  EXPECT_THAT(first.note, HasSubstr("the smallest d, 0, reaches"));
}

TEST(AdaptiveSearchTest, ABisectionWhoseSeedsAllFailedIsNotAskedForAgain) {
  std::vector<SearchJob> jobs = {Done(300, 0, 0.3), Done(3000, 0, 0.8), {Dim(949), 0, OutcomeState::kFailed, 0.0}};
  GroupSearchPlan plan = PlanGroupSearch(Adaptive(), {0}, 0.5, jobs);
  EXPECT_TRUE(plan.settled);
  EXPECT_TRUE(plan.next.empty());
  EXPECT_THAT(plan.note, HasSubstr("d = 949 has no succeeded seed"));
}

TEST(AdaptiveSearchTest, AnUnknownThresholdWithNothingLeftToRunSettles) {
  GroupSearchPlan plan = PlanGroupSearch(Adaptive(), {0}, std::numeric_limits<double>::quiet_NaN(),
                                         {{Dim(300), 0, OutcomeState::kFailed, 0.0}});
  EXPECT_TRUE(plan.settled);
  EXPECT_TRUE(plan.next.empty());
}

// The sweep-level plan: each group with its own threshold (here absolute), in record order.
TEST(AdaptiveSearchTest, TheSweepsPlanAsksEachGroupForItsOwnNextJobs) {
  SweepSpec spec;
  spec.search = Adaptive();
  spec.seeds = {0};
  spec.threshold = {ThresholdKind::kAbsolute, 0.5};
  auto outcome = [](const std::string& model, int64_t d, double score) {
    JobOutcome job;
    job.model = model;
    job.layer = "default";
    job.dataset = "brain";
    job.d = Dim(d);
    job.state = OutcomeState::kSucceeded;
    job.test_score = score;
    return job;
  };
  std::vector<JobOutcome> jobs = {outcome("a", 100, 0.2), outcome("a", 1000, 0.7), outcome("b", 100, 0.6),
                                  outcome("b", 1000, 0.9)};
  std::vector<SweepSearchStep> steps = PlanSweepSearch(spec, jobs);
  ASSERT_EQ(steps.size(), 1u);  // b crosses at its first d: settled
  EXPECT_EQ(steps[0].model, "a");
  EXPECT_EQ(steps[0].step.d, SubspaceDim::Subspace(316));
  spec.search.mode = SearchMode::kGrid;
  EXPECT_TRUE(PlanSweepSearch(spec, jobs).empty());
}

}  // namespace
}  // namespace dwarp::coordinator
