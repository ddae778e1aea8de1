// JobResult: what one finished job reports, the one shape a result has from the worker's job runner to the
// coordinator's store and the CLI. Plain values (no LibTorch, no Protobuf), so the worker, the coordinator
// and the clients share it:
//   worker      worker/job_runner.h JobResultOf(report) makes it from a run's full JobReport
//   the wire    common/rpc/job_result_message.h JobResultToProto / JobResultFromProto, the only conversion
//               to and from dwarp.v1.JobResult (the worker sends it in Complete, the coordinator answers it in
//               Job.result)
//   the store   coordinator/store.h ResultRow: this plus the attempt, worker and time it was recorded
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

namespace dwarp {

struct JobResult {
  std::string metric;               // "r2", "accuracy" or "rsa": what the three scores measure
  double train_score = 0.0;
  double val_score = 0.0;
  double test_score = 0.0;          // what d_warp uses
  double test_pearson_mean = 0.0;   // regression: Pearson r on the test split, mean over targets; 0 otherwise
  double test_pearson_median = 0.0; // ... and the median over targets
  int64_t epochs_run = 0;           // 0 for a closed-form (ridge) fit
  int64_t best_epoch = 0;           // 1-based epoch of the restored state; 0 when none was kept
  double seconds = 0.0;             // wall time of the job on the worker (data loading included)
  // How many numbers training moved: d (theta_d, its layer-group scalars included), 0 for a linear readout
  // on the frozen model (d = 0; the readout head is never counted), or parameters_warped (d = full).
  int64_t numbers_trained = 0;
  // How many model parameters the job warps: those up to the read-out layer (d > 0), or all of the model's
  // (d = 0 and full): the D of theta_D = theta_0 + P theta_d.
  int64_t parameters_warped = 0;
  std::string device;               // where the job ran: "cpu", "cuda:0", ...
  // The mean over targets of the data's per-target noise ceiling (R² units), the reference of a
  // fraction_of_noise_ceiling threshold. NaN = unknown: the data has none, a classification job, a result
  // recorded before the ceiling was kept.
  double noise_ceiling = std::numeric_limits<double>::quiet_NaN();
  // The worker's full report as JSON (worker/job_runner.h JobReportToJson): per-split scores, sizes, the
  // per-epoch history. Not the spec: the job's spec_json holds it.
  std::string result_json;

  bool has_noise_ceiling() const { return std::isfinite(noise_ceiling); }
};

}  // namespace dwarp
