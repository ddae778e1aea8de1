// Threshold crossing of a score-versus-d curve: the rule that turns a sweep's results into d_warp
// (DESIGN.md "d_warp") or, for a classifier trained through random subspaces, into the intrinsic
// dimension d_int90 of Li et al. 2018 (threshold = 90% of the accuracy of training all parameters).
//
//   score(d)  = mean of the scores of all runs (seeds) at d
//   crossing  = the smallest grid d with score(d) >= threshold
//   refined d = linear interpolation of score against log d between the grid point just below the
//               crossing (which, the crossing being the first, is below the threshold) and the crossing
//
// Non-monotone curves: only the first crossing counts, whatever the curve does after it.
//
// d = 0 (a linear readout on the frozen model) has no logarithm. When the crossing is the first positive
// d and the point below it is d = 0, nothing is interpolated: the refined d is the crossing grid d itself
// (the true crossing lies somewhere in (0, d], and the grid cannot say where). When d = 0 already reaches
// the threshold the result is 0.
//
// Pure C++ (no LibTorch, no service): the coordinator's d_warp estimate and the engine's CLI share it.
// Thread-safety: free functions on values; safe to call concurrently.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include "common/status.h"

namespace dwarp {

// One measured point: a run's test score at subspace dimension d (d >= 0; 0 = linear readout).
struct DimScore {
  int64_t d = 0;
  double score = 0.0;
  // The run's seed, where known: the runs of one seed at several d share its data split and start, so
  // their scores move together (SeedCorrelation). Runs without one count as seeds of their own.
  std::optional<uint64_t> seed;
};

// The mean score at each distinct d, sorted by increasing d; `runs` may hold several seeds per d, in any
// order. Fails with InvalidArgument, naming the run, for a negative d or a non-finite score, or for no runs.
StatusOr<std::vector<DimScore>> MeanScoreCurve(const std::vector<DimScore>& runs);

struct ThresholdCrossing {
  double threshold = 0.0;
  // False when no grid d reaches the threshold (the other fields below are then unset).
  bool reached = false;
  // The smallest grid d whose mean score is >= threshold, and that score.
  int64_t grid_d = -1;
  double grid_score = 0.0;
  // The crossing refined in log d; equals grid_d when nothing was interpolated.
  double d = -1.0;
  // True when `d` came from interpolating between `below_d` and `grid_d`; false for an exact hit, a
  // crossing at the first grid point, or a crossing whose lower neighbour is d = 0.
  bool interpolated = false;
  // The grid point just below the crossing, -1 when the crossing is the first grid point.
  int64_t below_d = -1;
  double below_score = 0.0;
  // The best mean score on the grid and its d (set whether or not the threshold is reached).
  int64_t best_d = -1;
  double best_score = 0.0;
};

// Applies the rule above to the runs' mean curve. `threshold` must be finite. Fails like MeanScoreCurve.
StatusOr<ThresholdCrossing> FindThresholdCrossing(const std::vector<DimScore>& runs, double threshold);

// The spread of the seeds within one d, pooled over a group's runs at every d that has >= 2 of them (one
// spread for the whole curve; SeedSpreadAt's floor). `sd`: the pooled standard
// deviation of one seed's score about its d's mean, sqrt(sum of squared deviations / degrees_of_freedom),
// degrees_of_freedom = sum of (seeds - 1). Unknown (degrees_of_freedom 0, sd NaN) when no d has 2 seeds.
struct SeedSpread {
  int64_t degrees_of_freedom = 0;
  double sd = std::numeric_limits<double>::quiet_NaN();
  bool known() const { return degrees_of_freedom > 0; }
};
SeedSpread PooledSeedSpread(const std::vector<DimScore>& runs);

// The seeds' spread near one d, for a curve whose spread depends on d (a classifier's seeds may spread
// ten times more at a tiny d than from d = 100 up). Pooled like PooledSeedSpread, but only over the d
// values with >= 2 seeds nearest to `d` on the d axis: `d` itself when it has >= 2, the nearest such d
// below it and the nearest above it (one side only at an end of the curve), and while these give fewer
// than 2 degrees of freedom the next ones outwards (a t variate on one is a Cauchy variate);
// `degrees_of_freedom` are theirs. Floored at kLocalSpreadFloor x the group's PooledSeedSpread, so that
// a few seeds that agree by chance near d cannot make the spread there tiny. Unknown when no d has 2
// seeds.
inline constexpr double kLocalSpreadFloor = 0.5;
SeedSpread SeedSpreadAt(const std::vector<DimScore>& runs, int64_t d, double floor = kLocalSpreadFloor);

// How sure the crossing is, from the spread of the seeds (the runs at one d).
//
// Bootstrap: each of kBootstrapReplicates replicates draws a mean score at every d and applies the
// crossing rule above to the drawn means; a replicate whose curve never reaches the threshold counts as
// d = +infinity. How each d's mean is drawn is IntervalOptions::draw, below: by default kSeedEffects,
// which moves a seed's runs at every d together. With kOwnSeeds, the rule before it, every d is drawn
// independently: a d with >= 2 seeds draws as many scores as it has, with
// replacement, from its own; a d with one seed draws its score plus sd x T, sd the spread near that d
// (SeedSpreadAt) and T a Student's t variate on its degrees of freedom (the predictive spread of one
// seed when the spread itself is estimated from few seeds: heavy-tailed while they are few), so that every
// d of the curve, the single-seed points an adaptive search decided its bracket from included, carries its
// seed noise into the interval. The interval is the
// replicates' 2.5th and 97.5th percentiles (a 95% percentile interval), so `high` is +infinity when more
// than 2.5% of replicates never cross. The draws come from a SplitMix64 generator seeded with
// kBootstrapRngSeed, the same for every call and every platform: the interval is a function of the runs,
// reproducible run to run.
//
// With no pooled spread (no d has 2 seeds) and fewer than 2 seeds at the crossing's grid point or at
// the point below it, nothing is known of the seeds' spread: the interval is the bracket's ends,
// [below_d, grid_d] ([0, grid_d] when the crossing is the first grid point), which says where the grid
// puts the crossing and nothing about the seeds.
//
// `settled` is false when the seeds leave open which grid interval the crossing falls into: the bootstrap
// interval reaches outside [below_d, grid_d] (some replicates cross at another grid point, or never).
inline constexpr int kBootstrapReplicates = 2000;
inline constexpr uint64_t kBootstrapRngSeed = 0x64777270;  // "dwrp"

struct CrossingInterval {
  bool reached = false;    // the mean curve crosses; the fields below are set only then
  double low = 0.0;
  double high = 0.0;       // may be +infinity (bootstrap only)
  bool bootstrap = false;  // false: the bracket's ends
  bool settled = true;
};

// How much of the seeds' spread one seed carries to every d (its data split and start move its whole
// curve): the correlation of a seed's deviations from their d's mean between two d values, pooled over
// every pair of d values that share >= 2 seeds (over those shared seeds: sum over pairs and seeds of
// r1 x r2, divided by the square root of sum r1^2 x sum r2^2, r the deviation from the mean over the shared
// seeds at that d), clipped to [0, 1]. `pairs` counts the pairs of d values; unknown (pairs 0) when no two
// d values share 2 seeds.
struct SeedCorrelation {
  int64_t pairs = 0;
  double rho = std::numeric_limits<double>::quiet_NaN();
  bool known() const { return pairs > 0; }
};
SeedCorrelation SeedCorrelationOf(const std::vector<DimScore>& runs);

// How a bootstrap replicate draws each d's mean.
enum class IntervalDraw {
  // As above: a d with >= 2 seeds resamples its own seeds; a d with one draws from the spread near it.
  kOwnSeeds,
  // Every d draws its seeds' mean plus sd x T / sqrt(seeds), sd and T's degrees of freedom those of the
  // spread near it (SeedSpreadAt); a d's own seeds count in that spread when it has >= 2.
  kSpreadNear,
  // A random-effects model of the seeds: score(d, seed) = mean(d) + u(seed) + e(d, seed), u shared by a
  // seed's runs at every d. Each replicate draws every seed's u and every run's e as normals with
  // variances rho x sd^2 and (1 - rho) x sd^2 (sd the spread near the d, rho the seed correlation), all
  // scaled by one sqrt(dof / chi-square(dof)) (the spread near the crossing is itself estimated from
  // dof degrees of freedom), and moves each d's mean by the mean of its seeds' u + e. So the seeds that a
  // grid shares between d values move its whole curve together.
  kSeedEffects,
};
struct IntervalOptions {
  IntervalDraw draw = IntervalDraw::kSeedEffects;
  double spread_floor = kLocalSpreadFloor;  // SeedSpreadAt's floor
  // kSeedEffects: the seed correlation; NaN: SeedCorrelationOf(runs), 1 when that is unknown.
  double seed_correlation = std::numeric_limits<double>::quiet_NaN();
};

// The interval of FindThresholdCrossing(runs, threshold).d. Fails like FindThresholdCrossing.
StatusOr<CrossingInterval> FindCrossingInterval(const std::vector<DimScore>& runs, double threshold,
                                                const IntervalOptions& options = {});

// Whether the seeds of one d leave open on which side of the threshold their mean lies (a sequential
// test: an adaptive search adds seeds at such a d before it trusts its side): true for no scores, for
// an unknown spread, and when |mean - threshold| < t * spread.sd / sqrt(seeds), t = StudentT975(the
// spread's degrees of freedom): the threshold lies inside the mean's 95% interval built from `spread`
// (an adaptive search passes SeedSpreadAt: the d's neighbours', not the d's own alone, since 2 or 3 seeds
// say little of their own spread), widened by Student's t while that spread rests on few seeds (t = 4.30
// with 2 degrees of freedom, 2.26 with 9).
bool SideUndecided(const std::vector<double>& scores, const SeedSpread& spread, double threshold);

// The 97.5th percentile of Student's t distribution with `degrees_of_freedom` (>= 1): exact to 3 decimals
// from a table up to 30, then the Cornish-Fisher expansion in 1 / degrees_of_freedom around 1.96.
double StudentT975(int64_t degrees_of_freedom);

}  // namespace dwarp
