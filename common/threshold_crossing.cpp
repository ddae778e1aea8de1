#include "common/threshold_crossing.h"

#include <algorithm>
#include <cmath>
#include <limits>
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

namespace {

// A point of the mean curve with its log d (-infinity for d = 0), so that the bootstrap's many refinements
// need no logarithm.
struct LogPoint {
  int64_t d = -1;  // -1: no point
  double log_d = 0.0;
  double score = 0.0;
};

LogPoint LogPointOf(int64_t d, double score) {
  return {d, d > 0 ? std::log(static_cast<double>(d)) : -std::numeric_limits<double>::infinity(), score};
}

// The log of the crossing refined between the point below (below.d < 0: none) and the first point at or above
// the threshold; sets *interpolated when it interpolated.
double RefinedLogCrossing(const LogPoint& below, const LogPoint& hit, double threshold, bool* interpolated) {
  *interpolated = false;
  // below.score < threshold <= hit.score, so the fraction lies in (0, 1] and the denominator is positive.
  if (below.d <= 0 || hit.score == threshold) return hit.log_d;
  const double fraction = (threshold - below.score) / (hit.score - below.score);
  *interpolated = true;
  return below.log_d + fraction * (hit.log_d - below.log_d);
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
  const double log_d = RefinedLogCrossing(LogPointOf(below.d, below.score), LogPointOf(hit->d, hit->score), threshold,
                                          &result.interpolated);
  // Exactly the grid d when nothing was interpolated (exp(log d) may round).
  result.d = result.interpolated ? std::exp(log_d) : static_cast<double>(hit->d);
  return result;
}

namespace {

// The bootstrap's generator: SplitMix64 (Steele, Lea and Flood 2014), a 64-bit counter passed through a
// fixed mixing function. Chosen over std::mt19937_64 for speed (d_warp is recomputed for every group of a
// sweep as results land, thousands of draws per group) and for being the same on every platform.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // An index in [0, n), n < 2^32: the high 32 bits scaled to n (multiply and shift; the bias, n / 2^32, is
  // far below what the replicates can show).
  size_t Draw(size_t n) { return static_cast<size_t>(((Next() >> 32) * static_cast<uint64_t>(n)) >> 32); }
  // A uniform in (0, 1): the top 53 bits, offset by half a step so that it is never 0.
  double Uniform() { return (static_cast<double>(Next() >> 11) + 0.5) * 0x1.0p-53; }
  // A standard normal (Box-Muller, one of the pair).
  double Normal() {
    constexpr double kTwoPi = 6.283185307179586;
    return std::sqrt(-2.0 * std::log(Uniform())) * std::cos(kTwoPi * Uniform());
  }
  // Student's t on `degrees_of_freedom` (>= 1): Z / sqrt(chi-square / degrees_of_freedom), the chi-square
  // a sum of squared normals; beyond 200 degrees of freedom t is within 1% of the normal, which is drawn.
  double StudentT(int64_t degrees_of_freedom) {
    const double z = Normal();
    if (degrees_of_freedom > 200) return z;
    return z / std::sqrt(ChiSquare(degrees_of_freedom) / static_cast<double>(degrees_of_freedom));
  }
  // sqrt(degrees_of_freedom / chi-square): how much larger the true spread may be than one estimated on
  // that many degrees of freedom (1 beyond 200, or for none).
  double ScaleOfEstimatedSpread(int64_t degrees_of_freedom) {
    if (degrees_of_freedom > 200 || degrees_of_freedom < 1) return 1.0;
    return 1.0 / std::sqrt(ChiSquare(degrees_of_freedom) / static_cast<double>(degrees_of_freedom));
  }
  // A chi-square variate: the sum of `degrees_of_freedom` squared normals.
  double ChiSquare(int64_t degrees_of_freedom) {
    double chi_square = 0.0;
    for (int64_t i = 0; i < degrees_of_freedom; ++i) {
      const double x = Normal();
      chi_square += x * x;
    }
    return chi_square;
  }

