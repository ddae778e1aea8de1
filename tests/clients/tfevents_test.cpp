// clients/sweep/tfevents.h and clients/sweep/tensorboard_command.h: CRC-32C against published test vectors; event files
// re-read by a small reader here (record lengths, both masked CRCs, the protobuf fields decoded by hand);
// WriteSweepEvents' folders and scalars for hand-built ResultsResponse messages; a file in the way of the
// logdir; and `dwarp tensorboard` against a hand-written SweepService on loopback.
// (tests/clients/tfevents_crosscheck.sh decodes a written file with the real protobuf library instead.)
#include "tests/support/loopback_sweep_server.h"
#include "clients/sweep/tfevents.h"

#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/server_context.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "clients/sweep/tensorboard_command.h"
#include "tests/support/test_dir.h"

namespace dwarp::clients {
namespace {

namespace fs = std::filesystem;

// ---- A reader for what the writer emits: records, then Event / Summary / Value fields.

struct Scalar {
  std::string tag;
  float value = 0;
};

struct DecodedEvent {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;
  bool has_summary = false;
  std::vector<Scalar> scalars;
};

uint32_t LittleEndian32(const std::string& bytes, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(bytes[at + i]);
  return v;
}

uint64_t LittleEndian64(const std::string& bytes, size_t at) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(bytes[at + i]);
  return v;
}

std::string ReadAll(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
}

// The records' data; "" in *error when every length and both CRCs of every record check out.
std::vector<std::string> ReadRecords(const std::string& bytes, std::string* error) {
  std::vector<std::string> records;
  size_t at = 0;
  while (at < bytes.size()) {
    if (bytes.size() - at < 12) {
      *error = "truncated record header at byte " + std::to_string(at);
      return records;
    }
    const uint64_t length = LittleEndian64(bytes, at);
    if (LittleEndian32(bytes, at + 8) != MaskedCrc32c(std::string_view(bytes.data() + at, 8))) {
      *error = "length CRC mismatch at byte " + std::to_string(at);
      return records;
    }
    if (bytes.size() - at - 12 < length + 4) {
      *error = "truncated record data at byte " + std::to_string(at);
      return records;
    }
    std::string data = bytes.substr(at + 12, length);
    if (LittleEndian32(bytes, at + 12 + length) != MaskedCrc32c(data)) {
      *error = "data CRC mismatch at byte " + std::to_string(at);
      return records;
    }
    records.push_back(std::move(data));
    at += 12 + length + 4;
  }
  error->clear();
  return records;
}

struct Wire {
  const std::string& bytes;
  size_t at = 0;
  bool failed = false;

  bool Done() const { return failed || at >= bytes.size(); }
  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (at >= bytes.size()) break;
      const unsigned char b = bytes[at++];
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    failed = true;
    return 0;
  }
  std::string Take(size_t n) {
    if (bytes.size() - at < n) {
      failed = true;
      return "";
    }
    std::string s = bytes.substr(at, n);
    at += n;
    return s;
  }
};

// Decodes an Event; "" in *error unless a field is unknown, has the wrong wire type or is truncated.
DecodedEvent DecodeEvent(const std::string& data, std::string* error) {
  DecodedEvent event;
  Wire event_wire{data};
  error->clear();
  while (!event_wire.Done()) {
    const uint64_t key = event_wire.Varint();
    if (key == (1 << 3 | 1)) {
      const uint64_t bits = LittleEndian64(event_wire.Take(8) + std::string(8, '\0'), 0);
      std::memcpy(&event.wall_time, &bits, 8);
    } else if (key == (2 << 3 | 0)) {
      event.step = static_cast<int64_t>(event_wire.Varint());
    } else if (key == (3 << 3 | 2)) {
      event.file_version = event_wire.Take(event_wire.Varint());
    } else if (key == (5 << 3 | 2)) {
      event.has_summary = true;
      const std::string summary = event_wire.Take(event_wire.Varint());
      Wire summary_wire{summary};
      while (!summary_wire.Done()) {
        if (summary_wire.Varint() != (1 << 3 | 2)) {
          *error = "unexpected Summary field";
          return event;
        }
        const std::string value = summary_wire.Take(summary_wire.Varint());
        Wire value_wire{value};
        Scalar scalar;
        while (!value_wire.Done()) {
          const uint64_t value_key = value_wire.Varint();
          if (value_key == (1 << 3 | 2)) {
            scalar.tag = value_wire.Take(value_wire.Varint());
          } else if (value_key == (2 << 3 | 5)) {
            const uint32_t bits = LittleEndian32(value_wire.Take(4) + std::string(4, '\0'), 0);
            std::memcpy(&scalar.value, &bits, 4);
          } else {
            *error = "unexpected Value field key " + std::to_string(value_key);
            return event;
          }
        }
        if (value_wire.failed) *error = "truncated Value";
        event.scalars.push_back(scalar);
      }
      if (summary_wire.failed) *error = "truncated Summary";
    } else {
      *error = "unexpected Event field key " + std::to_string(key);
      return event;
    }
  }
  if (event_wire.failed) *error = "truncated Event";
  return event;
}

