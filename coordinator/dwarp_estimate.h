// d_warp of every group of a sweep from the jobs' current outcomes (DESIGN.md "d_warp"); the coordinator
// recomputes it whenever a result lands and pushes the changed records to watchers.
//
// Group = (model, layer, dataset, variant). score(d) = mean test score over the group's succeeded seeds at d.
// Threshold (ThresholdSpec, common/sweep_spec.h):
//   absolute                  value
//   fraction_of_group_best    value * the best mean score of the group over its grid (d = full excluded)
//   fraction_of_dataset_best  value * the best mean score of any group of the sweep on the same dataset
//   fraction_of_full          value * the group's d = full mean score (unknown until one full seed succeeded)
//   fraction_of_noise_ceiling value * the dataset's noise ceiling: the mean of JobOutcome::noise_ceiling over
//                             the dataset's succeeded jobs (any d, full included) that report one. It is a
//                             property of the data, the same for every job of the dataset, so it is final as
//                             soon as one job reported it (if jobs disagree, the mean of what they reported).
//                             Unknown while none has; when every job of the dataset finished and none
//                             reported one (the data has no noise ceiling, or classification data), no
//                             threshold can ever be set and the group is not_reached, the note saying so.
// d_warp: threshold_crossing.h's rule (first grid d at or above the threshold, refined by linear
// interpolation of score against log d) over the group's curve of d >= 0 (full excluded).
// Status:
//   pending       no crossing on the current curve, or the threshold's reference is still unknown
//   provisional   a crossing on the current curve, but not yet final, or final but unsettled: the seeds'
//                 interval (below) reaches outside the bracket [below_d, grid_d], i.e. the seeds leave
//                 open between which grid points the mean score crosses the threshold
//   reached       a crossing, and final: the threshold's reference can no longer change (absolute: always;
//                 group best: every d >= 0 job of the group finished; dataset best: every d >= 0 job of the
//                 dataset finished; full: every full job of the group finished; noise ceiling: once
//                 known; full jobs never change a best score) and every job of the group with d <= the
//                 crossing finished
//   not_reached   no crossing, and every job that could change that finished; or (fraction_of_noise_ceiling)
//                 every job of the dataset finished without reporting a noise ceiling
// Interval: threshold_crossing.h FindCrossingInterval over the same runs, with each run's seed: a 95%
// bootstrap interval of the refined crossing whose replicates draw every seed's shared effect and every
// run's own (IntervalDraw::kSeedEffects), or the bracket's ends when no d has 2 succeeded seeds and a
// bracket end has one; set whenever d_warp is (provisional and reached).
// Finished = succeeded, failed or cancelled. Failed and cancelled jobs add nothing to the curve; a grid d
// without a succeeded seed is skipped (the note says so).
//
// Pure functions; no I/O. Thread-safety: safe to call concurrently.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "common/subspace_dim.h"
#include "common/sweep_spec.h"

namespace dwarp::coordinator {

enum class OutcomeState { kUnfinished, kSucceeded, kFailed, kCancelled };

struct JobOutcome {
  std::string model, layer, dataset, variant;
  SubspaceDim d;
  uint64_t seed = 0;
  OutcomeState state = OutcomeState::kUnfinished;
  double test_score = 0.0;  // when kSucceeded
  // When kSucceeded: the data's noise ceiling the job reported (mean over targets, R² units); NaN (or any
  // non-finite value) when the data has none.
  double noise_ceiling = std::numeric_limits<double>::quiet_NaN();
};

// Numbering as dwarp.v1.DWarpStatus.
enum class DWarpStatus { kPending = 1, kProvisional = 2, kReached = 3, kNotReached = 4 };
const char* DWarpStatusName(DWarpStatus status);  // "pending", "provisional", "reached", "not_reached"

struct CurvePointSummary {
  SubspaceDim d;
  double mean_score = 0.0;
  double std_score = 0.0;  // sample std over succeeded seeds; 0 for one
  int32_t seeds_done = 0;  // succeeded
  int32_t seeds_total = 0;
};

struct GroupDWarp {
  std::string model, layer, dataset, variant;
  DWarpStatus status = DWarpStatus::kPending;
  double d_warp = -1.0;    // refined; >= 0 for provisional and reached
  // The interval of d_warp (see above); NaN when d_warp is unset. d_warp_high may be +infinity.
  double d_warp_low = std::numeric_limits<double>::quiet_NaN();
  double d_warp_high = std::numeric_limits<double>::quiet_NaN();
  bool interval_bootstrap = false;  // false: the bracket's ends
  double threshold = 0.0;  // NaN while the reference is unknown
  int64_t grid_d = -1;
  int64_t below_d = -1;
  double best_score = 0.0;   // best mean over d >= 0 grid points with a succeeded seed
  SubspaceDim best_d;
  bool has_full = false;
  double full_score = 0.0;
  // The dataset's noise ceiling (the mean over its succeeded jobs that report one), whatever the threshold
  // kind; NaN while none has.
  double noise_ceiling = std::numeric_limits<double>::quiet_NaN();
  std::vector<CurvePointSummary> curve;  // every grid d of the group, ascending, full last
  std::string note;        // e.g. "waiting for d = 10, 30 below the crossing", "d = 300: every seed failed"
};

// One record per group, ordered by (dataset, model, layer, variant) as they first appear in `jobs`.
std::vector<GroupDWarp> ComputeDWarp(const ThresholdSpec& threshold, const std::vector<JobOutcome>& jobs);

// Each group's threshold as ComputeDWarp's record gives it (NaN while unknown), in the same order, without
// the crossing, its interval and the status: what the adaptive search needs after every result, at a
// fraction of the cost (the interval's bootstrap dominates ComputeDWarp).
struct GroupThreshold {
  std::string model, layer, dataset, variant;
  double threshold = std::numeric_limits<double>::quiet_NaN();
};
std::vector<GroupThreshold> ComputeThresholds(const ThresholdSpec& threshold, const std::vector<JobOutcome>& jobs);

// Early stop: indices into `jobs` of unfinished jobs that can no longer change any group's d_warp: jobs of a
// group whose status is reached, with d > grid_d (d >= 0; full jobs are kept when the threshold uses them),
// and only when the threshold kind makes the crossing independent of larger d (absolute, fraction_of_full,
// fraction_of_noise_ceiling: a reached status means the ceiling is known, and no job can change it).
std::vector<size_t> JobsMadeUnnecessary(const ThresholdSpec& threshold, const std::vector<JobOutcome>& jobs);
// The same from `records`, ComputeDWarp(threshold, jobs) already computed (each group's d_warp and its
// interval are not computed again).
std::vector<size_t> JobsMadeUnnecessary(const ThresholdSpec& threshold, const std::vector<JobOutcome>& jobs,
                                        const std::vector<GroupDWarp>& records);

}  // namespace dwarp::coordinator
