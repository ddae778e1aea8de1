// `dwarp intrinsic-dim`: measures the intrinsic dimension (Li et al. 2018) of an MNIST-style IDX dataset
// (by default Debian's Fashion-MNIST) for an MLP classifier, on this machine, without the sweep service.
//
// The same MLP (one initialisation, from --seed) is trained through random Fastfood subspaces of each d
// in --dims (SubspaceModel, one projection per parameter tensor) and once with all parameters ("full").
// d_int90 is where the test accuracy first reaches 90% of the full run's (of the best subspace run's with
// --no-full), interpolated in log d exactly as DESIGN.md's d_warp rule (common/threshold_crossing.h).
// With --repeats N every d (and full) runs N times with seeds --seed, --seed + 1, ... for the projections
// and minibatch order (the initial MLP stays the one from --seed), and the rule uses mean accuracies.
//
// Splits: the first --train-limit images of the training file train, the next --val-size validate
// (best epoch, early stopping), and the first --test-limit images of the test file are scored.
//
// Learning rate of theta_d: common/job_spec.h LowDimLearningRate, the rule the job path uses too: run d
// uses lr * 1000 / d (--lr is the rate at d = 1000; train.low_dim_lr_scaling inverse_d in a job);
// --no-lr-scaling uses --lr for every d. On Fashion-MNIST with a 784-200-200-10 MLP,
// 5 cosine-annealed epochs, the best fixed rate was ~1 at d = 100, ~0.3 at d = 300, 0.1-0.3 at d = 1000,
// 0.03-0.05 at d = 3000 and 0.01 at d = 10000, which this rule follows.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/job_spec.h"
#include "common/threshold_crossing.h"
#include "worker/engine/train/classifier_training.h"

namespace CLI {
class App;
}

namespace dwarp::clients {

struct IntrinsicDimConfig {
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  int64_t train_limit = 50000;
  int64_t val_size = 10000;
  int64_t test_limit = 10000;
  std::vector<int64_t> dims{10, 30, 100, 300, 1000, 3000};
  bool full = true;
  std::vector<int64_t> hidden{200, 200};
  int64_t epochs = 10;
  int64_t batch_size = 128;
  double lr = 0.1;         // Adam on theta_d at d = kLowDimLrReferenceDim
  bool scale_lr = true;    // scale lr by kLowDimLrReferenceDim / d (LowDimLrScaling::kInverseD)
  std::string projection = "size_weighted";  // engine::ProjectionMode by its job-file name (the job default)
  double full_lr = 1e-3;   // Adam on all parameters
  bool cosine = true;      // cosine-annealed learning rates (else constant)
  int64_t patience = 0;
  double threshold_fraction = 0.9;
  uint64_t seed = 0;
  int64_t repeats = 1;     // runs per d and of full, seeds seed, seed + 1, ...
  int threads = 0;         // 0: all cores
  std::string out;         // JSON report path; empty: none
};

// The learning rate of theta_d for subspace dimension d (see the comment at the top).
double SubspaceLearningRate(const IntrinsicDimConfig& config, int64_t d);

// One training run: a subspace dimension d, or the full run (d absent).
struct IntrinsicDimRun {
  std::optional<int64_t> d;
  uint64_t seed = 0;              // of the projections and the minibatch order
  double learning_rate = 0.0;
  engine::ClassifierTrainingResult result;
};

struct IntrinsicDimReport {
  IntrinsicDimConfig config;        // as run (threads resolved)
  std::vector<int64_t> widths;      // MLP layer widths, input first
  int64_t parameter_count = 0;      // D
  int64_t train_size = 0, val_size = 0, test_size = 0;
  int64_t num_classes = 0;
  std::vector<IntrinsicDimRun> runs;  // subspace runs by increasing d (repeats together), then the full runs
  std::string threshold_reference;    // what reference_accuracy is: "full", "mean full", "best subspace", ...
  double reference_accuracy = 0.0;
  ThresholdCrossing crossing;         // d_int90 (threshold = fraction * reference)
  double total_seconds = 0.0;
};

// Loads the data, trains every run (logging progress through spdlog) and finds d_int90.
// Fails with the first error: bad configuration, missing or malformed data, a run that fails.
StatusOr<IntrinsicDimReport> RunIntrinsicDim(IntrinsicDimConfig config);

// The table and the d_int90 line, as printed after the runs.
std::string FormatIntrinsicDimTable(const IntrinsicDimReport& report);

// The report as JSON text: dataset, model, training settings, one entry per run (d or "full", D, test and
// best validation accuracy, epochs, seconds, learning rate, per-epoch history), threshold and d_int.
std::string IntrinsicDimReportJson(const IntrinsicDimReport& report);

// Registers the `intrinsic-dim` subcommand on `app`. Its callback runs the measurement, prints the table,
// writes --out, and on failure logs the reason and throws CLI::RuntimeError(1) so that CLI::App::exit
// returns a non-zero status.
void AddIntrinsicDimCommand(CLI::App& app);

}  // namespace dwarp::clients
