// The d = 0 job: a linear readout trained on a frozen model's cached features (feature_cache.h), by
// either of the two ways the research code has:
//   TrainSgdReadout    Adam on a linear head, minibatches of cached features, early stopping on the
//                      validation R² (the seed's d = 0 training; the features are never recomputed)
//   TrainRidgeReadout  closed-form ridge with alpha chosen on the validation split (ridge_readout.h;
//                      the seed's ols_linear_encoder)
// Both report train / validation / test scores (metrics.h) of the same result struct.
//
// SGD details: the head is torch.nn.Linear's, Y ≈ X W^T + b with W [T, F] and b [T], initialised as
// nn.Linear does (uniform in ±1/sqrt(F), weight then bias) from a generator seeded by `seed`, the same
// draw as encoding_training.h's head for the same seed; loss: mean squared error over the batch and
// targets (nn.MSELoss); Adam with `learning_rate` and `weight_decay` (Adam's L2 term, as
// torch.optim.Adam). The epochs are training_loop.h's RunTrainingLoop: minibatches from a seeded shuffle
// (the same order on every machine), the validation R² after every epoch, an improvement when it beats
// the best by more than `min_delta`, a stop after `patience` epochs without one (0: never early), and the
// best head restored before the final scores. Deterministic for a given seed, data and intra-op thread
// count.
//
// Errors: InvalidArgument for bad options (naming the value), for features and responses that do not fit
// together (shapes, non-finite responses with row and column), and for a diverging run (a non-finite
// loss, naming the epoch, step and learning rate); Internal for LibTorch exceptions. Nothing throws.
// Thread-safety: pure functions; the features are not modified.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "common/status.h"
#include "worker/engine/train/feature_cache.h"
#include "worker/engine/train/metrics.h"
#include "worker/engine/train/ridge_readout.h"
#include "worker/engine/train/training_loop.h"

namespace dwarp::engine {

struct SgdReadoutOptions {
  SgdReadoutOptions& learning_rate(double v) { learning_rate_ = v; return *this; }
  SgdReadoutOptions& weight_decay(double v) { weight_decay_ = v; return *this; }
  SgdReadoutOptions& batch_size(int64_t v) { batch_size_ = v; return *this; }
  SgdReadoutOptions& max_epochs(int64_t v) { max_epochs_ = v; return *this; }
  // Epochs without an improvement before stopping; 0: run all max_epochs.
  SgdReadoutOptions& patience(int64_t v) { patience_ = v; return *this; }
  // How much the validation R² must rise to count as an improvement (>= 0).
  SgdReadoutOptions& min_delta(double v) { min_delta_ = v; return *this; }
  // Seed of the head's initialisation and of the minibatch order.
  SgdReadoutOptions& schedule(LearningRateSchedule v) { schedule_ = v; return *this; }
  SgdReadoutOptions& seed(uint64_t v) { seed_ = v; return *this; }
  // Rows per evaluation matmul (memory, not results).
  SgdReadoutOptions& eval_batch_size(int64_t v) { eval_batch_size_ = v; return *this; }
  // Called after every epoch on the calling thread (validation_score is the R²).
  SgdReadoutOptions& on_epoch(std::function<void(const EpochRecord&)> v) { on_epoch_ = std::move(v); return *this; }
  // Polled before every minibatch; true stops training with a Cancelled status (training_loop.h).
  SgdReadoutOptions& should_stop(std::function<bool()> v) { should_stop_ = std::move(v); return *this; }

  double learning_rate_ = 1e-3;
  double weight_decay_ = 0.0;
  int64_t batch_size_ = 128;
  int64_t max_epochs_ = 100;
  int64_t patience_ = 10;
  double min_delta_ = 0.0;
  LearningRateSchedule schedule_ = LearningRateSchedule::kConstant;
  uint64_t seed_ = 0;
  int64_t eval_batch_size_ = 4096;
  std::function<void(const EpochRecord&)> on_epoch_;
  std::function<bool()> should_stop_;
};

// The summary (training_loop.h) at d = 0: trained_parameter_count and model_parameter_count 0,
// representation_size the cached feature count; the head is the readout Y ≈ X W^T + b, float32 for SGD
// (the restored head), float64 for ridge (RidgeFit's weights, transposed); epochs, best_epoch and
// history stay 0 / empty for ridge; seconds excludes feature caching (see CachedFeatures).
struct ReadoutResult : TrainingSummary {
  RegressionScores train;
  RegressionScores validation;
  RegressionScores test;
  at::Tensor alphas;   // ridge: float64 [T], the alpha of each target; undefined for SGD
};

StatusOr<ReadoutResult> TrainSgdReadout(const CachedFeatures& features, const SgdReadoutOptions& options);

StatusOr<ReadoutResult> TrainRidgeReadout(const CachedFeatures& features, const RidgeOptions& options = RidgeOptions());

}  // namespace dwarp::engine
