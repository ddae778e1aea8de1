#include "coordinator/adaptive_search.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "common/job_spec.h"
#include "common/threshold_crossing.h"

namespace dwarp::coordinator {
namespace {

std::string FormatNumber(double x) {
  std::ostringstream os;
  os.precision(4);
  os << x;
  return os.str();
}

// The jobs of one d >= 0 of a group.
struct DimJobs {
  std::set<uint64_t> seeds;      // every job's seed, whatever its state
  std::vector<double> scores;    // succeeded seeds' finite scores
};

// The seed an adaptive search adds at a point: the smallest one above the sweep's own seeds that the point
// has not used, so that the seeds it adds continue the sweep's (seeds [7] adds 8, 9, ...; seeds [0, 1, 2]
// adds 3, 4, ...) and two sweeps whose seeds lie far apart never share one. From 0 when the sweep's
// largest seed is the largest there is.
uint64_t NextUnusedSeed(const std::vector<uint64_t>& sweep_seeds, const std::set<uint64_t>& used) {
  const uint64_t largest = sweep_seeds.empty() ? 0 : *std::max_element(sweep_seeds.begin(), sweep_seeds.end());
  uint64_t seed = sweep_seeds.empty() || largest == std::numeric_limits<uint64_t>::max() ? 0 : largest + 1;
  while (used.count(seed) != 0) ++seed;
  return seed;
}

double Mean(const std::vector<double>& values) {
  double sum = 0.0;
  for (double v : values) sum += v;
  return sum / static_cast<double>(values.size());
}

}  // namespace

GroupSearchPlan PlanGroupSearch(const SearchSpec& search, const std::vector<uint64_t>& seeds, double threshold,
                                const std::vector<SearchJob>& jobs) {
  GroupSearchPlan plan;
  if (search.mode != SearchMode::kAdaptive) {
    plan.settled = true;
    plan.note = "grid search: the grid is every job";
    return plan;
  }
  const int64_t unfinished = std::count_if(jobs.begin(), jobs.end(), [](const SearchJob& job) {
    return job.state == OutcomeState::kUnfinished;
  });
  if (unfinished > 0) {
    plan.note = "waiting for " + std::to_string(unfinished) + " running or queued jobs";
    return plan;
  }
  if (!std::isfinite(threshold)) {
    plan.settled = true;
    plan.note = "the threshold is unknown and nothing is left to run";
    return plan;
  }
  const int64_t count = static_cast<int64_t>(jobs.size());
  int64_t budget = std::numeric_limits<int64_t>::max();
  if (search.max_jobs > 0) {
    budget = search.max_jobs - count;
    if (budget <= 0) {
      plan.settled = true;
      plan.note = "budget of " + std::to_string(search.max_jobs) + " jobs per group spent";
      return plan;
    }
  }

  std::map<int64_t, DimJobs> by_d;  // d >= 0, ascending
  std::vector<DimScore> runs;       // succeeded seeds, d >= 0
  for (const SearchJob& job : jobs) {
    if (job.d.is_full()) continue;
    DimJobs& at = by_d[job.d.value];
    at.seeds.insert(job.seed);
    if (job.state == OutcomeState::kSucceeded && std::isfinite(job.score)) {
      at.scores.push_back(job.score);
      runs.push_back({job.d.value, job.score});
    }
  }
  const SeedSpread spread = PooledSeedSpread(runs);
  std::vector<std::pair<int64_t, const DimJobs*>> curve;  // d with a succeeded seed
  for (const auto& [d, at] : by_d)
    if (!at.scores.empty()) curve.push_back({d, &at});
  if (curve.empty()) {
    plan.settled = true;
    plan.note = "no d >= 0 succeeded";
    return plan;
  }
  auto hit = std::find_if(curve.begin(), curve.end(),
                          [&](const auto& point) { return Mean(point.second->scores) >= threshold; });

  // The points whose side of the threshold decides where the first crossing lies: every point up to the
  // crossing (all of them when none crosses). Without a pooled spread only the bracket's ends are asked
  // for a second seed (a second seed everywhere would cost a job at each point far from the threshold):
  // those seeds give the spread the other points are then tested against.
  std::vector<std::pair<int64_t, const DimJobs*>> deciding;
  const auto end = hit == curve.end() ? curve.end() : hit + 1;
  if (spread.known()) {
    deciding.assign(curve.begin(), end);
  } else {
    if (end - curve.begin() >= 2) deciding.push_back(*(end - 2));
    deciding.push_back(*(end - 1));
  }
  // Points that break the curve's rise: a mean under the one at the next smaller d by more than the
  // seeds' spread allows (t x spread near them x sqrt(1 / seeds + 1 / its seeds)). One of the two is off
  // (a run can fail far from its seed's curve); the one with fewer seeds, the larger d on a tie, gets one
  // more before its side is trusted.
  std::map<int64_t, std::string> breaks_rise;  // d -> why
  if (spread.known()) {
    for (size_t i = 1; i < curve.size(); ++i) {
      const auto& [low_d, low] = curve[i - 1];
      const auto& [high_d, high] = curve[i];
      const SeedSpread near = SeedSpreadAt(runs, high_d);
      const double allowed = StudentT975(near.degrees_of_freedom) * near.sd *
                             std::sqrt(1.0 / static_cast<double>(low->scores.size()) +
                                       1.0 / static_cast<double>(high->scores.size()));
      const double drop = Mean(low->scores) - Mean(high->scores);
      if (!(drop > allowed)) continue;
      const bool low_gets_it = low->scores.size() < high->scores.size();
      const int64_t d = low_gets_it ? low_d : high_d;
      breaks_rise.emplace(d, "the mean " + FormatNumber(Mean(high->scores)) + " at d = " + std::to_string(high_d) +
                                 " lies " + FormatNumber(drop) + " under the mean " + FormatNumber(Mean(low->scores)) +
                                 " at d = " + std::to_string(low_d) + ", more than t = " +
                                 FormatNumber(StudentT975(near.degrees_of_freedom)) + " x the seed spread near it " +
                                 FormatNumber(near.sd) + " allows for a curve that rises with d");
    }
  }
  for (const auto& [d, at] : deciding) {
    if (static_cast<int64_t>(plan.next.size()) >= budget) break;
    if (static_cast<int64_t>(at->seeds.size()) >= search.max_seeds) continue;
    const SeedSpread near = SeedSpreadAt(runs, d);
    const auto broken = breaks_rise.find(d);
    if (broken == breaks_rise.end() && !SideUndecided(at->scores, near, threshold)) continue;
    SearchStep step;
    step.d = d == 0 ? SubspaceDim::Linear() : SubspaceDim::Subspace(d);
    step.seed = NextUnusedSeed(seeds, at->seeds);
    std::string why;
    if (broken != breaks_rise.end()) {
      why = broken->second;
    } else if (!spread.known()) {
      why = "no d has 2 seeds yet, so the seeds' spread is unknown";
    } else {
      why = "the mean " + FormatNumber(Mean(at->scores)) + " of its " + std::to_string(at->scores.size()) +
            (at->scores.size() == 1 ? " seed" : " seeds") + " lies within t = " +
            FormatNumber(StudentT975(near.degrees_of_freedom)) + " x the seed spread near it " +
            FormatNumber(near.sd) + " / sqrt(seeds) of the threshold " + FormatNumber(threshold);
    }
    step.reason = "seed " + std::to_string(step.seed) + " at d = " + std::to_string(d) + ": " + why;
    plan.next.push_back(std::move(step));
  }
  if (!plan.next.empty()) {
    plan.note = "more seeds where the side of the threshold is undecided";
    return plan;
  }

  if (hit == curve.end()) {
    plan.settled = true;
    plan.note = "no d up to " + std::to_string(curve.back().first) + " reaches the threshold " +
                FormatNumber(threshold);
    return plan;
  }
  if (hit == curve.begin()) {
    plan.settled = true;
    plan.note = "the smallest d, " + std::to_string(hit->first) + ", reaches the threshold";
    return plan;
  }
  const int64_t lo = (hit - 1)->first;
  const int64_t hi = hit->first;

  const double low = static_cast<double>(std::max<int64_t>(lo, 1));
  const std::string bracket = "between d = " + std::to_string(lo) + " and " + std::to_string(hi);
  const int64_t middle = std::llround(std::sqrt(low * static_cast<double>(hi)));
  std::string narrow;  // why the bracket is not bisected further
  if (static_cast<double>(hi) <= (1.0 + search.rel_width) * low) {
    narrow = "within the relative width " + FormatNumber(search.rel_width);
  } else if (middle <= lo || middle >= hi) {
    narrow = "with no integer d between them";
  } else if (by_d.count(middle) != 0) {
    narrow = "whose bisection d = " + std::to_string(middle) + " has no succeeded seed";
  }
  if (narrow.empty()) {
    for (uint64_t seed : seeds) {
      if (static_cast<int64_t>(plan.next.size()) >= budget) break;
      plan.next.push_back({SubspaceDim::Subspace(middle), seed, "bisect log d " + bracket});
    }
    plan.note = "bisecting the bracket " + bracket;
    return plan;
  }
  plan.settled = true;
  plan.note = "the crossing lies " + bracket + ", " + narrow;
  return plan;
}


std::vector<SweepSearchStep> PlanSweepSearch(const SweepSpec& spec, const std::vector<JobOutcome>& jobs) {
  std::vector<SweepSearchStep> steps;
  if (spec.search.mode != SearchMode::kAdaptive) return steps;
  using Key = std::tuple<std::string, std::string, std::string, std::string>;
  std::map<Key, std::vector<SearchJob>> groups;
  for (const JobOutcome& job : jobs)
    groups[{job.model, job.layer, job.dataset, job.variant}].push_back({job.d, job.seed, job.state, job.test_score});
  for (const GroupThreshold& group : ComputeThresholds(spec.threshold, jobs)) {
    const Key key{group.model, group.layer, group.dataset, group.variant};
    GroupSearchPlan plan = PlanGroupSearch(spec.search, spec.seeds, group.threshold, groups[key]);
    for (SearchStep& step : plan.next)
      steps.push_back({group.model, group.layer, group.dataset, group.variant, std::move(step)});
  }
  return steps;
}

JobOutcome OutcomeOf(const JobRow& job) {
  JobOutcome outcome;
  outcome.model = job.model;
  outcome.layer = job.layer;
  outcome.dataset = job.dataset;
  outcome.variant = job.variant;
  outcome.d = job.d;
  outcome.seed = job.seed;
  switch (job.state) {
    case JobState::kSucceeded: outcome.state = OutcomeState::kSucceeded; break;
    case JobState::kFailed: outcome.state = OutcomeState::kFailed; break;
    case JobState::kCancelled: outcome.state = OutcomeState::kCancelled; break;
    default: outcome.state = OutcomeState::kUnfinished; break;
  }
  if (job.result) {
    outcome.test_score = job.result->test_score;
    outcome.noise_ceiling = job.result->noise_ceiling;
  }
  return outcome;
}

std::string InitialJobReason(const SweepSpec& spec) {
  return spec.search.mode == SearchMode::kAdaptive ? "coarse grid" : "grid";
}

JobRow QueuedJobRow(const PlannedJob& plan, const std::string& reason, int64_t created_ms) {
  JobRow row;
  row.model = plan.model;
  row.layer = plan.layer;
  row.dataset = plan.dataset;
  row.variant = plan.variant;
  row.d = plan.d;
  row.seed = plan.seed;
  row.spec_json = ToJson(plan.spec).dump();
  row.state = JobState::kQueued;
  row.created_ms = created_ms;
  row.reason = reason;
  return row;
}

StatusOr<std::vector<JobRow>> NextSearchJobs(const SweepSpec& spec, const std::string& sweep_id,
                                             const std::vector<const JobRow*>& jobs, int64_t now_ms) {
  std::vector<JobOutcome> outcomes;
  outcomes.reserve(jobs.size());
  for (const JobRow* job : jobs) outcomes.push_back(OutcomeOf(*job));
  std::vector<JobRow> rows;
  for (const SweepSearchStep& planned : PlanSweepSearch(spec, outcomes)) {
    StatusOr<PlannedJob> job =
        PlanSweepJob(spec, planned.model, planned.layer, planned.dataset, planned.step.d, planned.step.seed);
    if (!job.ok()) return job.status();
    job->variant = planned.variant;
    JobRow row = QueuedJobRow(*job, planned.step.reason, now_ms);
    row.sweep_id = sweep_id;
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace dwarp::coordinator
