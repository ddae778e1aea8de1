// JobRunner: runs one JobSpec (common/job_spec.h) on this machine, start to finish, and returns its
// JobReport: the glue between a validated job and the engine (DESIGN.md "Jobs"). Every job runs in the same
// order: device, data, model, trainer. JobResultOf turns the report into the job's JobResult
// (common/job_result.h), the shape a result keeps from here to the coordinator's store.
//
//   data     LoadJobData (worker/job_data.h): one entry point keyed by data.kind (synthetic, majaj_hong,
//            nsd and generic for regression and rsa; idx and image_folder for classification).
//   model    BuildJobModel (worker/job_model.h) with the spec's arch, layer, weights, input size, hidden
//            widths and model.seed, else train.seed (num_classes: the data's classes for classification jobs).
//   trainer  regression:     d = 0 -> CacheFeatures + TrainRidgeReadout (readout ridge) or TrainSgdReadout
//                            d > 0 -> SubspaceModel (the model's warp prefixes; layer groups: the spec's,
//                                     else the model's) + TrainEncoderInSubspace
//                            full  -> TrainEncoderFull
//            classification: d = 0 -> TrainLinearClassifier (the frozen model's features cached once per
//                                     split, a linear head trained on them; parameters_warped: all of
//                                     the model's)
//                            d > 0 -> SubspaceModel (as above) + TrainClassifierInSubspace
//                            full  -> TrainClassifierFull
//                            The model's own output is read as the logits (no head: the intrinsic-dimension
//                            paper's setup) only when d > 0 or full and the read-out layer is the network's
//                            output layer (ReadoutModel::output_layer: a built-in arch's last layer, or a
//                            torchscript model read out with an empty layer) with one column per class.
//                            Otherwise (d = 0, an inner layer, or a torchscript output of another width) a
//                            linear head [F -> classes] classifies, trained at train.lr with
//                            train.weight_decay (train.freeze_head: it keeps its initialisation); theta_d
//                            trains at train.low_dim_lr (default lr), a full model at train.lr.
//   device   train.device (engine/device.h ResolveDevice): cpu, cuda or cuda:N, checked before any work
//            (FailedPrecondition when this build or machine cannot use it). Data are loaded and kept on the
//            CPU (a synthetic brain's teacher runs there too); the model moves to the device once, features
//            for d = 0 are cached there, minibatches are sent there; ridge fits and metrics run on the CPU
//            in float64. JobReport::device is the device used.
// Unsupported (an InvalidArgument saying so): classification with readout ridge (ridge fits regression
// targets; classification at d = 0 trains by SGD: readout sgd), or with train.weight_decay /
// train.freeze_head when the job reads the model's own logits (there is no head).
//
// Nothing throws out of RunJob: LibTorch exceptions become Internal statuses.
// Thread-safety: one RunJob per thread; SetComputeThreads (threading.h) is the caller's (process-wide).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "common/job_result.h"
#include "common/job_spec.h"
#include "common/status.h"
#include "worker/engine/train/training_loop.h"

namespace dwarp::worker {

struct Scores {
  // Regression: R² (uniform over targets) and Pearson r; classification: accuracy; rsa: the correlation of
  // the model's and the brain's RDMs (the others unused).
  double r2 = 0.0;
  double pearson_mean = 0.0;
  double pearson_median = 0.0;
  double accuracy = 0.0;
  double rsa = 0.0;
};

// Everything one run reports: the scores of every kind per split, the sizes of its data and model, the
// per-epoch history, and the spec it ran (with the device it ran on).
struct JobReport {
  JobSpec spec;
  std::string metric;                   // "r2", "accuracy" or "rsa": the score that train/val/test report
  Scores train, validation, test;
  int64_t epochs_run = 0;               // 0 for ridge
  int64_t best_epoch = 0;
  double seconds = 0.0;                 // wall time of RunJob (data loading included)
  double train_seconds = 0.0;           // of the trainer call (feature caching included for d = 0)
  int64_t numbers_trained = 0;          // d, 0 (linear readout) or parameters_warped (full); the head not counted
  int64_t parameters_warped = 0;        // D: the warped parameters (d > 0) or all model parameters
  int64_t representation_size = 0;      // F
  bool linear_head = false;             // classification: a linear head classified (false: the model's logits)
  int64_t train_size = 0, val_size = 0, test_size = 0;
  int64_t num_targets = 0;              // neuroids/voxels, or classes
  // Regression: the mean over targets of the data's per-target noise ceiling (NeuralData::noise_ceiling,
  // R² units), the reference of a fraction_of_noise_ceiling threshold. NaN when the data has none and for
  // classification.
  double noise_ceiling = std::numeric_limits<double>::quiet_NaN();
  std::string device = "cpu";
  std::string data_description;
  std::vector<engine::EpochRecord> history;
};

struct JobRunOptions {
  // Called after every epoch on the calling thread; `max_epochs` is the spec's.
  std::function<void(const engine::EpochRecord& record, int64_t max_epochs)> on_epoch;
  // Called with a short line at each phase ("loading data", "caching features", ...).
  std::function<void(const std::string& phase)> on_phase;
  // Cooperative cancellation (the worker daemon: a cancelled job, a lost lease, a drain timeout). Polled
  // from the calling thread before each phase and before every training minibatch; once it returns true,
  // RunJob returns a Cancelled status ("cancelled: ...") soon after. A ridge fit or a feature cache in
  // progress is not interrupted. Must be cheap and safe to call from the RunJob thread (an atomic flag).
  std::function<bool()> should_stop;
};

// The score of `metric` ("r2", "accuracy" or "rsa") in `scores`: what a d_warp curve plots.
double MetricScore(const std::string& metric, const Scores& scores);

// Runs the job. InvalidArgument / NotFound naming the bad field or value, Internal for LibTorch errors,
// Cancelled when options.should_stop asked it to stop.
StatusOr<JobReport> RunJob(const JobSpec& spec, const JobRunOptions& options = {});

// The job's model (built as RunJob builds it, in eval mode, on the CPU) read out on the image files of the
// folder `dir` (sorted by name, the first data.limit_stimuli of them), prepared as the job prepares
// stimuli files (data.transform, image_size, mean, std; grayscale for one input channel): float32
// [N, features], the features a d = 0 job caches. NotFound for a missing folder; the model's errors.
StatusOr<at::Tensor> JobFeaturesOfImageFolder(const JobSpec& spec, const std::string& dir);

// The report as JSON: d (as the spec writes it: "0", "300", "full"), trained_parameters (numbers_trained),
// D (parameters_warped), metric, scores, epochs, wall and train seconds, device, representation size,
// data sizes, noise_ceiling (null when NaN), history, and for classification linear_head. Not the spec: a
// job run by a worker has it stored with the job (the coordinator's spec_json); `dwarp train` adds it to
// its own result file under "spec".
nlohmann::json JobReportToJson(const JobReport& report);

// The job's result (common/job_result.h) from its report: train/val/test of the report's metric
// (MetricScore), test Pearson r, epochs, seconds, counts, device, noise ceiling, and result_json =
// JobReportToJson. The one place a report becomes the result a worker sends.
JobResult JobResultOf(const JobReport& report);

}  // namespace dwarp::worker