// Every event of a file, checked: records intact, each event decodes.
std::vector<DecodedEvent> ReadEventFile(const fs::path& path) {
  std::string error;
  std::vector<std::string> records = ReadRecords(ReadAll(path), &error);
  EXPECT_EQ(error, "") << path;
  std::vector<DecodedEvent> events;
  for (const std::string& record : records) {
    events.push_back(DecodeEvent(record, &error));
    EXPECT_EQ(error, "") << path;
  }
  return events;
}

// The event files directly in `folder`.
std::vector<fs::path> EventFilesIn(const fs::path& folder) {
  std::vector<fs::path> files;
  std::error_code ignored;
  for (const auto& entry : fs::directory_iterator(folder, ignored)) {
    if (entry.is_regular_file() && entry.path().filename().string().rfind("events.out.tfevents.", 0) == 0) {
      files.push_back(entry.path());
    }
  }
  return files;
}

// The folders (relative to `root`) holding event files, and how many files in all.
std::set<std::string> FoldersWithEvents(const fs::path& root, int* files) {
  std::set<std::string> folders;
  *files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (entry.is_regular_file() && entry.path().filename().string().rfind("events.out.tfevents.", 0) == 0) {
      folders.insert(fs::relative(entry.path().parent_path(), root).string());
      ++*files;
    }
  }
  return folders;
}

class TempDirTest : public dwarp::testing::FreshDirTest {
 protected:
  TempDirTest() : FreshDirTest("dwarp_tfevents_test") {}
};

// ---- CRC-32C

TEST(Crc32cTest, MatchesPublishedVectors) {
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);  // the CRC catalogue's check value
  EXPECT_EQ(Crc32c(""), 0u);
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);     // RFC 3720 B.4
  EXPECT_EQ(Crc32c(std::string(32, '\xFF')), 0x62A8AB43u);   // RFC 3720 B.4
  std::string ascending(32, '\0');
  for (int i = 0; i < 32; ++i) ascending[i] = static_cast<char>(i);
  EXPECT_EQ(Crc32c(ascending), 0x46DD794Eu);                 // RFC 3720 B.4
}

TEST(Crc32cTest, MaskRotatesAndAddsTheConstant) {
  const uint32_t crc = 0xE3069283u;
  EXPECT_EQ(MaskedCrc32c("123456789"), ((crc >> 15) | (crc << 17)) + 0xa282ead8u);
  EXPECT_EQ(MaskedCrc32c(""), 0xa282ead8u);  // the mask of a zero CRC is the constant alone
}

// ---- EventFileWriter

using EventFileWriterTest = TempDirTest;

