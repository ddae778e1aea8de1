#include "common/threshold_crossing.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>
#include <string>

namespace dwarp {

StatusOr<std::vector<DimScore>> MeanScoreCurve(const std::vector<DimScore>& runs) {
  if (runs.empty()) return InvalidArgumentError("no runs: a threshold crossing needs at least one (d, score) point");
  // d -> (sum of scores, count); std::map keeps d sorted.
  std::map<int64_t, std::pair<double, int64_t>> by_d;
  for (size_t i = 0; i < runs.size(); ++i) {
    const DimScore& run = runs[i];
    if (run.d < 0) {
      return InvalidArgumentError("run " + std::to_string(i) + " has d = " + std::to_string(run.d) +
                                  "; expected d >= 0 (0 = linear readout)");
    }
    if (!std::isfinite(run.score)) {
      std::ostringstream os;
      os << "run " << i << " (d = " << run.d << ") has score " << run.score << "; expected a finite number";
      return InvalidArgumentError(os.str());
    }
    auto& [sum, count] = by_d[run.d];
    sum += run.score;
    ++count;
  }
  std::vector<DimScore> curve;
  curve.reserve(by_d.size());
  for (const auto& [d, sum_count] : by_d) {
    curve.push_back({d, sum_count.first / static_cast<double>(sum_count.second)});
  }
  return curve;
}

StatusOr<ThresholdCrossing> FindThresholdCrossing(const std::vector<DimScore>& runs, double threshold) {
  if (!std::isfinite(threshold)) {
    std::ostringstream os;
    os << "threshold is " << threshold << "; expected a finite number";
    return InvalidArgumentError(os.str());
  }
  auto curve_or = MeanScoreCurve(runs);
  if (!curve_or.ok()) return curve_or.status();
  const std::vector<DimScore>& curve = *curve_or;

  ThresholdCrossing result;
  result.threshold = threshold;
  const auto best = std::max_element(curve.begin(), curve.end(),
                                     [](const DimScore& a, const DimScore& b) { return a.score < b.score; });
  result.best_d = best->d;
  result.best_score = best->score;

  const auto hit = std::find_if(curve.begin(), curve.end(), [&](const DimScore& p) { return p.score >= threshold; });
  if (hit == curve.end()) return result;

  result.reached = true;
  result.grid_d = hit->d;
  result.grid_score = hit->score;
  result.d = static_cast<double>(hit->d);
  if (hit == curve.begin()) return result;

  const DimScore& below = *(hit - 1);
  result.below_d = below.d;
  result.below_score = below.score;
  // below.score < threshold <= hit->score, so the fraction lies in (0, 1] and the denominator is positive.
  if (below.d == 0 || hit->score == threshold) return result;
  const double fraction = (threshold - below.score) / (hit->score - below.score);
  const double log_below = std::log(static_cast<double>(below.d));
  const double log_hit = std::log(static_cast<double>(hit->d));
  result.d = std::exp(log_below + fraction * (log_hit - log_below));
  result.interpolated = true;
  return result;
}

}  // namespace dwarp
