// TensorBoard event files ("tfevents") from a sweep's streamed training curves, so that
// `tensorboard --logdir DIR` shows every job's curve without TensorFlow or TensorBoard's Python writer.
//
// File format (TensorFlow's record format, the one TensorBoard reads): a sequence of records, each
//   uint64 little-endian length of the data | uint32 masked CRC-32C of those 8 length bytes |
//   data (one serialized tensorflow.Event) | uint32 masked CRC-32C of the data
// (both CRCs little-endian). The first event of a file carries file_version "brain.Event:2"; every later
// one a Summary with one scalar (Summary.Value.simple_value, a float). The few protobuf fields are encoded
// here by hand (field numbers as TensorBoard's event.proto and summary.proto), so this needs no generated
// code; tests/clients/tfevents_crosscheck.sh decodes the output with the real protobuf library.
//
// Thread-safety: Crc32c, MaskedCrc32c and WriteSweepEvents are free functions with no shared state (file
// names are made unique with a process-wide atomic counter). One EventFileWriter must not be used from two
// threads at once; distinct writers are independent.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "common/status.h"
#include "dwarp/v1/dwarp.pb.h"

namespace dwarp::clients {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF):
// Crc32c("123456789") == 0xE3069283.
uint32_t Crc32c(std::string_view data);
// TensorFlow's masked form, ((crc >> 15) | (crc << 17)) + 0xa282ead8, which it stores so that a CRC of
// data that itself holds CRCs stays well distributed.
uint32_t MaskedCrc32c(std::string_view data);

// The file_version of the header event TensorBoard expects.
inline constexpr const char* kTfEventsFileVersion = "brain.Event:2";

// One tfevents file. Open creates the folder (and its parents) and a new file named as TensorFlow names
// them, events.out.tfevents.<seconds>.<hostname>.<pid>.<n> (<seconds> from start_wall_time_s; <pid>.<n>
// keep names unique within and across processes), and writes the header event. An existing file is never
// overwritten. Records are buffered; Close (or the destructor, which ignores errors) flushes and closes.
// Move-only.
class EventFileWriter {
 public:
  // start_wall_time_s: seconds since the Unix epoch, the header event's wall time and the name's
  // <seconds>. Errors: InvalidArgument when a part of `folder` exists and is not a folder; Unavailable
  // naming the path when the folder or the file cannot be created or written.
  static StatusOr<EventFileWriter> Open(const std::string& folder, double start_wall_time_s);

  EventFileWriter(EventFileWriter&& other) noexcept;
  EventFileWriter& operator=(EventFileWriter&& other) noexcept;
  EventFileWriter(const EventFileWriter&) = delete;
  EventFileWriter& operator=(const EventFileWriter&) = delete;
  ~EventFileWriter();

  // One scalar event: `value` (stored as a float, as TensorBoard's scalars are) under `tag` at `step`,
  // wall time in seconds since the Unix epoch. Unavailable naming the file when the write fails;
  // FailedPrecondition after Close.
  Status AddScalar(const std::string& tag, double value, int64_t step, double wall_time_s);
  // Flushes and closes; Unavailable naming the file when that fails. A second Close is OK.
  Status Close();

  // The file's full path.
  const std::string& path() const { return path_; }

 private:
  EventFileWriter(std::FILE* file, std::string path) : file_(file), path_(std::move(path)) {}
  Status WriteRecord(const std::string& data);

  std::FILE* file_ = nullptr;  // owned; null once closed or moved from
  std::string path_;
};

// OK when `logdir` is a folder or does not exist yet; InvalidArgument when it is empty or names a file.
Status CheckLogdir(const std::string& logdir);

// Writes one tfevents file per recorded attempt of every job in `results` (a SweepService.Results answer
// fetched with include_metrics = true), in one folder per job:
//   <logdir>/<model>/<layer>/<dataset>[/variant=<v>]/d=<d>/seed=<s>[/attempt=<a>]
// (attempt=<a> only for jobs with curves from several attempts; '/' and other characters that do not
// belong in a folder name are replaced by '_'; should two jobs then share a folder, the later one's
// seed folder gets ".job<id>" appended). Scalars: train/loss and val/<metric> at every epoch
// (step = epoch, wall time = the point's time) and, for a succeeded job, test/<metric> at its last epoch
// in the file of the attempt that succeeded (a succeeded job without any curve still gets a file with
// test/<metric>). <metric> is the job's metric ("r2", "accuracy"), from its result or its spec.
// Event files already in a job folder we write are removed first, so exporting a sweep again replaces its
// curves instead of doubling them; nothing else under `logdir` is touched.
// Returns how many files were written. InvalidArgument when `logdir` is empty or a file is in the way
// of a folder; Unavailable naming the path when a folder or file cannot be written.
StatusOr<int> WriteSweepEvents(const v1::ResultsResponse& results, const std::string& logdir);

}  // namespace dwarp::clients