TEST_F(EventFileWriterTest, WritesTheHeaderThenTheScalars) {
  const fs::path folder = dir_ / "a" / "b";
  StatusOr<EventFileWriter> writer = EventFileWriter::Open(folder.string(), 1700000000.25);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE(writer->AddScalar("train/loss", 0.5, 1, 1700000001.5).ok());
  ASSERT_TRUE(writer->AddScalar("val/r2", -0.125, 2, 1700000002.0).ok());
  ASSERT_TRUE(writer->AddScalar("big/step", 3.0, int64_t{1} << 40, 1700000003.0).ok());
  ASSERT_TRUE(writer->AddScalar("neg/step", 4.0, -7, 1700000004.0).ok());
  const std::string path = writer->path();
  ASSERT_TRUE(writer->Close().ok());

  EXPECT_EQ(fs::path(path).parent_path(), folder);
  const std::string name = fs::path(path).filename().string();
  EXPECT_EQ(name.rfind("events.out.tfevents.1700000000.", 0), 0u) << name;

  std::vector<DecodedEvent> events = ReadEventFile(path);
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0].file_version, "brain.Event:2");
  EXPECT_FALSE(events[0].has_summary);
  EXPECT_DOUBLE_EQ(events[0].wall_time, 1700000000.25);
  struct Expected {
    const char* tag;
    float value;
    int64_t step;
    double wall_time;
  };
  const Expected expected[] = {{"train/loss", 0.5f, 1, 1700000001.5},
                               {"val/r2", -0.125f, 2, 1700000002.0},
                               {"big/step", 3.0f, int64_t{1} << 40, 1700000003.0},
                               {"neg/step", 4.0f, -7, 1700000004.0}};
  for (size_t i = 0; i < 4; ++i) {
    const DecodedEvent& e = events[i + 1];
    EXPECT_TRUE(e.file_version.empty());
    ASSERT_EQ(e.scalars.size(), 1u);
    EXPECT_EQ(e.scalars[0].tag, expected[i].tag);
    EXPECT_EQ(e.scalars[0].value, expected[i].value);
    EXPECT_EQ(e.step, expected[i].step);
    EXPECT_DOUBLE_EQ(e.wall_time, expected[i].wall_time);
  }
}

TEST_F(EventFileWriterTest, TheReaderCatchesACorruptedByte) {
  StatusOr<EventFileWriter> writer = EventFileWriter::Open(dir_.string(), 1.0);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE(writer->AddScalar("x", 1.0, 1, 2.0).ok());
  ASSERT_TRUE(writer->Close().ok());
  std::string bytes = ReadAll(writer->path());
  std::string error;
  EXPECT_EQ(ReadRecords(bytes, &error).size(), 2u);
  EXPECT_EQ(error, "");
  std::string data_flipped = bytes;
  data_flipped[bytes.size() - 6] ^= 0x01;  // inside the last record's data
  ReadRecords(data_flipped, &error);
  EXPECT_NE(error.find("data CRC mismatch"), std::string::npos) << error;
  std::string length_flipped = bytes;
  length_flipped[0] ^= 0x01;
  ReadRecords(length_flipped, &error);
  EXPECT_NE(error.find("length CRC mismatch"), std::string::npos) << error;
}

TEST_F(EventFileWriterTest, WritersInTheSameSecondGetDistinctFiles) {
  StatusOr<EventFileWriter> first = EventFileWriter::Open(dir_.string(), 42.0);
  StatusOr<EventFileWriter> second = EventFileWriter::Open(dir_.string(), 42.0);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_NE(first->path(), second->path());
  ASSERT_TRUE(first->Close().ok());
  ASSERT_TRUE(second->Close().ok());
  EXPECT_EQ(EventFilesIn(dir_).size(), 2u);
}

TEST_F(EventFileWriterTest, AddingAfterCloseIsRefused) {
  StatusOr<EventFileWriter> writer = EventFileWriter::Open(dir_.string(), 1.0);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE(writer->Close().ok());
  EXPECT_TRUE(writer->Close().ok());
  Status late = writer->AddScalar("x", 1.0, 1, 1.0);
  EXPECT_EQ(late.code(), StatusCode::kFailedPrecondition) << late;
  EXPECT_NE(late.message().find(writer->path()), std::string::npos);
}

TEST_F(EventFileWriterTest, AFileInTheWayIsNamed) {
  std::ofstream(dir_ / "blocker") << "not a folder";
  StatusOr<EventFileWriter> writer = EventFileWriter::Open((dir_ / "blocker" / "sub").string(), 1.0);
  ASSERT_FALSE(writer.ok());
  EXPECT_EQ(writer.status().code(), StatusCode::kInvalidArgument) << writer.status();
  EXPECT_NE(writer.status().message().find("'" + (dir_ / "blocker").string() + "' is a file, not a folder"),
            std::string::npos)
      << writer.status();
}

// ---- WriteSweepEvents

v1::MetricPoint Point(int64_t epoch, double loss, double val, int64_t time_ms) {
  v1::MetricPoint p;
  p.set_epoch(epoch);
  p.set_train_loss(loss);
  p.set_val_score(val);
  p.set_time_unix_ms(time_ms);
  return p;
}

