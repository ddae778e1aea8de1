// clients/sweep/sweep_format.h: the tables, CSV and JSON of the sweep commands, from messages built by hand.
#include "clients/sweep/sweep_format.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "clients/sweep/sweep_commands.h"

namespace dwarp::clients {
namespace {

using nlohmann::json;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// RFC 4180 reader for the tests: rows of fields, quotes doubled inside quoted fields.
std::vector<std::vector<std::string>> ParseCsv(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      row.push_back(field);
      field.clear();
    } else if (c == '\n') {
      row.push_back(field);
      field.clear();
      rows.push_back(row);
      row.clear();
    } else {
      field += c;
    }
  }
  EXPECT_FALSE(quoted) << "unterminated quoted field";
  EXPECT_TRUE(field.empty() && row.empty()) << "last line without a newline";
  return rows;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

v1::JobKey Key(const std::string& model, const std::string& d, uint64_t seed) {
  v1::JobKey key;
  key.set_model(model);
  key.set_layer("fc1");
  key.set_dataset("it");
  key.set_d(d);
  key.set_seed(seed);
  return key;
}

// Two jobs: one succeeded with a result, one failed with an error that needs CSV quoting.
v1::ResultsResponse TwoJobs() {
  v1::ResultsResponse response;
  response.mutable_sweep()->set_sweep_id("sw1");
  v1::Job* done = response.add_jobs();
  done->set_job_id(1);
  done->set_sweep_id("sw1");
  *done->mutable_key() = Key("mlp_wide", "300", 0);
  done->set_state(v1::JOB_SUCCEEDED);
  done->set_attempt(1);
  v1::JobResult* result = done->mutable_result();
  result->set_metric("r2");
  result->set_train_score(0.75);
  result->set_val_score(0.5);
  result->set_test_score(0.4125);
  result->set_test_pearson_mean(0.61);
  result->set_test_pearson_median(0.63);
  result->set_noise_ceiling(0.875);
  result->set_epochs_run(12);
  result->set_seconds(3.25);
  result->set_numbers_trained(300);
  result->set_parameters_warped(203530);
  result->set_device("cuda:0");
  v1::Job* failed = response.add_jobs();
  failed->set_job_id(2);
  failed->set_sweep_id("sw1");
  *failed->mutable_key() = Key("mlp_wide", "full", 1);
  failed->set_state(v1::JOB_FAILED);
  failed->set_attempt(3);
  failed->set_error("out of memory, \"cuda:0\" has 2 GiB");
  return response;
}

const std::vector<std::string> kResultColumns = {
    "sweep", "model", "layer", "dataset", "variant", "d", "seed", "state", "attempt", "metric", "train",
    "val", "test", "pearson_mean", "pearson_median", "noise_ceiling", "epochs", "seconds", "trained_d", "D", "device",
    "error", "reason"};

TEST(SweepFormatTest, ParsesOutputFormatsAndNamesABadOne) {
  EXPECT_EQ(*ParseOutputFormat("table"), OutputFormat::kTable);
  EXPECT_EQ(*ParseOutputFormat("csv"), OutputFormat::kCsv);
  EXPECT_EQ(*ParseOutputFormat("json"), OutputFormat::kJson);
  auto bad = ParseOutputFormat("xml");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("'xml'"), std::string::npos) << bad.status();
}

