// Adaptive search over d (a sweep with `search: adaptive`, common/sweep_spec.h): which jobs to create next,
// from the jobs a group has so far. Pure functions of values: the plan is the stored jobs themselves plus
// the sweep's stored spec, so asking again (after every finished job, or after a coordinator restart)
// never creates a job twice and a half-done search resumes where it stood.
//
// Per group (model, layer, dataset, variant), starting from the sweep's grid (`dims` x `seeds`, the coarse
// grid), each time every job of the group has finished:
//   1. threshold unknown (its reference has no result yet): wait; unknown with nothing left to run: settled.
//   2. score(d) = mean over the succeeded seeds at d (d >= 0; full only counts as a job); the first
//      crossing is the smallest d whose mean reaches the threshold; the bracket is [lo, hi], lo the point
//      just below the crossing, hi the crossing. The seeds' spread at a d is the spread near it
//      (threshold_crossing.h SeedSpreadAt: pooled over the nearest d values with >= 2 seeds below and
//      above it and d itself, never under half the spread pooled over every such d), since a curve's
//      seeds may spread much more at a small d than at a large one.
//   3. Seeds before any decision (sequential testing): the points whose side of the threshold decides
//      where the first crossing lies are every d up to hi (every d when none crosses). Each of them whose
//      side is undecided (threshold_crossing.h SideUndecided: its mean lies within Student's t x the
//      spread near it / sqrt(seeds) of the threshold) and that has fewer than max_seeds jobs gets one
//      more seed (the smallest above the sweep's seeds not used at that d: seeds [7] adds 8, 9, ...), and
//      the search waits for them. While no d has 2 seeds (no spread
//      known) only the bracket's two ends are asked, for their second seed; the spread they give then
//      decides the other points, which a single seed settles when it lies far from the threshold. So a
//      bisection point near the threshold gets seeds before the bracket moves on its side, and a new seed
//      that moves a mean across the threshold moves the bracket. At max_seeds a point's side is its
//      mean's, decided or not (d_warp's interval, dwarp_estimate.h, then carries the doubt).
//      A point whose mean breaks the curve's rise (under the mean at the next smaller d by more than t x
//      the spread near it x sqrt(1 / seeds + 1 / its seeds): one run of the two may have ended far from
//      its seed's curve) is undecided too: the one of the two with fewer seeds (the larger d on a tie)
//      gets another.
//   4. No d reaches the threshold, or the first grid d reaches it: settled (the coarse grid is the
//      search's range).
//   5. Bracket wider than rel_width (hi > (1 + rel_width) * max(lo, 1)): add d = round(sqrt(max(lo, 1) * hi))
//      (bisection in log d) with the sweep's seeds, and wait for them. It is narrow enough also when no
//      integer d lies strictly inside, or when that d already has jobs (all failed: the search does not
//      ask again).
//   6. Otherwise settled.
// Budget: with max_jobs > 0, a group never has more than max_jobs jobs (the coarse grid included); a group
// that reached it is settled. New jobs are cut to the budget left.
//
// Thread-safety: free functions on values; safe to call concurrently.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/subspace_dim.h"
#include "common/sweep_spec.h"
#include "coordinator/dwarp_estimate.h"
#include "coordinator/store.h"

namespace dwarp::coordinator {

// One job of a group as the planner sees it.
struct SearchJob {
  SubspaceDim d;
  uint64_t seed = 0;
  OutcomeState state = OutcomeState::kUnfinished;
  double score = 0.0;  // the test score when kSucceeded
};

// A job to create, and why (shown with the job in `dwarp status` and `watch`).
struct SearchStep {
  SubspaceDim d;
  uint64_t seed = 0;
  std::string reason;  // "bisect log d between d = 300 and 1000", "seed 2 at d = 550: the mean ..."
};

struct GroupSearchPlan {
  std::vector<SearchStep> next;  // jobs to create now (none while the group's jobs run)
  bool settled = false;          // the search of the group is over (given these results)
  std::string note;              // why it waits or stopped
};

// The plan of one group. `seeds`: the sweep's seeds (every new d starts with them); `threshold`: the
// group's current threshold (GroupDWarp::threshold; NaN while unknown). A grid search is always settled.
GroupSearchPlan PlanGroupSearch(const SearchSpec& search, const std::vector<uint64_t>& seeds, double threshold,
                                const std::vector<SearchJob>& jobs);

struct SweepSearchStep {
  std::string model, layer, dataset, variant;
  SearchStep step;
};

// Every group's new jobs, in d_warp record order (each group's threshold from dwarp_estimate.h
// ComputeThresholds: the scheduler plans after every result, so no interval is computed here). Empty for a
// grid sweep.
std::vector<SweepSearchStep> PlanSweepSearch(const SweepSpec& spec, const std::vector<JobOutcome>& jobs);

// A stored job as the d_warp estimate and the planner see it.
JobOutcome OutcomeOf(const JobRow& job);

// The row of a planned job not yet stored: state queued, created_ms, reason set; job and sweep ids unset.
// What Submit stores for the sweep's first jobs and NextSearchJobs for a search's later ones.
JobRow QueuedJobRow(const PlannedJob& plan, const std::string& reason, int64_t created_ms);

// Why the jobs created at Submit exist: "grid", or "coarse grid" for an adaptive search.
std::string InitialJobReason(const SweepSpec& spec);

// The rows of PlanSweepSearch's jobs for `sweep_id` (state queued, created_ms = now_ms, reason set, job
// ids unset), ready for SweepStore::AddJobs. An error (a job spec that does not validate) names the job.
StatusOr<std::vector<JobRow>> NextSearchJobs(const SweepSpec& spec, const std::string& sweep_id,
                                             const std::vector<const JobRow*>& jobs, int64_t now_ms);

}  // namespace dwarp::coordinator