v1::Job* AddJob(v1::ResultsResponse& r, int64_t id, const std::string& model, const std::string& d, uint64_t seed) {
  v1::Job* job = r.add_jobs();
  job->set_job_id(id);
  job->set_sweep_id("sw42");
  job->mutable_key()->set_model(model);
  job->mutable_key()->set_layer("layer3");
  job->mutable_key()->set_dataset("nsd");
  job->mutable_key()->set_d(d);
  job->mutable_key()->set_seed(seed);
  return job;
}

void SetResult(v1::Job* job, const std::string& metric, double test, int64_t epochs, int32_t attempt) {
  job->set_state(v1::JOB_SUCCEEDED);
  job->set_attempt(attempt);
  job->mutable_result()->set_metric(metric);
  job->mutable_result()->set_test_score(test);
  job->mutable_result()->set_epochs_run(epochs);
  job->set_started_unix_ms(1'000'000);
  job->set_finished_unix_ms(9'000'000);
}

v1::JobMetrics* AddCurve(v1::ResultsResponse& r, int64_t id, int32_t attempt, int epochs, int64_t t0_ms) {
  v1::JobMetrics* m = r.add_metrics();
  m->set_job_id(id);
  m->set_attempt(attempt);
  for (int e = 1; e <= epochs; ++e) *m->add_points() = Point(e, 1.0 / e, 0.1 * e + attempt, t0_ms + 1000 * e);
  return m;
}

// Job 1: one attempt, 3 epochs, succeeded (r2). Job 2: attempt 1 streamed 2 epochs and was lost, attempt 2
// streamed 3 and succeeded (accuracy).
v1::ResultsResponse TwoJobs() {
  v1::ResultsResponse r;
  r.mutable_sweep()->set_sweep_id("sw42");
  SetResult(AddJob(r, 1, "resnet18", "300", 0), "r2", 0.75, 3, 1);
  SetResult(AddJob(r, 2, "resnet18", "full", 1), "accuracy", 0.5, 3, 2);
  AddCurve(r, 1, 1, 3, 2'000'000);
  AddCurve(r, 2, 1, 2, 3'000'000);
  AddCurve(r, 2, 2, 3, 4'000'000);
  return r;
}

using WriteSweepEventsTest = TempDirTest;

TEST_F(WriteSweepEventsTest, OneFolderPerJobAndPerAttemptWhenThereWereSeveral) {
  StatusOr<int> written = WriteSweepEvents(TwoJobs(), dir_.string());
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(*written, 3);
  int files = 0;
  EXPECT_EQ(FoldersWithEvents(dir_, &files),
            (std::set<std::string>{"resnet18/layer3/nsd/d=300/seed=0", "resnet18/layer3/nsd/d=full/seed=1/attempt=1",
                                   "resnet18/layer3/nsd/d=full/seed=1/attempt=2"}));
  EXPECT_EQ(files, 3);
}

