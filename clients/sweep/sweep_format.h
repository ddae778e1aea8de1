// How the `dwarp` sweep commands (clients/sweep/sweep_commands.h) show SweepService answers
// (proto/dwarp/v1/dwarp.proto): aligned text tables for people, CSV (RFC 4180, with a header) and JSON
// arrays for programs. Pure functions of the messages they are given: no I/O, no clock (callers pass
// "now" where an age is shown), so tests can build messages by hand and compare the text.
//
// Conventions in every format:
//   - a value that is unknown or absent (NaN threshold, no result yet, no metric streamed) is "-" in
//     tables, an empty field in CSV and null in JSON;
//   - times are UTC, "YYYY-MM-DD HH:MM:SS" in tables and CSV, milliseconds since the epoch in JSON;
//   - scores are shown with 4 significant digits in tables, at full precision in CSV and JSON.
//
// WatchView folds the Watch stream (a snapshot, then job, metric, d_warp and sweep events) into the
// current picture of a sweep and renders it either as a compact screen (for a terminal that is redrawn)
// or as one plain line per event (for logs and pipes).
//
// Thread-safety: the free functions are safe to call concurrently. A WatchView is a plain value: callers
// that share one between threads guard it with their own mutex.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "common/status.h"
#include "dwarp/v1/dwarp.pb.h"

namespace dwarp::clients {

enum class OutputFormat { kTable, kCsv, kJson };

// "table", "csv" or "json"; InvalidArgument naming the bad value otherwise.
StatusOr<OutputFormat> ParseOutputFormat(std::string_view name);

// Lower-case names as the CLI prints them: "queued", "running", "succeeded", "failed", "cancelled";
// "running", "done", "cancelled"; "pending", "provisional", "reached", "not_reached". "unspecified" for 0.
const char* JobStateName(v1::JobState state);
const char* SweepStateName(v1::SweepState state);
const char* DWarpStatusName(v1::DWarpStatus status);

// "2026-11-30 22:49:17" (UTC); "-" for 0 (never set).
std::string FormatUnixMs(int64_t unix_ms);
// 4 significant digits ("0.4512", "1.235e+04"); "-" for NaN.
std::string FormatScore(double value);
// One CSV field: quoted (with inner quotes doubled) when it holds a comma, quote, CR or LF.
std::string CsvField(std::string_view text);
// "model/layer/dataset[/variant] d=D seed=S": how a job is named in tables and event lines.
std::string DescribeJobKey(const v1::JobKey& key);
// "12/40 done (10 succeeded, 2 failed, 0 cancelled), 4 running, 24 queued".
std::string FormatCounts(const v1::JobCounts& counts);
// The d_warp value as its status allows: "-" (pending), "~123.4" (provisional: may still move),
// "123.4" (reached), "> 10000" (not reached: above the largest numeric d of the curve; "-" without one).
std::string FormatDWarpValue(const v1::DWarpRecord& record);
// d_warp's interval (DWarpRecord.d_warp_low/high), whole numbers: "480..610" (bootstrap over seeds),
// "300..1000 (bracket)" (the grid's bracket, fewer than 2 seeds), "480..inf" (open above); "-" when unset.
std::string FormatDWarpInterval(const v1::DWarpRecord& record);

// Rows of named cells (an array of objects with the same keys in the same order), rendered as an
// aligned table (header, rule, rows), CSV (header line, then rows; "\r\n"-free, "\n" line ends) or a
// JSON array (pretty-printed, 2 spaces). Cells are strings, numbers, booleans or null.
std::string RenderRows(const nlohmann::ordered_json& rows, OutputFormat format);

// `dwarp submit`: the sweep id (or "dry run") and the job count (the sweep's total), and whether an earlier
// try of the same submission had stored it; with list_jobs the expanded jobs the response lists, and how
// many it left out.
std::string FormatSubmit(const v1::SubmitResponse& response, bool list_jobs);
// `dwarp list`: id, name, state, done/total, failed, created.
std::string FormatSweepList(const v1::ListSweepsResponse& response);
// `dwarp status`: the sweep's header and counts, then one row per job: id, job (DescribeJobKey), state,
// attempt, worker, latest metric ("ep 3 loss 0.1234 val 0.5"), test score.
std::string FormatSweepStatus(const v1::Sweep& sweep, const std::vector<v1::Job>& jobs);

// `dwarp results`: one row per job with the columns sweep, model, layer, dataset, variant, d, seed, state,
// attempt, metric, train, val, test, pearson_mean, pearson_median, noise_ceiling, epochs, seconds, trained_d
// (the result's numbers_trained), D (its parameters_warped), device, error, reason (result columns null for
// a job without a result; noise_ceiling null too when the data has none).
nlohmann::ordered_json ResultRows(const v1::ResultsResponse& response);
std::string FormatResults(const v1::ResultsResponse& response, OutputFormat format);

// `dwarp dwarp`: one row per group: dataset, model, layer, variant, status, d_warp, threshold, best_score,
// best_d, full_score, noise_ceiling (the dataset's; null while unknown), note. In JSON d_warp is a number
// only for provisional and reached records, best_score and best_d only once some d has a finished seed, and
// each object also carries its curve ([{d, mean, std, seeds_done, seeds_total}], mean and std null for a d
// with no finished seed). In table mode each
// group's curve follows the table, one line per d: "d  mean ± std  (seeds done/total)", marked "*" where the
// mean is at or above the group's threshold ("-  (0/total)" for a d with no finished seed), under a line that
// gives the group's status, d_warp and threshold ("(threshold 0.8911 = 0.9 x noise ceiling 0.9901)" for a
// fraction_of_noise_ceiling threshold whose ceiling is known).
nlohmann::ordered_json DWarpRows(const v1::DWarpResponse& response, bool with_curve);
std::string FormatDWarp(const v1::DWarpResponse& response, OutputFormat format);

// `dwarp cancel`: what was cancelled.
std::string FormatCancel(const v1::CancelSweepResponse& response);
// `dwarp workers`: id, name, host, devices, running, blocked, draining, last seen ("12s ago").
std::string FormatWorkers(const v1::ListWorkersResponse& response, int64_t now_unix_ms);

// The Watch stream folded into the current state of one sweep.
class WatchView {
 public:
  // Folds one event in. A snapshot replaces everything; snapshot_jobs add the rest of the snapshot's jobs;
  // a job replaces that job; a metric updates its job's latest point (when it is of the job's current
  // attempt or newer); a d_warp record replaces its group's; a sweep replaces the sweep (state and counts).
  void Apply(const v1::WatchEvent& event);