 private:
  uint64_t state_;
};

// The p-th quantile (0 <= p <= 1) of the values, the nearest rank below (reorders them).
double Quantile(std::vector<double>& values, double p) {
  const size_t index = static_cast<size_t>(std::floor(p * static_cast<double>(values.size() - 1)));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(index), values.end());
  return values[index];
}

}  // namespace

SeedSpread PooledSeedSpread(const std::vector<DimScore>& runs) {
  std::map<int64_t, std::vector<double>> by_d;
  for (const DimScore& run : runs)
    if (std::isfinite(run.score)) by_d[run.d].push_back(run.score);
  SeedSpread spread;
  double squares = 0.0;
  for (const auto& [d, scores] : by_d) {
    const size_t n = scores.size();
    if (n < 2) continue;
    double mean = 0.0;
    for (double score : scores) mean += score;
    mean /= static_cast<double>(n);
    for (double score : scores) squares += (score - mean) * (score - mean);
    spread.degrees_of_freedom += static_cast<int64_t>(n - 1);
  }
  spread.sd = spread.known() ? std::sqrt(squares / static_cast<double>(spread.degrees_of_freedom))
                             : std::numeric_limits<double>::quiet_NaN();
  return spread;
}

SeedSpread SeedSpreadAt(const std::vector<DimScore>& runs, int64_t d, double floor) {
  std::map<int64_t, std::vector<double>> by_d;
  for (const DimScore& run : runs)
    if (std::isfinite(run.score)) by_d[run.d].push_back(run.score);
  // The d values with >= 2 seeds, ascending, and where `d` falls among them.
  std::vector<const std::vector<double>*> seeded;
  size_t below_end = 0;  // seeded[0 .. below_end) lie below d
  const std::vector<double>* own = nullptr;
  for (const auto& [at, scores] : by_d) {
    if (scores.size() < 2) continue;
    if (at == d) {
      own = &scores;
      continue;
    }
    seeded.push_back(&scores);
    if (at < d) below_end = seeded.size();
  }
  // d itself, the nearest below and the nearest above; then, while they give fewer than 2 degrees of
  // freedom (a t on one is a Cauchy variate), the next ones outwards.
  std::vector<DimScore> near;
  int64_t degrees_of_freedom = 0;
  auto add = [&near, &degrees_of_freedom](const std::vector<double>& scores) {
    // Each d under its own key, so that PooledSeedSpread keeps them apart.
    const int64_t key = near.empty() ? 0 : near.back().d + 1;
    for (double score : scores) near.push_back({key, score});
    degrees_of_freedom += static_cast<int64_t>(scores.size()) - 1;
  };
  if (own != nullptr) add(*own);
  size_t below = below_end, above = below_end;  // next below: seeded[below - 1]; next above: seeded[above]
  bool first = true;
  while (below > 0 || above < seeded.size()) {
    if (!first && degrees_of_freedom >= 2) break;
    first = false;
    if (below > 0) add(*seeded[--below]);
    if (above < seeded.size()) add(*seeded[above++]);
  }
  SeedSpread spread = PooledSeedSpread(near);
  if (!spread.known()) return spread;
  spread.sd = std::max(spread.sd, floor * PooledSeedSpread(runs).sd);
  return spread;
}

SeedCorrelation SeedCorrelationOf(const std::vector<DimScore>& runs) {
  // d -> seed -> score; runs without a seed take no part.
  std::map<int64_t, std::map<uint64_t, double>> by_d;
  for (const DimScore& run : runs)
    if (run.seed.has_value() && std::isfinite(run.score)) by_d[run.d].emplace(*run.seed, run.score);
  SeedCorrelation correlation;
  double cross = 0.0, squares_a = 0.0, squares_b = 0.0;
  for (auto a = by_d.begin(); a != by_d.end(); ++a) {
    for (auto b = std::next(a); b != by_d.end(); ++b) {
      std::vector<std::pair<double, double>> shared;
      for (const auto& [seed, score] : a->second) {
        const auto other = b->second.find(seed);
        if (other != b->second.end()) shared.push_back({score, other->second});
      }
      if (shared.size() < 2) continue;
      double mean_a = 0.0, mean_b = 0.0;
      for (const auto& [x, y] : shared) {
        mean_a += x;
        mean_b += y;
      }
      mean_a /= static_cast<double>(shared.size());
      mean_b /= static_cast<double>(shared.size());
      for (const auto& [x, y] : shared) {
        cross += (x - mean_a) * (y - mean_b);
        squares_a += (x - mean_a) * (x - mean_a);
        squares_b += (y - mean_b) * (y - mean_b);
      }
      ++correlation.pairs;
    }
  }
  if (correlation.pairs == 0 || squares_a <= 0.0 || squares_b <= 0.0) return SeedCorrelation{};
  correlation.rho = std::clamp(cross / std::sqrt(squares_a * squares_b), 0.0, 1.0);
  return correlation;
}

