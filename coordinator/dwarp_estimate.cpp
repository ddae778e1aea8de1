#include "coordinator/dwarp_estimate.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <sstream>
#include <tuple>
#include <utility>

#include "common/threshold_crossing.h"

namespace dwarp::coordinator {
namespace {

bool Finished(OutcomeState state) { return state != OutcomeState::kUnfinished; }

// Grid order: ascending d, full last.
bool DimLess(const SubspaceDim& a, const SubspaceDim& b) {
  if (a.is_full() != b.is_full()) return b.is_full();
  return a.value < b.value;
}

std::string FormatNumber(double x) {
  std::ostringstream os;
  os << x;
  return os.str();
}

// A d rounded to a whole number ("inf" for +infinity), as the tables show intervals.
std::string FormatWhole(double d) {
  if (std::isinf(d)) return "inf";
  return std::to_string(std::llround(d));
}

std::string JoinDims(const std::vector<int64_t>& dims) {
  std::string out;
  for (size_t i = 0; i < dims.size(); ++i) out += (i ? ", " : "") + std::to_string(dims[i]);
  return out;
}

void AddNote(std::string* note, const std::string& text) {
  if (!note->empty()) *note += "; ";
  *note += text;
}

using GroupKey = std::tuple<std::string, std::string, std::string, std::string>;  // model, layer, dataset, variant

GroupKey KeyOf(const JobOutcome& job) { return {job.model, job.layer, job.dataset, job.variant}; }

// Everything known about one group before the threshold is applied.
struct GroupState {
  GroupDWarp record;
  std::vector<size_t> jobs;            // indices into the outcomes
  std::vector<DimScore> runs;          // succeeded d >= 0 jobs with a finite score
  bool grid_finished = true;           // every d >= 0 job finished
  bool full_finished = true;           // every full job finished
  bool has_grid_point = false;         // a d >= 0 point with a succeeded seed
  bool has_success = false;            // a succeeded job at any d
  double ceiling_sum = 0.0;            // over the succeeded jobs (any d) that report a finite noise ceiling
  int64_t ceiling_count = 0;
  std::vector<int64_t> unfinished_dims;  // d >= 0 values with an unfinished job, ascending, unique
};

GroupState Summarise(const GroupKey& key, const std::vector<JobOutcome>& jobs, std::vector<size_t> indices) {
  GroupState g;
  std::tie(g.record.model, g.record.layer, g.record.dataset, g.record.variant) = key;
  g.jobs = std::move(indices);

  // Jobs of each grid d, in grid order.
  std::vector<std::pair<SubspaceDim, std::vector<size_t>>> by_d;
  for (size_t index : g.jobs) {
    const JobOutcome& job = jobs[index];
    auto it = std::find_if(by_d.begin(), by_d.end(), [&](const auto& entry) { return entry.first == job.d; });
    if (it == by_d.end()) {
      by_d.push_back({job.d, {}});
      it = by_d.end() - 1;
    }
    it->second.push_back(index);
  }
  std::sort(by_d.begin(), by_d.end(), [](const auto& a, const auto& b) { return DimLess(a.first, b.first); });

  std::vector<std::string> failed_dims;
  for (const auto& [d, members] : by_d) {
    CurvePointSummary point;
    point.d = d;
    point.seeds_total = static_cast<int32_t>(members.size());
    std::vector<double> scores;
    std::vector<uint64_t> seeds;  // scores[i]'s seed
    bool unfinished = false;
    for (size_t index : members) {
      const JobOutcome& job = jobs[index];
      if (!Finished(job.state)) unfinished = true;
      if (job.state != OutcomeState::kSucceeded) continue;
      g.has_success = true;
      // A property of the data, whatever the job scored.
      if (std::isfinite(job.noise_ceiling)) {
        g.ceiling_sum += job.noise_ceiling;
        ++g.ceiling_count;
      }
      if (!std::isfinite(job.test_score)) {
        AddNote(&g.record.note, "d = " + d.ToString() + ": a non-finite score (seed " + std::to_string(job.seed) +
                                    ") was left out");
        continue;
      }
      scores.push_back(job.test_score);
      seeds.push_back(job.seed);
    }
    point.seeds_done = static_cast<int32_t>(scores.size());
    if (!scores.empty()) {
      double sum = 0;
      for (double s : scores) sum += s;
      point.mean_score = sum / static_cast<double>(scores.size());
      if (scores.size() > 1) {
        double squares = 0;
        for (double s : scores) squares += (s - point.mean_score) * (s - point.mean_score);
        point.std_score = std::sqrt(squares / static_cast<double>(scores.size() - 1));
      }
    }
    if (d.is_full()) {
      if (unfinished) g.full_finished = false;
      if (!scores.empty()) {
        g.record.has_full = true;
        g.record.full_score = point.mean_score;
      }
    } else {
      if (unfinished) {
        g.grid_finished = false;
        g.unfinished_dims.push_back(d.value);
      }
      if (!scores.empty()) {
        for (size_t i = 0; i < scores.size(); ++i) g.runs.push_back({d.value, scores[i], seeds[i]});
        if (!g.has_grid_point || point.mean_score > g.record.best_score) {
          g.record.best_score = point.mean_score;
          g.record.best_d = d;
        }
        g.has_grid_point = true;
      } else if (!unfinished) {
        failed_dims.push_back(d.ToString());
      }
    }
    g.record.curve.push_back(point);
  }
  for (const std::string& d : failed_dims) AddNote(&g.record.note, "d = " + d + ": every seed failed");
  return g;
}

// The threshold of one group, and whether its reference can still change.
struct Reference {
  bool known = false;
  double threshold = std::numeric_limits<double>::quiet_NaN();
  bool is_final = false;
  bool never_known = false;  // unknown, and no unfinished job can make it known
  std::string waiting;  // why it is not final (or not known), for the note
};

// What the groups of one dataset know together.
struct DatasetState {
  bool known = false;         // best: some group has a d >= 0 point
  double best = 0.0;
  bool finished = true;       // every d >= 0 job of the dataset finished
  bool all_finished = true;   // every job of the dataset (full included) finished
  bool has_success = false;
  double ceiling_sum = 0.0;
  int64_t ceiling_count = 0;