TEST(SweepFormatTest, CsvFieldQuotesOnlyWhatNeedsIt) {
  EXPECT_EQ(CsvField("plain"), "plain");
  EXPECT_EQ(CsvField(""), "");
  EXPECT_EQ(CsvField("a,b"), "\"a,b\"");
  EXPECT_EQ(CsvField("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(CsvField("two\nlines"), "\"two\nlines\"");
}

TEST(SweepFormatTest, ScoresTimesAndCounts) {
  EXPECT_EQ(FormatScore(0.41254), "0.4125");
  EXPECT_EQ(FormatScore(kNaN), "-");
  EXPECT_EQ(FormatUnixMs(0), "-");
  EXPECT_EQ(FormatUnixMs(1700000000123), "2023-11-14 22:13:20");
  v1::JobCounts counts;
  counts.set_total(10);
  counts.set_succeeded(3);
  counts.set_failed(1);
  counts.set_cancelled(2);
  counts.set_running(2);
  counts.set_queued(2);
  EXPECT_EQ(FormatCounts(counts), "6/10 done (3 succeeded, 1 failed, 2 cancelled), 2 running, 2 queued");
  v1::JobKey key = Key("m", "300", 4);
  EXPECT_EQ(DescribeJobKey(key), "m/fc1/it d=300 seed=4");
  key.set_variant("aug");
  EXPECT_EQ(DescribeJobKey(key), "m/fc1/it/aug d=300 seed=4");
}

TEST(SweepFormatTest, ResultsCsvHasTheHeaderAndQuotesAFieldWithACommaAndAQuote) {
  const std::string csv = FormatResults(TwoJobs(), OutputFormat::kCsv);
  const auto rows = ParseCsv(csv);
  ASSERT_EQ(rows.size(), 3u) << csv;
  EXPECT_EQ(rows[0], kResultColumns);
  for (const auto& row : rows) EXPECT_EQ(row.size(), kResultColumns.size()) << csv;
  // The error survives quoting exactly; the raw text shows the RFC 4180 form.
  EXPECT_EQ(rows[2][21], "out of memory, \"cuda:0\" has 2 GiB");
  EXPECT_NE(csv.find("\"out of memory, \"\"cuda:0\"\" has 2 GiB\""), std::string::npos) << csv;
  // Full precision for programs; absent results are empty fields.
  EXPECT_EQ(rows[1][12], "0.4125");
  EXPECT_EQ(rows[1][15], "0.875");  // noise_ceiling
  EXPECT_EQ(rows[1][20], "cuda:0");
  EXPECT_EQ(rows[1][19], "203530");
  EXPECT_EQ(rows[2][12], "");
  EXPECT_EQ(rows[2][15], "");
  EXPECT_EQ(rows[2][7], "failed");
  EXPECT_EQ(rows[2][5], "full");
}

TEST(SweepFormatTest, ResultsJsonRoundTrips) {
  const std::string text = FormatResults(TwoJobs(), OutputFormat::kJson);
  const json parsed = json::parse(text);
  ASSERT_TRUE(parsed.is_array());
  ASSERT_EQ(parsed.size(), 2u);
  for (const std::string& column : kResultColumns) {
    EXPECT_TRUE(parsed[0].contains(column)) << column;
    EXPECT_TRUE(parsed[1].contains(column)) << column;
  }
  EXPECT_EQ(parsed[0]["sweep"], "sw1");
  EXPECT_EQ(parsed[0]["seed"], 0);
  EXPECT_DOUBLE_EQ(parsed[0]["test"].get<double>(), 0.4125);
  EXPECT_EQ(parsed[0]["epochs"], 12);
  EXPECT_EQ(parsed[0]["D"], 203530);
  EXPECT_DOUBLE_EQ(parsed[0]["noise_ceiling"].get<double>(), 0.875);
  EXPECT_TRUE(parsed[0]["error"].is_null());
  EXPECT_TRUE(parsed[1]["test"].is_null());
  EXPECT_EQ(parsed[1]["error"], "out of memory, \"cuda:0\" has 2 GiB");
  EXPECT_EQ(parsed[1]["attempt"], 3);
  EXPECT_EQ(parsed, json(ResultRows(TwoJobs())));
}

TEST(SweepFormatTest, ResultsTableShowsEveryColumnAndDashesForMissingValues) {
  const auto lines = Lines(FormatResults(TwoJobs(), OutputFormat::kTable));
  ASSERT_EQ(lines.size(), 4u);  // header, rule, two rows
  for (const std::string& column : kResultColumns) EXPECT_NE(lines[0].find(column), std::string::npos) << column;
  EXPECT_EQ(lines[1].find_first_not_of("- "), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find("0.4125"), std::string::npos) << lines[2];
  EXPECT_NE(lines[3].find(" - "), std::string::npos) << lines[3];
  // Columns align: the "test" column starts at the same place in the header and in each row.
  const size_t test_column = lines[0].find("test");
  EXPECT_EQ(lines[2].compare(test_column, 6, "0.4125"), 0) << lines[2];
  EXPECT_EQ(lines[3].compare(test_column, 2, "- "), 0) << lines[3];
}

v1::DWarpRecord Record(v1::DWarpStatus status, double d_warp, double threshold) {
  v1::DWarpRecord record;
  record.set_model("mlp_wide");
  record.set_layer("fc1");
  record.set_dataset("it");
  record.set_status(status);
  record.set_d_warp(d_warp);
  record.set_threshold(threshold);
  for (const char* d : {"0", "10", "1000", "full"}) {
    v1::CurvePoint* point = record.add_curve();
    point->set_d(d);
    point->set_mean_score(0.25);
    point->set_std_score(0.01);
    point->set_seeds_done(2);
    point->set_seeds_total(3);
  }
  return record;
}

TEST(SweepFormatTest, DWarpValueFollowsTheStatus) {
  EXPECT_EQ(FormatDWarpValue(Record(v1::DWARP_PENDING, 0, kNaN)), "-");
  EXPECT_EQ(FormatDWarpValue(Record(v1::DWARP_PROVISIONAL, 123.44, 0.4)), "~123.4");
  EXPECT_EQ(FormatDWarpValue(Record(v1::DWARP_REACHED, 123.46, 0.4)), "123.5");
  // Not reached: above the largest numeric d tried ("full" is not a subspace size).
  EXPECT_EQ(FormatDWarpValue(Record(v1::DWARP_NOT_REACHED, 0, 0.4)), "> 1000");
  v1::DWarpRecord no_curve = Record(v1::DWARP_NOT_REACHED, 0, 0.4);
  no_curve.clear_curve();
  EXPECT_EQ(FormatDWarpValue(no_curve), "-");
}

v1::DWarpResponse ThreeGroups() {
  v1::DWarpResponse response;
  response.mutable_sweep()->set_sweep_id("sw1");
  response.mutable_sweep()->mutable_threshold()->set_kind(v1::Threshold::FRACTION_OF_DATASET_BEST);
  response.mutable_sweep()->mutable_threshold()->set_value(0.9);
  v1::DWarpRecord pending = Record(v1::DWARP_PENDING, 0, kNaN);
  pending.set_note("reference unknown");
  *response.add_records() = pending;
  v1::DWarpRecord reached = Record(v1::DWARP_REACHED, 42.5, 0.36);
  reached.set_model("resnet18");
  reached.set_best_score(0.4);
  reached.set_best_d("1000");
  reached.mutable_curve(2)->set_mean_score(0.4);  // d = 1000 crosses the threshold 0.36
  reached.mutable_curve(2)->set_seeds_done(3);
  reached.set_has_full(true);
  reached.set_full_score(0.41);
  *response.add_records() = reached;
  v1::DWarpRecord not_reached = Record(v1::DWARP_NOT_REACHED, 0, 0.36);
  not_reached.set_model("vit");
  *response.add_records() = not_reached;
  return response;
}

TEST(SweepFormatTest, DWarpTableShowsNaNThresholdAsDashAndEachCurve) {
  const std::string text = FormatDWarp(ThreeGroups(), OutputFormat::kTable);
  const auto lines = Lines(text);
  ASSERT_GE(lines.size(), 6u) << text;
  EXPECT_NE(lines[0].find("FRACTION_OF_DATASET_BEST 0.9"), std::string::npos) << lines[0];
  const std::string& header = lines[1];
  for (const char* column : {"dataset", "model", "layer", "status", "d_warp", "threshold", "best @ d", "full", "note"})
    EXPECT_NE(header.find(column), std::string::npos) << column;
  const size_t threshold_column = header.find("threshold");
  const std::string& pending = lines[3];
  EXPECT_NE(pending.find("pending"), std::string::npos) << pending;
  EXPECT_EQ(pending.compare(threshold_column, 2, "- "), 0) << pending;
  EXPECT_NE(pending.find("reference unknown"), std::string::npos) << pending;
  const std::string& reached = lines[4];
  EXPECT_NE(reached.find("42.5"), std::string::npos) << reached;
  EXPECT_NE(reached.find("0.4 @ 1000"), std::string::npos) << reached;
  EXPECT_EQ(reached.compare(threshold_column, 4, "0.36"), 0) << reached;
  EXPECT_NE(lines[5].find("> 1000"), std::string::npos) << lines[5];
  // One curve per group after the table: "d  mean ± std  (done/total)", "*" from the threshold up.
  const size_t curve = text.find("it/resnet18/fc1: reached 42.5 (threshold 0.36)\n");
  ASSERT_NE(curve, std::string::npos) << text;
  EXPECT_EQ(text.find("  1000  0.4 ± 0.01  (3/3)  *\n", curve), text.find("  1000  0.4", curve)) << text;
  EXPECT_NE(text.find("  1000  0.4 ± 0.01  (3/3)  *\n", curve), std::string::npos) << text;
  EXPECT_NE(text.find("  full  0.25 ± 0.01  (2/3)\n", curve), std::string::npos) << text;
  // A NaN threshold marks nothing.
  const size_t pending_curve = text.find("it/mlp_wide/fc1: pending - (threshold -)\n");
  ASSERT_NE(pending_curve, std::string::npos) << text;
  EXPECT_EQ(text.substr(pending_curve, curve - pending_curve).find('*'), std::string::npos) << text;
}

TEST(SweepFormatTest, DWarpJsonHasNullsWhereValuesAreUnknownAndTheCurve) {
  const json parsed = json::parse(FormatDWarp(ThreeGroups(), OutputFormat::kJson));
  ASSERT_EQ(parsed.size(), 3u);
  EXPECT_EQ(parsed[0]["status"], "pending");
  EXPECT_TRUE(parsed[0]["d_warp"].is_null());
  EXPECT_TRUE(parsed[0]["threshold"].is_null());
  EXPECT_TRUE(parsed[0]["full_score"].is_null());
  EXPECT_EQ(parsed[1]["status"], "reached");
  EXPECT_DOUBLE_EQ(parsed[1]["d_warp"].get<double>(), 42.5);
  EXPECT_DOUBLE_EQ(parsed[1]["full_score"].get<double>(), 0.41);
  EXPECT_EQ(parsed[1]["best_d"], "1000");
  EXPECT_TRUE(parsed[1]["noise_ceiling"].is_null());  // the coordinator sent none
  EXPECT_EQ(parsed[2]["status"], "not_reached");
  EXPECT_TRUE(parsed[2]["d_warp"].is_null());
  ASSERT_EQ(parsed[1]["curve"].size(), 4u);
  EXPECT_EQ(parsed[1]["curve"][3]["d"], "full");
  EXPECT_EQ(parsed[1]["curve"][3]["seeds_total"], 3);
}

TEST(SweepFormatTest, DWarpIntervalAppearsInTheTableTheCurveLineAndTheJson) {
  v1::DWarpResponse response = ThreeGroups();
  v1::DWarpRecord* reached = response.mutable_records(1);
  reached->set_d_warp_low(31.2);
  reached->set_d_warp_high(58.7);
  reached->set_interval_bootstrap(true);
  v1::DWarpRecord* open = response.mutable_records(2);
  open->set_status(v1::DWARP_PROVISIONAL);
  open->set_d_warp(700);
  open->set_d_warp_low(300);
  open->set_d_warp_high(std::numeric_limits<double>::infinity());
  open->set_interval_bootstrap(true);
  EXPECT_EQ(FormatDWarpInterval(*reached), "31..59");
  EXPECT_EQ(FormatDWarpInterval(*open), "300..inf");
  v1::DWarpRecord bracket = *reached;
  bracket.set_interval_bootstrap(false);
  EXPECT_EQ(FormatDWarpInterval(bracket), "31..59 (bracket)");
  EXPECT_EQ(FormatDWarpInterval(response.records(0)), "-");

  const std::string text = FormatDWarp(response, OutputFormat::kTable);
  EXPECT_NE(Lines(text)[1].find("interval"), std::string::npos) << text;
  EXPECT_NE(Lines(text)[4].find("31..59"), std::string::npos) << text;
  EXPECT_NE(text.find("it/resnet18/fc1: reached 42.5, interval 31..59 (threshold 0.36)\n"), std::string::npos) << text;

  const json parsed = json::parse(FormatDWarp(response, OutputFormat::kJson));
  EXPECT_TRUE(parsed[0]["d_warp_low"].is_null());
  EXPECT_TRUE(parsed[0]["interval"].is_null());
  EXPECT_DOUBLE_EQ(parsed[1]["d_warp_low"].get<double>(), 31.2);
  EXPECT_DOUBLE_EQ(parsed[1]["d_warp_high"].get<double>(), 58.7);
  EXPECT_EQ(parsed[1]["interval"], "bootstrap");
  EXPECT_EQ(parsed[2]["d_warp_high"], "inf");
  EXPECT_EQ(parsed[2]["interval"], "bootstrap");
  const auto csv = ParseCsv(FormatDWarp(response, OutputFormat::kCsv));
  ASSERT_GE(csv.size(), 2u);
  EXPECT_NE(std::find(csv[0].begin(), csv[0].end(), "d_warp_low"), csv[0].end());
}

TEST(SweepFormatTest, StatusResultsAndWatchSayWhyAJobWasCreated) {
  v1::ResultsResponse results = TwoJobs();
  results.mutable_jobs(1)->set_reason("bisect log d between d = 300 and 1000");
  results.mutable_jobs(1)->set_state(v1::JOB_QUEUED);
  results.mutable_jobs(1)->set_attempt(0);
  std::vector<v1::Job> jobs(results.jobs().begin(), results.jobs().end());
  v1::Sweep sweep;
  sweep.set_sweep_id("sw1");
  const std::string status = FormatSweepStatus(sweep, jobs);
  EXPECT_NE(status.find("why"), std::string::npos) << status;
  EXPECT_NE(status.find("bisect log d between d = 300 and 1000"), std::string::npos) << status;
  const json rows = json::parse(FormatResults(results, OutputFormat::kJson));
  EXPECT_TRUE(rows[0]["reason"].is_null());
  EXPECT_EQ(rows[1]["reason"], "bisect log d between d = 300 and 1000");
  WatchView view;
  v1::WatchEvent event;
  *event.mutable_job() = results.jobs(1);
  EXPECT_NE(view.PlainLine(event).find(": bisect log d between d = 300 and 1000"), std::string::npos)
      << view.PlainLine(event);
}

// A noise-ceiling threshold says what it is made of wherever a group's threshold is described in words.
TEST(SweepFormatTest, ANoiseCeilingThresholdShowsTheFractionAndTheCeiling) {
  v1::DWarpResponse response;
  response.mutable_sweep()->set_sweep_id("sw1");
  response.mutable_sweep()->mutable_threshold()->set_kind(v1::Threshold::FRACTION_OF_NOISE_CEILING);
  response.mutable_sweep()->mutable_threshold()->set_value(0.9);
  v1::DWarpRecord known = Record(v1::DWARP_REACHED, 42.5, 0.9 * 0.99);
  known.set_noise_ceiling(0.99);
  *response.add_records() = known;
  v1::DWarpRecord unknown = Record(v1::DWARP_PENDING, 0, kNaN);
  unknown.set_dataset("v4");
  *response.add_records() = unknown;

  const std::string text = FormatDWarp(response, OutputFormat::kTable);
  EXPECT_NE(text.find("threshold FRACTION_OF_NOISE_CEILING 0.9\n"), std::string::npos) << text;
  EXPECT_NE(text.find("it/mlp_wide/fc1: reached 42.5 (threshold 0.891 = 0.9 x noise ceiling 0.99)\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("v4/mlp_wide/fc1: pending - (threshold -)\n"), std::string::npos) << text;
  const json parsed = json::parse(FormatDWarp(response, OutputFormat::kJson));
  EXPECT_DOUBLE_EQ(parsed[0]["noise_ceiling"].get<double>(), 0.99);
  EXPECT_TRUE(parsed[1]["noise_ceiling"].is_null());

  WatchView view;
  v1::WatchEvent snapshot;
  *snapshot.mutable_snapshot()->mutable_sweep() = response.sweep();
  view.Apply(snapshot);
  v1::WatchEvent event;
  *event.mutable_dwarp() = known;
  view.Apply(event);
  EXPECT_EQ(view.PlainLine(event), "d_warp it/mlp_wide/fc1: reached 42.5 (threshold 0.891 = 0.9 x noise ceiling 0.99)");

  // Under another kind the ceiling a record carries is not part of its threshold.
  response.mutable_sweep()->mutable_threshold()->set_kind(v1::Threshold::FRACTION_OF_DATASET_BEST);
  EXPECT_NE(FormatDWarp(response, OutputFormat::kTable).find("reached 42.5 (threshold 0.891)\n"), std::string::npos);
}

TEST(SweepFormatTest, DWarpBeforeAnyResultShowsNoBestScoreAndUnmeasuredPointsAsDashes) {
  v1::DWarpResponse response;
  v1::DWarpRecord record = Record(v1::DWARP_PENDING, 0, kNaN);
  for (v1::CurvePoint& point : *record.mutable_curve()) {
    point.set_seeds_done(0);
    point.set_mean_score(0);
    point.set_std_score(0);
  }
  record.set_best_d("0");  // what a coordinator reports before any result: the first grid d, score 0
  record.set_best_score(0);
  *response.add_records() = record;
  const std::string text = FormatDWarp(response, OutputFormat::kTable);
  const auto lines = Lines(text);
  ASSERT_GE(lines.size(), 4u) << text;
  const size_t best_column = lines[1].find("best @ d");
  EXPECT_EQ(lines[3].compare(best_column, 2, "- "), 0) << text;
  EXPECT_NE(text.find("  1000  -  (0/3)\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("0 ± 0"), std::string::npos) << text;
  const json parsed = json::parse(FormatDWarp(response, OutputFormat::kJson));
  EXPECT_TRUE(parsed[0]["best_score"].is_null());
  EXPECT_TRUE(parsed[0]["best_d"].is_null());
  EXPECT_TRUE(parsed[0]["curve"][0]["mean"].is_null());
  EXPECT_EQ(parsed[0]["curve"][0]["seeds_done"], 0);
}

TEST(SweepFormatTest, DWarpCsvHasOneRowPerGroupWithoutTheCurve) {
  const auto rows = ParseCsv(FormatDWarp(ThreeGroups(), OutputFormat::kCsv));
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"dataset", "model", "layer", "variant", "status", "d_warp",
                                               "d_warp_low", "d_warp_high", "interval", "threshold", "best_score",
                                               "best_d", "full_score", "noise_ceiling", "note"}));
  EXPECT_EQ(rows[1][9], "");  // NaN threshold
  EXPECT_EQ(rows[2][5], "42.5");
}

TEST(SweepFormatTest, SweepListAndStatus) {
  v1::ListSweepsResponse list;
  v1::Sweep* sweep = list.add_sweeps();
  sweep->set_sweep_id("sw1");
  sweep->set_name("quickstart");
  sweep->set_state(v1::SWEEP_RUNNING);
  sweep->set_created_unix_ms(1700000000000);
  sweep->mutable_counts()->set_total(10);
  sweep->mutable_counts()->set_succeeded(2);
  sweep->mutable_counts()->set_failed(1);
  const auto lines = Lines(FormatSweepList(list));
  ASSERT_EQ(lines.size(), 3u);
  for (const char* column : {"id", "name", "state", "done/total", "failed", "created"})
    EXPECT_NE(lines[0].find(column), std::string::npos) << column;
  EXPECT_NE(lines[2].find("quickstart"), std::string::npos);
  EXPECT_NE(lines[2].find("3/10"), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find("2023-11-14 22:13:20"), std::string::npos) << lines[2];
  EXPECT_EQ(FormatSweepList(v1::ListSweepsResponse()), "no sweeps\n");

  const v1::ResultsResponse results = TwoJobs();
  std::vector<v1::Job> jobs(results.jobs().begin(), results.jobs().end());
  jobs[1].set_state(v1::JOB_RUNNING);
  jobs[1].set_worker_id("w-7");
  jobs[1].mutable_latest_metric()->set_epoch(3);
  jobs[1].mutable_latest_metric()->set_train_loss(0.125);
  jobs[1].mutable_latest_metric()->set_val_score(0.5);
  const std::string status = FormatSweepStatus(*sweep, jobs);
  EXPECT_NE(status.find("sweep sw1 (quickstart): running, 3/10 done"), std::string::npos) << status;
  EXPECT_NE(status.find("mlp_wide/fc1/it d=full seed=1"), std::string::npos) << status;
  EXPECT_NE(status.find("ep 3 loss 0.125 val 0.5"), std::string::npos) << status;
  EXPECT_NE(status.find("w-7"), std::string::npos) << status;
}

TEST(SweepFormatTest, WorkersShowDevicesAndAge) {
  v1::ListWorkersResponse response;
  v1::WorkerInfo* worker = response.add_workers();
  worker->set_worker_id("w-1");
  worker->set_name("gpu01:123");
  worker->set_host("gpu01");
  worker->add_devices("cuda:0");
  worker->add_devices("cuda:1");
  worker->set_running_jobs(2);
  worker->set_blocked(true);
  worker->set_last_seen_unix_ms(1000000);
  const auto lines = Lines(FormatWorkers(response, 1005500));
  ASSERT_EQ(lines.size(), 3u);
  for (const char* column : {"id", "name", "host", "devices", "running", "blocked", "draining", "last seen"})
    EXPECT_NE(lines[0].find(column), std::string::npos) << column;
  EXPECT_NE(lines[2].find("cuda:0,cuda:1"), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find("yes"), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find("5s ago"), std::string::npos) << lines[2];
}

v1::WatchEvent SnapshotEvent() {
  v1::WatchEvent event;
  v1::WatchSnapshot* snapshot = event.mutable_snapshot();
  snapshot->mutable_sweep()->set_sweep_id("sw1");
  snapshot->mutable_sweep()->set_state(v1::SWEEP_RUNNING);
  snapshot->mutable_sweep()->mutable_counts()->set_total(2);
  snapshot->mutable_sweep()->mutable_counts()->set_queued(2);
  const v1::ResultsResponse results = TwoJobs();
  for (const v1::Job& job : results.jobs()) {
    v1::Job* queued = snapshot->add_jobs();
    *queued = job;
    queued->set_state(v1::JOB_QUEUED);
    queued->clear_result();
    queued->clear_error();
    queued->set_attempt(1);
  }
  *snapshot->add_dwarp() = Record(v1::DWARP_PENDING, 0, kNaN);
  return event;
}

TEST(SweepFormatTest, WatchViewFoldsEventsAndKnowsWhenTheSweepEnds) {
  WatchView view;
  EXPECT_FALSE(view.has_snapshot());
  const v1::WatchEvent snapshot = SnapshotEvent();
  view.Apply(snapshot);
  EXPECT_TRUE(view.has_snapshot());
  EXPECT_FALSE(view.finished());
  EXPECT_EQ(view.job_count(), 2u);
  EXPECT_NE(view.PlainLine(snapshot).find("2 jobs, 1 d_warp groups"), std::string::npos);
  EXPECT_NE(view.Render().find("no running jobs"), std::string::npos);

  v1::WatchEvent running;
  *running.mutable_job() = snapshot.snapshot().jobs(0);
  running.mutable_job()->set_state(v1::JOB_RUNNING);
  running.mutable_job()->set_attempt(2);
  running.mutable_job()->set_worker_id("w-1");
  view.Apply(running);
  EXPECT_EQ(view.PlainLine(running), "job 1 mlp_wide/fc1/it d=300 seed=0: running (attempt 2, worker w-1)");

  v1::WatchEvent metric;
  metric.mutable_metric()->set_job_id(1);
  metric.mutable_metric()->set_attempt(2);
  metric.mutable_metric()->mutable_point()->set_epoch(4);
  metric.mutable_metric()->mutable_point()->set_train_loss(0.25);
  metric.mutable_metric()->mutable_point()->set_val_score(0.375);
  view.Apply(metric);
  EXPECT_EQ(view.PlainLine(metric), "job 1 mlp_wide/fc1/it d=300 seed=0: epoch 4 loss 0.25 val 0.375");
  // A late point of the earlier attempt does not replace the current one.
  v1::WatchEvent stale = metric;
  stale.mutable_metric()->set_attempt(1);
  stale.mutable_metric()->mutable_point()->set_epoch(9);
  view.Apply(stale);
  std::string screen = view.Render();
  EXPECT_NE(screen.find("running jobs:"), std::string::npos) << screen;
  EXPECT_NE(screen.find("0.375"), std::string::npos) << screen;
  EXPECT_EQ(screen.find("  9  "), std::string::npos) << screen;

  v1::WatchEvent dwarp;
  *dwarp.mutable_dwarp() = Record(v1::DWARP_PROVISIONAL, 77.25, 0.36);
  view.Apply(dwarp);
  EXPECT_EQ(view.dwarp_count(), 1u);  // the same group, replaced
  EXPECT_EQ(view.PlainLine(dwarp), "d_warp it/mlp_wide/fc1: provisional ~77.2 (threshold 0.36)");
  EXPECT_NE(view.Render().find("~77.2"), std::string::npos);

  v1::WatchEvent done;
  *done.mutable_sweep() = snapshot.snapshot().sweep();
  done.mutable_sweep()->set_state(v1::SWEEP_DONE);
  view.Apply(done);
  EXPECT_TRUE(view.finished());
  EXPECT_NE(view.PlainLine(done).find("sweep sw1: done"), std::string::npos) << view.PlainLine(done);
}

TEST(SweepFormatTest, WatchViewHasTheSnapshotOnlyOnceEveryJobOfItArrived) {
  v1::WatchEvent first = SnapshotEvent();
  v1::WatchEvent rest;
  *rest.mutable_snapshot_jobs()->add_jobs() = first.snapshot().jobs(1);
  first.mutable_snapshot()->mutable_jobs()->RemoveLast();
  first.mutable_snapshot()->set_jobs_to_follow(1);
  WatchView view;
  view.Apply(first);
  EXPECT_FALSE(view.has_snapshot());
  EXPECT_EQ(view.job_count(), 1u);
  EXPECT_NE(view.PlainLine(first).find("2 jobs, 1 d_warp groups"), std::string::npos) << view.PlainLine(first);
  view.Apply(rest);
  EXPECT_TRUE(view.has_snapshot());
  EXPECT_EQ(view.job_count(), 2u);
  EXPECT_EQ(view.PlainLine(rest), "");
}

TEST(SweepFormatTest, SubmitCountsTheSweepsJobsAndSaysWhenAnEarlierTryStoredIt) {
  v1::SubmitResponse response;
  response.mutable_sweep()->set_sweep_id("big-1");
  response.mutable_sweep()->set_name("big");
  response.mutable_sweep()->mutable_counts()->set_total(99990);
  EXPECT_EQ(FormatSubmit(response, false), "submitted sweep big-1 (big): 99990 jobs\n");
  response.set_already_submitted(true);
  EXPECT_EQ(FormatSubmit(response, false),
            "sweep big-1 (big): 99990 jobs, stored by an earlier try of this submission (nothing new was stored)\n");

  v1::SubmitResponse dry;
  dry.mutable_sweep()->set_name("big");
  dry.mutable_sweep()->mutable_counts()->set_total(3);
  v1::Job* job = dry.add_jobs();
  job->mutable_key()->set_model("m");
  job->mutable_key()->set_d("10");
  dry.set_jobs_omitted(2);
  const std::string listed = FormatSubmit(dry, true);
  EXPECT_EQ(listed.rfind("dry run: sweep big would run 3 jobs\n", 0), 0u) << listed;
  // A dry run stores no job, so its jobs have no id to show: the table starts at their key.
  EXPECT_EQ(listed.find("\nmodel "), listed.find('\n')) << listed;
  EXPECT_NE(listed.find("... and 2 more jobs, not listed"), std::string::npos) << listed;
}

TEST(SweepCommandsTest, ExitCodesFollowTheDocumentedTable) {
  EXPECT_EQ(ExitCodeFor(OkStatus()), kExitOk);
  EXPECT_EQ(ExitCodeFor(NotFoundError("sweep 'x' not found")), kExitRefused);
  EXPECT_EQ(ExitCodeFor(InvalidArgumentError("bad sweep")), kExitRefused);
  EXPECT_EQ(ExitCodeFor(UnavailableError("coordinator unreachable")), kExitUnreachable);
  EXPECT_EQ(ExitCodeFor(DeadlineExceededError("too slow")), kExitUnreachable);
  EXPECT_EQ(ExitCodeFor(UnauthenticatedError("bad token")), kExitUnauthenticated);
  EXPECT_EQ(ExitCodeFor(CommandResult{InvalidArgumentError("sweeps/x.yaml: bad"), true}), kExitUsage);
  EXPECT_EQ(ExitCodeFor(CommandResult{NotFoundError("sweeps/x.yaml: cannot read"), true}), kExitUsage);
  EXPECT_EQ(ExitCodeFor(CommandResult{}), kExitOk);
}

TEST(SweepCommandsTest, SubmitRequestNamesAMissingFileOrABadExtension) {
  SubmitOptions options;
  options.sweep_file = "/nonexistent/dwarp/sweep.yaml";
  auto missing = BuildSubmitRequest(options);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nonexistent/dwarp/sweep.yaml"), std::string::npos) << missing.status();
  options.sweep_file = "sweep.toml";
  auto toml = BuildSubmitRequest(options);
  ASSERT_FALSE(toml.ok());
  EXPECT_EQ(toml.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(toml.status().message().find("\".toml\"; expected .yaml, .yml or .json"), std::string::npos)
      << toml.status();
  EXPECT_NE(toml.status().message().find("sweep.toml"), std::string::npos) << toml.status();
}

}  // namespace
}  // namespace dwarp::clients