TEST_F(WriteSweepEventsTest, TrainValAndTestScalarsWithEpochSteps) {
  ASSERT_TRUE(WriteSweepEvents(TwoJobs(), dir_.string()).ok());

  auto one = EventFilesIn(dir_ / "resnet18/layer3/nsd/d=300/seed=0");
  ASSERT_EQ(one.size(), 1u);
  std::vector<DecodedEvent> events = ReadEventFile(one[0]);
  ASSERT_EQ(events.size(), 1u + 3 * 2 + 1);
  EXPECT_EQ(events[0].file_version, "brain.Event:2");
  EXPECT_DOUBLE_EQ(events[0].wall_time, 2001.0);  // the first point's time
  for (int e = 1; e <= 3; ++e) {
    const DecodedEvent& loss = events[2 * e - 1];
    const DecodedEvent& val = events[2 * e];
    ASSERT_EQ(loss.scalars.size(), 1u);
    ASSERT_EQ(val.scalars.size(), 1u);
    EXPECT_EQ(loss.scalars[0].tag, "train/loss");
    EXPECT_EQ(loss.scalars[0].value, static_cast<float>(1.0 / e));
    EXPECT_EQ(loss.step, e);
    EXPECT_DOUBLE_EQ(loss.wall_time, 2000.0 + e);
    EXPECT_EQ(val.scalars[0].tag, "val/r2");
    EXPECT_EQ(val.scalars[0].value, static_cast<float>(0.1 * e + 1));
    EXPECT_EQ(val.step, e);
  }
  const DecodedEvent& test = events.back();
  ASSERT_EQ(test.scalars.size(), 1u);
  EXPECT_EQ(test.scalars[0].tag, "test/r2");
  EXPECT_EQ(test.scalars[0].value, 0.75f);
  EXPECT_EQ(test.step, 3);
  EXPECT_DOUBLE_EQ(test.wall_time, 9000.0);  // the job's finish time

  // The lost attempt has its curve and no test score; the one that succeeded ends with it.
  auto lost = EventFilesIn(dir_ / "resnet18/layer3/nsd/d=full/seed=1/attempt=1");
  ASSERT_EQ(lost.size(), 1u);
  std::vector<DecodedEvent> lost_events = ReadEventFile(lost[0]);
  ASSERT_EQ(lost_events.size(), 1u + 2 * 2);
  EXPECT_EQ(lost_events.back().scalars.at(0).tag, "val/accuracy");
  EXPECT_EQ(lost_events.back().step, 2);
  auto won = EventFilesIn(dir_ / "resnet18/layer3/nsd/d=full/seed=1/attempt=2");
  ASSERT_EQ(won.size(), 1u);
  std::vector<DecodedEvent> won_events = ReadEventFile(won[0]);
  ASSERT_EQ(won_events.size(), 1u + 3 * 2 + 1);
  EXPECT_EQ(won_events.back().scalars.at(0).tag, "test/accuracy");
  EXPECT_EQ(won_events.back().scalars.at(0).value, 0.5f);
  EXPECT_EQ(won_events.back().step, 3);
  EXPECT_EQ(won_events[2].scalars.at(0).value, static_cast<float>(0.1 + 2));
}

TEST_F(WriteSweepEventsTest, ExportingAgainReplacesTheFiles) {
  ASSERT_TRUE(WriteSweepEvents(TwoJobs(), dir_.string()).ok());
  std::ofstream(dir_ / "resnet18/layer3/nsd/d=300/seed=0/notes.txt") << "mine";
  StatusOr<int> again = WriteSweepEvents(TwoJobs(), dir_.string());
  ASSERT_TRUE(again.ok()) << again.status();
  int files = 0;
  FoldersWithEvents(dir_, &files);
  EXPECT_EQ(files, 3);
  EXPECT_TRUE(fs::exists(dir_ / "resnet18/layer3/nsd/d=300/seed=0/notes.txt"));  // only event files go
}

TEST_F(WriteSweepEventsTest, UnfinishedJobsAndOddNames) {
  v1::ResultsResponse r;
  v1::Job* running = AddJob(r, 7, "my/model", "0", 3);
  running->set_state(v1::JOB_RUNNING);
  running->set_attempt(1);
  running->set_spec_json(R"({"objective": "classification"})");
  running->mutable_key()->set_variant("lr=0.1");
  AddCurve(r, 7, 1, 2, 0);
  v1::Job* queued = AddJob(r, 8, "m", "10", 0);  // no curve, no result: no file
  queued->set_state(v1::JOB_QUEUED);
  SetResult(AddJob(r, 9, "m", "20", 0), "r2", 0.25, 4, 1);  // succeeded without a streamed curve

  StatusOr<int> written = WriteSweepEvents(r, dir_.string());
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(*written, 2);
  int files = 0;
  EXPECT_EQ(FoldersWithEvents(dir_, &files),
            (std::set<std::string>{"my_model/layer3/nsd/variant=lr=0.1/d=0/seed=3", "m/layer3/nsd/d=20/seed=0"}));
  std::vector<DecodedEvent> running_events = ReadEventFile(EventFilesIn(dir_ / "my_model/layer3/nsd/variant=lr=0.1/d=0/seed=3").at(0));
  ASSERT_EQ(running_events.size(), 1u + 2 * 2);
  EXPECT_EQ(running_events.back().scalars.at(0).tag, "val/accuracy");  // the metric from the spec
  std::vector<DecodedEvent> only_test = ReadEventFile(EventFilesIn(dir_ / "m/layer3/nsd/d=20/seed=0").at(0));
  ASSERT_EQ(only_test.size(), 2u);
  EXPECT_EQ(only_test[1].scalars.at(0).tag, "test/r2");
  EXPECT_EQ(only_test[1].step, 4);  // epochs_run when no curve says otherwise
}

