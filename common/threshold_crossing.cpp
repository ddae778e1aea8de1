#include "common/threshold_crossing.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>
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

namespace {

// The crossing refined in log d between the point below (below.d < 0: none) and the first point at or above
// the threshold; sets *interpolated when it interpolated.
double RefinedCrossing(const DimScore& below, const DimScore& hit, double threshold, bool* interpolated) {
  *interpolated = false;
  // below.score < threshold <= hit.score, so the fraction lies in (0, 1] and the denominator is positive.
  if (below.d <= 0 || hit.score == threshold) return static_cast<double>(hit.d);
  const double fraction = (threshold - below.score) / (hit.score - below.score);
  const double log_below = std::log(static_cast<double>(below.d));
  const double log_hit = std::log(static_cast<double>(hit.d));
  *interpolated = true;
  return std::exp(log_below + fraction * (log_hit - log_below));
}

}  // namespace

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
  result.d = RefinedCrossing(below, *hit, threshold, &result.interpolated);
  return result;
}

namespace {

// The index of a draw in [0, n): the generator's word modulo n (the bias, n / 2^64, is far below what
// 2000 replicates can show; unlike std::uniform_int_distribution it is the same with every standard library).
size_t Draw(std::mt19937_64& rng, size_t n) { return static_cast<size_t>(rng() % n); }

// The p-th quantile (0 <= p <= 1) of sorted values, the nearest rank below.
double Quantile(const std::vector<double>& sorted, double p) {
  const size_t index = static_cast<size_t>(std::floor(p * static_cast<double>(sorted.size() - 1)));
  return sorted[index];
}

}  // namespace

StatusOr<CrossingInterval> FindCrossingInterval(const std::vector<DimScore>& runs, double threshold) {
  StatusOr<ThresholdCrossing> crossing = FindThresholdCrossing(runs, threshold);
  if (!crossing.ok()) return crossing.status();
  CrossingInterval interval;
  if (!crossing->reached) return interval;
  interval.reached = true;
  const double bracket_low = static_cast<double>(std::max<int64_t>(crossing->below_d, 0));
  const double bracket_high = static_cast<double>(crossing->grid_d);

  std::map<int64_t, std::vector<double>> by_d;
  for (const DimScore& run : runs) by_d[run.d].push_back(run.score);
  const bool spread_known = by_d.at(crossing->grid_d).size() >= 2 &&
                            (crossing->below_d < 0 || by_d.at(crossing->below_d).size() >= 2);
  if (!spread_known) {
    interval.low = bracket_low;
    interval.high = bracket_high;
    return interval;
  }
  // Each replicate walks up the curve drawing each d's mean only until the first crossing: the points above
  // it cannot change the replicate's result.
  std::mt19937_64 rng(kBootstrapRngSeed);
  std::vector<double> crossings;
  crossings.reserve(kBootstrapReplicates);
  for (int replicate = 0; replicate < kBootstrapReplicates; ++replicate) {
    double crossing = std::numeric_limits<double>::infinity();
    DimScore below{-1, 0.0};
    for (const auto& [d, scores] : by_d) {
      double sum = 0.0;
      for (size_t i = 0; i < scores.size(); ++i) sum += scores[Draw(rng, scores.size())];
      const DimScore point{d, sum / static_cast<double>(scores.size())};
      if (point.score >= threshold) {
        bool interpolated = false;
        crossing = RefinedCrossing(below, point, threshold, &interpolated);
        break;
      }
      below = point;
    }
    crossings.push_back(crossing);
  }
  std::sort(crossings.begin(), crossings.end());
  interval.bootstrap = true;
  interval.low = Quantile(crossings, 0.025);
  interval.high = Quantile(crossings, 0.975);
  // A relative slack absorbs the rounding of exp(log(d)) at a bracket's end.
  constexpr double kSlack = 1e-9;
  interval.settled = interval.low >= bracket_low * (1 - kSlack) && interval.high <= bracket_high * (1 + kSlack);
  return interval;
}

bool ScoresStraddle(const std::vector<double>& scores, double threshold) {
  if (scores.size() < 2) return true;
  std::mt19937_64 rng(kBootstrapRngSeed);
  int reaching = 0;
  for (int replicate = 0; replicate < kBootstrapReplicates; ++replicate) {
    double sum = 0.0;
    for (size_t i = 0; i < scores.size(); ++i) sum += scores[Draw(rng, scores.size())];
    if (sum / static_cast<double>(scores.size()) >= threshold) ++reaching;
  }
  const double fraction = static_cast<double>(reaching) / kBootstrapReplicates;
  return fraction > 0.025 && fraction < 0.975;
}

}  // namespace dwarp
