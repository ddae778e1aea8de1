#include "common/threshold_crossing.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

namespace dwarp {
namespace {

ThresholdCrossing Cross(const std::vector<DimScore>& runs, double threshold) {
  auto result = FindThresholdCrossing(runs, threshold);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : ThresholdCrossing{};
}

TEST(MeanScoreCurveTest, AveragesSeedsAndSortsByD) {
  auto curve = MeanScoreCurve({{100, 0.5}, {10, 0.2}, {100, 0.7}, {10, 0.4}, {0, 0.1}});
  ASSERT_TRUE(curve.ok()) << curve.status();
  ASSERT_EQ(curve->size(), 3u);
  EXPECT_EQ((*curve)[0].d, 0);
  EXPECT_DOUBLE_EQ((*curve)[0].score, 0.1);
  EXPECT_EQ((*curve)[1].d, 10);
  EXPECT_DOUBLE_EQ((*curve)[1].score, 0.3);
  EXPECT_EQ((*curve)[2].d, 100);
  EXPECT_DOUBLE_EQ((*curve)[2].score, 0.6);
}

TEST(ThresholdCrossingTest, InterpolatesInLogD) {
  // Threshold halfway in score between d = 10 and d = 1000: halfway in log d, i.e. d = 100.
  const auto c = Cross({{10, 0.2}, {1000, 0.8}, {3000, 0.9}}, 0.5);
  ASSERT_TRUE(c.reached);
  EXPECT_EQ(c.grid_d, 1000);
  EXPECT_DOUBLE_EQ(c.grid_score, 0.8);
  EXPECT_EQ(c.below_d, 10);
  EXPECT_TRUE(c.interpolated);
  EXPECT_NEAR(c.d, 100.0, 1e-9);
  EXPECT_EQ(c.best_d, 3000);
  EXPECT_DOUBLE_EQ(c.best_score, 0.9);
}

TEST(ThresholdCrossingTest, InterpolationIsNotLinearInD) {
  // A quarter of the way in score from d = 10 (0.0) to d = 1000 (1.0): 10^(1 + 0.25 * 2) = 10^1.5.
  const auto c = Cross({{10, 0.0}, {1000, 1.0}}, 0.25);
  ASSERT_TRUE(c.reached);
  EXPECT_NEAR(c.d, std::pow(10.0, 1.5), 1e-9);
  EXPECT_LT(c.d, 10 + 0.25 * 990);  // linear interpolation in d would give 257.5
}

TEST(ThresholdCrossingTest, ExactHitIsTheGridD) {
  const auto c = Cross({{10, 0.2}, {100, 0.5}, {1000, 0.8}}, 0.5);
  ASSERT_TRUE(c.reached);
  EXPECT_EQ(c.grid_d, 100);
  EXPECT_DOUBLE_EQ(c.d, 100.0);
  EXPECT_FALSE(c.interpolated);
  EXPECT_EQ(c.below_d, 10);
}

TEST(ThresholdCrossingTest, FirstGridPointAlreadyAbove) {
  const auto c = Cross({{10, 0.9}, {100, 0.95}}, 0.5);
  ASSERT_TRUE(c.reached);
  EXPECT_EQ(c.grid_d, 10);
  EXPECT_DOUBLE_EQ(c.d, 10.0);
  EXPECT_FALSE(c.interpolated);
  EXPECT_EQ(c.below_d, -1);
}

TEST(ThresholdCrossingTest, NeverReached) {
  const auto c = Cross({{10, 0.2}, {100, 0.4}, {1000, 0.45}}, 0.5);
  EXPECT_FALSE(c.reached);
  EXPECT_EQ(c.grid_d, -1);
  EXPECT_EQ(c.best_d, 1000);
  EXPECT_DOUBLE_EQ(c.best_score, 0.45);
  EXPECT_DOUBLE_EQ(c.threshold, 0.5);
}

TEST(ThresholdCrossingTest, NonMonotoneCurveUsesFirstCrossing) {
  // Crosses at 100, dips below at 300, crosses again at 1000: the first crossing counts.
  const auto c = Cross({{10, 0.1}, {100, 0.6}, {300, 0.3}, {1000, 0.9}}, 0.5);
  ASSERT_TRUE(c.reached);
  EXPECT_EQ(c.grid_d, 100);
  EXPECT_EQ(c.below_d, 10);
  EXPECT_GT(c.d, 10.0);
  EXPECT_LT(c.d, 100.0);
  // (0.5 - 0.1) / (0.6 - 0.1) = 0.8 of the way from log 10 to log 100.
  EXPECT_NEAR(c.d, std::pow(10.0, 1.8), 1e-9);
  EXPECT_EQ(c.best_d, 1000);
}

TEST(ThresholdCrossingTest, NonMonotoneBeforeCrossingInterpolatesFromImmediateNeighbour) {
  // A high point below the threshold at d = 10 then a dip at d = 30: interpolation uses d = 30.
  const auto c = Cross({{10, 0.45}, {30, 0.1}, {100, 0.7}}, 0.5);
  ASSERT_TRUE(c.reached);
  EXPECT_EQ(c.grid_d, 100);
  EXPECT_EQ(c.below_d, 30);
  const double fraction = (0.5 - 0.1) / (0.7 - 0.1);
  EXPECT_NEAR(c.d, std::exp(std::log(30.0) + fraction * (std::log(100.0) - std::log(30.0))), 1e-9);
}

TEST(ThresholdCrossingTest, LinearReadoutBelowFirstPositiveDIsNotInterpolated) {
  const auto c = Cross({{0, 0.3}, {10, 0.8}, {100, 0.9}}, 0.5);
  ASSERT_TRUE(c.reached);
  EXPECT_EQ(c.grid_d, 10);
  EXPECT_EQ(c.below_d, 0);
  EXPECT_FALSE(c.interpolated);
  EXPECT_DOUBLE_EQ(c.d, 10.0);
}

TEST(ThresholdCrossingTest, LinearReadoutReachingThresholdGivesZero) {
  const auto c = Cross({{0, 0.6}, {10, 0.8}}, 0.5);
  ASSERT_TRUE(c.reached);
  EXPECT_EQ(c.grid_d, 0);
  EXPECT_DOUBLE_EQ(c.d, 0.0);
}

TEST(ThresholdCrossingTest, MeanOverSeedsDecides) {
  // One seed at d = 100 reaches the threshold, but the mean (0.45) does not; d = 1000 does.
  const auto c = Cross({{100, 0.6}, {100, 0.3}, {1000, 0.7}, {1000, 0.7}}, 0.5);
  ASSERT_TRUE(c.reached);
  EXPECT_EQ(c.grid_d, 1000);
  EXPECT_DOUBLE_EQ(c.below_score, 0.45);
}

TEST(ThresholdCrossingTest, RejectsBadInput) {
  const auto empty = FindThresholdCrossing({}, 0.5);
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidArgument);

