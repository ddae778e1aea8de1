// How often d_warp's interval holds the true d_warp: a study program, run by hand (README "Adaptive search
// and d_warp's interval"), never by ctest.
//
//   interval_coverage --threshold T [--pairs] TRUTH.csv REPLICATE.csv...
//
// Each CSV holds one run's jobs, one line each: group,d,seed,score (d >= 0; a header line and lines whose d
// is not a number are skipped). TRUTH is a sweep with many seeds per d; its crossing (the mean curve's,
// FindThresholdCrossing) stands for each group's true d_warp. Each REPLICATE is a sweep with other seeds
// (a grid, or an adaptive search). For every way of drawing the bootstrap's means (IntervalOptions), the
// program prints each replicate's interval per group and whether it holds the truth, then how many of the
// replicates' intervals do (a 95% interval should hold it about 19 times in 20), their median width, and
// how many of the two-way checks hold (the replicate's d_warp in the truth's interval, and the truth's in
// the replicate's). With --pairs the replicates come in pairs run on the same seeds (an adaptive search,
// then the grid) and the program also prints, per pair and group, whether each one's d_warp lies in the
// other's interval.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "common/threshold_crossing.h"

namespace {

using Runs = std::map<std::string, std::vector<dwarp::DimScore>>;  // group -> its runs

bool ReadRuns(const std::string& path, Runs* runs) {
  std::ifstream in(path);
  if (!in) {
    std::cerr << "interval_coverage: cannot read " << path << "\n";
    return false;
  }
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> fields;
    std::stringstream ss(line);
    for (std::string field; std::getline(ss, field, ',');) fields.push_back(field);
    if (fields.size() != 4) continue;
    char* end = nullptr;
    const long long d = std::strtoll(fields[1].c_str(), &end, 10);
    if (end == fields[1].c_str() || *end != '\0' || d < 0) continue;
    (*runs)[fields[0]].push_back({d, std::stod(fields[3]), std::stoull(fields[2])});
  }
  return true;
}

struct Method {
  std::string name;
  dwarp::IntervalOptions options;
};

std::string Interval(const dwarp::CrossingInterval& interval) {
  char text[64];
  std::snprintf(text, sizeof text, "[%.0f, %.0f]", interval.low, interval.high);
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  double threshold = NAN;
  bool pairs = false;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--threshold" && i + 1 < argc) {
      threshold = std::stod(argv[++i]);
    } else if (arg == "--pairs") {
      pairs = true;
    } else {
      files.push_back(arg);
    }
  }
  if (!std::isfinite(threshold) || files.size() < 2) {
    std::cerr << "usage: interval_coverage --threshold T TRUTH.csv REPLICATE.csv...\n";
    return 2;
  }
  std::vector<Runs> sets(files.size());
  for (size_t i = 0; i < files.size(); ++i)
    if (!ReadRuns(files[i], &sets[i])) return 2;
  const Runs& truth_runs = sets[0];

  const std::vector<Method> methods = {
      {"own seeds, floor 0.5", {dwarp::IntervalDraw::kOwnSeeds, 0.5}},
      {"own seeds, no floor", {dwarp::IntervalDraw::kOwnSeeds, 0.0}},
      {"spread near d, floor 0.5", {dwarp::IntervalDraw::kSpreadNear, 0.5}},
      {"spread near d, no floor", {dwarp::IntervalDraw::kSpreadNear, 0.0}},
      {"seed effects, rho 0", {dwarp::IntervalDraw::kSeedEffects, 0.5, 0.0}},
      {"seed effects, rho estimated", {dwarp::IntervalDraw::kSeedEffects, 0.5, NAN}},
      {"seed effects, rho 1", {dwarp::IntervalDraw::kSeedEffects, 0.5, 1.0}},
      {"seed effects, rho estimated, no floor", {dwarp::IntervalDraw::kSeedEffects, 0.0, NAN}},
  };
  std::map<std::string, double> truth;
  std::map<std::string, dwarp::CrossingInterval> truth_interval;
  for (const auto& [group, runs] : truth_runs) {
    const auto crossing = dwarp::FindThresholdCrossing(runs, threshold);
    const auto interval = dwarp::FindCrossingInterval(runs, threshold);
    if (!crossing.ok() || !crossing->reached || !interval.ok()) continue;
    truth[group] = crossing->d;
    truth_interval[group] = *interval;
    std::printf("truth %-22s %7.1f %s (%zu runs, seed correlation %.2f)\n", group.c_str(), crossing->d,
                Interval(*interval).c_str(), runs.size(), dwarp::SeedCorrelationOf(runs).rho);
  }
  for (const Method& method : methods) {
    std::printf("\n== %s\n", method.name.c_str());
    int held = 0, total = 0, both_ways = 0, checks = 0;
    std::vector<double> widths;
    for (size_t i = 1; i < sets.size(); ++i) {
      std::printf("%-40s", files[i].c_str());
      for (const auto& [group, runs] : sets[i]) {
        if (truth.count(group) == 0) continue;
        const auto crossing = dwarp::FindThresholdCrossing(runs, threshold);
        const auto interval = dwarp::FindCrossingInterval(runs, threshold, method.options);
        if (!crossing.ok() || !interval.ok()) continue;
        ++total;
        checks += 2;
        if (!crossing->reached) {
          std::printf(" %s: none", group.c_str());
          continue;
        }
        const double t = truth[group];
        const bool holds = interval->low <= t && t <= interval->high;
        held += holds;
        const dwarp::CrossingInterval& ti = truth_interval[group];
        both_ways += holds + (ti.low <= crossing->d && crossing->d <= ti.high);
        widths.push_back(interval->high / std::max(interval->low, 1.0));
        std::printf(" | %.0f %s%s", crossing->d, Interval(*interval).c_str(), holds ? "" : " MISS");
      }
      std::printf("\n");
    }
    std::sort(widths.begin(), widths.end());
    const double median_width = widths.empty() ? NAN : widths[widths.size() / 2];
    std::printf("holds the truth: %d of %d; median width high/low %.2f; two-way checks %d of %d\n", held, total,
                median_width, both_ways, checks);
    if (!pairs) continue;
    int pair_checks = 0, pair_held = 0;
    for (size_t i = 1; i + 1 < sets.size(); i += 2) {
      std::printf("%s vs %s:", files[i].c_str(), files[i + 1].c_str());
      for (const auto& [group, runs] : sets[i]) {
        const auto other = sets[i + 1].find(group);
        if (other == sets[i + 1].end()) continue;
        const auto a = dwarp::FindThresholdCrossing(runs, threshold);
        const auto b = dwarp::FindThresholdCrossing(other->second, threshold);
        const auto ai = dwarp::FindCrossingInterval(runs, threshold, method.options);
        const auto bi = dwarp::FindCrossingInterval(other->second, threshold, method.options);
        if (!a.ok() || !b.ok() || !ai.ok() || !bi.ok() || !a->reached || !b->reached) continue;
        const bool a_in_b = bi->low <= a->d && a->d <= bi->high;
        const bool b_in_a = ai->low <= b->d && b->d <= ai->high;
        pair_checks += 2;
        pair_held += a_in_b + b_in_a;
        std::printf(" | %s %s", a_in_b ? "in" : "OUT", b_in_a ? "in" : "OUT");
      }
      std::printf("\n");
    }
    std::printf("pairs: each d_warp in the other's interval, %d of %d checks\n", pair_held, pair_checks);
  }
  return 0;
}
