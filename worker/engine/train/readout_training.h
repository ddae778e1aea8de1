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
// targets (nn.MSELoss); Adam with `head_learning_rate` and `head_weight_decay` (Adam's L2 term, as
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

// The loop settings (WithLoopSettings, training_loop.h) default to 100 epochs of 128, patience 10; the
// validation_score on_epoch sees is the R².
struct SgdReadoutOptions : WithLoopSettings<SgdReadoutOptions> {
  SgdReadoutOptions() : WithLoopSettings(TrainingLoopOptions().epochs(100).batch_size(128).patience(10)) {}

  // The head's Adam (the head is all that trains): learning rate (> 0) and weight decay (>= 0).
  SgdReadoutOptions& head_learning_rate(double v) { head_learning_rate_ = v; return *this; }
  SgdReadoutOptions& head_weight_decay(double v) { head_weight_decay_ = v; return *this; }
  // Rows per evaluation matmul (memory, not results).
  SgdReadoutOptions& eval_batch_size(int64_t v) { eval_batch_size_ = v; return *this; }

  double head_learning_rate_ = 1e-3;
  double head_weight_decay_ = 0.0;
  int64_t eval_batch_size_ = 4096;
};

// The summary (training_loop.h) at d = 0: numbers_trained and parameters_warped 0,
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