  const auto negative = FindThresholdCrossing({{10, 0.1}, {-3, 0.2}}, 0.5);
  ASSERT_FALSE(negative.ok());
  EXPECT_NE(negative.status().message().find("d = -3"), std::string::npos) << negative.status();

  const auto nan_score = FindThresholdCrossing({{10, std::numeric_limits<double>::quiet_NaN()}}, 0.5);
  ASSERT_FALSE(nan_score.ok());
  EXPECT_NE(nan_score.status().message().find("nan"), std::string::npos) << nan_score.status();

  const auto nan_threshold = FindThresholdCrossing({{10, 0.1}}, std::numeric_limits<double>::quiet_NaN());
  ASSERT_FALSE(nan_threshold.ok());
  EXPECT_NE(nan_threshold.status().message().find("threshold"), std::string::npos) << nan_threshold.status();
}

// ------------------------------------------------------------------------------------------ the interval

CrossingInterval Interval(const std::vector<DimScore>& runs, double threshold, const IntervalOptions& options = {}) {
  auto result = FindCrossingInterval(runs, threshold, options);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : CrossingInterval{};
}

TEST(CrossingIntervalTest, OneSeedGivesTheBracketsEnds) {
  const CrossingInterval i = Interval({{10, 0.2}, {1000, 0.8}, {3000, 0.9}}, 0.5);
  ASSERT_TRUE(i.reached);
  EXPECT_FALSE(i.bootstrap);
  EXPECT_DOUBLE_EQ(i.low, 10.0);
  EXPECT_DOUBLE_EQ(i.high, 1000.0);
  EXPECT_TRUE(i.settled);
  // A crossing at the first grid point: (0, d].
  const CrossingInterval first = Interval({{300, 0.6}, {1000, 0.8}}, 0.5);
  EXPECT_DOUBLE_EQ(first.low, 0.0);
  EXPECT_DOUBLE_EQ(first.high, 300.0);
  EXPECT_FALSE(Interval({{300, 0.1}}, 0.5).reached);
}

TEST(CrossingIntervalTest, IdenticalSeedsGiveAZeroWidthBootstrapAtTheCrossing) {
  const std::vector<DimScore> runs = {{10, 0.2}, {10, 0.2}, {1000, 0.8}, {1000, 0.8}};
  const CrossingInterval i = Interval(runs, 0.5);
  EXPECT_TRUE(i.bootstrap);
  EXPECT_NEAR(i.low, 100.0, 1e-9);
  EXPECT_NEAR(i.high, 100.0, 1e-9);
  EXPECT_TRUE(i.settled);
}

TEST(CrossingIntervalTest, SpreadSeedsWidenTheIntervalAroundTheCrossingAndItIsReproducible) {
  const std::vector<DimScore> runs = {{10, 0.15}, {10, 0.25}, {10, 0.2}, {1000, 0.75}, {1000, 0.85}, {1000, 0.8}};
  const CrossingInterval i = Interval(runs, 0.5);
  const double d = Cross(runs, 0.5).d;
  EXPECT_TRUE(i.bootstrap);
  EXPECT_LT(i.low, d);
  EXPECT_GT(i.high, d);
  EXPECT_GE(i.low, 10.0);
  EXPECT_LE(i.high, 1000.0);
  EXPECT_TRUE(i.settled);  // every resampled curve crosses between 10 and 1000
  const CrossingInterval again = Interval(runs, 0.5);
  EXPECT_EQ(again.low, i.low);
  EXPECT_EQ(again.high, i.high);
}

TEST(CrossingIntervalTest, SeedsOnBothSidesOfTheThresholdLeaveTheBracketUnsettled) {
  // d = 100's seeds straddle 0.5 (mean 0.5): some resampled curves cross at 100, others at 1000.
  const std::vector<DimScore> runs = {{10, 0.2}, {10, 0.2}, {100, 0.3}, {100, 0.7}, {1000, 0.9}, {1000, 0.9}};
  const CrossingInterval i = Interval(runs, 0.5);
  EXPECT_TRUE(i.bootstrap);
  EXPECT_FALSE(i.settled);
  EXPECT_LT(i.low, 100.0);
  EXPECT_GT(i.high, 100.0);
  // A top point whose seeds straddle: some resampled curves never cross, so the interval is open above.
  const CrossingInterval open = Interval({{10, 0.2}, {10, 0.2}, {1000, 0.3}, {1000, 0.8}}, 0.5);
  EXPECT_TRUE(std::isinf(open.high));
  EXPECT_FALSE(open.settled);
}

TEST(CrossingIntervalTest, OwnSeedsDrawOneSeedPointsFromTheSpreadNearThemSoTheirNoiseWidensTheInterval) {
  // kOwnSeeds: d = 10 and 1000 have two seeds each (spread 0.05 per seed); d = 100 has one seed just
  // under 0.5.
  const IntervalOptions own{IntervalDraw::kOwnSeeds};
  const std::vector<DimScore> runs = {{10, 0.15}, {10, 0.25}, {100, 0.48}, {1000, 0.75}, {1000, 0.85}};
  const CrossingInterval i = Interval(runs, 0.5, own);
  ASSERT_TRUE(i.reached);
  EXPECT_TRUE(i.bootstrap);
  // Its one seed may lie either side: some replicates cross between 10 and 100, so the interval reaches
  // below the bracket 100 .. 1000, which is then not settled.
  EXPECT_LT(i.low, 100.0);
  EXPECT_GT(i.high, 100.0);
  EXPECT_FALSE(i.settled);
  // Without the single-seed point's noise (two identical seeds: zero spread of its own, but it is no
  // longer drawn from the pool) the interval stays in the bracket.
  const CrossingInterval two = Interval({{10, 0.15}, {10, 0.25}, {100, 0.48}, {100, 0.48}, {1000, 0.75},
                                         {1000, 0.85}}, 0.5, own);
  EXPECT_GE(two.low, 100.0 * (1 - 1e-9));
  // A one-seed point far below the threshold (0.5 under it, 7 sds 0.0707 on 2 degrees of freedom, 100's and 1000's:
  // a t-variate beyond 7 in about 1% of draws) crosses in too few replicates to move the interval.
  const CrossingInterval far =
      Interval({{10, 0.0}, {100, 0.25}, {100, 0.35}, {1000, 0.75}, {1000, 0.85}}, 0.5, own);
  EXPECT_TRUE(far.bootstrap);
  EXPECT_GE(far.low, 100.0 * (1 - 1e-9));
  EXPECT_LE(far.high, 1000.0 * (1 + 1e-9));
  EXPECT_TRUE(far.settled);
}

TEST(CrossingIntervalTest, AOneSeedPointDrawsTheSpreadNearItNotAWideOneFarAway) {
  // d = 10's two seeds spread 0.283, d = 100's and 1000's five seeds 0.011: the pooled spread is
  // sqrt(0.081 / 9) = 0.0949, the spread near 300 (100 and 1000) 0.011, floored at half the pooled, 0.0474
  // on 8 degrees of freedom. 300's one seed 0.38 lies 2.5 of those under the threshold 0.5 (a t-variate
  // beyond it in under 2% of draws; 1.27 pooled spreads, in about 12%), so the crossing stays between 300
  // and 1000 and the interval inside that bracket.
  std::vector<DimScore> runs = {{10, 0.0}, {10, 0.4}, {300, 0.38}};
  for (double shift : {-0.01, -0.005, 0.0, 0.005, 0.01}) {
    runs.push_back({100, 0.3 + shift * std::sqrt(2.0)});
    runs.push_back({1000, 0.8 + shift * std::sqrt(2.0)});
  }
  const SeedSpread near = SeedSpreadAt(runs, 300);
  EXPECT_EQ(near.degrees_of_freedom, 8);
  EXPECT_NEAR(near.sd, 0.5 * PooledSeedSpread(runs).sd, 1e-12);
  const CrossingInterval i = Interval(runs, 0.5);
  ASSERT_TRUE(i.reached);
  EXPECT_TRUE(i.bootstrap);
  EXPECT_GE(i.low, 300.0 * (1 - 1e-9));
  EXPECT_LE(i.high, 1000.0 * (1 + 1e-9));
  EXPECT_TRUE(i.settled);
}

TEST(PooledSeedSpreadTest, PoolsEveryDWithTwoSeedsOrMore) {
  EXPECT_FALSE(PooledSeedSpread({}).known());
  const SeedSpread none = PooledSeedSpread({{10, 0.2}, {100, 0.4}});
  EXPECT_FALSE(none.known());
  EXPECT_TRUE(std::isnan(none.sd));
  // d = 0: 0.1, 0.3 (squares 0.02, 1 degree of freedom); d = 100: 0.4, 0.5, 0.6 (0.02, 2); d = 10: one seed.
  const SeedSpread spread = PooledSeedSpread({{0, 0.1}, {0, 0.3}, {10, 0.9}, {100, 0.4}, {100, 0.5}, {100, 0.6}});
  EXPECT_EQ(spread.degrees_of_freedom, 3);
  EXPECT_NEAR(spread.sd, std::sqrt(0.04 / 3), 1e-12);
}

TEST(SeedSpreadAtTest, PoolsTheNearestDsWithTwoSeedsOnEachSideAndItselfFlooredAtHalfThePooledSpread) {
  EXPECT_FALSE(SeedSpreadAt({}, 100).known());
  EXPECT_FALSE(SeedSpreadAt({{10, 0.2}, {100, 0.4}}, 100).known());
  // d = 10: 0.0, 0.2 (squares 0.02); 100: 0.50, 0.52 (0.0002); 300: one seed; 1000: 0.60, 0.62 (0.0002);
  // 3000: 0.70, 0.72, 0.74 (0.0008, 2 degrees of freedom). Pooled: sqrt(0.0212 / 5) = 0.0651.
  const std::vector<DimScore> runs = {{10, 0.0},    {10, 0.2},    {100, 0.50},  {100, 0.52}, {300, 0.55},
                                      {1000, 0.60}, {1000, 0.62}, {3000, 0.70}, {3000, 0.72}, {3000, 0.74}};
  const double pooled = PooledSeedSpread(runs).sd;
  EXPECT_NEAR(pooled, std::sqrt(0.0212 / 5), 1e-12);
  // Near 300: 100 and 1000 (sd 0.01414 on 2), not d = 10 or 3000; floored at half the pooled (0.0326).
  const SeedSpread at300 = SeedSpreadAt(runs, 300);
  EXPECT_EQ(at300.degrees_of_freedom, 2);
  EXPECT_NEAR(at300.sd, 0.5 * pooled, 1e-12);
  // Near 1000: itself, 100 below and 3000 above: squares 0.0002 + 0.0002 + 0.0008 on 4.
  const SeedSpread at1000 = SeedSpreadAt(runs, 1000);
  EXPECT_EQ(at1000.degrees_of_freedom, 4);
  EXPECT_NEAR(at1000.sd, std::max(std::sqrt(0.0012 / 4), 0.5 * pooled), 1e-12);
  // Near 30: 10 below (its own wide spread) and 100 above: sqrt(0.0202 / 2) = 0.1005, above the floor.
  const SeedSpread at30 = SeedSpreadAt(runs, 30);
  EXPECT_EQ(at30.degrees_of_freedom, 2);
  EXPECT_NEAR(at30.sd, std::sqrt(0.0202 / 2), 1e-12);
  // Beyond the last d: only 3000, one side.
  const SeedSpread at5000 = SeedSpreadAt(runs, 5000);
  EXPECT_EQ(at5000.degrees_of_freedom, 2);
  EXPECT_NEAR(at5000.sd, std::max(0.02, 0.5 * pooled), 1e-12);
}

TEST(SideUndecidedTest, NoScoresOrNoSpreadOrAMeanWithinItsTIntervalOfTheThresholdIsUndecided) {
  const SeedSpread unknown;
  EXPECT_TRUE(SideUndecided({0.9}, unknown, 0.5));
  EXPECT_TRUE(SideUndecided({0.9, 0.95}, unknown, 0.5));
  // Three d with two seeds 0.02 apart: sd 0.01414 on 3 degrees of freedom, t = 3.182; one seed decides
  // beyond 3.182 x 0.01414 = 0.045 from the threshold, two beyond 0.0318.
  const SeedSpread spread = PooledSeedSpread({{100, 0.49}, {100, 0.51}, {200, 0.49}, {200, 0.51}, {300, 0.49},
                                              {300, 0.51}});
  ASSERT_EQ(spread.degrees_of_freedom, 3);
  EXPECT_TRUE(SideUndecided({}, spread, 0.5));
  EXPECT_TRUE(SideUndecided({0.54}, spread, 0.5));
  EXPECT_FALSE(SideUndecided({0.55}, spread, 0.5));
  EXPECT_FALSE(SideUndecided({0.45}, spread, 0.5));
  EXPECT_FALSE(SideUndecided({0.54, 0.54}, spread, 0.5));
  // The same spread on one degree of freedom (t = 12.7) leaves 0.55 undecided.
  EXPECT_TRUE(SideUndecided({0.55}, PooledSeedSpread({{100, 0.49}, {100, 0.51}}), 0.5));
}

TEST(StudentT975Test, MatchesTheTableAndTendsTo196) {
  EXPECT_TRUE(std::isinf(StudentT975(0)));
  EXPECT_DOUBLE_EQ(StudentT975(1), 12.706);
  EXPECT_DOUBLE_EQ(StudentT975(2), 4.303);
  EXPECT_DOUBLE_EQ(StudentT975(30), 2.042);
  EXPECT_NEAR(StudentT975(31), 2.0395, 5e-4);
  EXPECT_NEAR(StudentT975(120), 1.9799, 5e-4);
  EXPECT_GT(StudentT975(100000), 1.9599);
  EXPECT_LT(StudentT975(100000), 1.9601);
}

// ------------------------------------------------------------------ seeds shared between d values

TEST(SeedCorrelationTest, ASeedThatShiftsItsWholeCurveCorrelatesFully) {
  // Each seed's curve is the same curve shifted by the seed's own offset.
  std::vector<DimScore> runs;
  const double offset[] = {-0.02, 0.01, 0.03};
  for (uint64_t seed = 0; seed < 3; ++seed)
    for (int64_t d : {100, 300, 1000}) runs.push_back({d, 0.1 * std::log(static_cast<double>(d)) + offset[seed], seed});
  const SeedCorrelation shared = SeedCorrelationOf(runs);
  ASSERT_TRUE(shared.known());
  EXPECT_EQ(shared.pairs, 3);  // (100, 300), (100, 1000), (300, 1000)
  EXPECT_NEAR(shared.rho, 1.0, 1e-12);

  // Opposite deviations at the two d values: a negative correlation, clipped to 0.
  const SeedCorrelation opposite = SeedCorrelationOf({{100, 0.4, 0}, {100, 0.5, 1}, {300, 0.6, 0}, {300, 0.5, 1}});
  ASSERT_TRUE(opposite.known());
  EXPECT_EQ(opposite.rho, 0.0);

  // No two d values share 2 seeds, or the runs carry no seed: unknown.
  EXPECT_FALSE(SeedCorrelationOf({{100, 0.4, 0}, {100, 0.5, 1}, {300, 0.6, 0}, {300, 0.5, 2}}).known());
  EXPECT_FALSE(SeedCorrelationOf({{100, 0.4}, {100, 0.5}, {300, 0.6}, {300, 0.5}}).known());
}

// Simulated sweeps from the random-effects model the kSeedEffects draw assumes, with a known true
// crossing: score(d, seed) = 0.3 + 0.05 log d + u(seed) + e(d, seed), u and e normal with sds 0.012 and
// 0.008 (a seed correlation of 0.69, about what the quickstart's seeds show), 3 seeds at d = 0, 100, 300,
// 1000, 3000 (d = 0 at the line's value at 30). The curve is linear in log d, so interpolation is exact
// and each interval misses the truth only through the seeds.
double CoverageOfSimulatedGrids(const IntervalOptions& options, int sweeps, double* median_width) {
  std::mt19937_64 generator(20261205);
  std::normal_distribution<double> normal(0.0, 1.0);
  const double true_d = 700.0;
  const double threshold = 0.3 + 0.05 * std::log(true_d);
  int held = 0;
  std::vector<double> widths;
  for (int sweep = 0; sweep < sweeps; ++sweep) {
    std::vector<DimScore> runs;
    for (uint64_t seed = 0; seed < 3; ++seed) {
      const double u = 0.012 * normal(generator);
      for (int64_t d : {0, 100, 300, 1000, 3000}) {
        const double at = 0.3 + 0.05 * std::log(d == 0 ? 30.0 : static_cast<double>(d));
        runs.push_back({d, at + u + 0.008 * normal(generator), seed});
      }
    }
    const auto interval = FindCrossingInterval(runs, threshold, options);
    if (!interval.ok() || !interval->reached) continue;
    held += interval->low <= true_d && true_d <= interval->high;
    widths.push_back(interval->high / interval->low);
  }
  std::sort(widths.begin(), widths.end());
  *median_width = widths.empty() ? 0.0 : widths[widths.size() / 2];
  return static_cast<double>(held) / sweeps;
}

TEST(CrossingIntervalTest, SeedEffectsHoldTheTrueCrossingWhereResamplingOwnSeedsDoesNot) {
  constexpr int kSweeps = 300;
  double own_width = 0.0, effects_width = 0.0, independent_width = 0.0;
  const double own = CoverageOfSimulatedGrids({IntervalDraw::kOwnSeeds}, kSweeps, &own_width);
  const double effects = CoverageOfSimulatedGrids(IntervalOptions{}, kSweeps, &effects_width);  // the default
  const double independent =
      CoverageOfSimulatedGrids({IntervalDraw::kSeedEffects, kLocalSpreadFloor, 0.0}, kSweeps, &independent_width);
  // A 95% interval: resampling 3 seeds per d holds the truth far less often; the random-effects draw
  // about as often as it claims (300 sweeps: +-2.5% at 95%).
  EXPECT_LT(own, 0.85) << own;
  EXPECT_GE(effects, 0.90) << effects;
  EXPECT_GT(effects, own + 0.05);
  // Treating the seeds as independent at each d (correlation 0) gives narrower intervals than the
  // estimated correlation does.
  EXPECT_LT(independent_width, effects_width);
  EXPECT_LT(independent, effects + 1e-12);
  std::printf("coverage of 95%% intervals over %d simulated sweeps: own seeds %.3f (median width %.2f), seed effects "
              "%.3f (%.2f), seed effects with correlation 0 %.3f (%.2f)\n",
              kSweeps, own, own_width, effects, effects_width, independent, independent_width);
}

TEST(CrossingIntervalTest, SeedEffectsOnOneSeedPerDFallBackToTheBracketAndAreReproducible) {
  // No spread known: the bracket's ends, as for every draw.
  const auto bracket = FindCrossingInterval({{10, 0.2, 0}, {1000, 0.8, 0}}, 0.5, {IntervalDraw::kSeedEffects});
  ASSERT_TRUE(bracket.ok());
  EXPECT_FALSE(bracket->bootstrap);
  const std::vector<DimScore> runs = {{100, 0.40, 0}, {100, 0.44, 1}, {300, 0.47, 0},
                                      {300, 0.52, 1}, {1000, 0.58, 0}, {1000, 0.61, 1}};
  const auto a = FindCrossingInterval(runs, 0.5, {IntervalDraw::kSeedEffects});
  const auto b = FindCrossingInterval(runs, 0.5, {IntervalDraw::kSeedEffects});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(a->bootstrap);
  EXPECT_EQ(a->low, b->low);
  EXPECT_EQ(a->high, b->high);
  const double d = Cross(runs, 0.5).d;
  EXPECT_LT(a->low, d);
  EXPECT_GT(a->high, d);
}

}  // namespace
}  // namespace dwarp