  // The whole snapshot arrived: its first event and every job it said would follow.
  bool has_snapshot() const { return has_snapshot_ && snapshot_jobs_to_follow_ == 0; }
  const v1::Sweep& sweep() const { return sweep_; }
  // The sweep reached DONE or CANCELLED.
  bool finished() const;
  size_t job_count() const { return jobs_.size(); }
  size_t dwarp_count() const { return dwarp_.size(); }

  // The compact screen: the sweep and its counts, the running jobs (at most max_running rows, with their
  // latest epoch, loss and validation score) and the d_warp table. Ends with a newline.
  std::string Render(size_t max_running = 20) const;
  // One line (no newline) describing `event`, which has just been applied: "job 7 mlp/fc1/it d=300 seed=0:
  // running (attempt 1, worker w-1)", "job 7 ...: epoch 3 loss 0.1234 val 0.5", "d_warp it/mlp/fc1:
  // reached 123.4 (threshold 0.45)" (the threshold as FormatDWarp's group lines give it), "sweep ab12 (name):
  // done, 40/40 done (...)". Empty for the rest of a snapshot (snapshot_jobs): its first event's line said
  // how many jobs it has.
  std::string PlainLine(const v1::WatchEvent& event) const;

 private:
  using GroupKey = std::tuple<std::string, std::string, std::string, std::string>;  // dataset, model, layer, variant
  bool has_snapshot_ = false;
  int64_t snapshot_jobs_to_follow_ = 0;
  v1::Sweep sweep_;
  std::map<int64_t, v1::Job> jobs_;
  std::map<GroupKey, v1::DWarpRecord> dwarp_;
};

}  // namespace dwarp::clients
