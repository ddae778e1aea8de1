// The console reporter every dwarp benchmark uses: prints as Google Benchmark does (colour only on a
// TTY) and keeps each run's seconds per iteration by name, so the program can print ratios measured in
// the same run (this machine is shared and noisy; absolute times drift).
#pragma once

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace dwarp::bench {

namespace internal {

// Google Benchmark 1.8 replaced BenchmarkReporter::Run::error_occurred (bool) with `skipped` (an enum:
// not skipped, skipped with a message, skipped with an error); Debian 12 has 1.7, a GPU box's pip or conda
// one is newer. The member is detected on the header in use rather than guessed from a version number:
// BENCHMARK_VERSION is defined only by some builds of the library (a CMake compile definition, absent
// from the installed header), so it cannot tell the two apart.
template <typename R, typename = void>
struct HasSkipped : std::false_type {};
template <typename R>
struct HasSkipped<R, std::void_t<decltype(std::declval<const R&>().skipped)>> : std::true_type {};

// True when `run` measured nothing: it failed (SkipWithError) or, from 1.8 on, was skipped.
template <typename R>
bool MeasuredNothing(const R& run) {
  if constexpr (HasSkipped<R>::value) {
    return static_cast<long>(run.skipped) != 0;  // 0: internal::NotSkipped
  } else {
    return run.error_occurred;
  }
}

}  // namespace internal

class RatioReporter : public benchmark::ConsoleReporter {
 public:
  RatioReporter() : ConsoleReporter(isatty(STDOUT_FILENO) ? OO_Defaults : OO_None) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.run_type != Run::RT_Iteration || internal::MeasuredNothing(run)) continue;
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
