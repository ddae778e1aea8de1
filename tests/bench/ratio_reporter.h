// The console reporter every dwarp benchmark uses: prints as Google Benchmark does (colour only on a
// TTY) and keeps each run's seconds per iteration by name, so the program can print ratios measured in
// the same run (this machine is shared and noisy; absolute times drift).
#pragma once

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

namespace dwarp::bench {

class RatioReporter : public benchmark::ConsoleReporter {
 public:
  RatioReporter() : ConsoleReporter(isatty(STDOUT_FILENO) ? OO_Defaults : OO_None) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.run_type != Run::RT_Iteration || run.error_occurred) continue;
      // Adjusted times are in the benchmark's display unit; the multiplier converts seconds to it.
      seconds[run.benchmark_name()] = run.GetAdjustedRealTime() / benchmark::GetTimeUnitMultiplier(run.time_unit);
    }
  }

  // Seconds per iteration of the first run whose name starts with `prefix`; 0 when none ran (filtered).
  double SecondsOf(const std::string& prefix) const {
    for (const auto& [name, secs] : seconds) {
      if (name.rfind(prefix, 0) == 0) return secs;
    }
    return 0.0;
  }

  std::map<std::string, double> seconds;  // by full benchmark name
};

}  // namespace dwarp::bench