  double noise_ceiling() const {
    return ceiling_count > 0 ? ceiling_sum / static_cast<double>(ceiling_count)
                             : std::numeric_limits<double>::quiet_NaN();
  }
};

Reference ReferenceOf(const ThresholdSpec& spec, const GroupState& g, const DatasetState& dataset) {
  Reference r;
  switch (spec.kind) {
    case ThresholdKind::kAbsolute:
      r.known = true;
      r.threshold = spec.value;
      r.is_final = true;
      break;
    // Each reference below is never known once every job that could set it finished without a score.
    case ThresholdKind::kFractionOfGroupBest:
      r.known = g.has_grid_point;
      if (r.known) r.threshold = spec.value * g.record.best_score;
      r.is_final = g.grid_finished;
      r.never_known = !r.known && g.grid_finished;
      r.waiting = r.known         ? "the group's best score may still rise"
                  : r.never_known ? "no job of the group succeeded"
                                  : "no result of the group yet";
      break;
    case ThresholdKind::kFractionOfDatasetBest:
      r.known = dataset.known;
      if (r.known) r.threshold = spec.value * dataset.best;
      r.is_final = dataset.finished;
      r.never_known = !r.known && dataset.finished;
      r.waiting = r.known         ? "the best score on dataset " + g.record.dataset + " may still rise"
                  : r.never_known ? "no job on dataset " + g.record.dataset + " succeeded"
                                  : "no result on dataset " + g.record.dataset + " yet";
      break;
    case ThresholdKind::kFractionOfFull:
      r.known = g.record.has_full;
      if (r.known) r.threshold = spec.value * g.record.full_score;
      r.is_final = g.full_finished;
      r.never_known = !r.known && g.full_finished;
      r.waiting = r.known         ? "d = full seeds are still running"
                  : r.never_known ? "every d = full seed failed"
                                  : "no d = full seed has succeeded yet";
      break;
    case ThresholdKind::kFractionOfNoiseCeiling:
      // The data's property: final once any job reported it.
      r.known = dataset.ceiling_count > 0;
      if (r.known) r.threshold = spec.value * dataset.noise_ceiling();
      r.is_final = r.known;
      r.never_known = !r.known && dataset.all_finished;
      if (dataset.has_success) {
        r.waiting = "dataset " + g.record.dataset + " reports no noise ceiling, which fraction_of_noise_ceiling needs";
      } else {
        r.waiting = dataset.all_finished ? "no job on dataset " + g.record.dataset + " succeeded"
                                         : "no result on dataset " + g.record.dataset + " yet";
      }
      break;
  }
  return r;
}

void Judge(const ThresholdSpec& spec, GroupState& g, const DatasetState& dataset) {
  GroupDWarp& out = g.record;
  const Reference reference = ReferenceOf(spec, g, dataset);
  out.threshold = reference.threshold;
  if (!reference.known) {
    out.status = reference.never_known ? DWarpStatus::kNotReached : DWarpStatus::kPending;
    AddNote(&out.note, "threshold unknown: " + reference.waiting);
    return;
  }
  ThresholdCrossing crossing;
  if (!g.runs.empty()) {
    StatusOr<ThresholdCrossing> found = FindThresholdCrossing(g.runs, reference.threshold);
    // The runs are d >= 0 with finite scores and the threshold finite, so this cannot fail; if it does, the
    // group stays pending with the reason rather than reporting a wrong d_warp.
    if (!found.ok()) {
      out.status = DWarpStatus::kPending;
      AddNote(&out.note, found.status().message());
      return;
    }
    crossing = *found;
  }
  if (crossing.reached) {
    out.d_warp = crossing.d;
    out.grid_d = crossing.grid_d;
    out.below_d = crossing.below_d;
    bool settled = true;
    if (StatusOr<CrossingInterval> interval = FindCrossingInterval(g.runs, reference.threshold);
        interval.ok() && interval->reached) {
      out.d_warp_low = interval->low;
      out.d_warp_high = interval->high;
      out.interval_bootstrap = interval->bootstrap;
      settled = interval->settled;
    }
    std::vector<int64_t> below;
    for (int64_t d : g.unfinished_dims) {
      if (d <= crossing.grid_d) below.push_back(d);
    }
    if (reference.is_final && below.empty() && settled) {
      out.status = DWarpStatus::kReached;
      return;
    }
    out.status = DWarpStatus::kProvisional;
    if (!settled) {
      // A crossing at the first grid point has no grid point below it: what is open is whether that d reaches.
      const std::string open =
          crossing.below_d < 0
              ? "whether the smallest d run, d = " + std::to_string(crossing.grid_d) + ", reaches the threshold"
              : "whether the crossing lies between d = " + std::to_string(crossing.below_d) + " and " +
                    std::to_string(crossing.grid_d);
      AddNote(&out.note, "the seeds leave open " + open + " (interval " + FormatWhole(out.d_warp_low) + ".." +
                             FormatWhole(out.d_warp_high) + ")");
    }
    if (!below.empty()) AddNote(&out.note, "waiting for d = " + JoinDims(below) + " at or below the crossing");
    if (!reference.is_final) AddNote(&out.note, reference.waiting);
    return;
  }
  if (reference.is_final && g.grid_finished) {
    out.status = DWarpStatus::kNotReached;
    AddNote(&out.note, "no d reaches the threshold " + FormatNumber(reference.threshold));
    return;
  }
  out.status = DWarpStatus::kPending;
  AddNote(&out.note, "no d reaches the threshold " + FormatNumber(reference.threshold) + " yet");
}

// Groups in record order: (dataset, model, layer, variant), each by its first appearance in `jobs`. With
// `judge` false each record gets its threshold only (no crossing, interval, status or note).
std::vector<GroupState> ComputeGroups(const ThresholdSpec& threshold, const std::vector<JobOutcome>& jobs,
                                      bool judge) {
  std::map<std::string, size_t> dataset_rank, model_rank, layer_rank, variant_rank;
  std::map<GroupKey, std::vector<size_t>> members;
  for (size_t i = 0; i < jobs.size(); ++i) {
    const JobOutcome& job = jobs[i];
    dataset_rank.emplace(job.dataset, dataset_rank.size());
    model_rank.emplace(job.model, model_rank.size());
    layer_rank.emplace(job.layer, layer_rank.size());
    variant_rank.emplace(job.variant, variant_rank.size());
    members[KeyOf(job)].push_back(i);
  }
  using Rank = std::tuple<size_t, size_t, size_t, size_t>;
  std::vector<std::pair<Rank, GroupKey>> order;
  for (const auto& [key, unused] : members) {
    const auto& [model, layer, dataset, variant] = key;
    order.push_back({{dataset_rank.at(dataset), model_rank.at(model), layer_rank.at(layer), variant_rank.at(variant)},
                     key});
  }
  std::sort(order.begin(), order.end());

  std::vector<GroupState> groups;
  for (const auto& [rank, key] : order) groups.push_back(Summarise(key, jobs, std::move(members[key])));

  std::map<std::string, DatasetState> datasets;
  for (const GroupState& g : groups) {
    DatasetState& dataset = datasets[g.record.dataset];
    if (!g.grid_finished) dataset.finished = false;
    if (!g.grid_finished || !g.full_finished) dataset.all_finished = false;
    if (g.has_grid_point && (!dataset.known || g.record.best_score > dataset.best)) {
      dataset.best = g.record.best_score;
      dataset.known = true;
    }
    dataset.has_success = dataset.has_success || g.has_success;
    dataset.ceiling_sum += g.ceiling_sum;
    dataset.ceiling_count += g.ceiling_count;
  }
  for (GroupState& g : groups) {
    const DatasetState& dataset = datasets.at(g.record.dataset);
    g.record.noise_ceiling = dataset.noise_ceiling();
    if (judge) {
      Judge(threshold, g, dataset);
    } else {
      g.record.threshold = ReferenceOf(threshold, g, dataset).threshold;
    }
  }
  return groups;
}

}  // namespace

const char* DWarpStatusName(DWarpStatus status) {
  switch (status) {
    case DWarpStatus::kPending: return "pending";
    case DWarpStatus::kProvisional: return "provisional";
    case DWarpStatus::kReached: return "reached";
    case DWarpStatus::kNotReached: return "not_reached";
  }
  return "unknown";
}

std::vector<GroupDWarp> ComputeDWarp(const ThresholdSpec& threshold, const std::vector<JobOutcome>& jobs) {
  std::vector<GroupDWarp> records;
  for (GroupState& g : ComputeGroups(threshold, jobs, /*judge=*/true)) records.push_back(std::move(g.record));
  return records;
}

std::vector<GroupThreshold> ComputeThresholds(const ThresholdSpec& threshold, const std::vector<JobOutcome>& jobs) {
  std::vector<GroupThreshold> thresholds;
  for (GroupState& g : ComputeGroups(threshold, jobs, /*judge=*/false)) {
    GroupDWarp& r = g.record;
    thresholds.push_back({std::move(r.model), std::move(r.layer), std::move(r.dataset), std::move(r.variant),
                          r.threshold});
  }
  return thresholds;
}

std::vector<size_t> JobsMadeUnnecessary(const ThresholdSpec& threshold, const std::vector<JobOutcome>& jobs) {
  return JobsMadeUnnecessary(threshold, jobs, ComputeDWarp(threshold, jobs));
}

std::vector<size_t> JobsMadeUnnecessary(const ThresholdSpec& threshold, const std::vector<JobOutcome>& jobs,
                                        const std::vector<GroupDWarp>& records) {
  // With a reference that depends on the grid's best scores, a larger d could raise the threshold and move
  // the crossing: nothing is unnecessary. A noise ceiling is final once known (which a reached status implies).
  const bool fixed_reference = threshold.kind == ThresholdKind::kAbsolute ||
                               threshold.kind == ThresholdKind::kFractionOfFull ||
                               threshold.kind == ThresholdKind::kFractionOfNoiseCeiling;
  if (!fixed_reference) return {};
  // The crossing's grid d of every reached group.
  std::map<GroupKey, int64_t> reached;
  for (const GroupDWarp& record : records)
    if (record.status == DWarpStatus::kReached)
      reached[{record.model, record.layer, record.dataset, record.variant}] = record.grid_d;
  std::vector<size_t> unnecessary;
  for (size_t index = 0; index < jobs.size(); ++index) {
    const JobOutcome& job = jobs[index];
    if (Finished(job.state)) continue;
    const auto group = reached.find(KeyOf(job));
    if (group == reached.end()) continue;
    // Full jobs are the reference of fraction_of_full (and all finished once it is reached); under the
    // other kinds they change nothing and lie above every grid d.
    const bool above = job.d.is_full() ? threshold.kind != ThresholdKind::kFractionOfFull : job.d.value > group->second;
    if (above) unnecessary.push_back(index);
  }
  return unnecessary;
}

}  // namespace dwarp::coordinator