TEST_F(WriteSweepEventsTest, LabelsThatSanitizeAlikeKeepApart) {
  v1::ResultsResponse r;
  SetResult(AddJob(r, 1, "a/b", "0", 0), "r2", 0.5, 1, 1);
  SetResult(AddJob(r, 2, "a_b", "0", 0), "r2", 0.25, 1, 1);
  StatusOr<int> written = WriteSweepEvents(r, dir_.string());
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(*written, 2);
  int files = 0;
  EXPECT_EQ(FoldersWithEvents(dir_, &files),
            (std::set<std::string>{"a_b/layer3/nsd/d=0/seed=0", "a_b/layer3/nsd/d=0/seed=0.job2"}));
  EXPECT_EQ(files, 2);
}

TEST_F(WriteSweepEventsTest, AFileAsLogdirIsAClearError) {
  const fs::path file = dir_ / "runs";
  std::ofstream(file) << "x";
  StatusOr<int> written = WriteSweepEvents(TwoJobs(), file.string());
  ASSERT_FALSE(written.ok());
  EXPECT_EQ(written.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(written.status().message().find("--logdir '" + file.string() + "' is a file, not a folder"),
            std::string::npos)
      << written.status();
  EXPECT_FALSE(WriteSweepEvents(TwoJobs(), "").ok());
}

TEST_F(WriteSweepEventsTest, AFileInTheWayOfAJobFolderIsNamed) {
  std::ofstream(dir_ / "resnet18") << "x";
  StatusOr<int> written = WriteSweepEvents(TwoJobs(), dir_.string());
  ASSERT_FALSE(written.ok());
  EXPECT_EQ(written.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(written.status().message().find("'" + (dir_ / "resnet18").string() + "' is a file"), std::string::npos)
      << written.status();
}

// ---- `dwarp tensorboard` against a hand-written SweepService on loopback.

class FakeResultsService final : public v1::SweepService::Service {
 public:
  grpc::Status Results(grpc::ServerContext*, const v1::ResultsRequest* request,
                       v1::ResultsResponse* response) override {
    saw_include_metrics = request->include_metrics();
    if (request->sweep_id() != "sw42") return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such sweep");
    *response = TwoJobs();
    return grpc::Status::OK;
  }
  bool saw_include_metrics = false;  // written on a gRPC thread, read after the call returned
};

class TensorBoardCommandTest : public dwarp::testing::LoopbackCommandTest<FakeResultsService> {
 protected:
  TensorBoardCommandTest() : LoopbackCommandTest("dwarp_tfevents_test") {}
};

TEST_F(TensorBoardCommandTest, WritesTheFilesAndSaysHowToViewThem) {
  SweepClient client = Client();
  const std::string logdir = (dir_ / "tb").string();
  std::ostringstream out;
  const CommandResult result = RunTensorBoard(client, "sw42", logdir, out);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_TRUE(service_.saw_include_metrics);
  EXPECT_EQ(out.str(), "3 event files written under " + logdir + "; view them with: tensorboard --logdir " + logdir + "\n");
  int files = 0;
  FoldersWithEvents(logdir, &files);
  EXPECT_EQ(files, 3);
}

TEST_F(TensorBoardCommandTest, AnUnknownSweepExitsOneAndWritesNothing) {
  SweepClient client = Client();
  const fs::path logdir = dir_ / "tb";
  std::ostringstream out;
  const CommandResult result = RunTensorBoard(client, "nope", logdir.string(), out);
  EXPECT_EQ(ExitCodeFor(result), kExitRefused);
  EXPECT_NE(result.status.message().find("sweep 'nope' not found"), std::string::npos) << result.status;
  EXPECT_FALSE(fs::exists(logdir));
  EXPECT_EQ(out.str(), "");
}

TEST_F(TensorBoardCommandTest, AFileAsLogdirExitsTwo) {
  SweepClient client = Client();
  const fs::path file = dir_ / "tb";
  std::ofstream(file) << "x";
  std::ostringstream out;
  const CommandResult result = RunTensorBoard(client, "sw42", file.string(), out);
  EXPECT_EQ(ExitCodeFor(result), kExitUsage) << result.status;
  EXPECT_NE(result.status.message().find("is a file, not a folder"), std::string::npos) << result.status;
  EXPECT_EQ(out.str(), "");
}

}  // namespace
}  // namespace dwarp::clients