StatusOr<CrossingInterval> FindCrossingInterval(const std::vector<DimScore>& runs, double threshold,
                                                const IntervalOptions& options) {
  StatusOr<ThresholdCrossing> crossing = FindThresholdCrossing(runs, threshold);
  if (!crossing.ok()) return crossing.status();
  CrossingInterval interval;
  if (!crossing->reached) return interval;
  interval.reached = true;
  const double bracket_low = static_cast<double>(std::max<int64_t>(crossing->below_d, 0));
  const double bracket_high = static_cast<double>(crossing->grid_d);

  // Each d's scores and, for kSeedEffects, their seeds as indices 0, 1, ... (a run without a seed is a
  // seed of its own).
  std::map<int64_t, std::vector<double>> by_d;
  std::map<int64_t, std::vector<size_t>> seeds_by_d;
  std::map<uint64_t, size_t> seed_index;
  size_t seed_count = 0;
  for (const DimScore& run : runs) {
    by_d[run.d].push_back(run.score);
    size_t index = seed_count;
    if (run.seed.has_value()) index = seed_index.emplace(*run.seed, seed_count).first->second;
    if (index == seed_count) ++seed_count;
    seeds_by_d[run.d].push_back(index);
  }
  const bool spread_known = PooledSeedSpread(runs).known();
  const bool ends_have_seeds = by_d.at(crossing->grid_d).size() >= 2 &&
                               (crossing->below_d < 0 || by_d.at(crossing->below_d).size() >= 2);
  if (!spread_known && !ends_have_seeds) {
    interval.low = bracket_low;
    interval.high = bracket_high;
    return interval;
  }
  // Each replicate walks up the curve until its first crossing. A point with its own seeds, all of them
  // below the threshold, is below it in every replicate: its mean is drawn only when it is the point just
  // below the crossing (the refinement needs it), which keeps the cost per group to the few points near the
  // crossing. A one-seed point drawn with the spread near it is drawn every time (T is unbounded).
  const bool seed_effects = options.draw == IntervalDraw::kSeedEffects;
  struct Point {
    LogPoint at;  // score unset: each replicate draws its own
    const std::vector<double>* scores;
    const std::vector<size_t>* seeds;  // scores[i]'s seed index
    double mean;
    SeedSpread spread;  // known: drawn from it (with the seeds' effects or not); unknown: resample the seeds
    bool surely_below;
  };
  std::vector<Point> points;
  for (const auto& [d, scores] : by_d) {
    const bool from_spread = spread_known && (scores.size() == 1 || options.draw != IntervalDraw::kOwnSeeds);
    const SeedSpread spread = from_spread ? SeedSpreadAt(runs, d, options.spread_floor) : SeedSpread{};
    double mean = 0.0;
    for (double score : scores) mean += score;
    mean /= static_cast<double>(scores.size());
    points.push_back({LogPointOf(d, 0.0), &scores, &seeds_by_d.at(d), mean, spread,
                      !spread.known() && *std::max_element(scores.begin(), scores.end()) < threshold});
  }
  SplitMix64 rng(kBootstrapRngSeed);

  // kSeedEffects: the seeds' correlation, and one scale per replicate from the spread near the crossing.
  double rho = options.seed_correlation;
  int64_t scale_dof = 0;
  if (seed_effects) {
    if (!std::isfinite(rho)) {
      const SeedCorrelation correlation = SeedCorrelationOf(runs);
      rho = correlation.known() ? correlation.rho : 1.0;
    }
    rho = std::clamp(rho, 0.0, 1.0);
    scale_dof = SeedSpreadAt(runs, crossing->grid_d, options.spread_floor).degrees_of_freedom;
  }
  const double shared_weight = std::sqrt(rho), own_weight = std::sqrt(1.0 - rho);
  std::vector<double> seed_draws(seed_count);
  double scale = 1.0;

  auto draw_mean = [&](const Point& point) {
    const std::vector<double>& scores = *point.scores;
    if (seed_effects) {
      double shared = 0.0;
      for (size_t seed : *point.seeds) shared += seed_draws[seed];
      const double k = static_cast<double>(point.seeds->size());
      return point.mean +
             scale * point.spread.sd * (shared_weight * shared / k + own_weight * rng.Normal() / std::sqrt(k));
    }
    if (point.spread.known()) {
      return point.mean + point.spread.sd * rng.StudentT(point.spread.degrees_of_freedom) /
                              std::sqrt(static_cast<double>(scores.size()));
    }
    double sum = 0.0;
    for (size_t i = 0; i < scores.size(); ++i) sum += scores[rng.Draw(scores.size())];
    return sum / static_cast<double>(scores.size());
  };
  // Log d of each replicate's crossing (+infinity: none); exp is monotone, so the quantiles are taken in
  // log d and exponentiated once.
  std::vector<double> log_crossings;
  log_crossings.reserve(kBootstrapReplicates);
  for (int replicate = 0; replicate < kBootstrapReplicates; ++replicate) {
    if (seed_effects) {
      for (double& draw : seed_draws) draw = rng.Normal();
      scale = rng.ScaleOfEstimatedSpread(scale_dof);
    }
    double log_crossing = std::numeric_limits<double>::infinity();
    const Point* below = nullptr;
    double below_mean = 0.0;
    bool below_drawn = false;
    for (const Point& point : points) {
      if (point.surely_below) {
        below = &point;
        below_drawn = false;
        continue;
      }
      const double mean = draw_mean(point);
      if (mean < threshold) {
        below = &point;
        below_mean = mean;
        below_drawn = true;
        continue;
      }
      if (below != nullptr && !below_drawn) below_mean = draw_mean(*below);
      LogPoint below_point;
      if (below != nullptr) {
        below_point = below->at;
        below_point.score = below_mean;
      }
      LogPoint hit = point.at;
      hit.score = mean;
      bool interpolated = false;
      log_crossing = RefinedLogCrossing(below_point, hit, threshold, &interpolated);
      break;
    }
    log_crossings.push_back(log_crossing);
  }
  interval.bootstrap = true;
  interval.low = std::exp(Quantile(log_crossings, 0.025));
  interval.high = std::exp(Quantile(log_crossings, 0.975));
  // A relative slack absorbs the rounding of exp(log(d)) at a bracket's end.
  constexpr double kSlack = 1e-9;
  interval.settled = interval.low >= bracket_low * (1 - kSlack) && interval.high <= bracket_high * (1 + kSlack);
  return interval;
}

double StudentT975(int64_t degrees_of_freedom) {
  static constexpr double kTable[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                      2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                                      2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  constexpr int64_t kTableSize = static_cast<int64_t>(sizeof(kTable) / sizeof(kTable[0]));
  if (degrees_of_freedom < 1) return std::numeric_limits<double>::infinity();
  if (degrees_of_freedom <= kTableSize) return kTable[degrees_of_freedom - 1];
  constexpr double z = 1.959964;
  const double v = static_cast<double>(degrees_of_freedom);
  const double z3 = z * z * z, z5 = z3 * z * z;
  return z + (z3 + z) / (4 * v) + (5 * z5 + 16 * z3 + 3 * z) / (96 * v * v);
}

bool SideUndecided(const std::vector<double>& scores, const SeedSpread& spread, double threshold) {
  if (scores.empty() || !spread.known()) return true;
  double mean = 0.0;
  for (double score : scores) mean += score;
  mean /= static_cast<double>(scores.size());
  return std::abs(mean - threshold) <
         StudentT975(spread.degrees_of_freedom) * spread.sd / std::sqrt(static_cast<double>(scores.size()));
}

}  // namespace dwarp
